"""Shard writer and reader (data contract: shards) on a small hand-made OUT: round trip through our reader, tarfile
and WebDataset; shard sizes; a kill mid-run and after a rename; append-only re-runs; byte-identical output."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shards import iter_samples, latest_captions, shard_urls, write_shards
from shards.index import INDEX_SCHEMA
from shards.schema import CLIP_SCHEMA
from shards.writer import sample_json

REPO = Path(__file__).resolve().parents[1]
SRC_A, SRC_B, SRC_EARLY = "0123456789abcdef", "fedcba9876543210", "0000000000000000"
CAPTION_COLUMNS = ["clip_id", "caption", "backend", "model", "prompt_version", "words", "qa_passed", "qa_reason",
                   "error"]


def clip_row(source_id: str, start: int, end: int, keep: bool = True, **over) -> dict:
    fps = 24.0
    row = {
        "clip_id": f"{source_id}-{start}-{end}", "source": f"/videos/{source_id}.mp4", "source_id": source_id,
        "start_frame": start, "end_frame": end, "start_s": start / fps, "end_s": end / fps, "fps": fps,
        "num_frames": end - start, "width": 64, "height": 48, "has_audio": False, "source_has_audio": True,
        "camera_motion": "pan_left", "camera_timeline": [
            {"start_s": start / fps, "end_s": end / fps, "label": "pan_left", "speed": 0.25, "confidence": 0.9}],
        "camera_motion_score": 0.25, "camera_jitter": 0.01, "object_motion_score": 0.1, "brightness": 0.5,
        "colors": ["red", "blue"], "keep": keep, "reject_reason": None if keep else "static",
        "reject_message": None, "file_bytes": None, "aesthetic": 5.5,
    }
    row.update(over)
    return row


def caption_row(cid: str, caption: str | None = "A camera pans left over a red wall.", **over) -> dict:
    row = {"clip_id": cid, "caption": caption, "backend": "grounded", "model": "tiny", "prompt_version": "v1",
           "words": None if caption is None else len(caption.split()), "qa_passed": caption is not None,
           "qa_reason": None, "repaired": False, "error": None}
    row.update(over)
    return row


def write_out(out: Path, clips: list[dict], captions: list[dict], sizes: dict[str, int], seed: int = 0) -> None:
    """Writes (or appends to) clips.parquet, captions.parquet and the mp4 files named in `sizes`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "clips").mkdir(exist_ok=True)
    schema = CLIP_SCHEMA.append(pa.field("aesthetic", pa.float64()))
    for name, rows, sch in (("clips", clips, schema), ("captions", captions, None)):
        path = out / f"{name}.parquet"
        old = pq.read_table(path).to_pylist() if path.exists() else []
        table = pa.Table.from_pylist(old + rows, schema=sch) if sch else pa.Table.from_pylist(old + rows)
        pq.write_table(table, path)
    rng = random.Random(seed)
    for cid, size in sizes.items():
        (out / "clips" / f"{cid}.mp4").write_bytes(rng.randbytes(size))


