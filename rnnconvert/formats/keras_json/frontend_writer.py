"""Canonical front-end layers -> Keras layers (the writer's side): Embedding, Conv1D, pooling,
Flatten, BatchNormalization, Masking, the Dropout variants and time windows (Cropping1D), with their configs as Keras 3 and
tf.keras 2 serialise them and their weights in Keras's order.

Keras holds these directly, in the canonical layouts (Conv1D kernel [width, in/groups, filters]);
explicit convolution padding is written as Keras's 'same' or 'causal' where those add the same zeros
(stride 1), else as a `ZeroPadding1D((left, right))` followed by a 'valid' Conv1D.  Weights: Embedding
`embeddings`; Conv1D `kernel`, `bias`; BatchNormalization `gamma`, `beta`, `moving_mean`,
`moving_variance` (gamma/beta absent with scale/center false).  A TimeWindow is a Cropping1D((left,
right)): from any length when it starts at a step >= 0 and ends at the end or before it (x[:, 2:-1]), else
only with a fixed length; one step x[:, k] is a Cropping1D to that step then a Flatten (fixed length).
"""
from __future__ import annotations

import numpy as np

from ... import model as M
from .specs import KLayer, Refusal, _activation_layer, describe_missing, keras_activation

DROPOUT_CLASSES = {"dropout": "Dropout", "spatial_dropout1d": "SpatialDropout1D", "gaussian_noise": "GaussianNoise",
                   "gaussian_dropout": "GaussianDropout", "alpha_dropout": "AlphaDropout"}
CLASSES = ("Embedding", "Conv1D", "ZeroPadding1D", "MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D",
           "GlobalAveragePooling1D", "Flatten", "BatchNormalization", "Masking", "Cropping1D") + \
    tuple(DROPOUT_CLASSES.values())
# Layers Keras 3 saves without a build_config (their build has nothing to build).
NO_BUILD_CONFIG = ("MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D", "Masking",
                   "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout")
_POOL = {("max", False): "MaxPooling1D", ("average", False): "AveragePooling1D",
         ("max", True): "GlobalMaxPooling1D", ("average", True): "GlobalAveragePooling1D"}


def plan_layer(planner, layer: M.Layer, shape: list) -> list[KLayer] | None:
    """The Keras layers computing a front-end `layer` (None: not a front-end kind)."""
    def name(n=None):
        return planner.unique(n or layer.name, f"layer '{n or layer.name}'")

    if isinstance(layer, M.Dropout):
        cls = DROPOUT_CLASSES.get(layer.variant)
        if cls is None:
            cls = "Dropout"
            planner.notes.append(f"layer '{layer.name}': dropout variant '{layer.variant}' written as Dropout "
                                 "(every dropout is the identity at inference)")
        return [KLayer(cls, name(), {"rate": float(layer.rate)}, list(shape))]
    if isinstance(layer, M.Embedding):
        table = np.asarray(layer.table)
        return [KLayer("Embedding", name(), {"input_dim": int(table.shape[0]), "output_dim": int(table.shape[1]),
                                             "mask_zero": bool(layer.mask_zero)}, list(shape), [table])]
    if isinstance(layer, M.Conv1D):
        return _conv(planner, layer, shape, name)
    if isinstance(layer, M.Pooling1D):
        cls = _POOL[(layer.mode, layer.pool_size is None)]
        settings = {} if layer.pool_size is None else {
            "pool_size": int(layer.pool_size), "strides": int(layer.strides or layer.pool_size),
            "padding": layer.padding}
        return [KLayer(cls, name(), settings, list(shape))]
    if isinstance(layer, M.Flatten):
        if shape[1] is None and layer is not planner.model.layers[-1]:
            raise Refusal("Flatten before further layers needs a fixed number of time steps and the model's input "
                          "has none (Keras builds the next layer for time*features inputs)")
        return [KLayer("Flatten", name(), {}, list(shape))]
    if isinstance(layer, M.BatchNorm):
        weights = [a for a in (layer.scale, layer.offset) if a is not None] + [layer.mean, layer.variance]
        return [KLayer("BatchNormalization", name(), {"epsilon": float(layer.epsilon),
                                                      "center": layer.offset is not None,
                                                      "scale": layer.scale is not None, "rank": len(shape)},
                       list(shape), weights)]
    if isinstance(layer, M.Masking):
        return [KLayer("Masking", name(), {"mask_value": float(layer.mask_value)}, list(shape))]
    if isinstance(layer, M.TimeWindow):
        crop = KLayer("Cropping1D", name(), {"cropping": list(cropping(layer, shape[1]))}, list(shape))
        if not layer.single:
            return [crop]
        return [crop, KLayer("Flatten", name(f"{layer.name}_step"), {}, [None, 1, shape[-1]])]
    return None


