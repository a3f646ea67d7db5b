"""The layers around the recurrent ones, written as standard ONNX ops, and the mask they carry.

    Embedding   Gather(table, ids) on the int64 (int32) [batch, time] graph input
    Conv1D      Conv on [batch, channels, time]: W = kernel.transpose(2, 1, 0); 'same' is
                auto_pad SAME_UPPER (ONNX and Keras agree: the extra step goes at the end),
                'causal' and 'explicit' are pads
    Pooling1D   MaxPool / AveragePool (count_include_pad=0) on [batch, channels, time];
                global pooling is ReduceMax / ReduceMean over time
    Flatten     Reshape [batch, time*features] of the batch-major tensor
    BatchNorm   BatchNormalization on [batch, channels, time] (or [batch, features])
    Masking     no node for the values (a Mul when mask_value is not 0: Keras zeroes masked steps)
    TimeWindow  Slice on the time axis (x[:, start:stop]), or Gather of one step (x[:, start])
Conv, pooling and batch normalization work channels-first, so consecutive ones share that layout and
Transposes appear only where the layout changes.  A mask (Masking, Embedding mask_zero) is a bool
[.., 1] tensor beside the signal; a recurrent layer that receives one is written as a Scan that skips
masked steps (`scan.py`), and a layer that cannot honour a mask refuses it by name.
"""
from __future__ import annotations

import numpy as np
from .lite import TensorProto

from ...errors import UnsupportedError
from ...model import Activation, BatchNorm, Conv1D, Dropout, Embedding, Flatten, Masking, Pooling1D, TimeWindow

FRONT_KINDS = (Embedding, Conv1D, Pooling1D, Flatten, BatchNorm, Masking, TimeWindow)

# perm taking a tensor from one layout to another: batch [B,T,F], time [T,B,F], channel [B,F,T]
_PERM = {("batch", "time"): [1, 0, 2], ("time", "batch"): [1, 0, 2],
         ("batch", "channel"): [0, 2, 1], ("channel", "batch"): [0, 2, 1],
         ("time", "channel"): [1, 2, 0], ("channel", "time"): [2, 0, 1]}
TIME_AXIS = {"batch": 1, "time": 0, "channel": 2}


def to_layout(b, st, want: str, base: str) -> None:
    """Transpose the signal into layout `want` (a no-op when it is there or has no time axis)."""
    if not st.has_time or st.major == want:
        return
    st.cur = b.op("Transpose", [st.cur], f"{base}/to_{want}_major", perm=_PERM[(st.major, want)])
    st.major = want


def mask_in(b, st, want: str, base: str) -> str:
    """The current mask as bool [T, B, 1] ('time') or [B, T, 1] ('batch')."""
    name, major = st.mask
    if major != want:
        name = b.op("Transpose", [name], f"{base}/mask_{want}_major", perm=[1, 0, 2])
        st.mask = (name, want)
    return name


def write_layer(b, st, layer, k: int, base: str, activation) -> tuple[dict, str]:
    """Nodes for one non-recurrent layer; returns (metadata entry, note on its form)."""
    entry = {"kind": layer.kind, "name": layer.name}
    if st.mask is not None and isinstance(layer, Pooling1D) and layer.pool_size is None and layer.mode == "average":
        return _masked_mean(b, st, layer, base, entry)
    if isinstance(layer, (Conv1D, Pooling1D, Flatten, TimeWindow)):
        st.mask = None          # Keras drops the mask here (model.Masking)
    if isinstance(layer, Embedding):
        return _embedding(b, st, layer, base, entry)
    if isinstance(layer, Conv1D):
        return _conv(b, st, layer, base, entry, activation)
    if isinstance(layer, Pooling1D):
        return _pool(b, st, layer, base, entry)
    if isinstance(layer, Flatten):
        to_layout(b, st, "batch", base)
        st.cur = b.op("Reshape", [st.cur, b.const(f"{base}/shape_B_TF", [0, -1], np.int64)], f"{base}/Reshape")
        st.has_time = False
        return entry, "Reshape to [batch, time*features]"
    if isinstance(layer, BatchNorm):
        return _batch_norm(b, st, layer, base, entry)
    if isinstance(layer, Masking):
        return _masking(b, st, layer, base, entry)
    if isinstance(layer, TimeWindow):
        return _window(b, st, layer, base, entry)
    raise UnsupportedError(f"the ONNX writer does not know layer kind '{layer.kind}'", layer=layer.name)


