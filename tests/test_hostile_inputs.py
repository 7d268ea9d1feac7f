"""Hostile inputs: each one ends as a reason code (sources.parquet, clips.parquet) or a clear line in curate.log,
the run goes on and curates the good source beside it, nothing is written outside OUT, and memory and time stay
bounded. Curation runs in this process on the local executor (2 CPUs, OCR off) over small synthetic videos.

1. a header claiming 100000x100000 (and a declared 9000x64) -> too_large before any frame is decoded
2. a long low-resolution stream -> too_long (limits.max_duration_s, limits.max_frames); analysis memory per frame
3. corrupt bytes in the middle of an H.264 mdat -> the frames before the damage are kept, with a warning
4. a file rewritten or grown between its probe and its analysis or extraction -> changed, no clip of it kept
5. names with quotes, newlines, non-ASCII and non-UTF-8 bytes, `../` in a list file
6. symlink loops, links to folders and broken links in an input folder -> skipped with a line each
7. list-file URLs that 404, stall, or redirect to file:// or ftp:// -> unreadable / timeout, never followed
8. shard members named `../x` or `/tmp/x` -> skipped by the trainer's reader with a line, nothing written
"""

from __future__ import annotations

import http.server
import io
import json
import logging
import os
import tarfile
import threading
import time
import tracemalloc
import uuid
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import read_table

from curation import local
from curation.config import CurateConfig
from curation.pipeline import run_curate
from curation.reasons import Rejected
from droplet.sample_data.encode import H264Writer
from droplet.sample_data.synthetic import camera_frames


# -- inputs -------------------------------------------------------------------------------------------------------
def good_video(path: Path, seed: int = 11, frames: int = 70, width: int = 160, height: int = 96) -> Path:
    """A short pan (one clip after trimming); each seed gives different bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with H264Writer(path, width, height) as writer:
        for frame in camera_frames("pan_right", frames, 3.0, seed, width, height):
            writer.write(frame)
    return path


def bar_video(path: Path, frames: int, fps: int, size: int = 64) -> Path:
    """A grey square video with a bright bar sliding across it: cheap to write at any length."""
    with H264Writer(path, size, size, fps, preset="ultrafast", gop=fps) as writer:
        for i in range(frames):
            img = np.full((size, size, 3), 60, np.uint8)
            x = (3 * i) % (size - 8)
            img[size // 4:3 * size // 4, x:x + 8] = 230
            writer.write(img)
    return path


def h264_mkv_claiming(path: Path, width: int, height: int) -> Path:
    """An H.264 MKV of 64x64 frames whose track header claims `width` x `height` (remuxed through a stream whose
    codec context was given that size)."""
    small = path.with_name(path.stem + ".64.mkv")
    with av.open(str(small), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with av.open(str(small)) as src, av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        stream.codec_context.width, stream.codec_context.height = width, height
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    small.unlink()
    return path


def _ebml_uint(element: bytes, value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return element + bytes([0x80 | len(body)]) + body


def raw_mkv_declaring(path: Path, width: int, height: int) -> Path:
    """A rawvideo (gray) MKV of 64x64 frames whose Video element is rewritten to declare `width` x `height`. The
    TrackEntry's Void element gives up the bytes the larger numbers take, so nothing else moves (the Tracks CRC-32
    goes stale; FFmpeg does not check it by default)."""
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("rawvideo", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "gray"
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64), 8 * i, np.uint8), format="gray")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    data = bytearray(path.read_bytes())
    video = b"\xe0\x92" + _ebml_uint(b"\xb0", 64) + _ebml_uint(b"\xba", 64)  # Video, 18 bytes: width, height, ...
    dims = _ebml_uint(b"\xb0", width) + _ebml_uint(b"\xba", height)
    grow = len(dims) - 6
    at = data.index(video)
    data[at:at + len(video)] = b"\xe0" + bytes([0x80 | (0x12 + grow)]) + dims
    void = bytes.fromhex("ec01000000000000020000")  # Void, 11 bytes (an 8-byte size of 2)
    at = data.index(void)
    data[at:at + len(void)] = b"\xec" + bytes([0x80 | (9 - grow)]) + bytes(9 - grow)
    path.write_bytes(bytes(data))
    return path


# -- running curate -----------------------------------------------------------------------------------------------
def curate(input_value: Path | str, out: Path, **sections) -> tuple:
    """`droplet curate INPUT OUT` in this process on the local executor; (sources, clips, curate.log text)."""
    settings = {"ray": {"executor": "local", "num_cpus": 2, "progress_bars": False}, "ocr": {"enabled": False}}
    for name, values in sections.items():
        settings[name] = {**settings.get(name, {}), **values}
    cfg = CurateConfig.model_validate(settings)
    droplet_log = logging.getLogger("droplet")
    try:
        run_curate(str(input_value), str(out), cfg)
    finally:  # the run's curate.log handler stays on the logger: take it off (later runs log elsewhere)
        for handler in list(droplet_log.handlers):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == out.resolve():
                droplet_log.removeHandler(handler)
                handler.close()
    sources = read_table(out, "sources").set_index("source", drop=False)
    return sources, read_table(out, "clips"), (out / "curate.log").read_text(encoding="utf-8")


def assert_curated(sources, clips, path: Path) -> None:
    """The good source beside the hostile ones: ok, with its one clip kept and written."""
    row = sources.loc[str(path)]
    assert row.status == "ok", (row.reason, row.message)
    kept = clips[(clips.source == str(path)) & clips.keep]
    assert len(kept) == 1


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_clip_files_match(out: Path, clips) -> None:
    """OUT/clips holds exactly the kept clips' files, each named by its clip_id."""
    assert sorted(p.stem for p in (out / "clips").iterdir()) == sorted(clips[clips.keep].clip_id)


