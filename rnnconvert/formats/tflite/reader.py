"""A .tflite file into the canonical model: the main subgraph's operators followed from its one input.

Ops that only compute shapes or write the sequence ops' state variables before they run (SHAPE, FILL,
integer slicing, DEQUANTIZE of a constant, an ADD of an initial state) are set aside, an initial state
kept; every other op must be one rnnconvert reads (`_front` and `reader_recurrent`; a WHILE rnnconvert wrote,
`reader_loop`, or TensorFlow's lowering of a recurrent layer, `lift_while`), else the file is refused naming
the op and its subgraph.
"""
from __future__ import annotations

import os

import numpy as np

from ...errors import InputError, UnsupportedError
from ...model import (ActivationLayer, Dense, Embedding, Flatten, InputSpec, Masking, Model, Pooling1D)
from ...model.activations import Activation
from ...model.assumptions import Assumption
from . import reader_hybrid as hybrid, schema as s
from .lift_while import TimeMajor, WhileOut, feeds_while, read_while, time_major_op, while_output
from .parse import parse
from .reader_loop import loop_seq, read_loops, read_ports, read_spans
from .reader_front import IMAGE_OPS, Image, Padded, affine, image_op, time_window
from .reader_recurrent import SEQUENCE_OPS, Chain, Rev, Seq, finish, fused_activation, merge, sequence_op

MAX_FILE_BYTES = 1 << 31
_ACTIVATION_OPS = {"LOGISTIC": "sigmoid", "TANH": "tanh", "RELU": "relu", "RELU6": "relu6", "EXP": "exponential",
                   "LOG_SOFTMAX": "log_softmax", "ELU": "elu", "GELU": "gelu"}
_SIDE_OPS = {"SHAPE", "FILL", "DEQUANTIZE", "CAST", "PACK", "CONCATENATION", "STRIDED_SLICE", "ADD", "RESHAPE",
             "GATHER", "MUL", "ZEROS_LIKE",
             "BROADCAST_TO", "REDUCE_PROD"}


def read(path, **options) -> Model:
    path = os.fspath(path)
    if options:
        raise InputError(f"the TFLite reader takes no options, not {', '.join(sorted(options))}", path=path)
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise UnsupportedError(f"a {size / 1e9:.1f} GB .tflite file: FlatBuffers address at most 2 GB", path=path)
    with open(path, "rb") as fh:
        data = fh.read()
    graphs, meta = parse(data, path)
    try:
        loops = read_loops(meta, graphs, path)
        spans = read_spans(meta, graphs, path, loops)
        ports = read_ports(meta, graphs, path)
        model = _model(graphs[0], path, loops, spans, ports, graphs)
        _initial_states(model, ports, path)
        return model.validate(path)
    except UnsupportedError as exc:
        exc.path = exc.path or path
        raise
    except (IndexError, KeyError) as exc:     # an op with fewer inputs than its kind has, ...: damaged
        raise InputError(f"the TFLite graph is inconsistent ({type(exc).__name__}: {exc}): an op lacks an input "
                         "its kind needs; the file is damaged", path=path) from None


