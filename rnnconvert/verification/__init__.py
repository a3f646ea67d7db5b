"""Numeric equivalence: does a written file compute what its source computes?

Owns: `suite` (the seeded input suite and the streaming check), `inputs` (the user's own inputs),
`core` (tolerance, checks, reports, `convert` and `verify`), `large` (the order that holds one copy of
a large model's weights), `state_checks` (models with state inputs and outputs), `runtimes` (each
format's own framework run on a written file), `diagnose` (what changed and where two models part),
`vectors` (golden test vectors).
May import: `rnnconvert.formats`, `rnnconvert.reference`, `rnnconvert.model`, `rnnconvert.files`,
`rnnconvert.errors`.  `rnnconvert.api`, `batch` and `cli` import it.
"""
