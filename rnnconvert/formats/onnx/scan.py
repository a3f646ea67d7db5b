"""ONNX `Scan` over a cell built from standard ops: for layers the native LSTM/GRU/RNN nodes cannot express.

Used only where a native node cannot compute the layer (an activation outside ONNX's list, such as a
selu SimpleRNN; an LSTM projection).  One Scan per direction, its body one time step:
    LSTM  Z = Gemm(x, W, transB) + Gemm(h, R, transB) + Wb + Rb; i f g o = Split(Z); c = f*c + i*g;
          h = o * h_act(c) (then Gemm(h, P, transB) with a projection)
    GRU   r, z from x W^T + Wb + h R^T + Rb; n = g(x Wn^T + Wbn + r * (h Rn^T + Rbn)) (reset after) or
          g(x Wn^T + Wbn + (r*h) Rn^T + Rbn); h = n + z * (h - n)
    RNN   h = f(x W^T + h R^T + Wb + Rb)
The weights are initializers in canonical layout (gate blocks ifgo / rzn along rows), so a file with a
Scan layer is read back from its initializers, which the `rnnconvert` metadata entry names per layer
(`read_model`); the metadata also says which form each layer took.
"""
from __future__ import annotations

import numpy as np
from . import lite as onnx
from .lite import TensorProto, helper

from ...errors import UnsupportedError
from ...model import Activation, ActivationLayer, Dense, DirectionWeights, Dropout, InputSpec, Model, Recurrent
from . import _acts


def reasons(layer: Recurrent) -> list[str]:
    """Why a native node cannot compute `layer` (empty: it can)."""
    out = []
    roles = {"lstm": ["gate (f)", "cell (g)", "output (h)"], "gru": ["gate (f)", "candidate (g)"],
             "rnn": ["hidden (f)"]}[layer.cell]
    for role, act in zip(roles, layer.activations):
        if act.name not in _acts.TO_ONNX:
            out.append(f"the {role} activation '{act.name}' is not one native nodes compute")
    if any(w.proj is not None for w in layer.weights):
        out.append("native LSTM nodes have no output projection")
    return out


def write_layer(b, st, layer: Recurrent, x: str, base: str, activation, initial_state,
                mask: str | None = None) -> tuple[str, str, dict, str]:
    """Scan nodes for `layer` on time-major `x`; returns (Y [T, D, B, S], Y_h [D, B, S], arrays, node names).

    mask: bool [T, B, 1]; a masked step keeps the states and outputs the previous step's output (zeros
    before the first unmasked step) or zeros (`layer.masked_output`), as Keras computes it; Y_h is then
    the output at the last step processed (Keras's last_output, what return_sequences=False returns).
    """
    ys, yhs, arrays, names = [], [], {}, []
    S, H = layer.state_size, layer.hidden
    states = {key: initial_state(b, st, layer, key, base) for key in (("h0", "c0") if layer.cell == "lstm" else ("h0",))}
    for d, (dname, w) in enumerate(zip(layer.direction_names(), layer.weights)):
        db = f"{base}/{dname}"
        consts = {}
        for a in ("W", "R", "Wb", "Rb", "proj"):
            v = getattr(w, a)
            if v is not None:
                consts[a] = b.const(f"{db}/{a}", v)
                arrays[f"{dname}.{a}"] = consts[a]
        for key in ("h0", "c0"):
            v = getattr(w, key)
            if v is not None:
                arrays[f"{dname}.{key}"] = b.const(f"{db}/{key}_value", v)
        inits = []
        for key, size in (("h0", S), ("c0", H))[:2 if layer.cell == "lstm" else 1]:
            full = states[key]
            if full:
                inits.append(b.op("Gather", [full, b.const(f"{db}/{key}_dir", d, np.int64)], f"{db}/{key}", axis=0))
            else:
                inits.append(_zeros(b, st, size, f"{db}/{key}"))
        n_state = len(inits)
        if mask is not None:
            inits.append(_zeros(b, st, S, f"{db}/y0"))
        body = _body(b, layer, consts, activation, db, masked=mask is not None)
        reverse = dname == "reverse"
        outs = [b.unique(f"{db}/h_last")] + ([b.unique(f"{db}/c_last")] if n_state == 2 else [])
        if mask is not None:
            outs.append(b.unique(f"{db}/y_last"))
        outs.append(b.unique(f"{db}/Y"))
        scanned = [x] + ([mask] if mask is not None else [])
        node_name = b.unique(f"{db}/Scan")
        names.append(node_name)
        b.nodes.append(helper.make_node("Scan", inits + scanned, outs, name=node_name, body=body,
                                        num_scan_inputs=len(scanned),
                                        scan_input_directions=[int(reverse)] * len(scanned),
                                        scan_output_directions=[int(reverse)]))
        last = outs[-2] if mask is not None else outs[0]
        ys.append(b.op("Unsqueeze", [outs[-1], b.const(f"{db}/axis1", [1], np.int64)], f"{db}/Y_dirs"))
        yhs.append(b.op("Unsqueeze", [last, b.const(f"{db}/axis0", [0], np.int64)], f"{db}/Y_h_dirs"))
    if len(ys) == 1:
        return ys[0], yhs[0], arrays, ",".join(names)
    return (b.op("Concat", ys, f"{base}/Y", axis=1), b.op("Concat", yhs, f"{base}/Y_h", axis=0), arrays,
            ",".join(names))


