"""OUT/report.html: what a curate run kept, what it rejected and why, with plots (matplotlib, inline)."""

from __future__ import annotations

import base64
import html
import io
import logging

import pyarrow.parquet as pq

from curation.store import OutStore
from curation.summary import CurateSummary

log = logging.getLogger("droplet.curate")


def _png(fig) -> str:  # noqa: ANN001
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plots(clips: list[dict], sources: list[dict]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    reasons = {}
    for s in sources:
        if s["status"] != "ok":
            reasons[f"source: {s['reason']}"] = reasons.get(f"source: {s['reason']}", 0) + 1
    for c in clips:
        if not c["keep"]:
            reasons[f"clip: {c['reject_reason']}"] = reasons.get(f"clip: {c['reject_reason']}", 0) + 1
    if reasons:
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(reasons) + 1))
        names = sorted(reasons)
        ax.barh(names, [reasons[n] for n in names], color="#c0504d")
        ax.set_xlabel("count")
        plots.append(("Rejections by reason", _png(fig)))
        plt.close(fig)
    kept = [c for c in clips if c["keep"]]
    if clips:
        names = sorted({c["camera_motion"] for c in clips})
        kept_counts = [sum(1 for c in kept if c["camera_motion"] == n) for n in names]
        other_counts = [sum(1 for c in clips if c["camera_motion"] == n and not c["keep"]) for n in names]
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(names, kept_counts, color="#4f81bd", label="kept")
        ax.bar(names, other_counts, bottom=kept_counts, color="#bbbbbb", label="rejected")
        ax.tick_params(axis="x", rotation=45)
        ax.set_ylabel("clips")
        ax.legend()
        plots.append(("Camera motion (dominant label per clip)", _png(fig)))
        plt.close(fig)
        classes = sorted({c.get("paper_class") or "?" for c in clips})
        kept_counts = [sum(1 for c in kept if (c.get("paper_class") or "?") == n) for n in classes]
        other_counts = [sum(1 for c in clips if (c.get("paper_class") or "?") == n and not c["keep"]) for n in classes]
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(classes, kept_counts, color="#4f81bd", label="kept")
        ax.bar(classes, other_counts, bottom=kept_counts, color="#bbbbbb", label="rejected")
        ax.set_ylabel("clips")
        ax.legend()
        plots.append(("Paper class (C1 orbit, C2 pan/tilt/roll, C3 tracking, C4 travel and zoom, C5 static or "
                      "hand-held, C6 edited)", _png(fig)))
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 3))
        durations = [round(c["end_s"] - c["start_s"], 3) for c in kept] or [0.0]
        low, high = min(durations), max(durations)
        span = (low - 0.5, high + 0.5) if high - low < 0.1 else (low, high)  # equal lengths: one visible bar
        ax.hist(durations, bins=30, range=span, color="#9bbb59")
        ax.set_xlabel("kept clip duration (s)")
        plots.append(("Kept clip durations", _png(fig)))
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(5, 4))
        for keep, colour in ((True, "#4f81bd"), (False, "#c0504d")):
            sel = [c for c in clips if c["keep"] == keep]
            ax.scatter([c["camera_motion_score"] for c in sel], [c["object_motion_score"] for c in sel], s=10,
                       c=colour, label="kept" if keep else "rejected")
        ax.set_xscale("symlog", linthresh=1e-3)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_xlabel("camera motion (widths/s)")
        ax.set_ylabel("object motion (widths/s)")
        ax.legend()
        plots.append(("Camera vs object motion", _png(fig)))
        plt.close(fig)
    return plots


def write_report(store: OutStore, summary: CurateSummary) -> None:
    """Write OUT/report.html from the parquet tables."""
    sources = pq.read_table(store.sources_parquet).to_pylist() if store.sources_parquet.exists() else []
    clips = pq.read_table(store.clips_parquet).to_pylist() if store.clips_parquet.exists() else []
    rows = "".join(
        f"<tr><td>{html.escape(str(s['source']))}</td><td>{s['status']}</td><td>{s['reason'] or ''}</td>"
        f"<td>{html.escape(s['message'] or s.get('warning') or '')}</td><td>{s.get('clips_kept') or 0}</td></tr>"
        for s in sources
    )
    facts = [
        ("sources", summary.sources), ("sources ok", summary.sources_ok),
        ("video hours (ok sources)", f"{summary.video_seconds / 3600:.3f}"), ("scenes", summary.scenes),
        ("clips", summary.clips), ("clips kept", summary.clips_kept),
        ("kept hours", f"{sum(c['end_s'] - c['start_s'] for c in clips if c['keep']) / 3600:.3f}"),
        ("run seconds", f"{summary.seconds:.1f}"),
        *((f"input files skipped: extension {ext}", n) for ext, n in sorted(summary.skipped_files.items())),
    ]
    try:
        figures = "".join(f"<h2>{t}</h2><img src='{src}'/>" for t, src in _plots(clips, sources))
    except Exception as exc:  # noqa: BLE001 - a plot never costs the run its report
        log.warning("report plots failed: %s: %s", type(exc).__name__, exc)
        figures = f"<p>plots failed: {html.escape(str(exc))}</p>"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>droplet curate report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}</style></head><body>
<h1>droplet curate: {html.escape(str(store.root))}</h1>
<table>{''.join(f'<tr><th>{html.escape(k)}</th><td>{v}</td></tr>' for k, v in facts)}</table>
{figures}
<h2>Sources</h2><table><tr><th>source</th><th>status</th><th>reason</th><th>message</th><th>kept clips</th></tr>
{rows}</table></body></html>"""
    store.report_path.write_text(page, encoding="utf-8")