def probe(path: Path, **limits):
    from curation.probe import probe_source

    return probe_source(str(path), CurateConfig.model_validate({"limits": limits}))


# -- 1. a header that claims a huge picture -----------------------------------------------------------------------
def test_a_header_claiming_a_huge_picture_is_too_large_before_any_frame_is_decoded(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    claims = h264_mkv_claiming(folder / "claims_100000.mkv", 100000, 100000)
    raw = raw_mkv_declaring(folder / "declares_9000x64.mkv", 9000, 64)
    good = good_video(folder / "good.mp4")

    from curation import probe as probe_module

    def no_decoding(*args, **kwargs):
        raise AssertionError("a frame was decoded")

    with monkeypatch.context() as patched:
        patched.setattr(probe_module, "_first_frame", no_decoding)
        for path, size in ((claims, "100000x100000"), (raw, "9000x64")):
            started = time.monotonic()
            with pytest.raises(Rejected) as rejected:
                probe(path)
            assert rejected.value.reason == "too_large" and size in rejected.value.message
            assert "nothing was decoded" in rejected.value.message
            assert time.monotonic() - started < 2.0

    out = tmp_path / "out"
    sources, clips, _ = curate(folder, out)
    assert sources.loc[str(claims), "reason"] == "too_large"
    assert "100000x100000" in sources.loc[str(claims), "message"]
    assert sources.loc[str(raw), "reason"] == "too_large"
    assert "9000x64" in sources.loc[str(raw), "message"]
    assert_curated(sources, clips, good)


# -- 2. a long low-resolution stream ------------------------------------------------------------------------------
def test_a_long_low_resolution_stream_is_too_long_under_the_limits(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    long = bar_video(folder / "ten_minutes_64x64.mp4", frames=3000, fps=5)  # 600 s
    good = good_video(folder / "good.mp4")
    assert long.stat().st_size < 2_000_000

    info = probe(long)
    assert (info.num_frames, info.duration_s, info.width) == (3000, 600.0, 64)
    with pytest.raises(Rejected, match=r"too_long: 600 s is over limits.max_duration_s"):
        probe(long, max_duration_s=300)
    with pytest.raises(Rejected, match=r"too_long: over 1000 frames \(limits.max_frames\)"):
        probe(long, max_frames=1000)

    out = tmp_path / "out"
    sources, clips, _ = curate(folder, out, limits={"max_duration_s": 300})
    assert sources.loc[str(long), "reason"] == "too_long"
    assert_curated(sources, clips, good)


def test_the_analysis_of_a_long_stream_keeps_a_few_hundred_bytes_a_frame(tmp_path):
    """limits.max_frames bounds the analysis's memory because what it keeps grows by little per frame: measured on
    a 250 fps stream (Python-side allocations, which were 1.1 KB a frame as lists of floats)."""
    from curation.analyze import analyze_source

    video = bar_video(tmp_path / "fast.mp4", frames=1200, fps=250)
    cfg = CurateConfig()
    marks: dict[int, int] = {}

    def on_frame(i: int) -> None:
        if i in (300, 1199):
            marks[i] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        result = analyze_source(str(video), cfg.analysis, cfg.scenes, fps=250.0, on_frame=on_frame)
    finally:
        tracemalloc.stop()
    assert result.num_frames == 1200
    per_frame = (marks[1199] - marks[300]) / (1199 - 300)
    print(f"analysis keeps {per_frame:.0f} bytes a frame")
    assert per_frame < 400


# -- 3. corrupt frames in the middle ------------------------------------------------------------------------------
def test_corrupt_bytes_mid_stream_keep_the_frames_before_the_damage(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    whole = good_video(tmp_path / "whole.mp4", seed=12, frames=200)
    data = bytearray(whole.read_bytes())
    mdat = data.index(b"mdat")
    middle = mdat + (len(data) - mdat) // 2
    data[middle:middle + 3000] = np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    good = good_video(folder / "good.mp4")

    out = tmp_path / "out"
    sources, clips, _ = curate(folder, out)
    row = sources.loc[str(corrupt)]
    assert row.status == "ok" and row.num_frames == 200
    assert row.decoded_frames < 200 and "decoding stopped after" in row.warning
    kept = clips[(clips.source == str(corrupt)) & clips.keep]
    assert len(kept) >= 1 and (kept.end_frame <= row.decoded_frames).all()
    assert_curated(sources, clips, good)
    assert_clip_files_match(out, clips)


# -- 4. a file that changes under curate --------------------------------------------------------------------------
def test_a_file_changed_after_its_probe_is_rejected_changed(tmp_path, monkeypatch):
    """Deterministic hooks around the local executor's stages change files between the steps: one rewritten with
    another video and one grown between probe and analysis, one rewritten between analysis and extraction."""
    folder = tmp_path / "in"
    folder.mkdir()
    rewritten = good_video(folder / "rewritten.mp4", seed=21)
    grown = good_video(folder / "grown.mp4", seed=22)
    late = good_video(folder / "late.mp4", seed=23)
    good = good_video(folder / "good.mp4")
    other = good_video(tmp_path / "other.mp4", seed=24).read_bytes()

    analyze, extract = local.analyze_stage, local.extract_stage

    def analyze_after_a_change(row, cfg, store=None):
        item = local.unwrap(row)
        if item.source == str(rewritten):
            rewritten.write_bytes(other)
        elif item.source == str(grown):
            with grown.open("ab") as handle:
                handle.write(b"\0" * 4096)
        return analyze(row, cfg, store)

    def extract_after_a_change(row, cfg, store):
        item = local.unwrap(row)
        if getattr(item, "spec", None) is not None and item.spec.source == str(late):
            late.write_bytes(other)
        return extract(row, cfg, store)

    monkeypatch.setattr(local, "analyze_stage", analyze_after_a_change)
    monkeypatch.setattr(local, "extract_stage", extract_after_a_change)
    out = tmp_path / "out"
    sources, clips, log = curate(folder, out)

    for path in (rewritten, grown):
        row = sources.loc[str(path)]
        assert (row.status, row.reason) == ("rejected", "changed")
        assert "between its probe and its analysis" in row.message
        assert not (clips.source == str(path)).any()
    assert "bytes when probed, " in sources.loc[str(grown), "message"]
    late_clips = clips[clips.source == str(late)]
    assert len(late_clips) == 1 and set(late_clips.reject_reason) == {"changed"} and not late_clips.keep.any()
    assert f"clip {late_clips.clip_id.iloc[0]} not written: changed" in log
    assert_curated(sources, clips, good)
    assert_clip_files_match(out, clips)


# -- 5. odd names -------------------------------------------------------------------------------------------------
ODD_NAMES = ("quo'te\"s.mp4", "new\nline.mp4", "ünï cödé ✓.mp4", "tab\tand spaces .mp4")


def test_odd_file_names_in_a_folder_are_curated_under_their_exact_names(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    odd = [good_video(folder / name, seed=30 + k) for k, name in enumerate(ODD_NAMES)]
    not_utf8 = Path(os.fsdecode(bytes(folder) + b"/latin1 caf\xe9.mp4"))
    not_utf8.write_bytes(good_video(tmp_path / "x.mp4", seed=39).read_bytes())

    out = tmp_path / "out"
    sources, clips, log = curate(folder, out)
    for path in odd:
        assert_curated(sources, clips, path)
    assert len(sources) == len(odd)
    assert f"skipped {folder}/latin1 caf\\xe9.mp4: the name is not UTF-8 (rename it)" in log
    assert all(line[:4].isdigit() for line in log.splitlines()), "a file name broke a curate.log line"
    assert_clip_files_match(out, clips)


def test_a_list_file_with_relative_odd_and_unlistable_names(tmp_path):
    """`../` entries are paths the user named (taken from the list's folder); a name holding a newline cannot be
    written one per line: its two halves are two entries, each rejected `unreadable` (no such file)."""
    base = tmp_path / "lists"
    (base / "sub").mkdir(parents=True)
    outside = good_video(tmp_path / "elsewhere" / "up.mp4", seed=40)
    quoted = good_video(base / "sub" / "quo'te\"s ünï.mp4", seed=41)
    newline = good_video(base / "new\nline.mp4", seed=42)
    listing = base / "sub" / "inputs.txt"
    listing.write_bytes("\n".join(["# odd entries", "../../elsewhere/up.mp4", "quo'te\"s ünï.mp4",
                                   "../new", "line.mp4"]).encode() + b"\nnot utf-8 \xff.mp4\n")
    before = files_under(tmp_path)

    out = tmp_path / "out"
    sources, clips, log = curate(listing, out)
    assert_curated(sources, clips, outside)
    assert_curated(sources, clips, quoted)
    halves = [str(base / "new"), str(base / "sub" / "line.mp4")]
    for half in halves:
        row = sources.loc[half]
        assert (row.reason, "FileNotFoundError" in row.message) == ("unreadable", True)
    assert str(newline) not in sources.index and len(sources) == 4
    assert "skipped line 6: not utf-8 \\xff.mp4: the line is not UTF-8" in log
    assert files_under(tmp_path) - before == {p for p in files_under(tmp_path) if p.startswith("out")}
    assert_clip_files_match(out, clips)


# -- 6. symlink loops ---------------------------------------------------------------------------------------------
def test_symlink_loops_in_an_input_folder_end_the_scan_with_a_line_each(tmp_path):
    folder = tmp_path / "in"
    (folder / "deeper").mkdir(parents=True)
    good = good_video(folder / "deeper" / "good.mp4")
    os.symlink("loop_b.mp4", folder / "loop_a.mp4")
    os.symlink("loop_a.mp4", folder / "loop_b.mp4")
    os.symlink("..", folder / "deeper" / "up")  # a folder loop
    os.symlink(str(folder), folder / "again")
    os.symlink("gone.mp4", folder / "dangling.mp4")

    started = time.monotonic()
    out = tmp_path / "out"
    sources, clips, log = curate(folder, out)
    assert time.monotonic() - started < 60
    assert list(sources.index) == [str(good)]
    assert_curated(sources, clips, good)
    for line in (f"skipped {folder}/loop_a.mp4: a symlink loop", f"skipped {folder}/loop_b.mp4: a symlink loop",
                 f"skipped {folder}/deeper/up: a symlink to a folder (not followed: {folder})",
                 f"skipped {folder}/again: a symlink to a folder (not followed: {folder})",
                 f"skipped {folder}/dangling.mp4: a broken symlink (to gone.mp4)"):
        assert line in log


# -- 7. URLs that fail --------------------------------------------------------------------------------------------
class HostileServer(http.server.SimpleHTTPRequestHandler):
    """Serves `directory`; /stall.mp4 never answers (until the test ends), /to-file.mp4 and /to-ftp.mp4 redirect
    to another scheme."""

    release = threading.Event()
    local_target = ""

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        if not self._hostile():
            super().do_HEAD()

    def do_GET(self) -> None:  # noqa: N802
        if not self._hostile():
            super().do_GET()

    def _hostile(self) -> bool:
        if self.path == "/stall.mp4":
            self.release.wait(60)
            return True
        target = {"/to-file.mp4": f"file://{self.local_target}", "/to-ftp.mp4": "ftp://127.0.0.1/x.mp4"}
        if self.path in target:
            self.send_response(302)
            self.send_header("Location", target[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        return False

    def log_message(self, *args) -> None:
        pass


def test_list_file_urls_that_fail_or_redirect_to_another_scheme(tmp_path):
    served = tmp_path / "www"
    good_video(served / "good.mp4")
    local_target = good_video(tmp_path / "local" / "secret.mp4", seed=50)
    handler = type("Handler", (HostileServer,), {"release": threading.Event(), "local_target": str(local_target)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    listing = tmp_path / "urls.txt"
    names = ("good.mp4", "missing.mp4", "stall.mp4", "to-file.mp4", "to-ftp.mp4")
    listing.write_text("".join(f"{base}/{name}\n" for name in names))
    out = tmp_path / "out"
    try:
        started = time.monotonic()
        sources, clips, _ = curate(listing, out, timeouts={"probe_s": 3})
        assert time.monotonic() - started < 45
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()
    rows = {name: sources.loc[f"{base}/{name}"] for name in names}
    assert rows["good.mp4"].status == "ok" and clips.keep.sum() == 1
    assert (rows["missing.mp4"].reason, rows["missing.mp4"].message) == ("unreadable", "HTTP 404 File not found")
    assert rows["stall.mp4"].reason == "timeout" and "within 3.0 s" in rows["stall.mp4"].message
    for name, target in (("to-file.mp4", f"file://{local_target}"), ("to-ftp.mp4", "ftp://127.0.0.1/x.mp4")):
        assert rows[name].reason == "unreadable"
        assert rows[name].message == f"a redirect to {target} was not followed (only http and https redirects are)"
    assert_clip_files_match(out, clips)


# -- 8. shards with hostile member names --------------------------------------------------------------------------
def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_shard_members_named_outside_the_folder_are_skipped_by_the_trainers_reader(tmp_path, monkeypatch, caplog):
    from shards.reader import iter_samples
    from train.data import ClipBatches, StreamSpec

    run = tmp_path / "run" / "inner"
    run.mkdir(parents=True)
    monkeypatch.chdir(run)  # a relative `../x` would land in tmp_path/run if anything extracted it
    absolute = Path("/tmp") / f"droplet-hostile-{uuid.uuid4().hex}"
    clip = good_video(tmp_path / "clip.mp4", frames=40, width=64, height=64).read_bytes()
    shard = tmp_path / "shard-000000.tar"
    with tarfile.open(shard, "w", format=tarfile.PAX_FORMAT) as tar:
        for key in ("../escape", str(absolute), "clip000", "sub/../../escape2"):
            meta = {"clip_id": key, "num_frames": 40, "fps": 25.0, "width": 64, "height": 64}
            _add(tar, f"{key}.mp4", clip)
            _add(tar, f"{key}.json", json.dumps(meta).encode())
            _add(tar, f"{key}.txt", b"A white square slides to the right.")
        link = tarfile.TarInfo("link.mp4")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    before = files_under(tmp_path)

    spec = StreamSpec(urls=[str(shard)], frame_counts=[9], token_budget=48, batch_size=1, shuffle_buffer=1,
                      resampled=False)
    dataset = ClipBatches(spec)
    with caplog.at_level(logging.WARNING):
        keys = [b["key"][0] for b in dataset if not b.get("skipped")]
        read = [s["__key__"] for s in iter_samples(shard)]
    assert keys == ["clip000"] and read == ["clip000"]
    assert dataset.skipped["unsafe_name"] == 9
    assert "skipped tar member '../escape.mp4': unsafe name (absolute or with ..)" in caplog.text
    assert f"skipped tar member '{absolute}.json'" in caplog.text
    assert files_under(tmp_path) == before
    assert not list(absolute.parent.glob(absolute.name + "*"))