def make_out(out: Path) -> dict:
    """A fake OUT: 10 good clips + every special case. Returns the expected outcome."""
    rng = random.Random(1)
    good = [clip_row(SRC_A if i % 2 else SRC_B, 100 * i, 100 * i + 61 + i) for i in range(10)]
    good[3]["brightness"] = math.nan  # NaN must become null
    dup = clip_row(SRC_A, 5000, 5100)
    err_after_good = clip_row(SRC_A, 6000, 6100)
    err_only = clip_row(SRC_B, 7000, 7100)
    qa_fail = clip_row(SRC_B, 8000, 8100)
    no_caption = clip_row(SRC_A, 9000, 9100)
    not_kept = clip_row(SRC_B, 9500, 9600, keep=False)
    missing = clip_row(SRC_B, 9700, 9800)
    clips = [*good, dup, err_after_good, err_only, qa_fail, no_caption, not_kept, missing]
    rng.shuffle(clips)  # the writer sorts by clip_id, whatever the file order
    captions = [caption_row(c["clip_id"], f"Clip {c['clip_id']}: the camera pans left, café façade ☕.")
                for c in good]
    captions += [
        caption_row(dup["clip_id"], "old caption of the dup clip"),
        caption_row(err_after_good["clip_id"]),
        caption_row(err_only["clip_id"], None, error="caption_failed"),
        caption_row(qa_fail["clip_id"], "too short", qa_passed=False, qa_reason="too_few_words"),
        caption_row(not_kept["clip_id"]),
        caption_row(missing["clip_id"]),
    ]
    rng.shuffle(captions)
    captions += [caption_row(err_after_good["clip_id"], None, error="caption_failed"),
                 caption_row(dup["clip_id"], "new caption of the dup clip wins", prompt_version="v2", repaired=True)]
    sizes = {c["clip_id"]: rng.randrange(20_000, 70_000) for c in clips if c["keep"] and c is not missing}
    write_out(out, clips, captions, sizes)
    expected = sorted([c["clip_id"] for c in good] + [dup["clip_id"]])
    return {"expected": expected, "qa_fail": qa_fail["clip_id"], "dup": dup["clip_id"], "repaired": dup["clip_id"],
            "nan_clip": good[3]["clip_id"], "clips": {c["clip_id"]: c for c in clips}}


@pytest.fixture()
def fake_out(tmp_path: Path) -> tuple[Path, dict]:
    out = tmp_path / "out"
    return out, make_out(out)


def tar_members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def shard_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").glob("shard-*.tar"))}


def shard_stats(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in sorted((out / "shards").glob("shard-*.tar"))}


def read_index(out: Path) -> list[dict]:
    return pq.read_table(out / "shards" / "index.parquet").to_pylist()


def read_manifest(out: Path) -> dict:
    return json.loads((out / "shards" / "manifest.json").read_text(encoding="utf-8"))


def test_latest_captions_last_row_wins() -> None:
    table = pa.Table.from_pylist([caption_row("a", "one"), caption_row("b", "two"), caption_row("a", "three")])
    latest = latest_captions(table)
    assert latest["a"]["caption"] == "three" and latest["b"]["caption"] == "two"


