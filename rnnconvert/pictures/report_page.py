"""The report page of `convert` / `verify --report-html`: rendered from the JSON report (a dict as
`schemas/report.schema.json` describes it), nothing else.  The verdict, both files with their SHA-256,
the assumptions, the tolerance rule, the suite, every check, and charts: every check's error against its
bound, the error per time step of each input (one series per oracle, its bound dashed), the float32
noise per input, the worst output channels, and on a failure the first diverging layer's error curve."""
from __future__ import annotations

from .charts import bar_chart, line_chart
from .page import html, table
from .svg import esc


def _num(v) -> str:
    return "not finite" if v is None else f"{v:.3g}"


def verdict(report: dict) -> tuple[str, bool]:
    if not report.get("verified", True):
        return ("NOT VERIFIED (refused)" if report.get("conversion", {}).get("refused") else "NOT VERIFIED"), False
    if not report.get("passed"):
        return "NOT EQUIVALENT", False
    listed = report.get("assumptions") or []
    if listed:
        return (f"EQUIVALENT (under {len(listed)} assumption{'s' if len(listed) > 1 else ''}: "
                + "; ".join(a["assumed"] for a in listed) + ")"), True
    return "EQUIVALENT", True


def render(report: dict, title: str | None = None) -> str:
    words, ok = verdict(report)
    src, dst = report.get("source") or {}, report.get("destination")
    title = title or (f"{src.get('path')} -> {dst.get('path')}" if dst else str(src.get("path")))
    parts = [f"<h1>{esc(title)}</h1>",
             f"<div class='verdict {'pass' if ok else 'fail'}' id='verdict'>{esc(words)}</div>"]
    if report.get("localization"):
        parts.append(f"<p class='fail'>{esc(report['localization']['message'])}</p>")
    parts.append(_files(src, dst))
    parts.append(_assumptions(report))
    parts.append(_tolerance(report))
    parts.append(_charts(report))
    parts.append(_checks(report))
    parts.append(_conversion(report))
    return html(f"rnnconvert report: {words}", "".join(parts))


def _files(src, dst) -> str:
    rows = [[role, f"<code>{esc(f.get('path'))}</code>", esc(f.get("format")), f"<code>{esc(f.get('sha256'))}</code>"]
            for role, f in (("source", src), ("destination", dst)) if f]
    return "<h2>Files</h2>" + table(["", "path", "format", "SHA-256"], rows)


def _assumptions(report) -> str:
    listed = report.get("assumptions") or []
    out = "<h2>Assumptions</h2>"
    if not listed:
        return out + "<p class='note'>none: every setting was read from the files</p>"
    rows = [[esc(a["kind"]), esc(a["assumed"]), esc(a.get("hint") or "-"), f"<code>{esc(a['file'])}</code>"]
            for a in listed]
    return out + table(["kind", "assumed", "what settles it", "file"], rows)


def _tolerance(report) -> str:
    tol, policy = report.get("tolerance") or {}, report.get("tolerance_policy") or {}
    rows = [[esc(i["label"]), esc(i["shape"]), _num(i.get("float32_noise"))] for i in report.get("inputs", [])]
    shortened = (report.get("suite") or {}).get("shortened") or []
    return ("<h2>Tolerance and inputs</h2>"
            f"<p>atol = {_num(tol.get('atol'))}, rtol = {_num(tol.get('rtol'))}, computed in "
            f"{esc(policy.get('dtype', report.get('dtype', '')))}, seed {esc(report.get('seed'))}</p>"
            f"<p class='note'>{esc(policy.get('rule', ''))}</p>"
            + table(["input", "shape", "float32 noise"], rows)
            + "".join(f"<p class='note'>shortened: {esc(s)}</p>" for s in shortened))


