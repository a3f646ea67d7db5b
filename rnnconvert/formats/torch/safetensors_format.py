"""The registry's `safetensors` row: the torch module's verbs, except that `read` takes the file as
safetensors whatever its name (`--from safetensors`).  A file that is not one is refused with
safetensors' own reason, never handed to torch.load (which would say the file needs PyTorch)."""
from __future__ import annotations

from . import read as _read
from . import run, runner, safetensors_io, sniff, write, write_module

__all__ = ["sniff", "read", "write", "run", "runner", "write_module"]


def read(path, **options):
    if not safetensors_io.sniff(path):
        safetensors_io.read(path)          # raises InputError naming what is wrong with the file
    return _read(path, **options)
