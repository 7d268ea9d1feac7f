"""What a curate run did, counted over everything committed in OUT: the summary the CLI prints and the
report shows."""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.store import OutStore


@dataclass
class CurateSummary:
    sources: int = 0
    sources_ok: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    scenes: int = 0
    clips: int = 0
    clips_kept: int = 0
    clip_rejections: dict[str, int] = field(default_factory=dict)
    skipped_done: int = 0
    seconds: float = 0.0
    video_seconds: float = 0.0
    skipped_files: dict[str, int] = field(default_factory=dict)  # input-folder files by extension


def summarize(store: OutStore, skipped_done: int, seconds: float) -> CurateSummary:
    """Counts over everything committed in OUT."""
    summary = CurateSummary(skipped_done=skipped_done, seconds=seconds)
    decisions = store.decisions()
    for commit in store.committed().values():
        src = commit["source"]
        summary.sources += 1
        if src["status"] == "ok":
            summary.sources_ok += 1
            summary.video_seconds += float(src.get("duration_s") or 0.0)
        else:
            summary.rejected[src["reason"]] = summary.rejected.get(src["reason"], 0) + 1
        summary.scenes += len(commit.get("scenes", []))
        for clip in store.committed_clips(commit, decisions):
            summary.clips += 1
            if clip["keep"]:
                summary.clips_kept += 1
            else:
                r = clip["reject_reason"]
                summary.clip_rejections[r] = summary.clip_rejections.get(r, 0) + 1
    return summary
