"""The command line: `rnnconvert SRC DST`, `convert`, `verify`, `inspect`, `predict`, `batch`, `formats`.

A thin layer over `rnnconvert.api` (and `rnnconvert.batch`).  Owns: the commands and their options
(`commands`), one-line errors with their exit codes, and the text rendering of reports and model
descriptions (`render`).  May import everything; nothing imports it.
"""
from .commands import cli, main

__all__ = ["cli", "main"]
