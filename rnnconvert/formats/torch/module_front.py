"""The emitted module's front-end lines: nn.Embedding, nn.Conv1d, nn.BatchNorm1d, pooling, flatten, time windows.

Between layers the emitted forward keeps the model's layout ([batch, time, C], or [time, batch, C]
for a time-major model); nn.Conv1d, nn.BatchNorm1d on a sequence and the pooling functions take
[batch, C, time], so each is wrapped in a transpose there and back.  Keras 'same' and 'causal'
padding become F.pad (asymmetric where Keras pads one more step on the right); 'same' with strides
> 1 pads by the input length, computed in forward.  Windowed 'same' pooling pads max with -inf and
divides an average by the count of real steps, as Keras does.
"""
from __future__ import annotations

from ..literals import comment
from .statedict import BatchNormSpec, ConvSpec, EmbeddingSpec, FlattenSpec, PoolSpec
from .steps import WindowSpec


def constructor(spec) -> str | None:
    if isinstance(spec, EmbeddingSpec):
        V, D = spec.weight.shape
        return f"nn.Embedding({V}, {D})"
    if isinstance(spec, ConvSpec):
        out, per_group, width = spec.weight.shape
        args = [str(per_group * spec.groups), str(out), str(width)]
        if spec.stride != 1:
            args.append(f"stride={spec.stride}")
        if spec.padding == "explicit" and spec.pads[0] == spec.pads[1] and spec.pads[0]:
            args.append(f"padding={spec.pads[0]}")
        if spec.dilation != 1:
            args.append(f"dilation={spec.dilation}")
        if spec.groups != 1:
            args.append(f"groups={spec.groups}")
        args.append(f"bias={spec.bias is not None}")
        return f"nn.Conv1d({', '.join(args)})"
    if isinstance(spec, BatchNormSpec):
        return (f"nn.BatchNorm1d({spec.input_size}, eps={spec.eps!r}"
                + (", affine=False" if spec.weight is None else "") + ")")
    return None


def _pads_lines(width_eff: int, strides: int, padding: str, pads, value: str = "") -> list[str]:
    """F.pad lines for [batch, C, time] x; `width_eff` = (width-1)*dilation + 1."""
    extra = f", value={value}" if value else ""
    if padding == "explicit":
        left, right = pads
        return [f"x = F.pad(x, ({left}, {right}){extra})"] if left != right else []
    if padding == "causal":
        return [f"x = F.pad(x, ({width_eff - 1}, 0){extra})"]
    if padding == "same":
        if strides == 1:
            total = width_eff - 1
            return [f"x = F.pad(x, ({total // 2}, {total - total // 2}){extra})"] if total else []
        return [f"pad = max((-(-x.shape[-1] // {strides}) - 1) * {strides} + {width_eff} - x.shape[-1], 0)",
                f"x = F.pad(x, (pad // 2, pad - pad // 2){extra})"]
    return []


def forward_lines(spec, access, batch_first: bool, seq: bool, activation_code) -> tuple[list[str], bool]:
    """(lines, whether a sequence follows) for a front-end spec; `access(path)` names a submodule."""
    there, back = ("x = x.transpose(1, 2)", "x = x.transpose(1, 2)") if batch_first else \
        ("x = x.permute(1, 2, 0)", "x = x.permute(2, 0, 1)")
    if isinstance(spec, EmbeddingSpec):
        return [f"x = {access(spec.path)}(x.long())  # token ids -> vectors"], True
    if isinstance(spec, ConvSpec):
        width = int(spec.weight.shape[2])
        lines = [f"# '{comment(spec.name or spec.path)}': nn.Conv1d over time, padding {spec.padding}", there]
        lines += _pads_lines((width - 1) * spec.dilation + 1, spec.stride, spec.padding, spec.pads)
        lines += [f"x = {access(spec.path)}(x)", back]
        if spec.activation is not None and activation_code(spec.activation):
            lines.append(f"x = {activation_code(spec.activation)}")
        return lines, True
    if isinstance(spec, BatchNormSpec):
        if not seq:
            return [f"x = {access(spec.path)}(x)"], False
        return [there, f"x = {access(spec.path)}(x)", back], True
    if isinstance(spec, PoolSpec):
        time_dim = 1 if batch_first else 0
        if spec.pool_size is None:
            op = "x.amax" if spec.mode == "max" else "x.mean"
            return [f"x = {op}(dim={time_dim})  # '{comment(spec.name)}': global {spec.mode} pooling"], False
        k, s = spec.pool_size, spec.strides or spec.pool_size
        lines = [f"# '{comment(spec.name)}': {spec.mode} pooling, size {k}, strides {s}, padding {spec.padding}", there]
        if spec.mode == "max":
            lines += _pads_lines(k, s, spec.padding, None, value="float('-inf')")
            lines.append(f"x = F.max_pool1d(x, {k}, {s})")
        elif spec.padding == "same":
            total = k - 1
            pads = f"({total // 2}, {total - total // 2})" if s == 1 else "(pad // 2, pad - pad // 2)"
            lines.append("ones = torch.ones_like(x[:1, :1])")
            lines += _pads_lines(k, s, spec.padding, None)
            lines += [f"count = F.avg_pool1d(F.pad(ones, {pads}), {k}, {s})",
                      f"x = F.avg_pool1d(x, {k}, {s}) / count  # padded steps not counted"]
        else:
            lines.append(f"x = F.avg_pool1d(x, {k}, {s})")
        lines.append(back)
        return lines, True
    if isinstance(spec, FlattenSpec):
        flat = "x.flatten(1)" if batch_first else "x.transpose(0, 1).flatten(1)"
        return [f"x = {flat}  # '{comment(spec.name)}': [batch, time*features], time outer"], False
    if isinstance(spec, WindowSpec):
        stop = "" if spec.stop is None else int(spec.stop)
        index = f"{int(spec.start)}" if spec.single else f"{int(spec.start)}:{stop}"
        return [f"x = x[{':, ' if batch_first else ''}{index}]  # '{comment(spec.name)}': time window"], not spec.single
    raise ValueError(f"not a front-end spec: {spec!r}")
