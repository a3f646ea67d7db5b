"""Text for the terminal: a verification report (`render_report`), `inspect`'s description of a model
(`render`) and of what reads per layer (`render_extra`), and the formats table (`formats_table`)."""
from __future__ import annotations



def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _other_columns(x: dict) -> tuple[str, str]:
    """(units, detail) table cells of a non-recurrent layer."""
    kind = x["kind"]
    shape = lambda name: next((t["shape"] for t in x["tensors"] if t["name"] == name), [])  # noqa: E731
    if kind == "embedding":
        vocab, dim = (shape("table") + [0, 0])[:2]
        return f"{vocab}->{dim}", "mask_zero" if x.get("mask_zero") else ""
    if kind == "conv1d":
        width, per_group, filters = (shape("kernel") + [0, 0, 0])[:3]
        pads = f" {x['pads']}" if x.get("padding") == "explicit" else ""
        detail = (f"width {width}, strides {x['strides']}, dilation {x['dilation']}, {x['padding']}{pads}"
                  + (f", groups {x['groups']}" if x.get("groups", 1) != 1 else "") + f", {x['activation']}")
        return f"{per_group * x.get('groups', 1)}->{filters}", detail
    if kind == "pooling1d":
        if x.get("pool_size") is None:
            return "", f"global {x['mode']}"
        return "", f"{x['mode']} {x['pool_size']}, strides {x.get('strides') or x['pool_size']}, {x['padding']}"
    if kind == "batch_norm":
        return str((shape("mean") + [""])[0]), f"epsilon {x['epsilon']:g}"
    if kind == "masking":
        return "", f"mask_value {x['mask_value']:g}"
    if kind == "dropout":
        return "", f"{x.get('variant', 'dropout')} {x.get('rate', '')}"
    if kind == "time_window":
        stop = "" if x.get("stop") is None else x["stop"]
        return "", f"x[:, {x['start']}]" if x.get("single") else f"x[:, {x['start']}:{stop}]"
    return (str(x.get("units", "")) if kind == "dense" else ""), str(x.get("activation", x.get("rate", "")))


def render(desc: dict) -> str:
    """Human text: header, a layer table, then each recurrent layer's gate slices and equations."""
    from ..model.describe import canonical_letters     # numpy: not for `formats` or --help
    inp = desc["input"]
    steps = inp.get("time_steps") or "any"
    extra = ", ".join(f"{k}={v}" for k, v in desc["source"].items() if k != "format" and isinstance(v, (str, int)))
    out = [f"file    {desc['file'] or '-'}", f"format  {desc['format'] or '-'}" + (f" ({extra})" if extra else "")]
    flag = f"   !! {desc['nonfinite']} NaN/Inf" if desc["nonfinite"] else ""
    if inp.get("name") is None:          # the whole model does not read: its recurrent layers, each on its own
        n = len(desc["layers"])
        out += ["model   does not read as a whole (why: 'whole model' below); "
                + ("its one recurrent layer, read" if n == 1 else f"its {n} recurrent layers, each read")
                + " on its own as --layer NAME reads it",
                f"params  {desc['parameters']:,} in {'this layer' if n == 1 else 'these layers'}{flag}"]
    else:
        out += [f"input   '{inp['name']}': "
                + ("token ids" if str(inp["dtype"]).startswith("int") else f"{inp['features']} features")
                + f", {inp['dtype']}, {inp['layout']}, time steps {steps}",
                f"params  {desc['parameters']:,}{flag}"]
    out += [f"states  {line}" for line in desc.get("states", {}).get("lines", [])]
    out += [f"  !! layer '{x['name']}' tensor '{t['name']}': {t['nonfinite']} NaN/Inf of {t['size']} values"
            for x in desc["layers"] for t in x["tensors"] if t["nonfinite"]]
    out.append("")
    rows = [["#", "name", "kind", "direction", "units", "output", "activations", "params"]]
    for i, x in enumerate(desc["layers"]):
        if "hidden" in x:
            units, detail, output = f"{x['input_size']}->{x['hidden']}", ", ".join(x["activations"]), x["output"]
            direction = x["direction"] + (f" ({x['merge']})" if x["merge"] else "")
        else:
            units, detail = _other_columns(x)
            direction, output = "", ""
        flag = f" !! {x['nonfinite']} NaN/Inf" if x["nonfinite"] else ""
        rows.append([str(i), x["name"], x["kind"], direction, units, output, detail, f"{x['parameters']:,}{flag}"])
    out += _table(rows)
    for i, x in enumerate(desc["layers"]):
        if "hidden" not in x:
            continue
        out += ["", f"layer {i} '{x['name']}': {x['kind'].upper()} {x['direction']}, H={x['hidden']}, "
                    f"input {x['input_size']}, gate order {x['gate_order']} ({x['framework']})"]
        settings = [f"{k} = {v}" for k, v in x["activation_names"].items() if k != v]
        settings = settings or ["activations " + ", ".join(x["activations"])]
        if x["kind"] == "gru":
            variant = x["reset_variant"]
            settings.append(f"reset_after={x['reset_after']}"
                            + (f" ({variant})" if variant and variant != f"reset_after={x['reset_after']}" else ""))
        if x["clip"] is not None:
            settings.append(f"clip={x['clip']:g}")
        settings.append("bias: " + ", ".join(k for k, v in x["bias"].items() if v) if any(x["bias"].values())
                        else "no bias")
        if any(x["initial_state"].values()):
            settings.append("initial state: " + ", ".join(k for k, v in x["initial_state"].items() if v))
        out.append("  " + "; ".join(settings))
        if x.get("note"):
            out.append(f"  note: {x['note']}")
        for t in x["tensors"]:
            flag = f"  !! {t['nonfinite']} NaN/Inf" if t["nonfinite"] else ""
            axis = "" if t["gate_axis"] is None else f", gates on axis {t['gate_axis']}"
            out.append(f"  {t['name']} {tuple(t['shape'])}{axis} = {t['canonical']}{flag}")
            parts = len({g["part"] for g in t["gates"]}) > 1
            if t["gates"]:
                out += _table([["  ", g["gate"], g["meaning"], g["slice"]] + ([g["part"]] if parts else [])
                               + ([g["direction"]] if x["bidirectional"] else []) for g in t["gates"]])
            out.append("      = " + "; ".join(f"{fw}: {a or '-'}" for fw, a in t["aliases"].items()))
        renamed = [f"{c} is the gate this file calls {g}" for g, c in
                   canonical_letters(x["framework"], x["kind"]).items() if g != c]
        out += [f"  equations{' (' + '; '.join(renamed) + ')' if renamed else ''}:"]
        out += [f"    {e}" for e in x["equations"]]
    return "\n".join(out) + "\n"


