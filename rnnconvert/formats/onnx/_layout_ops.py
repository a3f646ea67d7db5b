"""Glue ops that rearrange a flow without computing on it: Identity, Dropout, Cast, Transpose,
Squeeze/Unsqueeze, Flatten, Reshape, Slice, Gather, ReverseSequence, Concat and Split, each saying
where the time, direction and feature axes go (or which steps are kept).  `LayoutOps` is mixed into
`glue.Walker` like `_ops.GlueOps`; a node it cannot place is refused by name (`Walker.refuse`).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from . import lite as onnx

from ...errors import InputError
from ._flow import Flow, Piece, axis_name, collapse, prod
from .validate import dtype_name
from ._graph import BIG, ONE, Const, FullLen, Size, as_sizes, describe, int_list, node_attrs


class LayoutOps:
    def flow_Identity(self, node, ins):
        return [ins[0]]

    def flow_Dropout(self, node, ins):
        return [ins[0]]

    def flow_Cast(self, node, ins):
        to = node_attrs(node).get("to")
        if to not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
            self.refuse(node, f"it casts the signal to {dtype_name(to)}")
        return [ins[0]]

    def flow_Transpose(self, node, ins):
        f = ins[0]
        perm = node_attrs(node).get("perm", list(range(len(f.axes)))[::-1])
        if sorted(perm) != list(range(len(f.axes))):
            raise InputError(f"{describe(node)}: perm {perm} for rank {len(f.axes)}", path=self.path)
        return [replace(f, axes=tuple(f.axes[p] for p in perm))]

    def flow_Squeeze(self, node, ins):
        f = ins[0]
        axes = self.axes_arg(node, ins)
        if axes is None:
            axes = [i for i, a in enumerate(f.axes) if self.size(f, a) == ONE]
        axes = sorted({self.norm(a, len(f.axes), node) for a in axes})
        for a in axes:
            kind = f.axes[a]
            if not (kind == "1" or kind == "D" and len(f.entries) == 1):
                self.refuse(node, f"it squeezes axis {a} ({axis_name(kind)}), which is not of size 1")
        new_axes = tuple(ax for i, ax in enumerate(f.axes) if i not in axes)
        if any(f.axes[a] == "D" for a in axes):
            f = collapse(f)
        return [replace(f, axes=new_axes)]

    def flow_Unsqueeze(self, node, ins):
        f = ins[0]
        axes = self.axes_arg(node, ins)
        if axes is None:
            self.refuse(node, "no axes")
        rank = len(f.axes) + len(axes)
        axes = sorted(self.norm(a, rank, node) for a in axes)
        out = list(f.axes)
        for a in axes:
            out.insert(a, "1")
        return [replace(f, axes=tuple(out))]

    def flow_Flatten(self, node, ins):
        f = ins[0]
        axis = self.norm(int(node_attrs(node).get("axis", 1)), len(f.axes) + 1, node)
        sizes = [self.size(f, a) for a in f.axes]
        return [self._reshape(node, f, [prod(sizes[:axis]), prod(sizes[axis:])])]

    def flow_Reshape(self, node, ins):
        f = ins[0]
        target = as_sizes(ins[1]) if len(ins) > 1 and ins[1] is not None else None
        if target is None:
            self.refuse(node, "its target shape is neither constant nor built from the input's shape")
        sizes = [self.size(f, a) for a in f.axes]
        allowzero = int(node_attrs(node).get("allowzero", 0))
        tgt = []
        for i, t in enumerate(target):
            if t == Size(0) and not allowzero:
                tgt.append(sizes[i] if i < len(sizes) else self.refuse(node, "copies a missing axis"))
            else:
                tgt.append(t)
        if tgt.count(Size(-1)) > 1:
            raise InputError(f"{describe(node)}: more than one -1 in the target shape", path=self.path)
        if Size(-1) in tgt:
            known = prod([t for t in tgt if t != Size(-1)])
            rest = prod(sizes).div(known)
            if rest is None:
                self.refuse(node, f"its target shape {tgt} does not divide the input's size {prod(sizes)}")
            tgt[tgt.index(Size(-1))] = rest
        return [self._reshape(node, f, tgt)]

    def _reshape(self, node, f: Flow, tgt: list[Size]) -> Flow:
        if "D" in f.axes and len(f.entries) == 1:
            f = collapse(f)
        src = [a for ax in f.axes for a in ax.split("*")]     # a merged [batch*time] axis is its two axes again
        sizes = [self.size(f, a) for a in src]
        kept = [i for i, a in enumerate(src) if a != "1"]
        out, i = [], 0
        for t in tgt:
            if t == ONE:
                if i < len(kept) and sizes[kept[i]] == ONE:
                    out.append(src[kept[i]])
                    i += 1
                else:
                    out.append("1")
                continue
            group, acc = [], ONE
            while acc != t:
                if i >= len(kept):
                    self.refuse(node, f"reshape of axes {tuple(src)} (sizes {sizes}) to {tgt} does not keep "
                                      "batch, time, directions and features apart")
                acc = acc * sizes[kept[i]]
                group.append(src[kept[i]])
                i += 1
            if len(group) == 1:
                out.append(group[0])
            elif group == ["D", "F"] and not f.pieces:
                out.append("DF")
            elif group == [self.time, "F"]:
                out.append("TF")
            elif sorted(group) == ["A0", "A1"]:
                out.append("*".join(group))        # [batch*time]: what a Dense on every step computes on
            else:
                self.refuse(node, f"it merges axes {group} into one; only a [directions, hidden] pair "
                                  "merges into features")
        if i != len(kept):
            self.refuse(node, f"reshape of axes {tuple(src)} to {tgt} drops axes")
        if "TF" in out:
            return self.flatten_time(node, f, ["F" if a == "TF" else a for a in out])
        if any("*" in a for a in out):
            f = self.merge_steps(node, f)
        if "DF" in out:
            f = collapse(f)
            out = ["F" if a == "DF" else a for a in out]
        return replace(f, axes=tuple(out))

    def merge_steps(self, node, f: Flow) -> Flow:
        """Batch and time merged into one axis (tf2onnx's Dense on a sequence: Reshape [B*T, F] -> MatMul ->
        Reshape [B, T, units]): only ops acting on each row alone (on the feature axis) take such a flow, and
        a reshape must split the axis back into exactly the batch and time it merged (`_reshape`)."""
        if f.rev:
            self.refuse(node, "it merges batch and time of a sequence in reversed time order")
        if f.raw and "D" in f.axes:
            self.refuse(node, "it merges batch and time while the directions are still a separate axis")
        return self.settle(f, node) if f.raw else f

    def flow_Slice(self, node, ins):
        f = ins[0]
        a = node_attrs(node)
        if self.opset < 10:
            starts, ends = a.get("starts"), a.get("ends")
            axes = a.get("axes", list(range(len(starts))))
            steps = [1] * len(starts)
        else:
            starts, ends = int_list(ins[1]), int_list(ins[2])
            axes = int_list(ins[3]) if len(ins) > 3 and ins[3] is not None else None
            steps = int_list(ins[4]) if len(ins) > 4 and ins[4] is not None else None
            if starts is None or ends is None:
                self.refuse(node, "its starts/ends are not constant")
            axes = axes if axes is not None else list(range(len(starts)))
            steps = steps if steps is not None else [1] * len(starts)
        for ax, s, e, st in zip(axes, starts, ends, steps):
            ax = self.norm(ax, len(f.axes), node)
            f = self._slice_axis(node, f, ax, s, e, st)
        return [f]

    def _slice_axis(self, node, f, ax, s, e, step):
        kind = f.axes[ax]
        n = self.size(f, kind)
        n_int = n.coef if n.is_int else None
        if kind == "D":
            entries = f.entries[slice(s, e, step)]
            if not entries:
                self.refuse(node, "it keeps no direction")
            return replace(f, entries=entries)
        full_end = e >= BIG or (n_int is not None and e >= n_int)
        if step == 1 and (s == 0 or (n_int is not None and s <= -n_int)) and full_end:
            return f
        if self.time is None and kind in ("A0", "A1") and step == -1:
            self.time = kind          # reversing an input axis before any recurrent node: that is time
        if kind == self.time:
            last_start = s == -1 or (n_int is not None and s == n_int - 1)
            if step == 1 and last_start and full_end:
                return self._pick_time(node, f, ax, "last", keep=True)
            if step == 1 and s == 0 and e == 1:
                return self._pick_time(node, f, ax, "first", keep=True)
            if step == -1 and (s == -1 or s >= BIG or (n_int is not None and s >= n_int - 1)) and \
                    (e <= -BIG or (n_int is not None and e <= -n_int - 1)):
                return replace(f, rev=not f.rev)
            if step == 1:
                return self.time_window(node, f, s, None if e >= BIG else e, single=False)
            self.refuse(node, f"it keeps steps {s}:{e}:{step} of the time axis; the canonical model keeps "
                              "steps in order (a step of 1)")
        if kind == "F" and f.pieces and step == 1:
            bounds = np.cumsum([0] + [self._piece_width(f)] * len(f.pieces))
            s2 = s + f.width if s < 0 else min(s, f.width)
            e2 = f.width if e >= BIG else (e + f.width if e < 0 else min(e, f.width))
            if s2 in bounds and e2 in bounds and e2 > s2:
                i, j = list(bounds).index(s2), list(bounds).index(e2)
                return replace(f, pieces=f.pieces[i:j], width=e2 - s2)
        self.refuse(node, f"it slices the {axis_name(kind)} axis ({s}:{e}:{step})")

    def _piece_width(self, f):
        return f.width // len(f.pieces)

    def _pick_time(self, node, f, ax, which, keep):
        if not f.raw:           # after a layer that is not recurrent: a TimeWindow
            at = -1 if which == "last" else 0
            return self.time_window(node, f, at, (None if at == -1 else 1) if keep else None, single=not keep)
        if f.rev:
            which = "first" if which == "last" else "last"

        def stamp(p: Piece) -> Piece:
            if any(w != "seq" for _, _, w in p.parts):
                self.refuse(node, "it picks a time step twice")
            return replace(p, parts=tuple((n, d, which) for n, d, _ in p.parts))

        axes = list(f.axes)
        if keep:
            axes[ax] = "1"
        else:
            del axes[ax]
        return replace(f, axes=tuple(axes), entries=tuple(map(stamp, f.entries)),
                       pieces=tuple(map(stamp, f.pieces)), rev=False)

    def flow_Gather(self, node, ins):
        f, idx = ins[0], ins[1]
        if isinstance(f, Const) and isinstance(idx, Flow):
            return self.embedding(node, ins)
        if not isinstance(idx, Const):
            self.refuse(node, "its indices are not constant")
        ax = self.norm(int(node_attrs(node).get("axis", 0)), len(f.axes), node)
        kind = f.axes[ax]
        v = idx.value
        if kind == "D":
            sel = tuple(f.entries[int(i)] for i in np.atleast_1d(v))
            if v.ndim == 0:
                g = replace(f, entries=sel)
                g = collapse(replace(g, axes=g.axes))
                return [replace(g, axes=tuple(a for i, a in enumerate(f.axes) if i != ax))]
            return [replace(f, entries=sel)]
        if kind == self.time and v.size == 1:
            n = self.size(f, kind)
            i = int(v.reshape(-1)[0])
            if i == -1 or (n.is_int and i == n.coef - 1):
                which = "last"
            elif i == 0:
                which = "first"
            else:
                return [self.time_window(node, f, i, None if v.ndim == 0 or i == -1 else i + 1, single=v.ndim == 0)]
            return [self._pick_time(node, f, ax, which, keep=v.ndim > 0)]
        self.refuse(node, f"it gathers along the {axis_name(kind)} axis")

    def flow_ReverseSequence(self, node, ins):
        f, lens = ins[0], ins[1]
        a = node_attrs(node)
        t_ax, b_ax = int(a.get("time_axis", 0)), int(a.get("batch_axis", 1))
        if self.time is None and f.axes[t_ax] in ("A0", "A1"):
            self.time = f.axes[t_ax]
        if f.axes[t_ax] != self.time or f.axes[b_ax] not in ("A0", "A1"):
            self.refuse(node, f"it reverses axis {t_ax} ({axis_name(f.axes[t_ax])}), not the time axis")
        n = self.size(f, self.time)
        full = isinstance(lens, FullLen) and lens.size == n or \
            isinstance(lens, Const) and n.is_int and bool(np.all(lens.value == n.coef))
        if not full:
            self.refuse(node, "its sequence_lens are not the full length of every sequence")
        return [replace(f, rev=not f.rev)]

    def flow_Concat(self, node, ins):
        if not all(isinstance(f, Flow) for f in ins):
            self.refuse(node, "it concatenates the signal with a constant or a runtime shape")
        f0 = ins[0]
        ax = self.norm(int(node_attrs(node)["axis"]), len(f0.axes), node)
        for f in ins[1:]:
            if f.axes != f0.axes or f.rev != f0.rev:
                self.refuse(node, f"it concatenates tensors with different axes {[g.axes for g in ins]}")
        kind = f0.axes[ax]
        if kind == "F" and all(f.pieces for f in ins):
            return [replace(f0, pieces=sum((f.pieces for f in ins), ()), width=sum(f.width for f in ins))]
        if kind == "D" and all(f.entries for f in ins):
            return [replace(f0, entries=sum((f.entries for f in ins), ()))]
        if kind == "1" and all(len(f.entries) == 1 or f.pieces for f in ins):
            self.refuse(node, "it stacks recurrent outputs along a new axis")
        self.refuse(node, f"it concatenates along the {axis_name(kind)} axis")

    def flow_Split(self, node, ins):
        f = ins[0]
        a = node_attrs(node)
        ax = self.norm(int(a.get("axis", 0)), len(f.axes), node)
        split = a.get("split") or (int_list(ins[1]) if len(ins) > 1 and ins[1] is not None else None)
        kind = f.axes[ax]
        items = f.entries if kind == "D" else f.pieces if kind == "F" and f.pieces else None
        if items is None:
            self.refuse(node, f"it splits the {axis_name(kind)} axis")
        n_out = len(node.output)
        unit = 1 if kind == "D" else self._piece_width(f)
        split = split or [len(items) * unit // n_out] * n_out
        outs, k = [], 0
        for s in split:
            if s % unit:
                self.refuse(node, "it splits inside a direction")
            part = items[k:k + s // unit]
            k += s // unit
            outs.append(replace(f, entries=part) if kind == "D" else replace(f, pieces=part, width=s))
        return outs