def _zeros(b, st, size: int, base: str) -> str:
    if st.batch_dim is None:
        st.batch_dim = b.op("Shape", [st.graph_input], "batch_size", start=st.batch_axis, end=st.batch_axis + 1)
    shape = b.op("Concat", [st.batch_dim, b.const(f"{base}_size", [size], np.int64)], f"{base}_shape", axis=0)
    return b.op("Expand", [b.const(f"{base}_zero", np.zeros((1, size))), shape], f"{base}_zeros")


class _Body:
    """Builds body nodes under the outer builder's names; constants become outer-scope initializers."""

    def __init__(self, outer):
        self.outer, self.nodes = outer, []
        self.inits = outer.inits
        self.batch_dim = None

    def unique(self, base):
        return self.outer.unique(base)

    def const(self, base, array, dtype=np.float32):
        return self.outer.const(base, array, dtype)

    def op(self, op_type, inputs, base, n_out=1, outputs=None, **attrs):
        node_name = self.unique(base)
        outs = outputs or [self.unique(f"{node_name}_out{k}" if n_out > 1 else f"{node_name}_out")
                           for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=node_name, **attrs))
        return outs if n_out > 1 or outputs else outs[0]


def _body(outer, layer: Recurrent, c: dict, activation, base: str, masked: bool = False) -> onnx.GraphProto:
    s = _Body(outer)
    H, S = layer.hidden, layer.state_size
    F = layer.input_size
    h = s.unique(f"{base}/h_prev")
    x = s.unique(f"{base}/x_t")
    ins = [helper.make_tensor_value_info(h, TensorProto.FLOAT, [None, S])]
    c_prev = None
    if layer.cell == "lstm":
        c_prev = s.unique(f"{base}/c_prev")
        ins.append(helper.make_tensor_value_info(c_prev, TensorProto.FLOAT, [None, H]))
    y_prev = m = None
    if masked:
        y_prev = s.unique(f"{base}/y_prev")
        ins.append(helper.make_tensor_value_info(y_prev, TensorProto.FLOAT, [None, S]))
    ins.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, [None, F]))
    if masked:
        m = s.unique(f"{base}/m_t")
        ins.append(helper.make_tensor_value_info(m, TensorProto.BOOL, [None, 1]))
    acts = layer.activations

    def clip(t):
        if layer.clip is None:
            return t
        return s.op("Clip", [t, s.const(f"{base}/clip_lo", np.float32(-layer.clip)),
                             s.const(f"{base}/clip_hi", np.float32(layer.clip))], f"{base}/clip")

    def split(t, n, what):
        return s.op("Split", [t, s.const(f"{base}/{what}_split", [H] * n, np.int64)], f"{base}/{what}_gates",
                    n_out=n, axis=1)

    def gemm(a, w, what):
        return s.op("Gemm", [a, w], f"{base}/{what}", transB=1)

    def act(k, t, what):
        return activation(s, acts[k], t, f"{base}/{what}")

    outs = []
    if layer.cell == "lstm":
        z = s.op("Add", [gemm(x, c["W"], "xW"), gemm(h, c["R"], "hR")], f"{base}/z")
        z = s.op("Add", [s.op("Add", [z, c["Wb"]], f"{base}/z_Wb"), c["Rb"]], f"{base}/z_Rb")
        i, f, g, o = split(clip(z), 4, "ifgo")
        i, f, g, o = act(0, i, "i"), act(0, f, "f"), act(1, g, "g"), act(0, o, "o")
        cn = s.op("Add", [s.op("Mul", [f, c_prev], f"{base}/f_c"), s.op("Mul", [i, g], f"{base}/i_g")], f"{base}/c")
        hn = s.op("Mul", [o, act(2, cn, "h_act")], f"{base}/o_h")
        if "proj" in c:
            hn = gemm(hn, c["proj"], "proj")
        outs = [(hn, S), (cn, H)]
    elif layer.cell == "gru":
        zx = s.op("Add", [gemm(x, c["W"], "xW"), c["Wb"]], f"{base}/zx")
        xr, xz, xn = split(zx, 3, "x_rzn")
        rz_R = s.op("Slice", [c["R"], s.const(f"{base}/rz_start", [0], np.int64),
                              s.const(f"{base}/rz_end", [2 * H], np.int64),
                              s.const(f"{base}/rows", [0], np.int64)], f"{base}/R_rz")
        n_R = s.op("Slice", [c["R"], s.const(f"{base}/n_start", [2 * H], np.int64),
                             s.const(f"{base}/n_end", [3 * H], np.int64),
                             s.const(f"{base}/rows_n", [0], np.int64)], f"{base}/R_n")
        Rb_rz, Rb_n = split_bias(s, c["Rb"], H, base)
        zh = s.op("Add", [gemm(h, rz_R, "hR_rz"), Rb_rz], f"{base}/zh_rz")
        hr, hz = s.op("Split", [zh, s.const(f"{base}/rz_split", [H, H], np.int64)], f"{base}/h_rz", n_out=2, axis=1)
        r = act(0, clip(s.op("Add", [xr, hr], f"{base}/r_pre")), "r")
        zg = act(0, clip(s.op("Add", [xz, hz], f"{base}/z_pre")), "z")
        if layer.reset_after:
            hn = s.op("Add", [gemm(h, n_R, "hR_n"), Rb_n], f"{base}/hn")
            pre = s.op("Add", [xn, s.op("Mul", [r, hn], f"{base}/r_hn")], f"{base}/n_pre")
        else:
            rh = s.op("Mul", [r, h], f"{base}/r_h")
            pre = s.op("Add", [xn, s.op("Add", [gemm(rh, n_R, "rhR_n"), Rb_n], f"{base}/rhn")], f"{base}/n_pre")
        n = act(1, clip(pre), "n")
        hn = s.op("Add", [n, s.op("Mul", [zg, s.op("Sub", [h, n], f"{base}/h_n")], f"{base}/z_hn")], f"{base}/h")
        outs = [(hn, H)]
    else:
        z = s.op("Add", [gemm(x, c["W"], "xW"), gemm(h, c["R"], "hR")], f"{base}/z")
        z = s.op("Add", [s.op("Add", [z, c["Wb"]], f"{base}/z_Wb"), c["Rb"]], f"{base}/z_Rb")
        hn = act(0, clip(z), "h")
        outs = [(hn, H)]
    y_new = outs[0][0]
    if masked:      # a masked step keeps every state; its output repeats the previous one
        prev = [h, c_prev]
        outs = [(s.op("Where", [m, t, prev[k]], f"{base}/keep_state{k}"), size) for k, (t, size) in enumerate(outs)]
        other = y_prev if layer.masked_output == "previous" else s.const(f"{base}/zero", np.float32(0))
        outs.append((s.op("Where", [m, y_new, other], f"{base}/masked_output"), S))
    body_outs = []
    names = []
    for k, (t, size) in enumerate(outs):
        name = s.unique(f"{base}/state{k}_out")
        s.nodes.append(helper.make_node("Identity", [t], [name], name=s.unique(f"{base}/state{k}_id")))
        body_outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, size]))
        names.append(name)
    y = s.unique(f"{base}/y_t")
    s.nodes.append(helper.make_node("Identity", [outs[-1][0] if masked else outs[0][0]], [y],
                                    name=s.unique(f"{base}/y_id")))
    body_outs.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, [None, S]))
    return helper.make_graph(s.nodes, f"{base}/cell", ins, body_outs)


