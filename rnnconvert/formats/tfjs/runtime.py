"""The tfjs runtime hook: a TF.js layers model run by `@tensorflow/tfjs` (pure JavaScript, CPU backend)
under Node, through `tf.loadLayersModel` as a browser loads it: model.json first, then the shards its
manifest names, fetched relative to it (a fetch outside the model's folder fails).

Where the npm package is found (the first folder holding `node_modules/@tensorflow/tfjs`, each folder's
parents searched as Node does): `$RNNCONVERT_TFJS` (an npm prefix, e.g. `npm install --prefix DIR
@tensorflow/tfjs`), the working directory, then the folder holding the `rnnconvert` package (a clone's
`npm install @tensorflow/tfjs`).  Missing node or package: `RuntimeUnavailable` (the check is not run).
Node runs in a scratch directory with a bare environment (`files.scratch`).  rnnconvert's layer classes
(`layers_js`) are imported before a model loads: the `NAME.layers.mjs` beside it when that file is
byte for byte rnnconvert's module (so a written model is run with the module written beside it), else
the runtime's own copy; never other JavaScript found beside a model.  `runner(path, model)`
keeps one Node process for every input verification sends (a process per input costs about 5x as
much: node's start and the model's load); `run_many` runs many models and inputs in one process (tests).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import weakref

import numpy as np

from ...errors import InputError, RuntimeUnavailable
from ...files import interrupt, scratch
from ...files.text import read_json
from . import layers_js

PACKAGE = os.path.join("node_modules", "@tensorflow", "tfjs")
OWN_LAYERS = "rnnconvert.layers.mjs"
_SOURCE_BYTES = layers_js.SOURCE.encode()
ENV = "RNNCONVERT_TFJS"
READY = "\x01ready\n"          # the runner's first line once TF.js has started

_RUNNER = r"""
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
const [tfjsDir, jobsPath] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const warn = console.warn;
console.warn = () => {};                     // tfjs's banner about tfjs-node
const tf = require(tfjsDir);
console.warn = warn;
await tf.setBackend('cpu');
globalThis.tf = tf;                          // what rnnconvert's layer classes extend
process.stdout.write('\x01ready\n');          // TF.js started: what fails from here on fails on a model
const models = new Map();
const imported = new Set();
function fetchIn(folder) {
  return async (url) => {
    const file = realpathSync(resolve(String(url)));        // links followed, as the reader does
    if (!file.startsWith(folder + sep)) throw new Error(`the model asks for '${url}', outside its folder`);
    return new Response(readFileSync(file));
  };
}
async function run(job) {
  if (!imported.has(job.layers)) {
    await import(pathToFileURL(job.layers).href);
    imported.add(job.layers);
  }
  let model = models.get(job.model);
  if (model === undefined) {
    const folder = realpathSync(dirname(resolve(job.model)));
    model = await tf.loadLayersModel(tf.io.http(resolve(job.model), {fetchFunc: fetchIn(folder)}));
    models.set(job.model, model);
  }
  const buf = readFileSync(job.x);
  const raw = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const data = job.dtype === 'int32' ? new Int32Array(raw) : new Float32Array(raw);
  const x = tf.tensor(data, job.shape, job.dtype);
  const inputs = [x];
  for (const e of job.extra || []) {           // state inputs [batch, size], float32
    const b = readFileSync(e.path);
    inputs.push(tf.tensor(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), e.shape));
  }
  const out = model.predict(inputs.length > 1 ? inputs : x, {batchSize: Math.max(job.shape[0], 1)});
  const ys = Array.isArray(out) ? out : [out];
  ys.forEach((y, k) => {
    const f = k ? `${job.y}.${k}` : job.y;
    writeFileSync(f, Buffer.from(new Float32Array(y.dataSync()).buffer));
    writeFileSync(f + '.json', JSON.stringify(y.shape));
  });
  writeFileSync(job.y + '.n', String(ys.length));
  tf.dispose([...inputs, ...ys]);
}
if (jobsPath !== '-') {
  for (const job of JSON.parse(readFileSync(jobsPath, 'utf8'))) await run(job);
} else {                                     // one job per line on stdin, one reply line each
  for await (const line of createInterface({input: process.stdin})) {
    try {
      await run(JSON.parse(line));
      process.stdout.write('\x01ok\n');
    } catch (e) {
      process.stdout.write('\x01error ' + JSON.stringify(`${e && e.name || 'Error'}: ${e && e.message || e}`) + '\n');
    }
  }
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
        listed = [_job(d, k, path, x) for k, (path, x) in enumerate(jobs)]
        runner, jobs_file = os.path.join(d, "run.mjs"), os.path.join(d, "jobs.json")
        _scripts(d)
        with open(jobs_file, "w") as f:
            json.dump(listed, f)
        res = scratch.run([node, runner, tfjs, jobs_file])
        if res.returncode != 0:
            raise _failed(res.stderr, started=READY in (res.stdout or ""))
        return [_output(job["y"]) for job in listed]


def _scripts(folder: str) -> None:
    """The runner and rnnconvert's own copy of its layer classes, in `folder`."""
    for name, text in (("run.mjs", _RUNNER), (OWN_LAYERS, layers_js.SOURCE)):
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)


