"""Keras front-end layers -> canonical layers: Embedding, Conv1D, pooling, Flatten,
BatchNormalization, Masking, Cropping1D (a TimeWindow x[:, left:-right]) and the dropout/noise variants
(identities at inference).

Layouts match the canonical ones: Embedding `embeddings` [vocab, dim], Conv1D `kernel`
[width, in/groups, filters] (Keras 1 `Convolution1D` W [width, 1, in, filters]), BatchNormalization
gamma, beta, moving_mean, moving_variance (each present as `scale`/`center` say).  Odd: Theano (the
Keras 1/2 backend) computes a true convolution, so a Theano file's kernels are flipped in time.
Every function takes the reader's `Converter` and updates its features / sequence / length.
"""
from __future__ import annotations

from ... import model as M
from ...errors import InputError, UnsupportedError

DROPOUT_VARIANTS = {"Dropout": "dropout", "SpatialDropout1D": "spatial_dropout1d",
                    "GaussianDropout": "gaussian_dropout", "GaussianNoise": "gaussian_noise",
                    "AlphaDropout": "alpha_dropout"}
CONV_CLASSES = ("Conv1D", "Convolution1D")
POOL_CLASSES = {"MaxPooling1D": ("max", False), "MaxPool1D": ("max", False),
                "AveragePooling1D": ("average", False), "AvgPool1D": ("average", False),
                "GlobalMaxPooling1D": ("max", True), "GlobalMaxPool1D": ("max", True),
                "GlobalAveragePooling1D": ("average", True), "GlobalAvgPool1D": ("average", True)}
FRONTEND = ("Embedding", "Masking", "Conv1D", "Convolution1D", "MaxPooling1D", "AveragePooling1D",
            "GlobalMaxPooling1D", "GlobalAveragePooling1D", "Flatten", "BatchNormalization",
            "ZeroPadding1D (before a valid Conv1D)", "Cropping1D")