def split_bias(s, Rb: str, H: int, base: str):
    rz = s.op("Slice", [Rb, s.const(f"{base}/b_rz_start", [0], np.int64), s.const(f"{base}/b_rz_end", [2 * H], np.int64)],
              f"{base}/Rb_rz")
    n = s.op("Slice", [Rb, s.const(f"{base}/b_n_start", [2 * H], np.int64), s.const(f"{base}/b_n_end", [3 * H], np.int64)],
             f"{base}/Rb_n")
    return rz, n


# ----------------------------------------------------------------------------------------- reading

def is_scan_file(meta: dict | None) -> bool:
    return bool(meta) and bool(meta.get("scan"))


def read_model(proto: onnx.ModelProto, meta: dict, path: str, inits: dict) -> Model:
    """A file this writer wrote with Scan layers, from the initializers its metadata names
    (`inits`: {name: values})."""
    from ...model import gates

    def get(name):
        if name not in inits:
            raise UnsupportedError(f"the metadata names initializer '{name}', which the graph does not hold",
                                   path=path)
        return np.asarray(inits[name])

    layers = []
    for entry in meta["layers"]:
        kind = entry["kind"]
        if kind == "dense":
            a = entry["arrays"]
            layers.append(Dense(entry["name"], get(a["kernel"]), get(a["bias"]) if a.get("bias") else None,
                                Activation(**entry["activation"])))
        elif kind == "activation":
            layers.append(ActivationLayer(entry["name"], Activation(**entry["activation"])))
        elif kind == "dropout":
            layers.append(Dropout(entry["name"], entry["rate"], entry.get("variant", "dropout")))
        elif kind not in ("lstm", "gru", "rnn"):
            from .frontend import read_entry
            layers.append(read_entry(entry, get))
        else:
            a = entry["arrays"]
            dirs = {"forward": ["forward"], "reverse": ["reverse"], "bidirectional": ["forward", "reverse"]}[entry["direction"]]
            weights = []
            for d, dname in enumerate(dirs):
                if entry["form"] == "scan":
                    w = DirectionWeights(*(get(a[f"{dname}.{k}"]) for k in ("W", "R", "Wb", "Rb")))
                    for k in ("h0", "c0", "proj"):
                        if f"{dname}.{k}" in a:
                            setattr(w, k, get(a[f"{dname}.{k}"]))
                else:                   # native: ONNX gate order, stacked directions, B = [Wb, Rb]
                    W = gates.to_canonical(get(a["W"])[d], kind, "onnx")
                    R = gates.to_canonical(get(a["R"])[d], kind, "onnx")
                    G = W.shape[0]
                    B = get(a["B"])[d] if a.get("B") else np.zeros(2 * G, np.float32)
                    w = DirectionWeights(W, R, gates.to_canonical(B[:G], kind, "onnx"),
                                         gates.to_canonical(B[G:], kind, "onnx"))
                    for k in ("h0", "c0"):
                        if a.get(k):
                            v = get(a[k])[d]
                            setattr(w, k, v[0] if entry[k] is not None and len(entry[k]) == 1 else v)
                weights.append(w)
            layers.append(Recurrent(entry["name"], kind, int(entry["hidden"]), entry["direction"], weights,
                                    [Activation(**x) for x in entry["activations"]], entry["output"],
                                    entry["merge"], entry["time_order"], bool(entry["reset_after"]), entry["clip"],
                                    entry["has_input_bias"], entry["has_recurrent_bias"],
                                    entry.get("masked_output", "previous")))
    spec = InputSpec(**meta["input"])
    source = {"format": "onnx", "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
              "opset": max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0),
              "ir_version": int(proto.ir_version),
              "notes": "layers written as Scan read from the initializers the rnnconvert metadata names"}
    if isinstance(meta.get("source"), dict) and meta["source"]:     # the model's own provenance, as
        source = meta["source"]                                     # metadata._restore keeps it
    return Model(layers, spec, meta.get("output_name") or "output", meta.get("name") or "model",
                 source).validate(path)
