"""C99 source (`.c` plus `.h`): the model as float32 code with no dynamic allocation; write-only.

Weights are `static const float` arrays in canonical gate order (LSTM ifgo, GRU rzn), stored transposed
(gate unit j's weight for input k at [k][j]; recurrent layers' in panels of 64 columns, `c_kernels`), so
that the inner loops vectorize.  Every external
name starts with the prefix (the file stem as an identifier, or the `prefix` option), so that two
models link into one program.
API (see the generated header): `<p>_predict` runs a whole sequence with caller-provided work memory;
`<p>_init`/`<p>_reset`/`<p>_step` stream one time step at a time, emitted only when that is exact: every
recurrent layer runs forward and no Conv1D, pooling or Flatten reads across time steps (predict only).
A model starting with an Embedding takes token ids (`const int32_t *` or `const int64_t *`, as its input).
Speed: predict projects a whole sequence's inputs with one matrix product per layer and direction, each
step is one matrix-vector product and one fused loop over the units (`c_kernels`: vectorizes at
gcc -O3 without fast-math; `-DRNNC_USE_CBLAS` uses a BLAS instead).
The files' text: `c_source`; per-layer code: `c_cells` (recurrent time steps), `c_layers` (everything else),
`c_kernels` (the products and tanh);
`c_golden` the test program.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile

import numpy as np

from ...files import interrupt, scratch
from ...errors import DestinationError, InputError
from ...model.states import codegen_notes
from ...errors import RuntimeUnavailable
from ._plan import Plan, from_batch_major, output_steps, plan, to_batch_major
from ..literals import identifier
from .c_golden import golden_program
from .c_source import _header, _source, _xtype

_UNINCLUDABLE = re.compile(r'["\\?\x00-\x1f\x7f]')
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
TEST_TOLERANCE = 1e-4


def sniff(path) -> bool:
    return False


def paths(path, prefix: str | None = None):
    """(source .c, header .h, test program .c, prefix) for a destination `path`."""
    path = str(path)
    stem = os.path.splitext(path)[0]
    return path, stem + ".h", stem + "_test.c", identifier(prefix or os.path.basename(stem))


def write(model, path, prefix: str | None = None, emit_test: bool = False, **options) -> list[str]:
    """Write `path` (.c) and its header next to it; with emit_test also `<stem>_test.c`."""
    if options:
        raise InputError(f"the C writer takes the options prefix and emit_test, not {', '.join(sorted(options))}")
    p = plan(model, path)
    src, header, test, P = paths(path, prefix)
    head_name = os.path.basename(header)
    if _UNINCLUDABLE.search(head_name):
        raise DestinationError(f"the header's name {ascii(head_name)} goes into #include \"...\", which cannot "
                               "hold a quote, a backslash, '?' or a control character; choose another file name")
    with open(header, "w") as f:
        f.write(_header(p, P))
    with open(src, "w") as f:
        f.write(_source(p, P, head_name))
    notes = [f"wrote {head_name} beside {os.path.basename(src)}: C99, float32, names prefixed '{P}_'"]
    if not p.streamable:
        notes.append(f"{P}_step is not generated: {p.stream_blocker} ({P}_predict only)")
    if emit_test:
        with open(test, "w") as f:
            f.write(golden_program(p, P, head_name, TEST_TOLERANCE))
        notes.append(f"wrote {os.path.basename(test)}: golden vectors from the reference pass; "
                     f"`gcc -std=c99 {os.path.basename(src)} {os.path.basename(test)} -lm` exits 1 on drift")
    return notes + codegen_notes(model)


# ---------------------------------------------------------------------------------------------- run

_DRIVER = r"""#include "{header}"
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
    int dims[3], b, n_out;
    {XT} *x;
    float *y, *work;
    FILE *f = fopen(argv[1], "rb");
    if (argc < 3 || !f || fread(dims, sizeof(int), 3, f) != 3) return 3;
    x = malloc(sizeof({XT}) * (size_t)dims[0] * dims[1] * dims[2] + 1);
    if (fread(x, sizeof({XT}), (size_t)dims[0] * dims[1] * dims[2], f) != (size_t)dims[0] * dims[1] * dims[2]) return 3;
    fclose(f);
    n_out = {P}_output_steps(dims[1]) * {OUT};
    if (n_out < 1) return 4;
    y = malloc(sizeof(float) * (size_t)dims[0] * n_out + 1);
    work = malloc(sizeof(float) * (size_t){U}_WORK_FLOATS(dims[1]) + 1);
    for (b = 0; b < dims[0]; ++b)
        if ({P}_predict_row(x + (size_t)b * dims[1] * dims[2], dims[1], y + (size_t)b * n_out, work, b) != 0) return 4;
    f = fopen(argv[2], "wb");
    if (!f || fwrite(y, sizeof(float), (size_t)dims[0] * n_out, f) != (size_t)dims[0] * n_out) return 3;
    fclose(f);
    return 0;
}
"""

_BUILT: dict[str, str] = {}     # source digest -> compiled program, for this process
_BUILD_ROOT: list[str] = []      # the one folder they are built in, removed when the process exits


def _build_dir() -> str:
    if not _BUILD_ROOT or not os.path.isdir(_BUILD_ROOT[0]):
        _BUILD_ROOT[:] = [tempfile.mkdtemp(prefix="rnnconvert-c-")]
        atexit.register(shutil.rmtree, _BUILD_ROOT[0], True)
    return tempfile.mkdtemp(dir=_BUILD_ROOT[0])


def compile_program(sources, out, flags=(), libs=()):
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeUnavailable("no C compiler (gcc) on PATH")
    cmd = [gcc, *CFLAGS, *flags, *(os.path.abspath(str(s)) for s in sources), "-o", os.path.abspath(str(out)),
           *libs, "-lm"]
    res = scratch.run(cmd)
    if res.returncode != 0:
        raise InputError(f"gcc failed on the generated code: {res.stderr.strip()[:2000]}")
    return out


def _refusal(p: Plan) -> str:
    if p.fixed_time:
        return f"a Flatten takes exactly {p.fixed_time} steps"
    return "too short for a convolution or pooling window"


def run(path, x, model, flags=("-O2",), libs=()) -> np.ndarray:
    """Compile `path` (with its header) and a small driver with gcc `flags` (-O2) and `libs`; run it on `x`."""
    src, header, _, P = paths(path)
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read() + repr((tuple(flags), tuple(libs))).encode()).hexdigest()
    exe = _BUILT.get(digest)
    p = plan(model)
    if exe is None or not os.path.exists(exe):
        build = _build_dir()
        shutil.copy(src, os.path.join(build, "model.c"))
        shutil.copy(header, os.path.join(build, os.path.basename(header)))
        driver = _DRIVER.replace("{header}", os.path.basename(header)).replace("{P}", P) \
            .replace("{U}", P.upper()).replace("{OUT}", str(p.output_size)) \
            .replace("{XT}", _xtype(p))
        with open(os.path.join(build, "driver.c"), "w") as f:
            f.write(driver)
        exe = compile_program([os.path.join(build, "model.c"), os.path.join(build, "driver.c")],
                              os.path.join(build, "run"), list(flags), list(libs))
        _BUILT[digest] = exe
    xb = to_batch_major(x, model, p.input_dtype)
    B, T = xb.shape[:2]
    F = xb.shape[2] if xb.ndim == 3 else 1
    n = output_steps(p, T)
    if n < 1:
        raise InputError(f"{T} time steps: the generated model refuses this length ({_refusal(p)})")
    with interrupt.temporary_directory("rnnconvert-c-io-") as io:
        fin, fout = os.path.join(io, "x.bin"), os.path.join(io, "y.bin")
        with open(fin, "wb") as f:
            f.write(np.array([B, T, F], np.int32).tobytes())
            f.write(xb.tobytes())
        res = scratch.run([exe, fin, fout])
        if res.returncode != 0:
            raise InputError(f"the compiled model failed (exit {res.returncode}); a batch row beyond the "
                             f"model's {p.state_rows} initial-state rows" + (", or a token id outside the "
                             "embedding's vocabulary?" if p.input_dtype != "float32" else "?"))
        y = np.fromfile(fout, dtype=np.float32)
    y = y.reshape((B, n, p.output_size) if p.output_is_sequence else (B, p.output_size))
    return from_batch_major(y, model)
