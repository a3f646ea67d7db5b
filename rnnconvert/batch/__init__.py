"""`rnnconvert batch plan.yaml`: many verified conversions from one YAML plan.

Owns: `plan` (reading and validating a plan whole, every problem at once) and `run` (running its tasks
in parallel, resumable, with a plan report).
May import: `rnnconvert.verification` and everything below it.  Only `rnnconvert.cli` imports it.
"""
