"""Reading the layers around the recurrent nodes: what each front-end op does to a flow.

    Gather(table, ids)                  Embedding (the graph input is int64/int32 token ids)
    Pad (time only, zeros) + Conv       Conv1D on [batch, channels, time], or tf2onnx's 2-D form
                                        [batch, channels, 1, time] after Unsqueeze/Transpose;
                                        a following Add of a per-channel constant is its bias
    MaxPool / AveragePool               windowed Pooling1D on [batch, channels, time]
    GlobalMaxPool / GlobalAveragePool,  global Pooling1D
      ReduceMax / ReduceMean over time
    BatchNormalization                  BatchNorm (channels on axis 1)
    Reshape / Flatten merging time and features: Flatten
`FrontOps` is mixed into `glue.Walker` next to `GlueOps`.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...model import MAX_DIM, BatchNorm, Conv1D, Embedding, Flatten, Pooling1D, TimeWindow
from . import _exprs
from ._flow import Flow
from ._graph import Const, int_list, node_attrs


def _name(node, fallback: str) -> str:
    name = node.name or node.output[0]
    parts = [p for p in name.replace(":", "/").split("/") if p]
    skip = {"Conv", "Conv1D", "Gather", "BatchNormalization", "MaxPool", "AveragePool", "ReduceMean",
            "ReduceMax", "GlobalAveragePool", "GlobalMaxPool", "embedding_lookup", "Flatten", "Reshape", "Slice",
            "StridedSlice", "strided_slice"}
    parts = [p for p in parts if p not in skip and not p.endswith("_output_0")]
    return parts[-1] if parts else fallback


class FrontOps:
    # ------------------------------------------------------------------ embedding
    def embedding(self, node, ins):
        table, ids = ins[0], ins[1]
        if int(node_attrs(node).get("axis", 0)) != 0 or table.value.ndim != 2:
            self.refuse(node, "it gathers token ids from something other than the rows of a 2-D table")
        if ids.stack or ids.axes != ("A0", "A1"):
            self.refuse(node, "an embedding lookup that is not on the graph input's token ids")
        layer = Embedding(_name(node, "embedding"), np.asarray(table.value, np.float32))
        return [Flow(axes=("A0", "A1", "F"), stack=(layer,), width=int(table.value.shape[1]))]

    # ------------------------------------------------------------------ padding and convolution
    def flow_Pad(self, node, ins):
        f = ins[0]
        a = node_attrs(node)
        if a.get("mode", "constant") != "constant":
            self.refuse(node, f"mode '{a.get('mode')}' padding")
        pads = int_list(ins[1]) if len(ins) > 1 and ins[1] is not None else a.get("pads")
        value = ins[2] if len(ins) > 2 else None
        if pads is None or (value is not None and (not isinstance(value, Const) or np.any(value.value))):
            self.refuse(node, "its pads are not constant or it pads with a value other than 0")
        n = len(f.axes)
        padded = [(i, pads[i], pads[i + n]) for i in range(n) if pads[i] or pads[i + n]]
        if not padded:
            return [f]
        if len(padded) != 1 or f.axes[padded[0][0]] not in ("A0", "A1") or f.pad:
            self.refuse(node, "it pads other axes than time (rnnconvert reads zero padding in time before a Conv)")
        ax, left, right = padded[0]
        if self.time is None:
            self.time = f.axes[ax]
        elif f.axes[ax] != self.time:
            self.refuse(node, "it pads the batch axis")
        return [replace(f, pad=(left, right))]

    def flow_Conv(self, node, ins):
        f, w = ins[0], ins[1]
        b = ins[2] if len(ins) > 2 else None
        if not isinstance(w, Const) or (b is not None and not isinstance(b, Const)):
            self.refuse(node, "its weights are not stored in the file")
        pre = f.pad or (0, 0)
        f = self.settle(replace(f, pad=()), node)
        a = node_attrs(node)
        W = np.asarray(w.value, np.float32)
        axes = f.axes
        if len(axes) == 4 and axes[2] == "1" and W.ndim == 4 and W.shape[2] == 1:
            W, spatial = W[:, :, 0, :], [3]                # tf2onnx: Conv2D over [batch, channels, 1, time]
        elif len(axes) == 3 and W.ndim == 3:
            spatial = [2]
        else:
            self.refuse(node, f"a convolution over axes {axes} with weights {W.shape}; rnnconvert reads 1-D "
                              "convolutions over time")
        t = axes[spatial[0]]
        if axes[1] != "F" or t not in ("A0", "A1") or axes[0] not in ("A0", "A1") or axes[0] == t:
            self.refuse(node, f"a convolution whose channels and time are not axes 1 and {spatial[0]} ({axes})")
        if self.time is None:
            self.time = t
        elif t != self.time:
            self.refuse(node, "a convolution over the batch axis")
        k = -1                                              # the time entry of 2-D attributes
        strides, dil = a.get("strides", [1] * (len(axes) - 2)), a.get("dilations", [1] * (len(axes) - 2))
        if any(v != 1 for v in list(strides[:-1]) + list(dil[:-1])):
            self.refuse(node, "strides or dilations along the size-1 axis")
        width, stride, dilation = int(W.shape[2]), int(strides[k]), int(dil[k])
        auto = a.get("auto_pad", "NOTSET")
        pads = list(a.get("pads", [0] * 2 * (len(axes) - 2)))
        half = len(pads) // 2
        if any(pads[:half - 1]) or any(pads[half:-1]):
            self.refuse(node, "it pads the size-1 axis")
        left, right = pre[0] + pads[half - 1], pre[1] + pads[-1]
        reach = (width - 1) * dilation
        if auto in ("SAME_UPPER",) and pre == (0, 0):
            padding, explicit = "same", (0, 0)
        elif auto in ("NOTSET", "VALID"):
            if (left, right) == (0, 0):
                padding, explicit = "valid", (0, 0)
            elif (left, right) == (reach, 0):
                padding, explicit = "causal", (0, 0)
            else:
                padding, explicit = "explicit", (left, right)
        else:
            self.refuse(node, f"auto_pad {auto} (after a Pad: {pre != (0, 0)}); rnnconvert reads convolutions "
                              "with explicit pads, VALID, or SAME_UPPER (Keras 'same') on an unpadded signal")
        groups = int(a.get("group", 1))
        bias = None if b is None else np.asarray(b.value, np.float32).reshape(-1)
        layer = Conv1D(_name(node, "conv1d"), np.ascontiguousarray(W.transpose(2, 1, 0)), bias, stride, dilation,
                       padding, explicit, groups)
        return [replace(f, stack=f.stack + (layer,), width=int(W.shape[0]), tail="conv")]

    def conv_bias(self, node, f: Flow, c: np.ndarray):
        """Add of a per-channel constant right after a Conv without bias: the bias."""
        conv = f.stack[-1]
        ch = f.axes.index("F")
        n = conv.units_out
        if c.ndim > len(f.axes) or c.size != n or c.shape[ch - len(f.axes) + c.ndim if c.ndim else 0] != n \
                or conv.bias is not None:
            self.refuse(node, f"it adds a constant of shape {c.shape} after a Conv, not a bias of {n} channels")
        layer = replace(conv, bias=np.asarray(c, np.float32).reshape(n))
        return [replace(f, stack=f.stack[:-1] + (layer,), tail="")]

    def flow_PRelu(self, node, ins):
        """PRelu with one slope for every channel: leaky_relu(alpha = slope)."""
        f, slope = self.finalize(ins[0], node), ins[1]
        if not isinstance(slope, Const) or np.unique(slope.value).size != 1:
            self.refuse(node, "a slope per channel (the canonical leaky_relu takes one alpha)")
        alpha = float(slope.value.reshape(-1)[0])
        return [replace(f, expr=_exprs.op("LeakyRelu", {"alpha": alpha}, f.expr or _exprs.X),
                        expr_name=node.name or "PRelu", tail="")]

    # ------------------------------------------------------------------ pooling
    def _channels_time(self, node, f: Flow) -> Flow:
        f = self.settle(f, node)
        if len(f.axes) != 3 or f.axes[1] != "F" or f.axes[2] != self.time or self.time is None:
            self.refuse(node, f"pooling over axes {f.axes}; rnnconvert reads pooling over time on "
                              "[batch, channels, time]")
        return f

    def _windowed(self, node, ins, mode):
        f = self._channels_time(node, ins[0])
        a = node_attrs(node)
        kernel, strides = a["kernel_shape"], a.get("strides", [1])
        if len(kernel) != 1 or int(a.get("ceil_mode", 0)) or any(v != 1 for v in a.get("dilations", [1])):
            self.refuse(node, "pooling with ceil_mode, dilations or more than one spatial axis")
        auto, pads = a.get("auto_pad", "NOTSET"), list(a.get("pads", [0, 0]))
        if auto == "SAME_UPPER" and (mode == "max" or int(a.get("count_include_pad", 0)) == 0):
            padding = "same"
        elif auto in ("NOTSET", "VALID") and not any(pads):
            padding = "valid"
        else:
            self.refuse(node, f"pooling with auto_pad {auto}, pads {pads}; the canonical model pools 'valid' or "
                              "'same' (padded steps left out)")
        layer = Pooling1D(_name(node, f"{mode}_pooling1d"), mode, int(kernel[0]), int(strides[0]), padding)
        return [replace(f, stack=f.stack + (layer,))]

    def flow_MaxPool(self, node, ins):
        if len(node.output) > 1 and node.output[1]:
            self.refuse(node, "it returns the indices of the maxima")
        return self._windowed(node, ins, "max")

    def flow_AveragePool(self, node, ins):
        return self._windowed(node, ins, "average")

    def _global(self, node, ins, mode):
        f = self._channels_time(node, ins[0])
        layer = Pooling1D(_name(node, f"global_{mode}_pooling1d"), mode)
        return [replace(f, stack=f.stack + (layer,), axes=(f.axes[0], "F", "1"))]

    def flow_GlobalMaxPool(self, node, ins):
        return self._global(node, ins, "max")

    def flow_GlobalAveragePool(self, node, ins):
        return self._global(node, ins, "average")

    def reduce_time(self, node, ins, mode):
        """ReduceMax / ReduceMean over the time axis: global pooling."""
        f = self.settle(ins[0], node)
        axes = self.axes_arg(node, ins)
        keep = int(node_attrs(node).get("keepdims", 1))
        ax = self.norm(axes[0], len(f.axes), node)
        layer = Pooling1D(_name(node, f"global_{mode}_pooling1d"), mode)
        out = tuple("1" if i == ax else x for i, x in enumerate(f.axes)) if keep else \
            tuple(x for i, x in enumerate(f.axes) if i != ax)
        return [replace(f, stack=f.stack + (layer,), axes=out)]

    # ------------------------------------------------------------------ normalization, flatten
    def flow_BatchNormalization(self, node, ins):
        f = self.settle(ins[0], node)
        if not all(isinstance(c, Const) for c in ins[1:5]):
            self.refuse(node, "its scale, bias, mean or variance are not stored in the file")
        if int(node_attrs(node).get("training_mode", 0)) or len([o for o in node.output if o]) > 1:
            self.refuse(node, "training mode (running statistics as outputs)")
        if len(f.axes) < 2 or f.axes[1] != "F":
            self.refuse(node, f"batch normalization over axes {f.axes}: its channels (axis 1) are not the features")
        scale, offset, mean, var = (np.asarray(c.value, np.float32) for c in ins[1:5])
        layer = BatchNorm(_name(node, "batch_normalization"), mean, var, scale, offset,
                          float(node_attrs(node).get("epsilon", 1e-5)))
        return [replace(f, stack=f.stack + (layer,))]

    def flatten_time(self, node, f: Flow, out_axes: list) -> Flow:
        """A reshape that merges [time, features] into one axis: Flatten."""
        f = self.settle(f, node)
        T = self.static.get(self.time) if f.steps is None else f.steps
        width = T * f.width if T and f.width > 0 else 0
        return replace(f, axes=tuple(out_axes), stack=f.stack + (Flatten(_name(node, "flatten")),), width=width)

    # ------------------------------------------------------------------ time windows
    def time_window(self, node, f: Flow, start: int, stop: int | None, single: bool) -> Flow:
        """x[:, start:stop] (or one step x[:, start]) of the time axis: the layers so far, then a TimeWindow.
        A recurrent output becomes a layer returning its sequence first."""
        if f.rev:
            self.refuse(node, "it takes steps of a time axis that runs in reverse")
        f = self.settle(f, node)
        ax = self.time_of(f)
        if ax is None:
            self.refuse(node, "it takes time steps of a tensor without a time axis")
        clamp = lambda v: max(-MAX_DIM, min(MAX_DIM, int(v)))  # noqa: E731  (no sequence is 2**31 steps long)
        start, stop = clamp(start), None if stop is None or stop >= MAX_DIM else clamp(stop)
        layer = TimeWindow(_name(node, "time_window"), start, stop, single)
        T = self.static.get(self.time) if f.steps is None else f.steps
        if T and not layer.steps(T):
            what = f"step {start}" if single else f"steps {start}:{'' if stop is None else stop}"
            self.refuse(node, f"it keeps {what} of the {T} time steps the graph fixes: none")
        axes = tuple(a for i, a in enumerate(f.axes) if i != ax) if single else f.axes
        return replace(f, axes=axes, stack=f.stack + (layer,), steps=len(layer.steps(T)) if T else None)
