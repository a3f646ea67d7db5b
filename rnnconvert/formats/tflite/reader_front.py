"""Conv1D, windowed pooling and BatchNorm back from the TFLite ops the writer (and TensorFlow) use for them:
PAD? -> EXPAND_DIMS(axis 1) -> CONV_2D / MAX_POOL_2D / AVERAGE_POOL_2D -> SQUEEZE(axis 1), and a MUL / ADD by
constants over the last axis (a BatchNorm of mean 0, variance 1, epsilon 0: the folded scale and offset);
a STRIDED_SLICE of time steps (batch and features whole, strides 1) is a TimeWindow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import UnsupportedError
from ...model import BatchNorm, Conv1D, Pooling1D, TimeWindow
from . import schema as s
from .reader_recurrent import Chain, fused_activation


@dataclass
class Padded:
    base: Chain
    pads: tuple


@dataclass
class Image:            # [batch, 1, time, features]
    base: Chain
    pads: tuple
    done: bool = False  # a convolution or pooling has run on it


IMAGE_OPS = ("PAD", "EXPAND_DIMS", "CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "SQUEEZE")


def image_op(op, x, consts, g, name, const, hybrid=None):
    gn = g.name
    o = op.options
    if op.name == "PAD" and isinstance(x, Chain):
        p = const(consts, op, 1, g).tolist()
        if len(p) != 3 or p[0] != [0, 0] or p[2] != [0, 0]:
            raise UnsupportedError(f"{gn}: PAD {p}: rnnconvert reads padding over time only")
        return Padded(x, tuple(p[1]))
    if op.name == "EXPAND_DIMS" and isinstance(x, (Chain, Padded)):
        if const(consts, op, 1, g).reshape(-1).tolist() not in ([1], [-3]):
            raise UnsupportedError(f"{gn}: EXPAND_DIMS other than of axis 1 before a convolution")
        return Image(x.base, x.pads) if isinstance(x, Padded) else Image(x, (0, 0))
    if op.name == "SQUEEZE" and isinstance(x, Image) and x.done:
        if o.get("squeeze_dims") not in ([1], [-3]):
            raise UnsupportedError(f"{gn}: SQUEEZE of dims {o.get('squeeze_dims')} after a convolution")
        return x.base
    if op.name == "RESHAPE" and isinstance(x, Image) and x.done:       # TensorFlow's squeeze of axis 1
        before, after = g.tensors[op.inputs[0]].shape, g.tensors[op.outputs[0]].shape
        if len(before) != 4 or before[1] != 1 or len(after) != 3 or after[-1] != before[-1]:
            raise UnsupportedError(f"{gn}: RESHAPE of {before} to {after} after a convolution; rnnconvert reads "
                                   "the one that drops axis 1")
        return x.base
    if op.name in ("CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D") and isinstance(x, Image) and not x.done:
        if o.get("stride_h", 1) != 1:
            raise UnsupportedError(f"{gn}: {op.name} with stride_h {o.get('stride_h')}")
        padding = "same" if o.get("padding") == s.SAME else "valid"
        if op.name == "CONV_2D":
            f = np.asarray(const(consts, op, 1, g), np.float32)
            if f.ndim != 4 or f.shape[1] != 1:
                raise UnsupportedError(f"{gn}: CONV_2D filter of shape {list(f.shape)}; rnnconvert reads "
                                       "[out, 1, W, in]")
            kernel = np.ascontiguousarray(np.transpose(f[:, 0], (1, 2, 0)))
            bias = None
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                bias = np.asarray(const(consts, op, 2, g), np.float32)
            width, d = kernel.shape[0], o.get("dilation_w_factor", 1) or 1
            pads = tuple(int(v) for v in x.pads)
            if any(pads) and padding == "same":
                raise UnsupportedError(f"{gn}: CONV_2D with SAME padding after a PAD")
            if any(pads):
                padding = "causal" if pads == ((width - 1) * d, 0) else "explicit"
            layer = Conv1D(name, kernel, bias, int(o.get("stride_w", 1)), int(d), padding,
                           pads if padding == "explicit" else (0, 0), 1,
                           fused_activation(o.get("fused_activation_function", 0), op.name, gn), hybrid)
        else:
            if any(x.pads) or o.get("fused_activation_function", 0) or o.get("filter_height", 1) != 1:
                raise UnsupportedError(f"{gn}: {op.name} with padding before it, a fused activation or a window "
                                       "taller than 1")
            layer = Pooling1D(name, "max" if op.name == "MAX_POOL_2D" else "average", int(o["filter_width"]),
                              int(o.get("stride_w", 1)), padding)
        return Image(Chain(x.base.layers + [layer]), (0, 0), done=True)
    raise UnsupportedError(f"{gn}: {op.name} where rnnconvert expects the ops of a Conv1D or pooling layer")


def affine(op, x: Chain, consts, g, name):
    """MUL or ADD by a constant over the last axis: a BatchNorm's folded scale or offset."""
    c = consts.get(op.inputs[1]) if len(op.inputs) > 1 else None
    if c is None:
        raise UnsupportedError(f"{g.name}: {op.name} of two computed tensors")
    c = np.asarray(c, np.float32).reshape(-1)
    last = x.layers[-1] if x.layers else None
    if op.name == "ADD" and isinstance(last, BatchNorm) and last.offset is None and len(c) == len(last.mean):
        last.offset = c
        return x
    n = len(c)
    ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
    layer = BatchNorm(name, zeros, ones, c if op.name == "MUL" else ones, c if op.name == "ADD" else None, 0.0)
    return Chain(x.layers + [layer])


def time_window(op, consts, g, name, const) -> TimeWindow:
    """x[:, begin:end] (shrunk: x[:, begin]) of [batch, time, features] as TensorFlow's Cropping1D and
    rnnconvert's writer make it: begin/end masks whole on batch and features, strides 1, no ellipsis or new axis."""
    begin, end = const(consts, op, 1, g).tolist(), const(consts, op, 2, g).tolist()
    strides = const(consts, op, 3, g).tolist()
    o = op.options
    bm, em, sm = (int(o.get(k, 0)) for k in ("begin_mask", "end_mask", "shrink_axis_mask"))
    if len(begin) != 3 or strides != [1, 1, 1] or bm & 0b101 != 0b101 or em & 0b101 != 0b101 or sm & 0b101 \
            or o.get("ellipsis_mask") or o.get("new_axis_mask"):
        raise UnsupportedError(f"{g.name}: STRIDED_SLICE (begin {begin}, end {end}, strides {strides}, masks "
                               f"{bm}/{em}/{sm}) is no window of time steps with batch and features whole")
    start = 0 if bm & 0b010 else int(begin[1])
    if sm & 0b010:
        return TimeWindow(name, start, None, True)
    return TimeWindow(name, start, None if em & 0b010 else int(end[1]))