def render_extra(desc: dict) -> str:
    """The text `inspect` adds after the layer description: whole-model status and --layer names."""
    out = []
    if not desc["whole_model"]["readable"]:
        out.append(f"whole model: not convertible: {desc['whole_model']['refusal']}")
    if desc["per_layer"]:
        out.append("per layer (--layer NAME):")
        out += [f"  {p['name']}  {p['kind']}{' bidirectional' if p['bidirectional'] else ''}  ({p['where']})"
                for p in desc["per_layer"]]
    return "\n".join(out) + ("\n" if out else "")


def _bound(check) -> str:
    """The bound column: atol + allowance + rtol*|b| at the row's max abs element ('-': nothing compared)."""
    return "-" if check.bound is None else f"{check.bound:.3g}"


def _allowance_rule(factor) -> str:
    """The noise allowance as checks.RULE states it, with its numbers."""
    from ..verification.checks import FLOAT64_ORACLES, NOISE_CAP
    return (f"  allowance = min({factor:g}*noise, {NOISE_CAP:g}*max|b|), noise: the input's float32 "
            f"noise; none for {' and '.join(FLOAT64_ORACLES)} (float64 on both sides); bound: at the max abs element")


def render_report(report, compared: bool = False) -> str:
    """`compared`: the report of `verify A B` (two files checked against each other, nothing converted)."""
    lines = []
    src, dst = report.source, report.destination
    if dst:
        lines.append(f"{src['path']} ({src['format']}) {'against' if compared else '->'} {dst['path']} ({dst['format']})")
    elif report.vectors:
        lines.append(f"{src['path']} ({src['format']}) against vectors {report.vectors['path']}")
    conversion = getattr(report, "conversion", None) or {}
    for key, title in (("preserved", "preserved"), ("changed_in_form", "changed in form"), ("refused", "refused")):
        for item in conversion.get(key, []):
            lines.append(f"  {title}: {item}")
    for note in report.notes:
        if note not in conversion.get("changed_in_form", []):
            lines.append(f"  note: {note}")
    if not report.verified:
        lines.append("  not verified (--no-verify)" if not conversion.get("refused") else "  not verified (refused)")
        return "\n".join(lines)
    for state in getattr(report, "initial_states", []):
        lines.append(f"  initial states used: {state}")
    wo = max([20] + [len(c.oracle) for c in report.checks])
    wi = max([22] + [len(c.input) for c in report.checks])
    lines.append(f"  {'check':<{wo}} {'input':<{wi}} {'max abs':>10} {'max rel':>10} {'bound':>10}  result")
    for c in report.checks:
        lines.append(f"  {c.oracle:<{wo}} {c.input:<{wi}} {c.max_abs:>10.3g} {c.max_rel:>10.3g} {_bound(c):>10}  "
                     f"{'ok' if c.passed else 'FAIL'}"
                     + (f": the runtime failed on the written file: {c.error}" if getattr(c, "error", None) else ""))
    for u in report.unavailable:
        lines.append(f"  not run: {u}")
    if report.unavailable and report.checks:
        lines.append(f"  the verdict rests on the {len(report.checks)} checks that ran")
    from ..verification.checks import NOISE_FACTOR
    t = report.tolerance
    lines.append(f"  tolerance atol={t['atol']:g} rtol={t['rtol']:g} (|a-b| <= bound = atol + allowance + rtol*|b|, "
                 f"{getattr(report, 'dtype', 'float32')}), seed {report.seed}")
    lines.append(_allowance_rule(NOISE_FACTOR))
    import math
    for i in report.inputs:
        noise = i.get("float32_noise")
        if noise is not None and not math.isfinite(noise):
            lines.append(f"  note: on {i['label']} the float32 reference pass overflows (inf or NaN where float64 "
                         "is finite): no noise allowance, atol and rtol alone")
        elif (noise or 0) > t["atol"]:
            lines.append(f"  note: on {i['label']} this model amplifies rounding: its own float32 reference pass "
                         f"differs from float64 by {noise:.3g} (noise)")
    if getattr(report, "localization", None):
        lines.append(f"  {report.localization['message']}")
    if getattr(report, "vectors", None) and report.vectors.get("role") == "written":
        lines.append(f"  wrote vectors {report.vectors['path']}")
    from ..verification.report import verdict
    lines.append(f"  {verdict(report)}")
    return "\n".join(lines)


def formats_table(table, markdown: bool = False) -> str:
    rows = [(f.name, " ".join(f.suffixes), "yes" if f.reads else "no", "yes" if f.writes else "no",
             f.runtime or "-", f.description) for f in table.values()]
    head = ("format", "suffixes", "read", "write", "verified with", "what")
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head) - 1)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    return "\n".join(fmt.format(*r) for r in (head, *rows))
