"""`rnnconvert batch plan.yaml`: many verified conversions from one YAML plan.

Owns: `plan` (reading and validating a plan whole, every problem at once), `run` (running its tasks,
resumable: the batch API), `workers` (the conversions in parallel worker processes, and their signals),
`state` (the state file a re-run skips by, the plan's lock) and `report` (the plan report, progress lines).
May import: `rnnconvert.verification` and everything below it.  Only `rnnconvert.cli` imports it.
"""
