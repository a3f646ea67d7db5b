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


RESAVE = """
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';
import './rnnconvert.layers.mjs';
const fetchFunc = async (url) => new Response(readFileSync(String(url)));
for (const stem of process.argv.slice(2)) {
  const model = await tf.loadLayersModel(tf.io.http(stem + '.json', {fetchFunc}));
  await model.save(tf.io.withSaveHandler(async (a) => {
    writeFileSync(stem + '.saved.bin', Buffer.from(a.weightData));
    writeFileSync(stem + '.saved.json', JSON.stringify({format: 'layers-model', modelTopology: a.modelTopology,
      weightsManifest: [{paths: [stem.split('/').pop() + '.saved.bin'], weights: a.weightSpecs}]}));
    return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
  }));
}
"""


def resave(folder, stems: list[str]) -> None:
    """TF.js loads each written `<stem>.json` (in `folder`, with rnnconvert's layer classes) and saves it again
    as `<stem>.saved.json` / `.saved.bin`: what TF.js itself writes of the model."""
    import shutil
    import subprocess
    from rnnconvert.formats.tfjs import layers_js
    require_tfjs()
    os.symlink(os.path.dirname(os.path.dirname(runtime.find_tfjs())), os.path.join(folder, "node_modules"))
    with open(os.path.join(folder, "rnnconvert.layers.mjs"), "w") as fh:
        fh.write(layers_js.SOURCE)
    with open(os.path.join(folder, "resave.mjs"), "w") as fh:
        fh.write(RESAVE)
    res = subprocess.run([shutil.which("node"), "resave.mjs", *stems], cwd=folder, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr


def require_chromium() -> str:
    """Headless Chromium (the system package), as tests/pictures uses it; absent, skip, or fail under CI."""
    import shutil
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        if os.environ.get("CI") or os.environ.get("RNNCONVERT_SCREENSHOTS"):
            pytest.fail("chromium is not installed (CI installs it: apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return path
