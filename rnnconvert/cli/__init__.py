"""The command line: `rnnconvert SRC DST`, `convert`, `verify`, `inspect`, `predict`, `batch`, `formats`.

A thin layer over `rnnconvert.api` (and `rnnconvert.batch`).  Owns: the group, its one-line errors with
their exit codes and the entry point (`app`), the options shared by several commands (`options`), the
commands (`commands`), and the text rendering of reports, model descriptions and the formats table (`render`).
May import everything; nothing imports it.
"""
from .app import main
from .commands import cli      # the group with its commands registered

__all__ = ["cli", "main"]