def _model(g, path, loops: dict, spans: dict, ports: list, graphs=()) -> Model:
    if len(g.inputs) != 1 + len(ports) or len(g.outputs) != 1 + len(ports):
        raise UnsupportedError(f"{g.name}: {len(g.inputs)} inputs and {len(g.outputs)} outputs; rnnconvert reads "
                               "a subgraph with one input and one output", path=path)
    inp = g.tensors[g.inputs[0]]
    if len(inp.shape) not in (2, 3) or -1 in g.inputs + g.outputs:
        raise UnsupportedError(f"{g.name}: input '{inp.name}' of shape {inp.shape}; rnnconvert reads a sequence "
                               "[batch, time, features] or token ids [batch, time]", path=path)
    consts = {k: t.data for k, t in enumerate(g.tensors) if t.data is not None}
    inits: dict[int, np.ndarray | None] = {}
    vals: dict[int, object] = {g.inputs[0]: Chain([])}
    assumptions: list = []
    layout = "batch_time_feature"
    mask_zero = set()
    for k, op in enumerate(g.ops):
        if k in spans:
            span = spans[k]
            if k == span["ops"][1]:
                _span_end(span, vals, mask_zero, g)
            continue
        if k in loops:
            rec = loops[k]
            if k == rec["ops"][1]:
                vals[rec["output"]] = loop_seq(rec, finish(vals[rec["input"]], g.name) if rec["input"] in vals
                                               else _no_input(rec, g), loops)
            continue
        data_in = [i for i in op.inputs if i in vals]
        if not op.outputs or -1 in op.outputs:
            raise InputError(f"{g.name}: op {k} ({op.name}) has no output tensor", path=path)
        if not data_in or op.name == "SHAPE":
            _side(op, consts, inits, g)
            continue
        name = g.tensors[op.outputs[0]].name.split("/")[0] if op.outputs else f"op{k}"
        x = vals[data_in[0]]
        if op.name == "WHILE":              # TensorFlow's own loop over a cell (rnnconvert's are in `loops`)
            read_while(op, g, graphs, vals, consts, name, Chain)
            continue
        if op.name == "TRANSPOSE" and _const(consts, op, 1, g).tolist() == [1, 0, 2] and not isinstance(x, WhileOut):
            if feeds_while(g, op.outputs[0], loops):
                vals[op.outputs[0]] = TimeMajor(finish(x, g.name))
                continue
            if x is vals[g.inputs[0]] and not x.layers and k == _first_data_op(g, vals):
                layout = "time_batch_feature"
                vals[op.outputs[0]] = Chain([])
                continue
            if layout == "time_batch_feature" and op.outputs[0] in g.outputs:
                vals[op.outputs[0]] = finish(x, g.name)
                continue
        out = _data_op(op, x, [vals[i] for i in data_in], consts, inits, g, name, assumptions)
        for i, v in zip(op.outputs, out):
            vals[i] = v
    if g.outputs[0] not in vals:
        raise UnsupportedError(f"{g.name}: the output '{g.tensors[g.outputs[0]].name}' does not follow from the "
                               "input", path=path)
    layers = finish(vals[g.outputs[0]], g.name).layers
    for layer in layers:
        if isinstance(layer, Embedding) and layer.name in mask_zero:
            layer.mask_zero = True
    _unique_names(layers)
    ids = bool(layers) and isinstance(layers[0], Embedding)
    dtype = s.DTYPES.get(inp.dtype, "float32") if ids else "float32"
    time_axis = 0 if layout == "time_batch_feature" else 1
    T = inp.shape[time_axis] if len(inp.shape) > time_axis else None
    features = 0 if ids else (inp.shape[-1] or 0)
    spec = InputSpec(inp.name, features, dtype, layout, T)
    return Model(layers, spec, output_name=g.tensors[g.outputs[0]].name,
                 name=os.path.splitext(os.path.basename(path))[0],
                 source={"format": "tflite", **({"assumptions": assumptions} if assumptions else {})})


def _initial_states(model, ports: list, path) -> None:
    """A --stateful file reads as the model it streams: each state input's initial value is the layer's h0/c0."""
    layers = {layer.name: layer for layer in model.recurrent_layers}
    for port in ports:
        layer = layers.get(port["layer"])
        if layer is None:
            raise InputError(f"metadata 'rnnconvert.states': no recurrent layer '{port['layer']}'", path=path)
        if port["initial"] is not None:
            setattr(layer.weights[0], f"{port['state']}0", np.asarray(port["initial"], np.float32))


def _span_end(span, vals, mask_zero: set, g) -> None:
    """The last op of a mask construct: the layer it stands for."""
    if span["kind"] == "mask_zero":
        mask_zero.add(span["layer"])
        return
    if span["input"] not in vals:
        raise UnsupportedError(f"{g.name}: the ops of layer '{span['layer']}' do not read the sequence before them")
    base = finish(vals[span["input"]], g.name)
    layer = (Masking(span["layer"], float(span["mask_value"])) if span["kind"] == "masking"
             else Pooling1D(span["layer"], "average"))
    vals[span["output"]] = Chain(base.layers + [layer])


def _no_input(rec, g):
    raise UnsupportedError(f"{g.name}: the WHILE loop of layer '{rec['layer']}' does not read the sequence before it")


def _first_data_op(g, vals) -> int:
    return next(k for k, op in enumerate(g.ops) if op.name != "SHAPE" and any(i in vals for i in op.inputs))


