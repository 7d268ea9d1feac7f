"""The report's HTML: facts, stage table, funnel, score histograms (inline SVG), camera labels by paper class,
the clip browser and the sources table. Everything is escaped here; the browser builds the clip cards from a
JSON blob with textContent, so no caption or path can inject markup."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape

from curation.report_assets import CSS, JS
from curation.report_data import FunnelStep, Histogram
from runtime.atomic import json_default

PAPER_CLASS_NAMES = {"C1": "orbit", "C2": "pan / tilt / roll", "C3": "tracking", "C4": "travel and zoom",
                     "C5": "static or hand-held", "C6": "edited"}


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def facts_table(facts: Iterable[tuple[str, object]]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in facts) + \
        "</table>"


def stages_table(stages: Sequence[dict] | None) -> str:
    """Each quality stage: ran, or skipped and why."""
    if stages is None:
        return "<p class='note'>No stage record in this OUT (it was curated before stages were recorded).</p>"
    if not stages:
        return "<p class='note'>No quality stages are configured.</p>"
    rows = "".join(
        f"<tr data-stage='{escape(s['name'])}'><td>{escape(s['name'])}</td>"
        f"<td class='{'ran' if s['ran'] else 'skipped'}'>{'ran' if s['ran'] else 'skipped'}</td>"
        f"<td>{escape(s.get('detail') or '')}</td></tr>" for s in stages)
    return f"<table id='stages'><tr><th>stage</th><th>outcome</th><th>detail</th></tr>{rows}</table>"


def funnel_table(steps: Sequence[FunnelStep]) -> str:
    """Each step's count with a bar scaled to its unit's first step (input sources, clips cut)."""
    top = {s.unit: max(s.count, 1) for s in reversed(steps) if s.kind == "total"}
    rows = []
    for s in steps:
        width = round(300 * s.count / top.get(s.unit, max(s.count, 1)))
        label = ("&nbsp;&nbsp;− " if s.kind == "rejected" else "") + escape(s.label)
        rows.append(f"<tr class='{s.kind}'><td>{label}</td><td>{s.count}</td><td>{escape(s.unit)}</td>"
                    f"<td><span class='bar {s.kind}' style='width:{width}px'></span></td></tr>")
    return f"<table id='funnel'>{''.join(rows)}</table>"


def histogram_svg(h: Histogram, width: int = 380, height: int = 150) -> str:
    """Kept (blue) and rejected (grey) clips stacked per bin; a red line per threshold."""
    left, bottom, top = 36, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    low, high = h.edges[0], h.edges[-1]
    peak = max([k + r for k, r in zip(h.kept, h.rejected, strict=True)] + [1])
    x = lambda v: left + plot_w * (v - low) / (high - low)  # noqa: E731
    parts = []
    for i, (k, r) in enumerate(zip(h.kept, h.rejected, strict=True)):
        x0, x1 = x(h.edges[i]), x(h.edges[i + 1])
        for count, base, colour in ((k, 0, "#4f81bd"), (r, k, "#bbbbbb")):
            if count:
                y = top + plot_h * (1 - (base + count) / peak)
                parts.append(f"<rect x='{x0:.1f}' y='{y:.1f}' width='{max(x1 - x0 - 1, 1):.1f}' "
                             f"height='{plot_h * count / peak:.1f}' fill='{colour}'/>")
    for t in h.thresholds:
        parts.append(f"<line class='threshold' x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{top}' y2='{top + plot_h}' "
                     f"stroke='#d00' stroke-width='2' stroke-dasharray='4 2'><title>threshold {_num(t)}</title></line>")
        parts.append(f"<text x='{x(t) + 3:.1f}' y='{top + 10}' font-size='10' fill='#d00'>{escape(_num(t))}</text>")
    axis_y = top + plot_h
    parts.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{axis_y}' y2='{axis_y}' stroke='#444'/>")
    for v, anchor in ((low, "start"), ((low + high) / 2, "middle"), (high, "end")):
        parts.append(f"<text x='{x(v):.1f}' y='{axis_y + 14}' font-size='10' text-anchor='{anchor}'>"
                     f"{escape(_num(v))}</text>")
    parts.append(f"<text x='{left - 4}' y='{top + 8}' font-size='10' text-anchor='end'>{peak}</text>")
    missing = f"; {h.missing} without a value" if h.missing else ""
    lines = f"; threshold {', '.join(_num(t) for t in h.thresholds)}" if h.thresholds else ""
    return (f"<div class='hist' data-score='{escape(h.name)}'><b>{escape(h.name)}</b>"
            f"<div class='note'>{h.values} clips{missing}{lines}</div>"
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
            f"aria-label='histogram of {escape(h.name)}'>{''.join(parts)}</svg></div>")


def histograms_block(hists: Sequence[Histogram]) -> str:
    if not hists:
        return "<p class='note'>No clips.</p>"
    return ("<p class='note'>Blue: kept clips, grey: rejected; red: the threshold a stage applied.</p>"
            f"<div class='hists'>{''.join(histogram_svg(h) for h in hists)}</div>")


def classes_table(rows: Sequence[tuple[str, str, int, int]]) -> str:
    """Camera labels grouped by paper class, kept and rejected counts with bars."""
    if not rows:
        return "<p class='note'>No clips.</p>"
    peak = max(k + r for _, _, k, r in rows) or 1
    body, last = [], None
    for cls, label, kept, rejected in rows:
        if cls != last:
            total_k = sum(k for c, _, k, _ in rows if c == cls)
            total_r = sum(r for c, _, _, r in rows if c == cls)
            name = PAPER_CLASS_NAMES.get(cls, "no paper class")
            body.append(f"<tr><th colspan='2'>{escape(cls)}: {escape(name)}</th><th>{total_k}</th><th>{total_r}</th>"
                        "<th></th></tr>")
            last = cls
        bar = (f"<span class='bar kept' style='width:{round(200 * kept / peak)}px'></span>"
               f"<span class='bar r' style='width:{round(200 * rejected / peak)}px'></span>")
        body.append(f"<tr><td></td><td>{escape(label)}</td><td>{kept}</td><td>{rejected}</td><td>{bar}</td></tr>")
    return ("<table id='classes'><tr><th>class</th><th>camera label</th><th>kept</th><th>rejected</th><th></th></tr>"
            f"{''.join(body)}</table>")


def sources_table(rows: Sequence[dict], total: int) -> str:
    body = "".join(
        f"<tr><td>{escape(str(s.get('source')))}</td><td>{escape(str(s.get('status')))}</td>"
        f"<td>{escape(s.get('reason') or '')}</td><td>{escape(s.get('message') or s.get('warning') or '')}</td>"
        f"<td>{s.get('clips_kept') or 0}</td></tr>" for s in rows)
    note = f"<p class='note'>{len(rows)} of {total} sources shown (rejected ones first).</p>" if len(rows) < total \
        else ""
    return (f"{note}<table id='sources'><tr><th>source</th><th>status</th><th>reason</th><th>message</th>"
            f"<th>kept clips</th></tr>{body}</table>")


def browser_block(clips: Sequence[dict], scores: Sequence[dict], note: str) -> str:
    """The filter bar, the (script-built) grid and its data as a JSON blob."""
    blob = json.dumps({"clips": clips, "scores": scores}, default=json_default, allow_nan=False)
    blob = blob.replace("<", "\\u003c")  # no "</script>" or "<!--" can end the blob early
    return f"""<p class='note'>Showing {escape(note)}. Filters apply to the clips shown; a score filter narrowed
from its full range hides the clips without that score.</p>
<div class='filters'>
<label>camera label<select id='f-label'><option value=''>all</option></select></label>
<label>paper class<select id='f-class'><option value=''>all</option></select></label>
<label>kept / reject reason<select id='f-outcome'><option value=''>all</option></select></label>
<span id='score-filters' style='display:contents'></span>
<button id='f-reset' type='button'>reset</button> <b id='shown-count'></b>
</div>
<div id='grid' class='grid'></div>
<script type='application/json' id='clip-data'>{blob}</script>"""


def page(title: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: (id, heading, html) per section, then the browser script."""
    body = "".join(f"<section id='{sid}'><h2>{escape(head)}</h2>{html}</section>" for sid, head, html in sections)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>
<link rel="icon" href="data:,"><meta name="viewport" content="width=device-width">
<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{body}<script>{JS}</script></body></html>"""
