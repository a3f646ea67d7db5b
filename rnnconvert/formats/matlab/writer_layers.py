"""The front-end layers as MATLAB layer structs (`schemas/matlab.md`), for `writer.from_canonical`.

MATLAB's 1-D layers take each observation as channels x time and keep Keras's conventions: a
convolution1dLayer's Weights are FilterSize x NumChannels x NumFilters (Keras's kernel as it is),
'same' padding puts the odd step on the right; average pooling pads with PaddingValue 'mean', so
padded steps do not change the mean of the real ones (Keras leaves them out).  wordEmbeddingLayer
(Text Analytics Toolbox) takes word indices 1..NumWords: token id i is MATLAB index i + 1.
Refused, naming the layer: masks (MATLAB layers take none), Flatten over time, grouped convolutions, time windows.
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...model import BatchNorm, Conv1D, Embedding, Flatten, Masking, Pooling1D, TimeWindow

PKG = "nnet.cnn.layer."
MIN_EPSILON = 1e-5       # batchNormalizationLayer: Epsilon >= 1e-5


def front_end(layer, where: str, notes: list, activation_layer) -> list[dict] | None:
    """The structs for one front-end layer, or None when `layer` is not one."""
    if isinstance(layer, Embedding):
        if layer.mask_zero:
            raise UnsupportedError(f"{where}: mask_zero masks padding steps; MATLAB layers take no mask "
                                   "(padding would be computed as real steps)")
        V, D = layer.table.shape
        notes.append(f"{where}: wordEmbeddingLayer takes word indices 1..{V}: feed token id + 1 in MATLAB")
        return [{"Name": layer.name, "Class": PKG + "WordEmbeddingLayer", "Dimension": float(D),
                 "NumWords": float(V), "Weights": np.ascontiguousarray(np.asarray(layer.table).T)}]
    if isinstance(layer, Masking):
        raise UnsupportedError(f"{where}: Masking: MATLAB layers take no mask (masked steps would be computed "
                               "as real steps)")
    if isinstance(layer, TimeWindow):
        raise UnsupportedError(f"{where}: a time window keeps some steps of a sequence; MATLAB has no built-in "
                               "layer that does (only a functionLayer, which is code); write ONNX, PyTorch or "
                               "Keras instead")
    if isinstance(layer, Flatten):
        raise UnsupportedError(f"{where}: Flatten folds time into features; MATLAB's flattenLayer collapses "
                               "only spatial dimensions, never time")
    if isinstance(layer, Conv1D):
        return _conv(layer, where, activation_layer, notes)
    if isinstance(layer, Pooling1D):
        return [_pool(layer)]
    if isinstance(layer, BatchNorm):
        return [_batch_norm(layer, where, notes)]
    return None


def _conv(layer: Conv1D, where: str, activation_layer, notes: list) -> list[dict]:
    if layer.groups != 1:
        raise UnsupportedError(f"{where}: groups {layer.groups}: convolution1dLayer has no groups "
                               "(MATLAB groups only 2-D convolutions)")
    W, C, F = layer.kernel.shape
    mode = {"valid": "manual", "explicit": "manual", "same": "same", "causal": "causal"}[layer.padding]
    pads = layer.pads if layer.padding == "explicit" else (0, 0)
    bias = layer.bias if layer.bias is not None else np.zeros(F, layer.kernel.dtype)
    out = [{"Name": layer.name, "Class": PKG + "Convolution1DLayer", "FilterSize": float(W),
            "NumChannels": float(C), "NumFilters": float(F), "Stride": float(layer.strides),
            "DilationFactor": float(layer.dilation), "PaddingMode": mode,
            "PaddingSize": np.array([[float(pads[0]), float(pads[1])]]),
            "Weights": np.ascontiguousarray(layer.kernel), "Bias": np.asarray(bias).reshape(1, -1)}]
    if layer.activation.name != "linear":
        out.append(activation_layer(layer.activation, f"{layer.name}_{layer.activation.name}", where))
        notes.append(f"{where}: the Conv1D activation is written as a separate {layer.activation.name} layer")
    return out


def _pool(layer: Pooling1D) -> dict:
    kind = "Max" if layer.mode == "max" else "Average"
    if layer.pool_size is None:
        return {"Name": layer.name, "Class": f"{PKG}Global{kind}Pooling1DLayer"}
    d = {"Name": layer.name, "Class": f"{PKG}{kind}Pooling1DLayer", "PoolSize": float(layer.pool_size),
         "Stride": float(layer.strides or layer.pool_size),
         "PaddingMode": "same" if layer.padding == "same" else "manual", "PaddingSize": np.zeros((1, 2))}
    if kind == "Average":
        d["PaddingValue"] = "mean"
    return d


def _batch_norm(layer: BatchNorm, where: str, notes: list) -> dict:
    C = layer.mean.shape[0]
    variance = np.asarray(layer.variance, np.float64)
    eps = float(layer.epsilon)
    if eps < MIN_EPSILON:           # (x - m) / sqrt(v + eps) = (x - m) / sqrt((v + eps - 1e-5) + 1e-5)
        variance = variance + eps - MIN_EPSILON
        if np.any(variance <= 0):
            raise UnsupportedError(f"{where}: epsilon {eps:g} is below batchNormalizationLayer's minimum 1e-5 "
                                   "and a variance is too small to absorb the difference")
        notes.append(f"{where}: epsilon {eps:g} written as MATLAB's minimum 1e-5 with the difference moved "
                     "into TrainedVariance (the same function)")
        eps = MIN_EPSILON
    col = lambda v, fill: (np.full(C, fill, layer.mean.dtype) if v is None else np.asarray(v)).reshape(-1, 1)  # noqa: E731
    return {"Name": layer.name, "Class": PKG + "BatchNormalizationLayer", "NumChannels": float(C),
            "TrainedMean": col(layer.mean, 0), "TrainedVariance": variance.astype(layer.mean.dtype).reshape(-1, 1),
            "Scale": col(layer.scale, 1), "Offset": col(layer.offset, 0), "Epsilon": eps}
