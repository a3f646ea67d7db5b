"""The golden-vector test program the C writer emits with emit_test (`<stem>_test.c`).

Inputs are seeded (token ids for an Embedding model), outputs the reference pass's; the program runs
`<P>_predict_row` for every batch row and, where generated, `<P>_step` step by step, and exits 1 when
an output drifts by more than the tolerance (absolute + relative).
"""
from __future__ import annotations

import numpy as np

from . import c_layers
from ._plan import Plan, golden
from .c_cells import array


def _ids(name: str, x: np.ndarray, ctype: str) -> str:
    vals = [str(int(v)) for v in x.ravel()]
    rows = [", ".join(vals[i:i + 16]) for i in range(0, len(vals), 16)]
    return (f"/* token ids {list(x.shape)} */\nstatic const {ctype} {name}[{len(vals)}] = {{\n    "
            + ",\n    ".join(rows) + "\n};\n")


def golden_program(p: Plan, P: str, head_name: str, tolerance: float) -> str:
    """`<P>_test.c`: predict (and step, where generated) on the reference pass's golden vectors."""
    x, y = golden(p.model)
    B, T = x.shape[:2]
    F = x.shape[2] if x.ndim == 3 else 1
    per = y[0].size
    U = P.upper()
    lines = [f"/* Golden-vector test of {P}: exits 1 when an output drifts from the reference pass by more",
             f" * than {tolerance:g} (absolute + relative).  gcc -std=c99 {P}.c {P}_test.c -lm */",
             f'#include "{head_name}"', "#include <math.h>", "#include <stdio.h>", "",
             _ids("x_golden", x, c_layers.C_INT[p.input_dtype]) if x.dtype.kind == "i" else
             array("x_golden", x, f"inputs [{B}][{T}][{F}]"),
             array("y_golden", y.astype(np.float32), f"reference outputs, {per} per batch row"),
             f"static float work[{U}_WORK_FLOATS({T})];", f"static float y[{per}];", "",
             "static int check(const float *got, const float *want, int n, const char *what, int row)", "{",
             "    int j, bad = 0;", "    for (j = 0; j < n; ++j) {",
             "        float d = fabsf(got[j] - want[j]);",
             f"        if (!(d <= {tolerance}f + {tolerance}f * fabsf(want[j]))) {{",
             '            printf("%s row %d element %d: %g, expected %g\\n", what, row, j, got[j], want[j]);',
             "            bad = 1;", "        }", "    }", "    return bad;", "}", "",
             "int main(void)", "{", "    int b, failed = 0;", f"    for (b = 0; b < {B}; ++b) {{",
             f"        if ({P}_predict_row(x_golden + b * {T * F}, {T}, y, work, b) != 0) return 2;",
             f'        failed |= check(y, y_golden + b * {per}, {per}, "predict", b);']
    if p.streamable:
        step_n = p.output_size
        lines += ["        {", f"            {P}_state s;", f"            float ys[{step_n}];", "            int t;",
                  f"            if ({P}_init(&s, b) != 0) return 2;",
                  f"            for (t = 0; t < {T}; ++t) {{",
                  f"                {P}_step(&s, x_golden + b * {T * F} + t * {F}, ys);"]
        if p.output_is_sequence:
            lines.append(f'                failed |= check(ys, y_golden + b * {per} + t * {step_n}, {step_n}, "step", b);')
        else:
            lines.append(f'                if (t == {T - 1}) failed |= check(ys, y_golden + b * {per}, {step_n}, "step", b);')
        lines += ["            }", "        }"]
    lines += ["    }", '    printf("%s\\n", failed ? "FAILED" : "ok");', "    return failed;", "}", ""]
    return "\n".join(lines)