def _layers_module(folder: str, path) -> str:
    """The module of layer classes to import before the model at `path` loads: the one written beside it
    if it is rnnconvert's, byte for byte; else the copy in `folder`."""
    beside = os.path.splitext(os.path.abspath(os.fspath(path)))[0] + layers_js.SUFFIX
    try:
        if os.path.isfile(beside) and os.path.getsize(beside) == len(_SOURCE_BYTES):
            with open(beside, "rb") as f:
                if f.read() == _SOURCE_BYTES:
                    return beside
    except OSError:
        pass
    return os.path.join(folder, OWN_LAYERS)


def _failed(stderr: str, started: bool = True) -> Exception:
    """Node's error line (`Error: ...`), not the source line that threw: an InputError, or, when TF.js
    itself did not start (`started` false: its package throws on import, say), `RuntimeUnavailable`, since
    that says nothing of the model."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    why = next((ln.strip() for ln in lines if re.match(r"[A-Za-z.]*(Error|Exception)\b", ln)),
               lines[-1] if lines else "no message")
    if not started:
        return RuntimeUnavailable(f"TF.js (@tensorflow/tfjs under node) failed to start: {why[:500]}")
    return InputError(f"TF.js (@tensorflow/tfjs under node) failed: {why[:500]}")


def _output(y: str) -> np.ndarray:
    with open(y + ".json", "rb") as f:
        shape = read_json(f.read(), y + ".json", "the output shape TF.js wrote")
    return np.fromfile(y, dtype="<f4").reshape(shape)


def _outputs(y: str) -> list[np.ndarray]:
    """Every output of a job: y, then the state outputs (`y.1`, `y.2`, ...) of a model that has them."""
    with open(y + ".n") as f:
        n = int(f.read().strip() or 1)
    return [_output(y)] + [_output(f"{y}.{k}") for k in range(1, n)]


def _job(folder: str, k, path, x, extra=()) -> dict:
    """x (and the `extra` state inputs, float32 [batch, size]) written to `folder` in the form Node reads
    (int32 token ids or float32), and its job."""
    x = np.asarray(x)
    dtype = "int32" if x.dtype.kind in "iu" else "float32"
    fin, fout = os.path.join(folder, f"x{k}.bin"), os.path.join(folder, f"y{k}.bin")
    np.ascontiguousarray(x, dtype="<i4" if dtype == "int32" else "<f4").tofile(fin)
    job = {"model": os.path.abspath(os.fspath(path)), "x": fin, "y": fout, "shape": list(x.shape), "dtype": dtype,
           "layers": _layers_module(folder, path)}
    if len(extra):
        job["extra"] = []
        for j, v in enumerate(extra):
            v = np.ascontiguousarray(v, dtype="<f4")
            v.tofile(os.path.join(folder, f"x{k}.{j}.bin"))
            job["extra"].append({"path": os.path.join(folder, f"x{k}.{j}.bin"), "shape": list(v.shape)})
    return job


def _layout(x, model, run_batch_major):
    """`run_batch_major` on `x` in `model.input.layout` (token ids as int32), the output back in it."""
    time_major = model is not None and model.input.layout == "time_batch_feature"
    ints = model is not None and str(model.input.dtype).startswith("int")
    x = np.asarray(x).astype(np.int32 if ints else np.float32)
    y = run_batch_major(np.swapaxes(x, 0, 1) if time_major else x)
    return np.ascontiguousarray(np.swapaxes(y, 0, 1) if time_major and y.ndim == 3 else y)


def run(path, x, model) -> np.ndarray:
    """The TF.js model at `path` on `x` (in `model.input.layout`), as float32: one Node process."""
    if model is not None and model.has_state_io:
        return runner(path, model)(x)
    return _layout(x, model, lambda xb: run_many([(path, xb)])[0])


def runner(path, model):
    """x -> output: one Node process, started on the first call, loads the model once and runs every
    input sent to it (a process per input costs 5x as much); it ends with the runner.  A model with state
    ports: its state inputs at their initial values."""
    server = _Server(path)
    if model is not None and model.has_state_io:
        return lambda x: states_runner(path, model, server)(x, None)[0]
    return lambda x: _layout(x, model, server.run)


def states_runner(path, model, server=None):
    """(x, feeds) -> (output, {state output: array}): x in `model.input.layout`, each row of each of
    `model`'s state inputs fed to the TF.js input after x, in order (`keras_json/state_io.py`)."""
    from ..keras_json.state_io import feed_rows, state_results
    server = server or _Server(path)
    time_major = model.input.layout == "time_batch_feature"

    def run_with(x, feeds):
        batch = np.shape(x)[1 if time_major else 0]
        outs = server.run_all(np.swapaxes(x, 0, 1) if time_major else x, feed_rows(model, feeds, batch))
        y = np.swapaxes(outs[0], 0, 1) if time_major and outs[0].ndim == 3 else outs[0]
        return np.ascontiguousarray(y), state_results(model, outs[1:])
    return run_with