def _embedding(b, st, layer: Embedding, base, entry):
    ids = st.cur
    entry["arrays"] = {"table": b.const(f"{base}/embeddings", layer.table)}
    entry["mask_zero"] = bool(layer.mask_zero)
    st.cur = b.op("Gather", [entry["arrays"]["table"], ids], f"{base}/Gather", axis=0)
    note = "Gather on the token ids"
    if layer.mask_zero:
        zero = b.const(f"{base}/pad_id", 0, np.int32 if st.ids_dtype == "int32" else np.int64)
        m = b.op("Not", [b.op("Equal", [ids, zero], f"{base}/is_padding")], f"{base}/not_padding")
        st.mask = (b.op("Unsqueeze", [m, b.const(f"{base}/mask_axis", [-1], np.int64)], f"{base}/mask"), st.major)
        note += "; id 0 masks a step (mask_zero)"
    return entry, note


def _conv(b, st, layer: Conv1D, base, entry, activation):
    to_layout(b, st, "channel", base)
    arrays = {"kernel": b.const(f"{base}/W", np.transpose(layer.kernel, (2, 1, 0)))}
    ins = [st.cur, arrays["kernel"]]
    if layer.bias is not None:
        arrays["bias"] = b.const(f"{base}/B", layer.bias)
        ins.append(arrays["bias"])
    width = int(layer.kernel.shape[0])
    attrs = {"kernel_shape": [width], "strides": [int(layer.strides)], "dilations": [int(layer.dilation)],
             "group": int(layer.groups)}
    if layer.padding == "same" and layer.strides > 1:
        if layer.dilation > 1:
            raise UnsupportedError("'same' padding with both strides and dilation above 1 has pads that depend "
                                   "on the length, and onnxruntime's auto_pad takes no dilation; Keras and PyTorch "
                                   "do not build such a layer", layer=layer.name)
        attrs["auto_pad"] = "SAME_UPPER"          # pads depend on the run-time length
        form = "auto_pad SAME_UPPER"
    else:
        reach = (width - 1) * layer.dilation     # stride 1: 'same' pads are (reach // 2, the rest) for any length
        pads = {"valid": (0, 0), "causal": (reach, 0), "same": (reach // 2, reach - reach // 2),
                "explicit": tuple(layer.pads)}[layer.padding]
        attrs["pads"] = [int(pads[0]), int(pads[1])]
        form = f"pads {list(attrs['pads'])}"
    st.cur = b.op("Conv", ins, f"{base}/Conv", **attrs)
    st.cur = _channel_activation(b, st, layer.activation, base, activation)
    entry.update(arrays=arrays, strides=layer.strides, dilation=layer.dilation, padding=layer.padding,
                 pads=list(layer.pads), groups=layer.groups, activation=layer.activation.to_dict())
    return entry, f"Conv on [batch, channels, time], padding '{layer.padding}' as {form}"


def _channel_activation(b, st, act: Activation, base, activation) -> str:
    if act.name in ("softmax", "log_softmax"):     # over features: not the channels-first last axis
        to_layout(b, st, "batch", base)
    return activation(b, act, st.cur, base)


def _pool_entry(layer: Pooling1D, entry: dict) -> dict:
    entry.update(mode=layer.mode, pool_size=layer.pool_size, strides=layer.strides, padding=layer.padding)
    return entry


def _masked_mean(b, st, layer: Pooling1D, base, entry):
    """Global average under a mask: the mean of the unmasked steps, sum(X*m) / sum(m) (Keras)."""
    _pool_entry(layer, entry)
    to_layout(b, st, st.mask[1], base)
    m = st.mask[0]
    axis = b.const(f"{base}/time_axis", [TIME_AXIS[st.major]], np.int64)
    kept = b.op("Where", [m, st.cur, b.const(f"{base}/zero", np.float32(0))], f"{base}/unmasked")
    total = b.op("ReduceSum", [kept, axis], f"{base}/sum", keepdims=0)
    count = b.op("ReduceSum", [b.op("Cast", [m], f"{base}/mask_float", to=TensorProto.FLOAT), axis],
                 f"{base}/count", keepdims=0)
    st.cur = b.op("Div", [total, count], f"{base}/masked_mean")
    st.has_time, st.mask = False, None
    return entry, "the mean of the unmasked steps (ReduceSum / ReduceSum of the mask)"


def _pool(b, st, layer: Pooling1D, base, entry):
    _pool_entry(layer, entry)
    if layer.pool_size is None:
        op = "ReduceMax" if layer.mode == "max" else "ReduceMean"
        st.cur = b.op(op, [st.cur], f"{base}/{op}", axes=[TIME_AXIS[st.major]], keepdims=0)
        st.has_time = False
        return entry, f"{op} over time"
    to_layout(b, st, "channel", base)
    op = "MaxPool" if layer.mode == "max" else "AveragePool"
    attrs = {"kernel_shape": [int(layer.pool_size)], "strides": [int(layer.strides or layer.pool_size)]}
    if layer.padding == "same":
        attrs["auto_pad"] = "SAME_UPPER"
    else:
        attrs["pads"] = [0, 0]
    if op == "AveragePool":
        attrs["count_include_pad"] = 0
    st.cur = b.op(op, [st.cur], f"{base}/{op}", **attrs)
    return entry, f"{op} on [batch, channels, time]" + (", auto_pad SAME_UPPER" if layer.padding == "same" else "")


def _batch_norm(b, st, layer: BatchNorm, base, entry):
    to_layout(b, st, "channel", base)
    n = int(layer.mean.shape[0])
    arrays = {"mean": b.const(f"{base}/mean", layer.mean), "variance": b.const(f"{base}/variance", layer.variance)}
    scale = b.const(f"{base}/scale", layer.scale if layer.scale is not None else np.ones(n))
    offset = b.const(f"{base}/offset", layer.offset if layer.offset is not None else np.zeros(n))
    if layer.scale is not None:
        arrays["scale"] = scale
    if layer.offset is not None:
        arrays["offset"] = offset
    st.cur = b.op("BatchNormalization", [st.cur, scale, offset, arrays["mean"], arrays["variance"]],
                  f"{base}/BatchNormalization", epsilon=float(layer.epsilon))
    entry.update(arrays=arrays, epsilon=float(layer.epsilon))
    return entry, "BatchNormalization on [batch, channels" + (", time]" if st.has_time else "]")


def _window(b, st, layer: TimeWindow, base, entry):
    if not st.has_time:
        raise UnsupportedError("a time window needs a sequence, but the layer before returns one step",
                               layer=layer.name)
    entry.update(start=int(layer.start), stop=layer.stop, single=bool(layer.single))
    axis = TIME_AXIS[st.major]
    if layer.single:
        at = b.const(f"{base}/step", int(layer.start), np.int64)
        st.cur = b.op("Gather", [st.cur, at], f"{base}/Gather", axis=axis)
        st.has_time = False
        return entry, f"Gather of time step {layer.start}"
    stop = (1 << 63) - 1 if layer.stop is None else int(layer.stop)
    st.cur = b.op("Slice", [st.cur, b.const(f"{base}/starts", [int(layer.start)], np.int64),
                            b.const(f"{base}/ends", [stop], np.int64), b.const(f"{base}/axes", [axis], np.int64)],
                  f"{base}/Slice")
    shown = "" if layer.stop is None else layer.stop
    return entry, f"Slice {layer.start}:{shown} of the time axis"


def _masking(b, st, layer: Masking, base, entry):
    if not st.has_time:
        raise UnsupportedError("Masking needs a sequence, but the layer before returns one step",
                               layer=layer.name)
    v = b.const(f"{base}/mask_value", np.float32(layer.mask_value))
    differs = b.op("Cast", [b.op("Not", [b.op("Equal", [st.cur, v], f"{base}/equal")], f"{base}/differs")],
                   f"{base}/differs_float", to=TensorProto.FLOAT)
    axis = 1 if st.major == "channel" else 2
    keep = b.op("ReduceMax", [differs], f"{base}/any_differs", axes=[axis], keepdims=1)
    note = "a bool mask for the recurrent layers that follow"
    if layer.mask_value != 0:
        st.cur = b.op("Mul", [st.cur, keep], f"{base}/zero_masked")
        note += "; masked steps zeroed with a Mul, as Keras does"
    if st.major == "channel":
        keep = b.op("Transpose", [keep], f"{base}/mask_batch_major", perm=[0, 2, 1])
    st.mask = (b.op("Cast", [keep], f"{base}/mask", to=TensorProto.BOOL),
               "time" if st.major == "time" else "batch")
    entry["mask_value"] = float(layer.mask_value)
    return entry, note


def dropout_entry(layer: Dropout) -> dict:
    return {"kind": "dropout", "name": layer.name, "rate": layer.rate, "variant": layer.variant}


def width_after(layer, width, time_steps):
    """Feature width after a front-end layer (None where it depends on the run-time length)."""
    if isinstance(layer, (Embedding, Conv1D)):
        return layer.units_out
    if isinstance(layer, Flatten):
        return None if width is None or time_steps is None else width * time_steps
    return width


# ----------------------------------------------------------------------------------------- reading

def read_entry(entry: dict, get):
    """The canonical layer of one metadata entry the writer above made (`get` fetches an initializer)."""
    kind, name = entry["kind"], entry["name"]
    a = entry.get("arrays", {})
    if kind == "embedding":
        return Embedding(name, get(a["table"]), bool(entry.get("mask_zero", False)))
    if kind == "conv1d":
        kernel = np.ascontiguousarray(np.transpose(get(a["kernel"]), (2, 1, 0)))
        return Conv1D(name, kernel, get(a["bias"]) if a.get("bias") else None, int(entry["strides"]),
                      int(entry["dilation"]), entry["padding"], tuple(entry["pads"]), int(entry["groups"]),
                      Activation(**entry["activation"]))
    if kind == "pooling1d":
        return Pooling1D(name, entry["mode"], entry["pool_size"], entry["strides"], entry["padding"])
    if kind == "flatten":
        return Flatten(name)
    if kind == "batch_norm":
        return BatchNorm(name, get(a["mean"]), get(a["variance"]), get(a["scale"]) if a.get("scale") else None,
                         get(a["offset"]) if a.get("offset") else None, float(entry["epsilon"]))
    if kind == "masking":
        return Masking(name, float(entry["mask_value"]))
    if kind == "time_window":
        return TimeWindow(name, entry["start"], entry["stop"], entry["single"])     # checked by Model.validate
    raise KeyError(kind)



def masked_layers(model) -> set:
    """Indices of the recurrent layers a mask (Masking, Embedding mask_zero) reaches."""
    from ...model import Recurrent
    out, on = set(), False
    for k, layer in enumerate(model.layers):
        if isinstance(layer, Masking) or (isinstance(layer, Embedding) and layer.mask_zero):
            on = True
        elif isinstance(layer, Recurrent):
            if on:
                out.add(k)
            on = on and layer.output == "sequence"
        elif isinstance(layer, (Conv1D, Pooling1D, Flatten, TimeWindow)):
            on = False
    return out
