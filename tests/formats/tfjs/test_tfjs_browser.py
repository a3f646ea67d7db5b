"""Written TF.js models in a browser, as a page loads them: headless Chromium opens a page served over HTTP
(127.0.0.1) that loads TF.js with a script tag, imports the module beside the model
(`import './model.layers.mjs'`, rnnconvert's classes on the page's `tf`) and calls
`tf.loadLayersModel('NAME.json')`; its predictions match the source framework's stored outputs within 1e-4."""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from rnnconvert.formats.tfjs import runtime
from tfjs_oracle import require_chromium, require_tfjs

pytestmark = pytest.mark.slow     # Chromium's start (about 8 s): run by .ci/run after the README's test command

MODELS = {"gru": "tfkeras2/bigru_sum_seq/model.h5",                         # reset_after BiGRU
          "masked": "keras3/embed_mask_lstm_seq_gap_dense/model.keras",      # token ids, masked pooling
          "state": "torch_onnx/lstm_initial_state_expand/model.onnx"}        # initial states, time-major source
PAGE = """<!doctype html><html><body><pre id="out">pending</pre>
<script src="tf.min.js"></script>
<script type="module">
%s
const jobs = %s;
const out = {};
try {
  await tf.setBackend('cpu');
  for (const [name, job] of Object.entries(jobs)) {
    const model = await tf.loadLayersModel(name + '.json');
    out[name] = await model.predict(tf.tensor(job.x, job.shape, job.dtype)).array();
  }
  document.getElementById('out').textContent = 'RESULT' + JSON.stringify(out) + 'END';
} catch (e) {
  document.getElementById('out').textContent = 'ERROR ' + e;
}
</script></body></html>
"""


class _Files(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript"}

    def log_message(self, *args):
        pass


def open_page(folder) -> str:
    """The text of the page's <pre> after its scripts ran, the folder served on a free local port."""
    exe = require_chromium()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Files, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        res = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-extensions", "--virtual-time-budget=60000", "--dump-dom",
                              f"http://127.0.0.1:{server.server_address[1]}/page.html"],
                             capture_output=True, text=True, timeout=180)
    finally:
        server.shutdown()
        server.server_close()
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.search(r'<pre id="out">(.*?)</pre>', res.stdout, re.S)
    assert found, res.stdout[-2000:]
    return found.group(1)


def test_a_page_loads_and_runs_the_written_models(tmp_path):
    require_tfjs()
    shutil.copy(os.path.join(runtime.find_tfjs(), "dist", "tf.min.js"), tmp_path / "tf.min.js")
    jobs, expected = {}, {}
    for name, rel in MODELS.items():
        src = FIXTURES / rel
        model = rnnconvert.read(src)
        rnnconvert.write(model, tmp_path / f"{name}.json")
        x = np.load(src.parent / "inputs.npz")["t7"]
        y = np.load(src.parent / "outputs.npz")["t7"]
        if model.input.layout == "time_batch_feature":          # the TF.js model takes [batch, time, features]
            x, y = np.swapaxes(x, 0, 1), np.swapaxes(y, 0, 1) if y.ndim == 3 else y
        ints = x.dtype.kind in "iu"
        jobs[name] = {"x": x.ravel().tolist(), "shape": list(x.shape), "dtype": "int32" if ints else "float32"}
        expected[name] = y
    imports = "\n".join(f"import './{name}.layers.mjs';" for name in MODELS)
    (tmp_path / "page.html").write_text(PAGE % (imports, json.dumps(jobs)))
    text = open_page(tmp_path)
    assert text.startswith("RESULT"), text[:2000]
    got = json.loads(text[len("RESULT"):-len("END")])
    for name, y in expected.items():
        np.testing.assert_allclose(np.array(got[name]), y, atol=1e-4, rtol=0, err_msg=name)
