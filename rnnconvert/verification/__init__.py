"""Numeric equivalence: does a written file compute what its source computes?

Owns: `convert` (convert as its stages: resolve, read, write to a temporary place, verify, install, emit),
`verify` (two files against each other, or one against golden vectors), `checks` (the tolerance policy,
`compare`, a Check), `oracles` (the checks each oracle runs, `check_models`), `report` (the report and its
verdict), `outputs` (the files written besides DST, DST installed), `suite` (the seeded input suite and
the streaming check), `inputs` (the user's own inputs, what a model's inputs must be), `large` (the order
that holds one copy of a large model's weights), `state_checks` (models with state inputs and outputs),
`runtimes` (each format's own framework run on a written file), `diagnose` (what changed and where two
models part), `vectors` (golden test vectors), `budget` (the time verification may spend, the suite fitted
to it), `progress` (stages and finished checks as events, the CLI's live line or lines).
May import: `rnnconvert.formats`, `rnnconvert.reference`, `rnnconvert.model`, `rnnconvert.files`,
`rnnconvert.errors`.  `rnnconvert.api`, `batch` and `cli` import it.
"""
