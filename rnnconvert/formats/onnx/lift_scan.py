"""Recurrent cells written as a `Scan` of the main graph (one scanned input X, the step's new h its one
scan output), lifted into native nodes as `lift_loop` lifts Loops: the body matched by `cell_match`/
`cell_templates`, confirmed by onnxruntime against the native node, then replaced by it.  A Scan that
runs backwards over X and writes its outputs backwards is a native node of direction 'reverse' (its Y is
aligned with X, as the Scan's).  A Scan with a second scanned input (a mask) is left as it is.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ...errors import UnsupportedError
from . import cell_match as cm
from .lift_loop import _Plan, _confirm, _describe, cell_of
from .lift_rewrite import Refused, _prune, _rewrite


def _ints(node, name, n, default=0):
    a = next((a for a in node.attribute if a.name == name), None)
    v = list(helper.get_attribute_value(a)) if a is not None else []
    return v + [default] * (n - len(v))


def lift(proto: onnx.ModelProto, path: str, consts, opset: int, native: bool) -> tuple[onnx.ModelProto, list]:
    """The model with every Scan of the main graph that computes a cell replaced by a native node;
    `native`: the file holds native nodes besides (a Scan that does not fit is then left to the reader)."""
    if not any(n.op_type == "Scan" for n in proto.graph.node):
        return proto, []
    new = onnx.ModelProto()
    new.CopyFrom(proto)
    g = new.graph
    lifted = []
    for first in [n.output[0] for n in g.node if n.op_type == "Scan"]:
        scan = next(n for n in g.node if n.output[0] == first)
        name = scan.name or scan.output[0]
        try:
            plan = _plan(scan, consts)
        except (Refused, KeyError, IndexError, ValueError, TypeError, AttributeError):
            continue
        except cm.NoCell as exc:
            if native:
                continue
            raise UnsupportedError(f"Scan node '{name}' does not compute an LSTM, GRU or RNN cell: its "
                                   f"{_describe(exc.node)} does not fit ({exc.why}); nothing was lifted",
                                   path=path, layer=name) from None
        try:
            _confirm(plan, opset)
        except Refused as exc:
            if native:
                continue
            raise UnsupportedError(f"Scan node '{name}' is not lifted: it {exc.reason}", path=path,
                                   layer=name) from None
        _rewrite(g, scan, plan, name, opset)
        lifted.append(name)
    if lifted:
        _prune(g)
    return new, lifted


def _plan(scan, consts) -> _Plan:
    body = next(a.g for a in scan.attribute if a.name == "body")
    M = int(next(a.i for a in scan.attribute if a.name == "num_scan_inputs"))
    N = len(scan.input) - M
    b_in, b_out = [i.name for i in body.input], [o.name for o in body.output]
    K = len(b_out) - N
    if M != 1 or K != 1 or N < 1:
        raise Refused(scan, f"scans {M} inputs into {K} outputs (one X, one step output expected)")
    d_in, a_in = _ints(scan, "scan_input_directions", 1)[0], _ints(scan, "scan_input_axes", 1)[0]
    d_out, a_out = _ints(scan, "scan_output_directions", 1)[0], _ints(scan, "scan_output_axes", 1)[0]
    if d_in != d_out or a_in not in (0, 1) or a_out not in (0, 1):
        raise Refused(scan, "writes its outputs in another order or along another axis than it reads X")
    p = _Plan()
    p.consts, p.body, p.loop, p.x_node = consts, body, scan, None
    p.x_src, p.x_axis, p.x_name = scan.input[N], a_in, b_in[N]
    p.direction, p.y_axis, p.concat = ("reverse" if d_in else "forward"), a_out, None
    p.states, p.const_in = [], {}
    for k in range(N):
        bi, bo, init = b_in[k], b_out[k], scan.input[k]
        if bo == bi:
            v = consts.get(init)
            p.const_in[bi] = cm.Opaque() if v is None else np.asarray(v)
        else:
            p.states.append((k, bi, bo, init))
    if not 1 <= len(p.states) <= 2:
        raise Refused(scan, f"carries {len(p.states)} state tensors (a cell carries h, or h and c)")
    cell_of(p, set())
    y = p.env.get(b_out[N])
    if not isinstance(y, cm.Poly) or not y.same(p.env[p.h[2]]):
        raise Refused(scan, "scans out a step output that is not the new hidden state")
    p.y = ("scan", scan.output[N])
    return p
