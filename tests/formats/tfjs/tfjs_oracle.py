"""The TF.js oracle for tests: @tensorflow/tfjs under Node, found as rnnconvert's runtime finds it.  Absent, a
test skips on a developer's machine and fails under CI (`CI` or `RNNCONVERT_TFJS` set: .ci/run installs it)."""
from __future__ import annotations

import os

import pytest

from rnnconvert.errors import RuntimeUnavailable
from rnnconvert.formats.tfjs import runtime


def require_tfjs() -> None:
    try:
        runtime._node()
        runtime.find_tfjs()
    except RuntimeUnavailable as exc:
        if os.environ.get("CI") or os.environ.get(runtime.ENV):
            pytest.fail(f"TF.js is needed under CI: {exc}")
        pytest.skip(str(exc))


def run_all(jobs):
    """runtime.run_many after require_tfjs: one Node process for every (model.json, x)."""
    require_tfjs()
    return runtime.run_many(jobs)


def require_chromium() -> str:
    """Headless Chromium (the system package), as tests/pictures uses it; absent, skip, or fail under CI."""
    import shutil
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        if os.environ.get("CI") or os.environ.get("RNNCONVERT_SCREENSHOTS"):
            pytest.fail("chromium is not installed (CI installs it: apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return path