def test_round_trip(fake_out: tuple[Path, dict]) -> None:
    import webdataset as wds

    out, exp = fake_out
    summary = write_shards(out, target_bytes=150_000)
    assert summary["samples"] == len(exp["expected"]) == 11
    assert summary["skipped"] == {"not_captioned": 3, "qa_failed": 1, "missing_file": 1}
    assert summary["not_kept"] == 1 and summary["new_shards"] >= 3
    urls = shard_urls(out)
    assert [Path(u).name for u in urls] == summary["shards"] == [f"shard-{i:06d}.tar" for i in range(len(urls))]
    assert shard_urls(out / "shards") == urls

    ours = list(iter_samples(urls))
    assert [s["__key__"] for s in ours] == exp["expected"]  # each once, in clip_id order
    by_key = {s["__key__"]: s for s in ours}
    for cid, s in by_key.items():
        assert s["mp4"] == (out / "clips" / f"{cid}.mp4").read_bytes()
        assert s["json"]["clip_id"] == cid
        clip = exp["clips"][cid]
        for col in ("source_id", "num_frames", "fps", "camera_timeline", "colors", "aesthetic", "keep"):
            assert s["json"][col] == clip[col]
        assert {"backend", "model", "prompt_version", "words", "qa_passed", "qa_reason"} <= set(s["json"])
        assert s["json"]["repaired"] is (cid == exp["repaired"])
        assert "caption" not in s["json"] and "error" not in s["json"]
    old_row = {k: v for k, v in caption_row(exp["dup"]).items() if k != "repaired"}  # made before the column
    assert json.loads(sample_json(exp["clips"][exp["dup"]], old_row))["repaired"] is False
    assert by_key[exp["dup"]]["txt"] == "new caption of the dup clip wins"
    assert by_key[exp["dup"]]["json"]["prompt_version"] == "v2"
    assert by_key[exp["nan_clip"]]["json"]["brightness"] is None
    assert "☕" in by_key[exp["expected"][0]]["txt"]

    # plain tarfile: members json, mp4, txt per sample; fixed headers; no PAX/GNU extended headers
    plain = []
    for url in urls:
        with tarfile.open(url) as tar:
            assert tar.pax_headers == {}
        members = tar_members(Path(url))
        assert [m.name.split(".", 1)[1] for m, _ in members] == ["json", "mp4", "txt"] * (len(members) // 3)
        raw = Path(url).read_bytes()
        for m, _ in members:
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)
            assert m.pax_headers == {} and m.type == tarfile.REGTYPE
            assert m.offset_data - m.offset == 512  # one header block: no extended header before it
            assert raw[m.offset + 257:m.offset + 265] == b"ustar\x0000"
        for i in range(0, len(members), 3):
            (mj, j), (_, v), (_, t) = members[i:i + 3]
            assert j == json.dumps(json.loads(j), sort_keys=True, separators=(",", ":"),
                                   ensure_ascii=False).encode("utf-8")
            plain.append({"__key__": mj.name.split(".")[0], "json": json.loads(j), "mp4": v, "txt": t.decode()})
    assert plain == [{k: s[k] for k in ("__key__", "json", "mp4", "txt")} for s in ours]

    wd = [dict(s) for s in wds.WebDataset(urls, shardshuffle=False)]
    assert [s["__key__"] for s in wd] == exp["expected"]
    for a, b in zip(wd, ours, strict=True):
        assert a["mp4"] == b["mp4"] and a["txt"].decode("utf-8") == b["txt"] and json.loads(a["json"]) == b["json"]

    # index: one row per sample, offsets point at the member bytes; metadata columns
    index = read_index(out)
    assert pq.read_schema(out / "shards" / "index.parquet").names == INDEX_SCHEMA.names
    assert [r["clip_id"] for r in index] == exp["expected"]
    for r in index:
        with open(out / "shards" / r["shard"], "rb") as f:
            got = {}
            for member in ("json", "mp4", "txt"):
                f.seek(r[f"{member}_offset"])
                got[member] = f.read(r[f"{member}_size"])
        s = by_key[r["clip_id"]]
        assert got["mp4"] == s["mp4"] and got["txt"].decode() == s["txt"] and json.loads(got["json"]) == s["json"]
        for col in ("num_frames", "fps", "width", "height", "camera_motion", "words", "qa_passed", "source_id",
                    "start_s", "end_s"):
            assert r[col] == s["json"][col]

    manifest = read_manifest(out)
    assert manifest["total_samples"] == 11
    assert [s["name"] for s in manifest["shards"]] == summary["shards"]
    for s in manifest["shards"]:
        data = (out / "shards" / s["name"]).read_bytes()
        assert s["sha256"] == hashlib.sha256(data).hexdigest() and s["bytes"] == len(data)
        assert s["samples"] == sum(r["shard"] == s["name"] for r in index)
    text = (out / "shards" / "manifest.json").read_text()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def test_target_size_and_qa_option(fake_out: tuple[Path, dict]) -> None:
    out, exp = fake_out
    big = clip_row(SRC_A, 20000, 20100)  # one sample larger than the target: a shard of its own
    write_out(out, [big], [caption_row(big["clip_id"])], {big["clip_id"]: 200_000})
    target = 100_000
    summary = write_shards(out, target_bytes=target, qa_passed_only=False)
    expected = sorted([*exp["expected"], exp["qa_fail"], big["clip_id"]])
    assert summary["samples"] == len(expected) and summary["skipped"]["qa_failed"] == 0
    manifest = read_manifest(out)
    names = [s["name"] for s in manifest["shards"]]
    assert names == [f"shard-{i:06d}.tar" for i in range(len(names))] and len(names) >= 5
    for s in manifest["shards"]:
        assert s["bytes"] == (out / "shards" / s["name"]).stat().st_size
        assert s["bytes"] <= target or s["samples"] == 1
    assert any(s["bytes"] > target for s in manifest["shards"])
    # greedy packing: each shard but the last would have passed the target with the next sample
    index = read_index(out)
    assert [r["clip_id"] for r in index] == expected
    for cur, nxt in zip(manifest["shards"], manifest["shards"][1:], strict=False):
        first_next = next(r for r in index if r["shard"] == nxt["name"])
        last = [r for r in index if r["shard"] == cur["name"]][-1]
        used = -(-(last["txt_offset"] + last["txt_size"]) // 512) * 512
        need = sum(512 + -(-first_next[f"{m}_size"] // 512) * 512 for m in ("json", "mp4", "txt"))
        assert -(-(used + need + 1024) // 10240) * 10240 > target


CHILD = """
import os, signal, sys, time
import shards.tario, shards.writer
mode, out, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "slow":
    add_file = shards.tario.TarWriter.add_file
    def slow(self, *a, **k):
        time.sleep(0.1)
        return add_file(self, *a, **k)
    shards.tario.TarWriter.add_file = slow
elif mode == "after_rename":
    save_state = shards.writer.save_state
    def save_or_die(shards_dir, state, fsync=True):
        if len(state.shards) == 2:  # the second tar is renamed; index and manifest are not yet written
            os.kill(os.getpid(), signal.SIGKILL)
        save_state(shards_dir, state, fsync)
    shards.writer.save_state = save_or_die
shards.writer.write_shards(out, target_bytes=target)
"""


def run_child(mode: str, out: Path, target: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CHILD, mode, str(out), str(target)], cwd=REPO, env=env)


def assert_same_output(a: Path, b: Path) -> None:
    assert shard_files(a) == shard_files(b)
    assert read_index(a) == read_index(b)
    assert read_manifest(a) == read_manifest(b)


def test_kill_while_writing_then_resume(fake_out: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = fake_out
    clean = tmp_path / "clean"
    shutil.copytree(out, clean)
    write_shards(clean, target_bytes=150_000)

    temp = out / "shards" / "shard-000001.tar.tmp"
    proc = run_child("slow", out, 150_000)
    deadline = time.time() + 120  # a bound on waiting, not a speed check: the child starts Python first
    while not (temp.exists() and temp.stat().st_size > 0):
        assert proc.poll() is None and time.time() < deadline, "the child ended before writing shard 1"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    assert temp.exists() and not (out / "shards" / "shard-000001.tar").exists()
    assert [p.name for p in (out / "shards").glob("shard-*.tar")] == ["shard-000000.tar"]
    before = shard_stats(out)

    summary = write_shards(out, target_bytes=150_000)
    assert summary["removed_temp"] == ["shard-000001.tar.tmp"] and summary["recovered_shards"] == []
    assert summary["shards"][0] == "shard-000001.tar"
    assert {k: v for k, v in shard_stats(out).items() if k in before} == before
    assert not list((out / "shards").glob("*.tmp"))
    assert_same_output(out, clean)


def test_kill_after_rename_and_lost_index(fake_out: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = fake_out
    clean = tmp_path / "clean"
    shutil.copytree(out, clean)
    write_shards(clean, target_bytes=150_000)

    proc = run_child("after_rename", out, 150_000)
    assert proc.wait(30) == -signal.SIGKILL
    assert read_manifest(out)["total_samples"] == len(read_index(out)) > 0
    assert [s["name"] for s in read_manifest(out)["shards"]] == ["shard-000000.tar"]
    before = shard_stats(out)
    assert list(before) == ["shard-000000.tar", "shard-000001.tar"]
    summary = write_shards(out, target_bytes=150_000)
    assert summary["recovered_shards"] == ["shard-000001.tar"] and summary["shards"][0] == "shard-000002.tar"
    assert {k: v for k, v in shard_stats(out).items() if k in before} == before  # read back, not rewritten
    assert_same_output(out, clean)

    # both derived files lost: rebuilt from the tars, nothing rewritten
    index, manifest, before = read_index(out), read_manifest(out), shard_stats(out)
    (out / "shards" / "index.parquet").unlink()
    (out / "shards" / "manifest.json").unlink()
    summary = write_shards(out, target_bytes=150_000)
    assert summary["new_shards"] == 0 and summary["recovered_shards"] == list(before)
    assert shard_stats(out) == before and read_index(out) == index and read_manifest(out) == manifest


def test_append_only(fake_out: tuple[Path, dict]) -> None:
    out, exp = fake_out
    first = write_shards(out, target_bytes=150_000)
    old_bytes, old_stats, old_index = shard_files(out), shard_stats(out), read_index(out)
    assert write_shards(out, target_bytes=150_000)["new_shards"] == 0  # nothing new: nothing written

    # new clips (some sort before every sharded clip) and a caption for a clip that had none
    new = [clip_row(SRC_EARLY, 10, 80), clip_row(SRC_EARLY, 100, 170), clip_row(SRC_B, 30000, 30070)]
    no_caption = f"{SRC_A}-9000-9100"
    write_out(out, new, [caption_row(c["clip_id"]) for c in new] + [caption_row(no_caption)],
              {c["clip_id"]: 30_000 for c in new}, seed=7)
    second = write_shards(out, target_bytes=150_000)
    n = first["new_shards"]
    assert second["shards"][0] == f"shard-{n:06d}.tar" and second["already_sharded"] == len(exp["expected"])
    assert second["samples"] == 4
    assert {k: v for k, v in shard_files(out).items() if k in old_bytes} == old_bytes
    assert {k: v for k, v in shard_stats(out).items() if k in old_stats} == old_stats
    index = read_index(out)
    assert index[: len(old_index)] == old_index
    assert [r["clip_id"] for r in index[len(old_index):]] == sorted([c["clip_id"] for c in new] + [no_caption])
    assert all(r["shard"] in second["shards"] for r in index[len(old_index):])
    assert read_manifest(out)["total_samples"] == len(index) == len(set(r["clip_id"] for r in index)) == 15
    assert [s["__key__"] for s in iter_samples(shard_urls(out))] == [r["clip_id"] for r in index]


def test_reproducible(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "elsewhere" / "b"
    make_out(a)
    make_out(b)
    write_shards(a, target_bytes=150_000)
    time.sleep(1.1)  # a different wall-clock second must not change a byte
    write_shards(b, target_bytes=150_000, fsync=False)
    assert len(shard_files(a)) >= 3
    assert_same_output(a, b)


def test_no_clips_table(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="clips.parquet"):
        write_shards(tmp_path)


def test_guards(fake_out: tuple[Path, dict], tmp_path: Path) -> None:
    import fcntl

    from shards.tario import TarWriter

    out, _ = fake_out
    (out / "shards").mkdir()
    with open(out / "shards" / ".lock", "a") as held:  # another writer holds the folder
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(RuntimeError, match="another shard writer"):
            write_shards(out)
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"x" * 1000)
    writer = TarWriter(tmp_path / "t.tar.tmp")
    with pytest.raises(OSError, match="changed size"):
        writer.add_file("a.mp4", src, 999)
    writer.abort()
    assert not (tmp_path / "t.tar.tmp").exists()


def test_reader_through_fsspec(fake_out: tuple[Path, dict]) -> None:
    import fsspec

    out, exp = fake_out
    write_shards(out, target_bytes=150_000)
    fs = fsspec.filesystem("memory")
    for path in shard_urls(out):
        fs.pipe(f"/fake_out/shards/{Path(path).name}", Path(path).read_bytes())
    fs.pipe("/fake_out/shards/shard-000001.tar.tmp", b"partial")
    try:
        urls = shard_urls("memory://fake_out")
        assert [u.rsplit("/", 1)[1] for u in urls] == [Path(p).name for p in shard_urls(out)]
        remote = list(iter_samples(urls))
        local = list(iter_samples(shard_urls(out)))
        assert [s["__key__"] for s in remote] == exp["expected"]
        assert [(s["mp4"], s["txt"], s["json"]) for s in remote] == [(s["mp4"], s["txt"], s["json"]) for s in local]
    finally:
        fs.rm("/fake_out", recursive=True)
