"""`droplet import-droplet CSV VIDEO_DIR OUT`: the released DropletVideo-1M / 10M metadata over local videos.

The released metadata (IEIT-AGI/DropletVideo, `download_DropletVideo/`) is a CSV with one row per clip: `url`
(`https://www.youtube.com/watch?v=ID`), `fps` and `framestamp` (`(start, end)`, frame numbers at that fps) and
`quality_score`. Its scripts download each video (`yt-dlp`, at most 360p, saved as `<id>/<id>.mp4`) and cut
each clip by *time*: frame / fps, rounded to 10 ms. The frame numbers do not index a downloaded file's frames
(YouTube serves a 60-fps video at 30 fps below 720p), so here too each framestamp becomes a time range with
the CSV's fps, end exclusive, and the clip is the file's frames between the frame boundaries nearest to
those two times.

Each video is curated as `droplet curate` curates a source, by the same stages on the local executor (probe,
the one analysis pass, extraction; decoding in child processes) and the same per-clip planning
(`curation.clips.plan_clip`: camera timeline, motion scores, the static / edited / `clips.min_frames`
filters), but its clips are the listed ranges: no scene split, no trimming, no pieces. Every CSV column but
the caption column rides along as the clip's `import_row` (JSON); the caption column's text rides in the
journal's clip rows (`CAPTION_KEY`, not a clips.parquet column) until `captioning.pipeline.import_captions`
commits it as a caption row.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import time
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from curation import reasons
from curation.config import CurateConfig
from curation.inputs import _wanted
from curation.local import LocalExecutor, local_workers
from curation.pipeline import CommitTracker, log_to_file, probe_all, resolve_duplicates
from curation.report import write_report
from curation.rows import Analysis, Probe, SourceTask, unwrap, wrap
from curation.stages import analyze_stage, clip_plans, plan_stage
from curation.store import OutStore, source_key
from curation.summary import CurateSummary, summarize
from runtime.out_lock import hold_folder_lock
from shards.layout import OutLayout

log = logging.getLogger("droplet.import")

REQUIRED_COLUMNS = ("url", "fps", "framestamp")
CAPTION_KEY = "csv_caption"  # the caption column's text, in the journal's clip rows only
TIME_DECIMALS = 2  # the released generate_samples.py cuts at frame / fps as HH:MM:SS.ff: 10 ms
YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
ID_IN_BRACKETS = re.compile(r"\[([A-Za-z0-9_-]{11})\]$")  # yt-dlp's default name: "<title> [<id>].<ext>"
WARNING_NOTES = 3  # notes about a video's rows named in its source row; all of them go to the log


def youtube_id(url: str) -> str | None:
    """The video id of a YouTube URL (`watch?v=ID`, `youtu.be/ID`, `/shorts/ID`, `/embed/ID`, `/live/ID`) or
    a bare 11-character id; None for anything else."""
    text = url.strip()
    if YOUTUBE_ID.fullmatch(text):
        return text
    parts = urlsplit(text if "://" in text else f"https://{text}")
    host = (parts.hostname or "").lower()
    path = [p for p in parts.path.split("/") if p]
    candidates: list[str] = []
    if host == "youtu.be" or host.endswith(".youtu.be"):
        candidates = path[:1]
    elif host == "youtube.com" or host.endswith((".youtube.com", "youtube-nocookie.com")):
        candidates = parse_qs(parts.query).get("v", [])
        if len(path) >= 2 and path[0] in ("shorts", "embed", "live", "v", "e"):
            candidates.append(path[1])
    return next((c for c in candidates if YOUTUBE_ID.fullmatch(c)), None)


def video_id_of_file(name: str) -> str | None:
    """The YouTube id a video file is named by: `<id>.<ext>` (the released download script's names) or
    `<anything> [<id>].<ext>` (yt-dlp's default)."""
    stem = name.rsplit(".", 1)[0]
    if YOUTUBE_ID.fullmatch(stem):
        return stem
    match = ID_IN_BRACKETS.search(stem)
    return match.group(1) if match else None


def frame_time(frame: int, fps: float) -> float:
    """Seconds of `frame` at `fps`, as the released scripts cut it: rounded to 10 ms."""
    return round(frame / fps, TIME_DECIMALS)


def parse_fps(text: str) -> float:
    """A CSV `fps`: a number (`30`, `29.97`) or a ratio (`30000/1001`), positive."""
    try:
        fps = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"fps {text!r} is not a number") from None
    if not fps > 0:
        raise ValueError(f"fps {text!r} is not positive")
    return fps


def parse_framestamp(text: str) -> tuple[int, int]:
    """A CSV `framestamp`: `(start, end)` frame numbers (also `[start, end]` or `start, end`), 0 <= start < end."""
    numbers = re.fullmatch(r"\s*[(\[]?\s*(\d+(?:\.0*)?)\s*,\s*(\d+(?:\.0*)?)\s*[)\]]?\s*", text)
    if numbers is None:
        raise ValueError(f"framestamp {text!r} is not (start, end)")
    start, end = (int(float(n)) for n in numbers.groups())
    if end <= start:
        raise ValueError(f"framestamp {text!r} ends before it starts")
    return start, end


@dataclass(frozen=True)
class ListedClip:
    """One CSV row: a time range of one video, and what rides along with it."""

    row: int  # data row of the CSV, from 1
    fps: float
    framestamp: tuple[int, int]
    start_s: float
    end_s: float  # exclusive
    fields: dict[str, str]  # every column but the caption column, as read
    caption: str | None


@dataclass
class Listing:
    """The CSV read against the videos that are here: rows of the videos found, and for the others only what
    their rejection needs."""

    clips: dict[str, list[ListedClip]] = field(default_factory=dict)  # video id -> its rows (found videos)
    missing: dict[str, tuple[str, int]] = field(default_factory=dict)  # video id -> (its first url, rows)
    rows: int = 0
    malformed: int = 0


def read_header(path: Path, caption_column: str | None) -> list[str]:
    """The CSV's column names; raises ValueError when a needed one is not there."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        names = next(csv.reader(handle), None)
    if not names:
        raise ValueError(f"{path} is empty: expected a header with the columns {', '.join(REQUIRED_COLUMNS)}")
    names = [n.strip() for n in names]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{path} has no column {', '.join(missing)} (its columns: {', '.join(names)}; the "
                         f"released metadata has url, fps, framestamp, quality_score)")
    if caption_column is not None and caption_column not in names:
        raise ValueError(f"--caption-column {caption_column}: {path} has no such column (its columns: "
                         f"{', '.join(names)})")
    return names


def read_listing(path: Path, found: set[str], caption_column: str | None) -> Listing:
    """Every row of the CSV, grouped by video. A row that cannot be read (no YouTube id in its url, a bad fps
    or framestamp) is logged and counted, and the others go on."""
    names = read_header(path, caption_column)
    listing = Listing()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader)
        for number, values in enumerate(reader, start=1):
            if not any(v.strip() for v in values):
                continue
            listing.rows += 1
            row = dict(zip(names, values, strict=False))
            try:
                vid = youtube_id(row.get("url") or "")
                if vid is None:
                    raise ValueError(f"url {row.get('url')!r} names no YouTube video")
                if vid not in found:
                    url, count = listing.missing.get(vid, (row["url"].strip(), 0))
                    listing.missing[vid] = (url, count + 1)
                    continue
                fps = parse_fps(row.get("fps") or "")
                first, end = parse_framestamp(row.get("framestamp") or "")
            except ValueError as exc:
                listing.malformed += 1
                log.warning("CSV row %d skipped: %s", number, exc)
                continue
            caption = row.get(caption_column, "").strip() if caption_column else ""
            fields = {k: v for k, v in row.items() if k != caption_column}
            listing.clips.setdefault(vid, []).append(ListedClip(
                row=number, fps=fps, framestamp=(first, end), start_s=frame_time(first, fps),
                end_s=frame_time(end, fps), fields=fields, caption=caption or None))
    return listing


def find_videos(
    folder: Path, extensions: tuple[str, ...], skip: Path | None = None
) -> tuple[dict[str, str], list[str]]:
    """Video files under `folder` (at any depth, `skip` aside: OUT, when it lies inside) by the YouTube id in
    their names, and the files with a video extension that no id names. Of two files with one id the first in
    path order is taken (the other is logged)."""
    videos: dict[str, str] = {}
    unnamed: list[str] = []
    files = (p for p in folder.rglob("*") if p.is_file() and _wanted(p.name, extensions))
    for path in sorted(p for p in files if skip is None or not p.is_relative_to(skip)):
        vid = video_id_of_file(path.name)
        if vid is None:
            unnamed.append(str(path))
        elif vid in videos:
            log.warning("%s: a second file for YouTube id %s (%s is taken)", path, vid, videos[vid])
        else:
            videos[vid] = str(path)
    return videos, unnamed


def nearest_frame(bounds: np.ndarray, t: float) -> int:
    """The frame boundary nearest to time `t` (ties to the later one): an index 0..n of `bounds`, the start
    times of the n frames and the end of the last."""
    i = int(np.searchsorted(bounds, t))
    if i == 0:
        return 0
    if i == len(bounds):
        return i - 1
    return i if bounds[i] - t <= t - bounds[i - 1] else i - 1


def listed_planner(item: Analysis, cfg: CurateConfig, listed: list[ListedClip]) -> tuple[list[dict], list, str | None]:
    """A `curation.stages.Planner`: the clips the CSV lists for this video, no scenes, and a warning naming
    rows whose range lies outside the video, ends after it, or repeats an earlier row's frames."""
    from curation.clips import plan_clip, source_context

    ctx = source_context(item.analysis, item.info, item.source, cfg)
    n = item.analysis.num_frames
    bounds = np.append(item.analysis.time - ctx.t0, ctx.abs_time(n) - ctx.t0)
    half_frame = 0.5 * (bounds[-1] - bounds[-2]) if n else 0.0
    planned, notes, seen = [], [], {}
    for clip in listed:
        span = f"row {clip.row} ({clip.start_s:.2f}-{clip.end_s:.2f} s)"
        a, b = nearest_frame(bounds, clip.start_s), nearest_frame(bounds, clip.end_s)
        if a >= b:
            notes.append(f"{span} holds no frame of the video ({bounds[-1]:.2f} s)")
            continue
        if (a, b) in seen:
            notes.append(f"{span} is the frames of row {seen[(a, b)]} again")
            continue
        seen[(a, b)] = clip.row
        if clip.end_s > bounds[-1] + half_frame:
            notes.append(f"{span} ends after the video ({bounds[-1]:.2f} s): cut at its end")
        too_short = reasons.TOO_SHORT if b - a < cfg.clips.min_frames else None
        planned_clip = plan_clip(ctx, a, b, too_short)
        planned_clip.row["import_row"] = json.dumps(clip.fields, ensure_ascii=False)
        if clip.caption:
            planned_clip.row[CAPTION_KEY] = clip.caption
        planned.append(planned_clip)
    for note in notes:
        log.warning("%s: CSV %s", item.source, note)
    warning = None
    if notes:
        more = f" (and {len(notes) - WARNING_NOTES} more, in curate.log)" if len(notes) > WARNING_NOTES else ""
        warning = "CSV " + "; CSV ".join(notes[:WARNING_NOTES]) + more
    return [], planned, warning


class ImportExecutor(LocalExecutor):
    """The local executor with the CSV's clips in place of curate's scene split."""

    def __init__(self, cfg: CurateConfig, store: OutStore, workers: int, listed: dict[str, list[ListedClip]]):
        super().__init__(cfg, store, workers)
        self.listed = listed  # source key -> its CSV rows

    def _plan_source(self, probe: Probe) -> list[dict]:
        row = analyze_stage(wrap(probe), self.cfg)
        return plan_stage(row, self.cfg, self.store, planner=partial(listed_planner, listed=self.listed[probe.key]))


@dataclass
class ImportSummary:
    curate: CurateSummary
    csv_rows: int = 0
    malformed_rows: int = 0
    videos_listed: int = 0
    videos_found: int = 0
    videos_missing: int = 0
    files_not_listed: int = 0


def _analysis_config(cfg: CurateConfig) -> CurateConfig:
    """The importer splits nothing: TransNetV2 (and its thumbnails) is never needed."""
    if cfg.scenes.detector != "transnetv2":
        return cfg
    return cfg.model_copy(update={"scenes": cfg.scenes.model_copy(update={"detector": "content_motion"})})


def run_import(csv_path: str, video_dir: str, out: str, cfg: CurateConfig, caption_column: str | None = None,
               progress: bool = True) -> ImportSummary:
    """Import the CSV's clips of the videos in `video_dir` into `out`. Raises ValueError for unusable input."""
    started = time.time()
    table, folder = Path(csv_path), Path(video_dir).absolute()
    if not table.is_file():
        raise ValueError(f"CSV not found: {csv_path}")
    if not folder.is_dir():
        raise ValueError(f"video folder not found: {video_dir}")
    read_header(table, caption_column)
    with hold_folder_lock(OutLayout(out).curate_lock, out, "import-droplet"):  # the lock curate takes
        return _import_into(table, folder, out, cfg, caption_column, progress, started)


def _import_into(table: Path, folder: Path, out: str, cfg: CurateConfig, caption_column: str | None,
                 progress: bool, started: float) -> ImportSummary:
    store = OutStore(out)
    store.lock_config(cfg.fingerprint(), cfg.model_dump(mode="json"))
    store.prepare()
    log_to_file(store.log_path)
    if cfg.ray.executor == "ray" or cfg.ray.address:
        log.info("import-droplet runs on this machine (the local executor): ray.executor and ray.address unused")
    videos, unnamed = find_videos(folder, cfg.limits.extensions, skip=store.root.absolute())
    for path in unnamed:
        log.warning("skipped %s: its name holds no YouTube id", path)
    listing = read_listing(table, set(videos), caption_column)
    listed_ids = set(listing.clips) | set(listing.missing)
    summary = ImportSummary(curate=CurateSummary(), csv_rows=listing.rows, malformed_rows=listing.malformed,
                            videos_listed=len(listed_ids), videos_found=len(listing.clips),
                            videos_missing=len(listing.missing),
                            files_not_listed=sum(1 for v in videos if v not in listed_ids))
    log.info("%s: %d rows of %d videos (%d rows skipped); %s: %d of them found, %d missing, %d other video "
             "files", table, listing.rows, len(listed_ids), listing.malformed, folder, len(listing.clips),
             len(listing.missing), summary.files_not_listed + len(unnamed))

    committed = store.committed()
    sources = {source_key(videos[vid]): (vid, videos[vid]) for vid in sorted(listing.clips)}
    _reject_missing(store, committed, listing, folder)
    todo = [SourceTask(key, path) for key, (_, path) in sources.items() if key not in committed]
    tracker = CommitTracker(store, len(todo), progress=progress)
    if todo:
        listed = {key: listing.clips[vid] for key, (vid, _) in sources.items()}
        _import_videos(todo, listed, store, committed, cfg, tracker, progress)
    tracker.close()
    tables = store.rebuild_tables()
    summary.curate = summarize(store, len(sources) - len(todo), time.time() - started)
    write_report(store, summary.curate)
    log.info("tables: %s; report: %s (done at %.1f s)", tables, store.report_path, time.time() - started)
    return summary


def _reject_missing(store: OutStore, committed: dict[str, dict], listing: Listing, folder: Path) -> None:
    """Commit a `missing_video` row for each listed video without a file (named in one log line: there may be
    many), and drop the row of a video missing last time and here now (from `committed` too)."""
    for vid in listing.clips:
        stale = _missing_key(vid)
        if stale in committed and committed[stale]["source"].get("reason") == reasons.MISSING_VIDEO:
            store.commit_path(stale).unlink(missing_ok=True)
            del committed[stale]
    new = [(vid, url, rows) for vid, (url, rows) in sorted(listing.missing.items())
           if _missing_key(vid) not in committed]
    for vid, url, rows in new:
        message = f"no file for YouTube id {vid} in {folder} ({rows} CSV row{'s' if rows != 1 else ''})"
        store.commit(_missing_key(vid), {
            "source": {"source": url, "status": "rejected", "reason": reasons.MISSING_VIDEO, "message": message,
                       "scenes": 0, "clips": 0, "clips_kept": 0},
            "scenes": [], "clips": []})
    if new:
        ids = [vid for vid, _, _ in new]
        log.warning("rejected %d listed videos without a file in %s: missing_video (%s%s; each is a row of "
                    "sources.parquet)", len(ids), folder, ", ".join(ids[:5]), ", ..." if len(ids) > 5 else "")


def _import_videos(todo: list[SourceTask], listed: dict[str, list[ListedClip]], store: OutStore,
                   committed: dict[str, dict], cfg: CurateConfig, tracker: CommitTracker, progress: bool) -> None:
    """Probe the videos (duplicates decided as curate decides them), then plan and extract the listed clips of
    each (a planned video, a killed run's, only writes its missing clips), committing each video as it is done."""
    probes = probe_all(todo, store, cfg, None, False, progress=progress)
    ok = resolve_duplicates(probes, committed, tracker)
    fresh, resumed = [], []
    for probe in ok:
        plan = store.load_plan(probe.key)
        (fresh.append(probe) if plan is None else resumed.extend(unwrap(r) for r in clip_plans(plan, store)))
    workers = local_workers(cfg)
    log.info("local executor (no Ray): %d stages at once", workers)
    ImportExecutor(_analysis_config(cfg), store, workers, listed).run(fresh, resumed, tracker.add)


def _missing_key(vid: str) -> str:
    """The journal key of a missing video's rejection (its id's canonical URL hashed; the CSV's url as given is
    its `source`)."""
    return source_key(f"https://www.youtube.com/watch?v={vid}")


def imported_captions(out: str | Path) -> dict[str, str]:
    """clip_id -> the CSV's caption, for every kept clip of OUT that came with one."""
    return {clip["clip_id"]: clip[CAPTION_KEY] for commit in OutStore(out).committed().values()
            for clip in commit.get("clips", []) if clip.get("keep") and clip.get(CAPTION_KEY)}