def _unique_names(layers) -> None:
    seen: dict[str, int] = {}
    for layer in layers:
        n = seen.get(layer.name, 0)
        seen[layer.name] = n + 1
        if n:
            layer.name = f"{layer.name}_{n + 1}"


def _const(consts, op, k, g) -> np.ndarray:
    i = op.inputs[k] if k < len(op.inputs) else -1
    if i < 0 or i not in consts:
        raise UnsupportedError(f"{g.name}: {op.name}: input {k} is not a constant tensor")
    return np.asarray(consts[i])


def _side(op, consts, inits, g) -> None:
    """An op off the data path: constants folded where that is all it does, state initial values noted."""
    if op.name not in _SIDE_OPS:
        raise UnsupportedError(f"{g.name}: op {op.name} is not one rnnconvert reads (off the data path)")
    out = op.outputs[0] if op.outputs else -1
    if op.name == "DEQUANTIZE" and op.inputs[0] in consts:
        consts[out] = np.asarray(consts[op.inputs[0]], np.float32)
    elif op.name == "FILL":
        inits[out] = None
    elif op.name == "BROADCAST_TO" and op.inputs[0] in consts:
        inits[out] = np.asarray(consts[op.inputs[0]], np.float32)


def _data_op(op, x, xs, consts, inits, g, name, assumptions) -> list:
    gn = g.name
    if isinstance(x, WhileOut):
        return [while_output(op, x, consts, g, Chain)]
    if isinstance(x, TimeMajor):
        return [time_major_op(op, x, consts, g)]
    if op.name in SEQUENCE_OPS:
        if isinstance(x, Seq):
            x = finish(x, gn)
        def init(i):
            return inits.get(i)
        return sequence_op(op, x, consts, gn, init, name, assumptions, g.tensors)
    if op.name == "REVERSE_V2":
        if _const(consts, op, 1, g).reshape(-1).tolist() != [1]:
            raise UnsupportedError(f"{gn}: REVERSE_V2 over an axis other than time")
        if isinstance(x, Seq) and x.order == "processing" and x.pick is None:
            return [Seq(x.base, x.layer, "input", half=x.half)]
        if isinstance(x, Seq) and x.layer.direction == "reverse" and x.pick is None:
            return [Seq(x.base, x.layer, "processing", half=x.half)]
        return [Rev(finish(x, gn))]
    if op.name == "STRIDED_SLICE" and isinstance(x, (Seq, Chain)):
        which = _which_step(op, consts, g) if isinstance(x, Seq) and x.pick is None else None
        if which is not None:
            return [Seq(x.base, x.layer, x.order, which, x.half)]
        return [Chain(list(finish(x, gn).layers) + [time_window(op, consts, g, name, _const)])]
    if len(xs) == 2 and all(isinstance(v, Seq) for v in xs):
        if op.name == "CONCATENATION":
            return [merge(xs[0], xs[1], "concat", gn)]
        if op.name in ("ADD", "MUL"):
            return [merge(xs[0], xs[1], "sum" if op.name == "ADD" else "mul", gn)]
    if isinstance(x, Folded) or op.name == "RESHAPE" and not _is_const(consts, op, 1):
        return [_folded(op, x, consts, g, name)]
    conv = None
    if op.name == "CONV_2D" and len(op.inputs) > 1 and g.tensors[op.inputs[1]].quantized:
        conv = hybrid.conv(op, g.tensors, gn, name)
        if conv is None:
            assumptions.append(Assumption(
                f"layer '{name}': CONV_2D with an int8 filter of one scale, which LiteRT runs as a hybrid kernel "
                "(its input quantized on the fly); read as the float convolution of the dequantized filter: "
                "outputs differ by that quantization (`rnnconvert verify` measures it with litert(src))",
                "default", "int8 CONV_2D filter read as float", ""))
    if op.name in IMAGE_OPS or isinstance(x, (Image, Padded)):
        return [image_op(op, finish(x, gn) if isinstance(x, Seq) else x, consts, g, name, _const, conv)]
    x = finish(x, gn)
    layers = list(x.layers)
    if op.name == "MUL" and _ave(layers, op, consts):
        layers[-1].merge = "ave"
        return [Chain(layers)]
    if op.name in ("MUL", "ADD"):
        last = layers[-1] if layers else None
        bias = consts.get(op.inputs[1]) if op.name == "ADD" and len(op.inputs) > 1 else None
        act = fused_activation(op.options.get("fused_activation_function", 0), op.name, gn)
        if isinstance(last, Dense) and last.bias is None and bias is not None and np.size(bias) == last.units_out \
                and last.activation.name == "linear":
            last.bias = np.asarray(bias, np.float32).reshape(-1)     # TensorFlow's Tensordot: MatMul, then BiasAdd
            last.activation = act                                      # (its activation fused into the ADD)
            return [Chain(layers)]
        out = affine(op, Chain(layers), consts, g, name)
        return [out if act.name == "linear" else Chain(out.layers + [ActivationLayer(f"{name}_activation", act)])]
    layer = _front(op, consts, g, name)
    return [Chain(layers + ([layer] if layer is not None else []))]


