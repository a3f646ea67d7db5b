"""The tfjs runtime hook: a TF.js layers model run by `@tensorflow/tfjs` (pure JavaScript, CPU backend)
under Node, through `tf.loadLayersModel` as a browser loads it: model.json first, then the shards its
manifest names, fetched relative to it (a fetch outside the model's folder fails).

Where the npm package is found (the first folder holding `node_modules/@tensorflow/tfjs`, each folder's
parents searched as Node does): `$RNNCONVERT_TFJS` (an npm prefix, e.g. `npm install --prefix DIR
@tensorflow/tfjs`), the working directory, then the folder holding the `rnnconvert` package (a clone's
`npm install @tensorflow/tfjs`).  Missing node or package: `RuntimeUnavailable` (the check is not run).
Node runs in a scratch directory with a bare environment (`files.scratch`).  `run_many` runs many
models and inputs in one Node process (tests).
"""
from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np

from ...errors import InputError, RuntimeUnavailable
from ...files import interrupt, scratch

PACKAGE = os.path.join("node_modules", "@tensorflow", "tfjs")
ENV = "RNNCONVERT_TFJS"

_RUNNER = r"""
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve, sep } from 'node:path';
const [tfjsDir, jobsPath] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const warn = console.warn;
console.warn = () => {};                     // tfjs's banner about tfjs-node
const tf = require(tfjsDir);
console.warn = warn;
await tf.setBackend('cpu');
const jobs = JSON.parse(readFileSync(jobsPath, 'utf8'));
const models = new Map();
function fetchIn(folder) {
  return async (url) => {
    const file = resolve(String(url));
    if (!file.startsWith(folder + sep)) throw new Error(`the model asks for '${url}', outside its folder`);
    return new Response(readFileSync(file));
  };
}
for (const job of jobs) {
  let model = models.get(job.model);
  if (model === undefined) {
    const folder = dirname(resolve(job.model));
    model = await tf.loadLayersModel(tf.io.http(resolve(job.model), {fetchFunc: fetchIn(folder)}));
    models.set(job.model, model);
  }
  const buf = readFileSync(job.x);
  const raw = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const data = job.dtype === 'int32' ? new Int32Array(raw) : new Float32Array(raw);
  const x = tf.tensor(data, job.shape, job.dtype);
  const y = model.predict(x, {batchSize: Math.max(job.shape[0], 1)});
  writeFileSync(job.y, Buffer.from(new Float32Array(y.dataSync()).buffer));
  writeFileSync(job.y + '.json', JSON.stringify(y.shape));
  tf.dispose([x, y]);
}
"""


def find_tfjs() -> str:
    """The folder of the `@tensorflow/tfjs` package Node will load; RuntimeUnavailable if none."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    starts = [os.environ.get(ENV) or "", os.getcwd(), here]
    for start in filter(None, starts):
        folder = os.path.abspath(start)
        if os.path.basename(folder) == "node_modules":
            folder = os.path.dirname(folder)
        while True:
            candidate = os.path.join(folder, PACKAGE)
            if os.path.isfile(os.path.join(candidate, "package.json")):
                return candidate
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    raise RuntimeUnavailable(f"the npm package @tensorflow/tfjs is not installed (npm install --prefix DIR "
                             f"@tensorflow/tfjs and set {ENV}=DIR)")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeUnavailable("node is not on PATH")
    return node


def run_many(jobs) -> list[np.ndarray]:
    """`jobs`: (model.json path, x batch-major) pairs, run in one Node process; the outputs in order."""
    node, tfjs = _node(), find_tfjs()
    with interrupt.temporary_directory("rnnconvert-tfjs-") as d:
        listed = []
        for k, (path, x) in enumerate(jobs):
            x = np.asarray(x)
            dtype = "int32" if x.dtype.kind in "iu" else "float32"
            fin, fout = os.path.join(d, f"x{k}.bin"), os.path.join(d, f"y{k}.bin")
            np.ascontiguousarray(x, dtype="<i4" if dtype == "int32" else "<f4").tofile(fin)
            listed.append({"model": os.path.abspath(os.fspath(path)), "x": fin, "y": fout,
                           "shape": list(x.shape), "dtype": dtype})
        runner, jobs_file = os.path.join(d, "run.mjs"), os.path.join(d, "jobs.json")
        with open(runner, "w") as f:
            f.write(_RUNNER)
        with open(jobs_file, "w") as f:
            json.dump(listed, f)
        res = scratch.run([node, runner, tfjs, jobs_file])
        if res.returncode != 0:
            lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
            why = next((ln.strip() for ln in lines if re.match(r"[A-Za-z.]*(Error|Exception)\b", ln)),
                       lines[-1] if lines else "no message")
            raise InputError(f"TF.js (@tensorflow/tfjs under node) failed: {why[:500]}")
        out = []
        for job in listed:
            with open(job["y"] + ".json") as f:
                shape = json.load(f)
            out.append(np.fromfile(job["y"], dtype="<f4").reshape(shape))
        return out


def run(path, x, model) -> np.ndarray:
    """The TF.js model at `path` on `x` (in `model.input.layout`), as float32."""
    time_major = model is not None and model.input.layout == "time_batch_feature"
    x = np.asarray(x)
    ints = model is not None and str(model.input.dtype).startswith("int")
    x = x.astype(np.int32 if ints else np.float32)
    if time_major:
        x = np.swapaxes(x, 0, 1)
    y = run_many([(path, x)])[0]
    if time_major and y.ndim == 3:
        y = np.swapaxes(y, 0, 1)
    return np.ascontiguousarray(y)
