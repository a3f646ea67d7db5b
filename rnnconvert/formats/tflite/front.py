"""The layers around the recurrent ones as TFLite ops: Dense as FULLY_CONNECTED (keep_num_dims, so a
sequence stays [batch, time, units]), Embedding as GATHER, Conv1D as CONV_2D between EXPAND_DIMS and
SQUEEZE (causal or explicit padding as a PAD before it), pooling as MAX_POOL_2D / AVERAGE_POOL_2D or MEAN /
REDUCE_MAX over time, Flatten as RESHAPE, BatchNorm folded into one MUL and one ADD, a TimeWindow as
STRIDED_SLICE (shrinking the time axis for one step); Dropout is no op.
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...model import (ActivationLayer, BatchNorm, Conv1D, Dense, Dropout, Embedding, Flatten, Pooling1D,
                      TimeWindow)
from . import schema as s
from . import quantize as q
from .emit import FUSED_PRODUCT, Emitter, Value


def emit_front(e: Emitter, layer, x: Value, quantize=None) -> Value:
    name = layer.name
    if isinstance(layer, Dropout):
        return x
    if isinstance(layer, ActivationLayer):
        return e.activation(layer.activation, x, name, name)
    if isinstance(layer, Dense):
        return _dense(e, layer, x, quantize)
    if isinstance(layer, Embedding):
        table = e.const(f"{name}/table", np.asarray(layer.table, np.float32))
        out = e.new(f"{name}/output", list(x.dims) + [int(layer.table.shape[1])])
        return e.op("GATHER", [table, x.index], out, "GatherOptions", axis=0)
    if isinstance(layer, Conv1D):
        return _conv(e, layer, x)
    if isinstance(layer, Pooling1D):
        return _pool(e, layer, x)
    if isinstance(layer, Flatten):
        if None in x.dims[1:]:
            raise UnsupportedError("Flatten needs a fixed number of time steps", layer=name)
        n = int(np.prod(x.dims[1:]))
        return e.op("RESHAPE", [x.index, e.ints(f"{name}/shape", [-1, n])], e.new(f"{name}/output", [x.dims[0], n]))
    if isinstance(layer, BatchNorm):
        mean, var = np.asarray(layer.mean, np.float64), np.asarray(layer.variance, np.float64)
        scale = (1.0 if layer.scale is None else np.asarray(layer.scale, np.float64)) / np.sqrt(var + layer.epsilon)
        offset = (0.0 if layer.offset is None else np.asarray(layer.offset, np.float64)) - mean * scale
        y = e.binary("MUL", x, e.const(f"{name}/scale", np.broadcast_to(scale, mean.shape)), f"{name}/scaled")
        return e.binary("ADD", y, e.const(f"{name}/offset", np.broadcast_to(offset, mean.shape)), f"{name}/output")
    if isinstance(layer, TimeWindow):
        return _window(e, layer, x)
    raise UnsupportedError(f"layer kind '{layer.kind}' has no TFLite form rnnconvert writes", layer=name)


def _window(e: Emitter, layer: TimeWindow, x: Value) -> Value:
    name, T = layer.name, x.dims[1]
    kept = None if T is None else len(layer.steps(T))
    if kept == 0:
        raise UnsupportedError(f"the window keeps none of the {T} time steps the model fixes", layer=name)
    if layer.single:        # end is begin + 1; -1 + 1 = 0 would mean the start, so end_mask says "to the end"
        end, em, sm, dims = [0, layer.start + 1, 0], 0b101 | (0b010 if layer.start == -1 else 0), 0b010, \
            [x.dims[0], x.dims[2]]
    else:
        end, em, sm, dims = [0, 0 if layer.stop is None else int(layer.stop), 0], \
            0b101 | (0b010 if layer.stop is None else 0), 0, [x.dims[0], kept, x.dims[2]]
    return e.op("STRIDED_SLICE", [x.index, e.ints(f"{name}/begin", [0, int(layer.start), 0]), e.ints(f"{name}/end", end),
                                  e.ints(f"{name}/strides", [1, 1, 1])], e.new(f"{name}/output", dims),
                "StridedSliceOptions", begin_mask=0b101, end_mask=em, shrink_axis_mask=sm)


def _dense(e: Emitter, layer: Dense, x: Value, quantize) -> Value:
    name = layer.name
    kernel = np.asarray(layer.kernel, np.float32).T
    hybrid = q.plan(layer, quantize)
    w = q.weight(e, f"{name}/kernel", kernel, hybrid, "kernel", per_channel=True)
    b = -1 if layer.bias is None else e.const(f"{name}/bias", np.asarray(layer.bias, np.float32))
    act = layer.activation
    fused = FUSED_PRODUCT.get(act.name)
    out = e.new(f"{name}/output" if fused is not None else f"{name}/linear", list(x.dims[:-1]) + [kernel.shape[0]])
    y = e.op("FULLY_CONNECTED", [x.index, w, b], out, "FullyConnectedOptions",
             fused_activation_function=fused or s.ACT_NONE, keep_num_dims=True,
             asymmetric_quantize_inputs=q.asymmetric(hybrid))
    return y if fused is not None else e.activation(act, y, name, name)


def _expand(e: Emitter, x: Value, name: str) -> Value:
    return e.op("EXPAND_DIMS", [x.index, e.ints(f"{name}/axis", 1)],
                e.new(f"{name}/as_image", [x.dims[0], 1] + x.dims[1:]))


def _squeeze(e: Emitter, x: Value, name: str) -> Value:
    return e.op("SQUEEZE", [x.index], e.new(name, [x.dims[0]] + x.dims[2:]), "SqueezeOptions", squeeze_dims=[1])


def _steps(n, size, stride, dilation, padding):
    if n is None:
        return None
    if padding == "same":
        return -(-n // stride)
    return (n - (size - 1) * dilation - 1) // stride + 1


def _conv(e: Emitter, layer: Conv1D, x: Value) -> Value:
    name = layer.name
    if layer.groups != 1:
        raise UnsupportedError(f"groups={layer.groups}: rnnconvert writes Conv1D to TFLite with groups=1 only",
                               layer=name)
    width, _, filters = layer.kernel.shape
    pad = {"causal": ((width - 1) * layer.dilation, 0), "explicit": tuple(layer.pads)}.get(layer.padding)
    steps = x.dims[1]
    if pad is not None and any(pad):
        x = e.op("PAD", [x.index, e.ints(f"{name}/pads", [[0, 0], [pad[0], pad[1]], [0, 0]])],
                 e.new(f"{name}/padded", [x.dims[0], None if steps is None else steps + sum(pad), x.dims[2]]))
        steps = x.dims[1]
    image = _expand(e, x, name)
    kernel = np.transpose(np.asarray(layer.kernel, np.float32), (2, 0, 1))[:, None, :, :]   # [out, 1, W, in]
    bias = np.zeros(filters, np.float32) if layer.bias is None else np.asarray(layer.bias, np.float32)
    fused = FUSED_PRODUCT.get(layer.activation.name)
    padding = "same" if layer.padding == "same" else "valid"
    out_steps = _steps(steps, width, layer.strides, layer.dilation, padding)
    w = q.weight(e, f"{name}/kernel", kernel, layer.hybrid, "kernel", per_channel=True)     # float32 unless hybrid
    y = e.op("CONV_2D", [image.index, w, e.const(f"{name}/bias", bias)],
             e.new(f"{name}/conv", [x.dims[0], 1, out_steps, filters]), "Conv2DOptions",
             padding=s.SAME if padding == "same" else s.VALID, stride_w=layer.strides, stride_h=1,
             fused_activation_function=fused or s.ACT_NONE, dilation_w_factor=layer.dilation, dilation_h_factor=1)
    y = _squeeze(e, y, f"{name}/output")
    return y if fused is not None else e.activation(layer.activation, y, name, name)


def _pool(e: Emitter, layer: Pooling1D, x: Value) -> Value:
    name = layer.name
    if layer.pool_size is None:
        opname = "MEAN" if layer.mode == "average" else "REDUCE_MAX"
        return e.op(opname, [x.index, e.ints(f"{name}/axis", [1])], e.new(f"{name}/output", [x.dims[0], x.dims[2]]),
                    "ReducerOptions", keep_dims=False)
    strides = layer.strides or layer.pool_size
    image = _expand(e, x, name)
    steps = _steps(x.dims[1], layer.pool_size, strides, 1, layer.padding)
    y = e.op("MAX_POOL_2D" if layer.mode == "max" else "AVERAGE_POOL_2D", [image.index],
             e.new(f"{name}/pooled", [x.dims[0], 1, steps, x.dims[2]]), "Pool2DOptions",
             padding=s.SAME if layer.padding == "same" else s.VALID, stride_w=strides, stride_h=1,
             filter_width=layer.pool_size, filter_height=1, fused_activation_function=s.ACT_NONE)
    return _squeeze(e, y, f"{name}/output")
