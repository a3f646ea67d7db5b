"""The page of `batch --report-html`: the plan's counts and one row per conversion (status, files, time,
message) linking to that conversion's own report page (`report_page`), all rendered from the plan report
(`schemas/report.schema.json`, `$defs/plan_report`)."""
from __future__ import annotations

import os
import re

from .page import html, table
from .report_page import render as render_report
from .svg import esc


def page_names(plan_report: dict) -> list[str | None]:
    """The file name of each result's page (None: no report, e.g. a skipped job)."""
    out = []
    for k, r in enumerate(plan_report.get("results", [])):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(str(r.get("dst"))))[:60]
        out.append(f"{k + 1:03d}-{stem}.html" if r.get("report") else None)
    return out


def render(plan_report: dict, folder: str) -> tuple[str, list[tuple[str, str]]]:
    """(the plan page, [(file name in `folder`, page)]): `folder` is the pages' folder as the plan page links it."""
    names = page_names(plan_report)
    pages, rows, attrs = [], [], []
    for r, name in zip(plan_report.get("results", []), names):
        status = r["status"]
        cls = "pass" if status in ("ok", "skipped") else "fail"
        link = f"<a href='{esc(folder)}/{esc(name)}'>report</a>" if name else "-"
        rows.append([f"<span class='{cls}'>{esc(status)}</span>", f"<code>{esc(r['src'])}</code>",
                     f"<code>{esc(r['dst'])}</code>", f"{r.get('seconds') or 0:.1f} s", esc(r.get("message") or ""),
                     link])
        attrs.append(f" class='job' data-status='{esc(status)}'" + (f" data-href='{esc(folder)}/{esc(name)}'" if name else ""))
        if name:
            pages.append((name, render_report(r["report"], f"{r['src']} -> {r['dst']} ({r['location']})")))
    counts = plan_report.get("counts", {})
    ok = plan_report.get("passed")
    body = (f"<h1>batch plan {esc((plan_report.get('plan') or {}).get('path'))}</h1>"
            f"<div class='verdict {'pass' if ok else 'fail'}' id='verdict'>"
            f"{'ALL PASSED' if ok else 'NOT ALL PASSED'}: "
            + esc(", ".join(f"{v} {k}" for k, v in counts.items())) + "</div>"
            f"<p class='note'>plan SHA-256 <code>{esc((plan_report.get('plan') or {}).get('sha256'))}</code>, "
            f"{plan_report.get('wall_seconds', 0):.1f} s with {esc(plan_report.get('processes'))} process{'es' if plan_report.get('processes') != 1 else ''}, "
            f"exit code {esc(plan_report.get('exit_code'))}</p>"
            + table(["status", "source", "destination", "time", "message", ""], rows, attrs))
    return html("rnnconvert batch report", body), pages