def _one(value, what: str, conv, e) -> int:
    """A Keras 1-D setting: 3, [3] or (3,)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"the config gives {what}={value!r}, expected a positive integer",
                         path=conv.path, layer=e.name)
    return value


def _channels_last(conv, e, cfg: dict) -> None:
    fmt = cfg.get("data_format") or "channels_last"
    if fmt != "channels_last":
        raise conv.unsupported(e, f"data_format={fmt!r}: rnnconvert reads [batch, time, features] "
                                  "(channels_last) sequences; re-save the model with data_format='channels_last'")


def _need_sequence(conv, e, what: str) -> None:
    if not conv.seq:
        raise InputError(f"{what} needs a sequence, but the layer before returns one step",
                         path=conv.path, layer=e.name)


def embedding(conv, e) -> M.Embedding:
    cfg = e.config
    if conv.layers_seen:
        raise conv.unsupported(e, "an Embedding after other layers; rnnconvert reads an Embedding only as "
                                  "the first layer (it takes the token ids)")
    for key in ("lora_rank", "quantization_config"):
        if cfg.get(key):
            raise conv.unsupported(e, f"Embedding with {key}={cfg[key]} (LoRA / quantized weights)")
    vocab, dim = cfg.get("input_dim"), cfg.get("output_dim")
    (table,) = conv.weights(e, (1,))
    if table.ndim != 2:
        raise InputError(f"embeddings shape {tuple(table.shape)}, expected (input_dim, output_dim)",
                         path=conv.path, layer=e.name)
    conv.check(e, "embeddings", table, (vocab, dim), f"input_dim={vocab}, output_dim={dim}")
    conv.features, conv.input_features = int(dim), 0
    return M.Embedding(e.name, table, mask_zero=bool(cfg.get("mask_zero", False)))


def masking(conv, e) -> M.Masking:
    _need_sequence(conv, e, "Masking")
    return M.Masking(e.name, float(e.config.get("mask_value", 0.0)))


def dropout(conv, e, cls: str, cfg: dict) -> M.Dropout:
    if cls == "GaussianNoise":
        rate = cfg.get("stddev", cfg.get("sigma", 0.0))
    else:
        rate = cfg.get("rate", cfg.get("p", 0.0))
    return M.Dropout(e.name, float(rate or 0.0), DROPOUT_VARIANTS[cls])


def zero_padding(conv, e) -> None:
    """ZeroPadding1D: held until the next layer, a 'valid' Conv1D, takes it as explicit pads."""
    _need_sequence(conv, e, "ZeroPadding1D")
    pad = e.config.get("padding", 1)
    pad = [pad, pad] if isinstance(pad, int) else list(pad)
    if len(pad) != 2 or not all(isinstance(p, int) and p >= 0 for p in pad):
        raise InputError(f"the config gives padding={e.config.get('padding')!r}, expected an integer or "
                         "(left, right)", path=conv.path, layer=e.name)
    conv.pending_pad = (pad[0], pad[1], e.name)
    if conv.time_steps:
        conv.time_steps += pad[0] + pad[1]


def unconsumed_padding(conv):
    """The error for a ZeroPadding1D that no 'valid' Conv1D takes, or None."""
    if conv.pending_pad is None:
        return None
    name = conv.pending_pad[2]
    conv.pending_pad = None
    return UnsupportedError("ZeroPadding1D is not followed by a 'valid' Conv1D; the canonical model pads the "
                            "time axis only inside a convolution", path=conv.path, layer=name)


def conv1d(conv, e) -> M.Conv1D:
    cfg = e.config
    if str(conv.backend or "").lower() == "theano":
        raise conv.unsupported(e, "a convolution saved with the Theano backend: Theano computes a true "
                                  "convolution (kernels flipped in time), which rnnconvert does not convert "
                                  "unverified; load the model in Keras with Theano, convert the kernels with "
                                  "keras.utils.conv_utils.convert_all_kernels_in_model, and save it with the "
                                  "TensorFlow backend")
    _channels_last(conv, e, cfg)
    _need_sequence(conv, e, "a convolution over time")
    filters = cfg.get("filters", cfg.get("nb_filter"))
    width = _one(cfg.get("kernel_size", cfg.get("filter_length")), "kernel_size", conv, e)
    strides = _one(cfg.get("strides", cfg.get("subsample_length", 1)), "strides", conv, e)
    dilation = _one(cfg.get("dilation_rate", 1), "dilation_rate", conv, e)
    groups = _one(cfg.get("groups", 1), "groups", conv, e)
    padding = cfg.get("padding", cfg.get("border_mode", "valid"))
    if padding not in ("valid", "same", "causal"):
        raise conv.unsupported(e, f"padding={padding!r}; supported: valid, same, causal")
    if strides > 1 and dilation > 1:
        raise InputError(f"strides={strides} with dilation_rate={dilation}: Keras allows one of them above 1",
                         path=conv.path, layer=e.name)
    use_bias = bool(cfg.get("use_bias", cfg.get("bias", True)))
    arrays = conv.weights(e, (2,) if use_bias else (1,))
    kernel = arrays[0]
    if kernel.ndim == 4 and kernel.shape[1] == 1:            # Keras 1: [width, 1, in, filters]
        kernel = kernel[:, 0]
    if kernel.ndim != 3:
        raise InputError(f"kernel shape {tuple(kernel.shape)}, expected (kernel_size, in/groups, filters)",
                         path=conv.path, layer=e.name)
    conv.take_features(kernel.shape[1] * groups)
    conv.check(e, "kernel", kernel, (width, conv.features // groups, filters),
               f"kernel_size={width}, {conv.features} input features, groups={groups}, filters={filters}")
    bias = arrays[1] if use_bias else None
    if bias is not None:
        conv.check(e, "bias", bias, (filters,), f"filters={filters}")
    pads = (0, 0)
    if conv.pending_pad is not None:
        if padding != "valid":
            raise unconsumed_padding(conv)
        padding, pads, conv.pending_pad = "explicit", conv.pending_pad[:2], None
    layer = M.Conv1D(e.name, kernel, bias, strides=strides, dilation=dilation, padding=padding, pads=pads,
                     groups=groups, activation=conv.act(e, cfg.get("activation")))
    if conv.time_steps:
        reach = (width - 1) * dilation + 1
        T = conv.time_steps
        conv.time_steps = -(-T // strides) if padding == "same" else \
            (T + (reach - 1 if padding == "causal" else 0) - reach) // strides + 1
    conv.features = int(filters)
    return layer


def pooling(conv, e, cls: str) -> M.Pooling1D:
    cfg = e.config
    mode, is_global = POOL_CLASSES[cls]
    _channels_last(conv, e, cfg)
    _need_sequence(conv, e, "pooling over time")
    if is_global:
        if cfg.get("keepdims"):
            raise conv.unsupported(e, "keepdims=True (the output keeps a time axis of 1); re-save with "
                                      "keepdims=False")
        conv.seq, conv.time_steps = False, None
        return M.Pooling1D(e.name, mode)
    size = _one(cfg.get("pool_size", cfg.get("pool_length", 2)), "pool_size", conv, e)
    strides = cfg.get("strides", cfg.get("stride"))
    strides = size if strides is None else _one(strides, "strides", conv, e)
    padding = cfg.get("padding", cfg.get("border_mode", "valid"))
    if padding not in ("valid", "same"):
        raise conv.unsupported(e, f"padding={padding!r}; supported: valid, same")
    if conv.time_steps:
        T = conv.time_steps
        conv.time_steps = -(-T // strides) if padding == "same" else (T - size) // strides + 1
    return M.Pooling1D(e.name, mode, size, strides, padding)


def flatten(conv, e) -> M.Flatten:
    _channels_last(conv, e, e.config)
    if not conv.time_steps or not conv.features:
        raise conv.unsupported(e, "Flatten over the time axis needs a fixed number of time steps, and the "
                                  "model's input has none; rebuild the model with a fixed input length "
                                  "(Input(shape=(steps, features)))")
    conv.features, conv.seq = conv.time_steps * conv.features, False
    return M.Flatten(e.name)


def cropping(conv, e) -> M.TimeWindow:
    """Cropping1D((left, right)): x[:, left:T-right], the steps kept whatever the length."""
    _need_sequence(conv, e, "Cropping1D")
    crop = e.config.get("cropping", (1, 1))
    crop = [crop, crop] if isinstance(crop, int) else crop
    if not isinstance(crop, (list, tuple)) or len(crop) != 2 or \
            any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= M.MAX_DIM for c in crop):
        raise InputError(f"the config gives cropping={crop!r}, expected two step counts (left, right)",
                         path=conv.path, layer=e.name)
    left, right = crop
    if conv.time_steps:
        if conv.time_steps <= left + right:
            raise InputError(f"Cropping1D({left}, {right}) keeps none of the {conv.time_steps} time steps the model "
                             "fixes", path=conv.path, layer=e.name)
        conv.time_steps -= left + right
    return M.TimeWindow(e.name, int(left), -int(right) if right else None)


def batch_norm(conv, e) -> M.BatchNorm:
    cfg = e.config
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    last = 2 if conv.seq else 1
    if axis not in (-1, last):
        raise conv.unsupported(e, f"axis={cfg.get('axis')!r}: rnnconvert reads batch normalization over the "
                                  "last (feature) axis only")
    if cfg.get("mode", 0) != 0:
        raise conv.unsupported(e, f"Keras 1 mode={cfg.get('mode')}: only mode=0 (feature-wise, moving "
                                  "statistics at inference) has a canonical form")
    if cfg.get("renorm"):
        raise conv.unsupported(e, "renorm=True (batch renormalization)")
    scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
    arrays = conv.weights(e, (2 + scale + center,))
    gamma = arrays.pop(0) if scale else None
    beta = arrays.pop(0) if center else None
    mean, variance = arrays
    n = conv.features or int(mean.shape[0])
    for what, a in (("gamma", gamma), ("beta", beta), ("moving_mean", mean), ("moving_variance", variance)):
        if a is not None:
            conv.check(e, what, a, (n,), f"{n} features")
    conv.take_features(n)
    return M.BatchNorm(e.name, mean, variance, gamma, beta, float(cfg.get("epsilon", 1e-3)))