def _charts(report) -> str:
    checks = report.get("checks") or []
    out = ["<h2>Plots</h2><div class='charts'>"]
    if checks:
        out.append(_figure(bar_chart("every check: max |error| and its bound",
                                     [str(k + 1) for k in range(len(checks))],
                                     [c["max_abs"] for c in checks], [c.get("bound") for c in checks],
                                     xlabel="check # (the table below)"), "check"))
    for i in report.get("inputs", []):
        mine = [c for c in checks if c.get("per_step") and (c["input"] == i["label"]
                                                            or c["input"].startswith(i["label"] + " "))]
        if not mine:
            continue
        series = [{"name": c["oracle"] if c["input"] == i["label"] else f"{c['oracle']} ({c['input'][len(i['label']) + 1:]})",
                   "x": c["per_step"]["steps"], "y": c["per_step"]["max_abs"], "bound": c["per_step"]["bound"]}
                  for c in mine]
        window = mine[0]["per_step"]["window"]
        note = f" (max over windows of {window} steps)" if window > 1 else ""
        out.append(_figure(line_chart(f"{i['label']}: error per time step{note}", series), "input",
                           i["label"]))
    if checks and not any(c.get("per_step") for c in checks):
        out.append("<p class='note' id='no-steps'>no error per time step: the outputs checked have no time axis "
                   "(the model returns its last step or final state)</p>")
    inputs = report.get("inputs") or []
    if inputs:
        out.append(_figure(bar_chart("float32 noise of the source per input", [i["label"] for i in inputs],
                                     [i.get("float32_noise") for i in inputs], ylabel="max |float32 - float64|"),
                           "noise"))
    worst = max((c for c in checks if c.get("channels")), key=lambda c: (not c["passed"], c["max_abs"] or 0),
                default=None)
    if worst:
        ch = worst["channels"]
        out.append(_figure(bar_chart(f"worst output channels: {worst['oracle']} on {worst['input']}",
                                     [f"channel {c['channel']}" for c in ch], [c["max_abs"] for c in ch]),
                           "channels"))
    loc = report.get("localization") or {}
    if loc.get("per_step"):
        p = loc["per_step"]
        out.append(_figure(line_chart(f"first diverging layer '{loc.get('layer')}': error per time step",
                                      [{"name": f"layer {loc.get('layer')}", "x": p["steps"], "y": p["max_abs"],
                                        "bound": p["bound"]}]), "localization"))
    out.append("</div>")
    return "".join(out)


def _figure(svg: str, kind: str, label: str = "") -> str:
    return f"<figure class='plot' data-kind='{kind}' data-label='{esc(label)}'>{svg}</figure>"


def _checks(report) -> str:
    rows, attrs = [], []
    for k, c in enumerate(report.get("checks") or []):
        rows.append([str(k + 1), esc(c["oracle"]), esc(c["input"]), _num(c["max_abs"]), _num(c["max_rel"]),
                     _num(c.get("bound")), esc(c.get("worst")),
                     "<span class='pass'>ok</span>" if c["passed"] else "<span class='fail'>FAIL</span>"])
        attrs.append(f" class='check' data-passed='{str(c['passed']).lower()}'")
    not_run = report.get("unavailable") or []
    return ("<h2>Checks</h2>" + table(["#", "oracle", "input", "max abs", "max rel", "bound", "worst at", ""], rows, attrs)
            + "".join(f"<p class='note'>not run: {esc(u)}</p>" for u in not_run))


def _conversion(report) -> str:
    conv = report.get("conversion") or {}
    out = ["<h2>What the conversion did</h2>"]
    for key, label in (("preserved", "preserved exactly"), ("changed_in_form", "changed in form"),
                       ("refused", "refused")):
        if conv.get(key):
            out.append(f"<p><b>{label}</b></p><ul>" + "".join(f"<li>{esc(x)}</li>" for x in conv[key]) + "</ul>")
    if report.get("notes"):
        out.append("<p><b>notes</b></p><ul>" + "".join(f"<li>{esc(n)}</li>" for n in report["notes"]) + "</ul>")
    return "".join(out)
