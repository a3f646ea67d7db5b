"""The torch-free .pt reader on the fuzz corpus (tests/fuzz_formats.py's torch_pt cases: mutated fixtures,
legacy and zip, random bytes) against torch.load(weights_only=True): wherever torch loads a file, our
unpickler loads it too and every tensor has torch's dtype, shape and bytes; where it refuses, it refuses
with rnnconvert's own error.  FUZZ_CASES cases (default 200; CI runs 1000)."""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest
import torch

from rnnconvert.errors import RnnConvertError
from rnnconvert.formats.torch import loading
from tests.formats.torch.test_pt_reader import assert_same_tree

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fuzz_cases import cases  # noqa: E402

pytestmark = pytest.mark.slow     # run by .ci/run after the README's test command

N = int(os.environ.get("FUZZ_CASES", "200"))


def test_fuzzed_files_torch_loads_read_the_same(tmp_path):
    compared = refused = 0
    disagree = []
    for case in cases("torch_pt", N, tmp_path / "seeds"):
        d = tmp_path / str(case.index)
        d.mkdir()
        made = case.make(d)
        path = made[0] if isinstance(made, tuple) else made
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - torch refuses it: ours must not escape (tests/test_fuzz.py checks)
            refused += 1
            continue
        try:
            with loading.open_pt(path) as pt:
                assert_same_tree(pt, pt.obj, theirs)
        except RnnConvertError as exc:
            disagree.append(f"{case.index} {case.label}: torch loads it, rnnconvert says {exc.message}")
        compared += 1
    assert not disagree, "\n".join(disagree[:20])
    assert compared > N // 10, (compared, refused)