def cropping(layer: M.TimeWindow, T: int | None) -> tuple[int, int]:
    """Cropping1D's (left, right) keeping the window's steps of a sequence of T steps (None: any length)."""
    if not layer.single and layer.start >= 0 and (layer.stop is None or layer.stop < 0):
        return int(layer.start), 0 if layer.stop is None else -int(layer.stop)
    if T is None:
        what = f"one step x[:, {layer.start}]" if layer.single else \
            f"the window x[:, {layer.start}:{'' if layer.stop is None else layer.stop}]"
        raise Refusal(f"{what} needs a fixed number of time steps in Keras (Cropping1D crops a fixed count of steps "
                      "at each end; no Keras layer but a Lambda picks steps counted otherwise), and the model's "
                      "input has none; ONNX and PyTorch take it as it is")
    kept = layer.steps(T)
    if not kept:
        raise Refusal(f"the window keeps none of the {T} time steps the model fixes")
    return kept.start, T - kept.stop


def _conv(planner, layer: M.Conv1D, shape: list, name) -> list[KLayer]:
    out, after = [], next_shape(layer, shape)
    padding, pads = layer.padding, layer.pads
    strides, subsample = int(layer.strides), False
    if strides > 1 and layer.dilation > 1:      # Keras refuses both at once: stride 1, then keep every s-th step
        subsample = True
        if padding == "same":
            if shape[1] is None:
                raise Refusal(f"'same' padding with strides {strides} and dilation {layer.dilation}: Keras's Conv1D "
                              "takes no strides > 1 with dilation > 1, and the padding this needs depends on the "
                              "input length, which the model does not fix")
            k = (int(layer.kernel.shape[0]) - 1) * layer.dilation + 1
            total = max((-(-shape[1] // strides) - 1) * strides + k - shape[1], 0)
            padding, pads = "explicit", (total // 2, total - total // 2)
        planner.notes.append(f"layer '{layer.name}': strides {strides} with dilation {layer.dilation} written as a "
                             f"stride-1 Conv1D followed by MaxPooling1D(pool_size=1, strides={strides}), which keeps "
                             "every strides-th step (Keras's Conv1D takes no strides > 1 with dilation > 1)")
        strides = 1
    if padding == "explicit" and strides == 1:         # the zeros Keras's own paddings add, where they agree
        total = (int(layer.kernel.shape[0]) - 1) * layer.dilation
        if tuple(pads) == (total // 2, total - total // 2) and total:
            padding = "same"
        elif tuple(pads) == (total, 0) and total:
            padding = "causal"
    if padding == "explicit":
        left, right = (int(p) for p in pads)
        if left < 0 or right < 0:
            raise Refusal(f"explicit padding {tuple(layer.pads)} crops steps: Keras's ZeroPadding1D only adds them")
        padding = "valid"
        if left or right:
            pad = KLayer("ZeroPadding1D", name(f"{layer.name}_padding"), {"padding": [left, right]}, list(shape))
            out.append(pad)
            planner.notes.append(f"layer '{layer.name}': explicit padding ({left}, {right}) written as ZeroPadding1D "
                                 f"'{pad.name}' before a 'valid' Conv1D (same zeros)")
            shape = [None, None if shape[1] is None else shape[1] + left + right, shape[2]]
    act = keras_activation(layer.activation, planner.major)
    extra = None
    if act is None and _activation_layer(layer.activation, planner.major):
        act, extra = "linear", layer.activation
    elif act is None:
        raise Refusal(describe_missing(layer.activation, planner.major, "activation"))
    kernel = np.asarray(layer.kernel)
    conv_name = name()
    weights = [kernel] + ([np.asarray(layer.bias)] if layer.bias is not None else [])
    out.append(KLayer("Conv1D", conv_name, {
        "filters": int(kernel.shape[2]), "kernel_size": int(kernel.shape[0]), "strides": strides,
        "padding": padding, "dilation_rate": int(layer.dilation), "groups": int(layer.groups),
        "activation": act, "use_bias": layer.bias is not None}, list(shape), weights))
    if subsample:
        steps = shape[1]
        if steps is not None and padding != "causal":
            steps -= (int(kernel.shape[0]) - 1) * layer.dilation
        out.append(KLayer("MaxPooling1D", name(f"{conv_name}_strides"), {"pool_size": 1, "strides": int(layer.strides),
                                                                         "padding": "valid"},
                          [None, steps, int(kernel.shape[2])]))
    if extra is not None:
        out.append(planner.activation_layer(f"{conv_name}_activation", extra, after))
        planner.notes.append(f"layer '{layer.name}': activation {extra} is written as a separate {out[-1].cls} "
                             f"layer '{out[-1].name}' (Keras names no such activation function)")
    return out


# ------------------------------------------------------------------------------------ shapes

def conv_steps(layer: M.Conv1D, steps: int | None) -> int | None:
    """Output time steps of a convolution over `steps` input steps (None: unknown)."""
    if steps is None:
        return None
    if layer.padding == "same":
        return -(-steps // layer.strides)
    if layer.padding == "causal":
        return (steps - 1) // layer.strides + 1
    k = (int(layer.kernel.shape[0]) - 1) * layer.dilation + 1
    steps += sum(layer.pads) if layer.padding == "explicit" else 0
    return max((steps - k) // layer.strides + 1, 0)


def next_shape(layer: M.Layer, shape: list) -> list | None:
    """[batch, time, features] after a front-end layer (None: not a front-end kind)."""
    T = shape[1] if len(shape) > 2 else None
    if isinstance(layer, M.Embedding):
        return [None, shape[1], layer.units_out]
    if isinstance(layer, M.Conv1D):
        return [None, conv_steps(layer, T), layer.units_out]
    if isinstance(layer, M.Pooling1D):
        if layer.pool_size is None:
            return [None, shape[-1]]
        s = layer.strides or layer.pool_size
        steps = None if T is None else (-(-T // s) if layer.padding == "same" else
                                        max((T - layer.pool_size) // s + 1, 0))
        return [None, steps, shape[-1]]
    if isinstance(layer, M.Flatten):
        return [None, None if T is None or shape[-1] is None else T * shape[-1]]
    if isinstance(layer, (M.BatchNorm, M.Masking, M.Dropout)):
        return list(shape)
    if isinstance(layer, M.TimeWindow):
        return [None, shape[-1]] if layer.single else [None, None if T is None else len(layer.steps(T)), shape[-1]]
    return None


# ----------------------------------------------------------------------------------- configs

def _init(cls: str, config: dict) -> dict:
    return {"module": "keras.initializers", "class_name": cls, "config": config, "registered_name": None}


def config(cls: str, base: dict, s: dict, major: int) -> dict:
    """`config` of a front-end layer; `base` holds name, trainable and dtype as the writer makes them."""
    c = dict(base)
    if cls == "Embedding":
        c.update(input_dim=s["input_dim"], output_dim=s["output_dim"],
                 embeddings_initializer=_init("RandomUniform", {"minval": -0.05, "maxval": 0.05, "seed": None}),
                 embeddings_regularizer=None, activity_regularizer=None, embeddings_constraint=None,
                 mask_zero=s["mask_zero"])
        if major == 2:
            c["input_length"] = None
    elif cls == "Conv1D":
        c.update(filters=s["filters"], kernel_size=[s["kernel_size"]], strides=[s["strides"]], padding=s["padding"],
                 data_format="channels_last", dilation_rate=[s["dilation_rate"]], groups=s["groups"],
                 activation=s["activation"], use_bias=s["use_bias"],
                 kernel_initializer=_init("GlorotUniform", {"seed": None}), bias_initializer=_init("Zeros", {}),
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None)
    elif cls == "ZeroPadding1D":
        c["padding"] = s["padding"]
        if major >= 3:
            c["data_format"] = "channels_last"
    elif cls in ("MaxPooling1D", "AveragePooling1D"):
        c.update(pool_size=[s["pool_size"]], padding=s["padding"], strides=[s["strides"]],
                 data_format="channels_last")
    elif cls in ("GlobalMaxPooling1D", "GlobalAveragePooling1D"):
        c.update(data_format="channels_last", keepdims=False)
    elif cls == "Flatten":
        c["data_format"] = "channels_last"
    elif cls == "BatchNormalization":
        axis = -1 if major >= 3 else [s["rank"] - 1]          # tf.keras 2 writes the built axis
        c.update(axis=axis, momentum=0.99, epsilon=s["epsilon"], center=s["center"], scale=s["scale"],
                 beta_initializer=_init("Zeros", {}), gamma_initializer=_init("Ones", {}),
                 moving_mean_initializer=_init("Zeros", {}), moving_variance_initializer=_init("Ones", {}),
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None)
        if major >= 3:
            c["synchronized"] = False
    elif cls == "Masking":
        c["mask_value"] = s["mask_value"]
    elif cls == "Cropping1D":
        c["cropping"] = list(s["cropping"])
    elif cls == "GaussianNoise":
        c.update(stddev=s["rate"], seed=None)
    elif cls == "SpatialDropout1D":     # Keras 3 takes neither `trainable` nor `noise_shape` here; tf.keras 2 agrees
        c = {"rate": s["rate"], "seed": None, "name": base["name"], "dtype": "float32"}
    elif cls in DROPOUT_CLASSES.values():
        c["rate"] = s["rate"]
        if cls == "Dropout" or (cls == "AlphaDropout" and major >= 3):    # tf.keras 2's AlphaDropout has none
            c["noise_shape"] = None
        c["seed"] = None
    else:
        raise ValueError(f"not a front-end Keras class: {cls}")
    return c


def var_names(spec: KLayer) -> list[str]:
    """The layer's variable names in Keras's weight order."""
    if spec.cls == "Embedding":
        return ["embeddings"]
    if spec.cls == "Conv1D":
        return ["kernel", "bias"][: len(spec.weights)]
    if spec.cls == "BatchNormalization":
        s = spec.settings
        return (["gamma"] if s["scale"] else []) + (["beta"] if s["center"] else []) + ["moving_mean",
                                                                                         "moving_variance"]
    return []
