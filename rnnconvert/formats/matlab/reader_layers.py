"""MATLAB's front-end layers -> canonical layers, for `build.build` (objects and rnnconvert's structs alike).

wordEmbeddingLayer (Weights Dimension x NumWords; MATLAB index i is token id i - 1),
convolution1dLayer (Weights FilterSize x NumChannels x NumFilters, Keras's kernel layout; PaddingMode
'same' / 'causal' / 'manual' with PaddingSize), max/averagePooling1dLayer (average: PaddingValue 'mean'
is Keras's 'same' average, 0 with padding is refused), the global poolings and batchNormalizationLayer.
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...model import BatchNorm, Conv1D, Embedding, Pooling1D

CLASSES = ("WordEmbeddingLayer", "Convolution1DLayer", "MaxPooling1DLayer", "AveragePooling1DLayer",
           "GlobalMaxPooling1DLayer", "GlobalAveragePooling1DLayer", "BatchNormalizationLayer")


def _text(v, default=""):
    if isinstance(v, str):
        return v
    if isinstance(v, list) and v and isinstance(v[0], str):
        return v[0]
    return default


def _ints(v, n: int, default: int) -> list[int]:
    if v is None or isinstance(v, (str, list, dict)):
        return [default] * n
    a = np.asarray(v).reshape(-1)
    if a.size == 0:
        return [default] * n
    return [int(x) for x in (np.resize(a, n) if a.size < n else a[:n])]


def _padding(p: dict, where: str) -> tuple[str, tuple[int, int]]:
    """(PaddingMode, (left, right)): 'same', 'causal' or 'manual'."""
    mode = (_text(p.get("PaddingMode")) or _text(p.get("Padding")) or "manual").lower()
    if mode not in ("same", "causal", "manual"):
        raise UnsupportedError(f"{where}: PaddingMode '{mode}', expected same, causal or manual")
    left, right = _ints(p.get("PaddingSize"), 2, 0)
    return mode, (left, right)


def front_end(cls: str, name: str, p: dict, where: str, value, num):
    """The canonical layer for a front-end class (`value`/`num` are reader's learnable/number readers);
    None when the weights are missing (an untrained layer)."""
    if cls == "WordEmbeddingLayer":
        W = value(p.get("Weights"))
        if W is None:
            return None
        return Embedding(name, np.ascontiguousarray(W.reshape(W.shape[0], -1).T))
    if cls == "Convolution1DLayer":
        K = value(p.get("Weights"))
        if K is None:
            return None
        if K.ndim == 2:                         # MATLAB drops a trailing singleton NumFilters
            K = K[:, :, None]
        bias = value(p.get("Bias"))
        mode, pads = _padding(p, where)
        stride = _ints(p.get("Stride"), 1, 1)[0]
        dilation = _ints(p.get("DilationFactor"), 1, 1)[0]
        if mode == "manual":
            padding = "valid" if pads == (0, 0) else "explicit"
        else:
            padding = mode
        return Conv1D(name, np.ascontiguousarray(K), None if bias is None else bias.reshape(-1), strides=stride,
                      dilation=dilation, padding=padding, pads=pads if padding == "explicit" else (0, 0))
    if cls in ("MaxPooling1DLayer", "AveragePooling1DLayer"):
        mode, pads = _padding(p, where)
        size = _ints(p.get("PoolSize"), 1, 1)[0]
        stride = _ints(p.get("Stride"), 1, 1)[0]
        average = cls.startswith("Average")
        if mode == "causal" or (mode == "manual" and pads != (0, 0)):
            raise UnsupportedError(f"{where}: pooling padding {mode} {list(pads)}; rnnconvert's pooling pads "
                                   "'same' or not at all")
        if average and mode == "same" and _text(p.get("PaddingValue"), "") != "mean" and \
                num(p.get("PaddingValue"), 0) == 0:
            raise UnsupportedError(f"{where}: average pooling with 'same' padding of zeros counts the padded "
                                   "steps; only PaddingValue 'mean' (padded steps left out) is supported")
        return Pooling1D(name, "average" if average else "max", size, stride, mode if mode == "same" else "valid")
    if cls in ("GlobalMaxPooling1DLayer", "GlobalAveragePooling1DLayer"):
        return Pooling1D(name, "max" if "Max" in cls else "average")
    if cls == "BatchNormalizationLayer":
        mean, var = value(p.get("TrainedMean")), value(p.get("TrainedVariance"))
        if mean is None or var is None:
            return None
        scale, offset = value(p.get("Scale")), value(p.get("Offset"))
        flat = lambda a: None if a is None else np.ascontiguousarray(a.reshape(-1))  # noqa: E731
        return BatchNorm(name, flat(mean), flat(var), flat(scale), flat(offset),
                         epsilon=float(num(p.get("Epsilon"), 1e-5)))
    return None