class _Server:
    """Node reading one job per line on stdin, answering one line each; its scratch folder and process go
    when the object does (or at exit)."""

    def __init__(self, path):
        self.path, self.proc, self.folder, self.count = path, None, None, 0

    def _start(self):
        node, tfjs = _node(), find_tfjs()
        self.folder = tempfile.mkdtemp(prefix="rnnconvert-tfjs-")
        runner = os.path.join(self.folder, "run.mjs")
        _scripts(self.folder)
        self.err = open(os.path.join(self.folder, "stderr"), "w+")
        self.proc = subprocess.Popen([node, runner, tfjs, "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, cwd=self.folder, env=scratch.environment(self.folder),
                                     text=True, errors="replace")
        weakref.finalize(self, _stop, self.proc, self.err, self.folder)
        if self._reply() != READY:                  # Node ended before TF.js started
            self.proc.wait()
            self.err.seek(0)
            raise _failed(self.err.read(), started=False)

    def _reply(self) -> str:
        """The next line Node marks as its own (starting with \\x01), or the empty string when it ended."""
        try:
            while (line := self.proc.stdout.readline()) and not line.startswith("\x01"):
                continue
        except OSError:
            line = ""
        return line

    def run(self, xb) -> np.ndarray:
        return self.run_all(xb)[0]

    def run_all(self, xb, extra=()) -> list[np.ndarray]:
        if self.proc is None:
            self._start()
        self.count += 1
        job = _job(self.folder, self.count, self.path, xb, extra)
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            line = self._reply()
        except OSError:
            line = ""
        if not line:                                 # Node ended: its error is on stderr
            self.proc.wait()
            self.err.seek(0)
            raise _failed(self.err.read())
        if line.startswith("\x01error "):
            raise InputError("TF.js (@tensorflow/tfjs under node) failed: "
                             f"{str(read_json(line[7:], None, 'the error TF.js reported'))[:500]}")
        try:
            return _outputs(job["y"])
        finally:
            for name in os.listdir(self.folder):
                if name.startswith((f"x{self.count}.", f"y{self.count}.")):
                    os.remove(os.path.join(self.folder, name))


def _stop(proc, err, folder) -> None:
    try:
        proc.stdin.close()
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    err.close()
    shutil.rmtree(folder, ignore_errors=True)