class Folded:
    """[batch * time, features]: a sequence whose time axis a RESHAPE of computed shape folded into the batch
    (TensorFlow's Dense on a sequence: Reshape, MatMul, Reshape back)."""
    def __init__(self, base: Chain):
        self.base = base


def _is_const(consts, op, k) -> bool:
    return k < len(op.inputs) and op.inputs[k] in consts


def _folded(op, x, consts, g, name):
    if isinstance(x, Folded):
        if op.name == "RESHAPE":
            return x.base
        if op.name == "FULLY_CONNECTED":
            return Folded(Chain(x.base.layers + [_front(op, consts, g, name)]))
        raise UnsupportedError(f"{g.name}: op {op.name} on a sequence folded into its batch")
    return Folded(finish(x, g.name))


def _ave(layers, op, consts) -> bool:
    last = layers[-1] if layers else None
    c = consts.get(op.inputs[1]) if len(op.inputs) > 1 else None
    return (last is not None and getattr(last, "merge", None) == "sum" and c is not None
            and np.size(c) == 1 and float(np.reshape(c, -1)[0]) == 0.5)


def _which_step(op, consts, g) -> str:
    begin, end = _const(consts, op, 1, g).tolist(), _const(consts, op, 2, g).tolist()
    strides = _const(consts, op, 3, g).tolist()
    o = op.options
    if len(begin) == 3 and strides == [1, 1, 1] and o.get("shrink_axis_mask") == 0b010:
        if begin[1] == -1:
            return "last"
        if begin[1] == 0 and end[1] == 1:
            return "first"
    return None         # other steps: a TimeWindow (reader_front.time_window)


def _front(op, consts, g, name):
    o = op.options
    if op.name == "FULLY_CONNECTED":
        w = _const(consts, op, 1, g).astype(np.float32)
        b = op.inputs[2] if len(op.inputs) > 2 else -1
        bias = None if b < 0 else np.asarray(consts[b], np.float32) if b in consts else _const(consts, op, 2, g)
        act = fused_activation(o.get("fused_activation_function", 0), op.name, g.name)
        return Dense(name, np.ascontiguousarray(w.T), bias, act, hybrid.dense(op, g.tensors, w.shape[0], g.name, name))
    if op.name in _ACTIVATION_OPS:
        return ActivationLayer(name, Activation(_ACTIVATION_OPS[op.name], 1.0 if op.name == "ELU" else None))
    if op.name == "SOFTMAX":
        if o.get("beta", 1.0) != 1.0:
            raise UnsupportedError(f"{g.name}: SOFTMAX with beta {o['beta']:g}; rnnconvert reads beta 1")
        return ActivationLayer(name, Activation("softmax"))
    if op.name == "LEAKY_RELU":
        return ActivationLayer(name, Activation("leaky_relu", float(o.get("alpha", 0.0))))
    if op.name == "GATHER" and op.inputs[0] in consts:
        return Embedding(name, np.asarray(consts[op.inputs[0]], np.float32))
    if op.name in ("MEAN", "REDUCE_MAX") and _const(consts, op, 1, g).reshape(-1).tolist() == [1]:
        return Pooling1D(name, "average" if op.name == "MEAN" else "max")
    if op.name == "RESHAPE" and len(g.tensors[op.outputs[0]].shape) == 2:
        return Flatten(name)
    raise UnsupportedError(f"{g.name}: op {op.name} is not one rnnconvert reads (on the data path, "
                           f"output '{g.tensors[op.outputs[0]].name if op.outputs else '?'}')")
