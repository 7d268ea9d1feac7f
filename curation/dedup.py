"""Near-duplicate clips: perceptual hashes of a few frames per clip, optional CLIP embeddings, and a
persistent index under OUT in which the first committed clip wins.

Signature of a clip: `frames` RGB frames taken at the centres of equal parts of the clip's frame count
(fractions (k + 0.5) / frames), so a copy at another frame rate or speed (which covers the same footage over its
whole length) is sampled at the same moments. Each frame gets 64-bit pHashes (imagehash) of several views: the
whole frame, then centre crops keeping `crops` of its width and height. Flat frames (black, one colour: their
pHash is one fixed value) are left out. Optionally one unit-norm embedding per clip.

Frames match when the whole-frame hash of one lies within `hash_bits` bits of any view of the other (so a copy
cropped by about 10% or 20% meets the original's matching crop view). Clip B duplicates clip A when at least
`min_frames` of B's frames match a frame of A **and** at least `min_frames` of A's frames match one of B's (a best
match in both directions, so neither temporal resampling nor one look-alike frame decides), or when their
embeddings' cosine similarity is at least `embedding_cosine`.

Order: a clip is judged against every clip indexed before it, and only clips judged unique enter the index, so
`duplicate_of` always names a kept clip and a clip once kept is never made a duplicate of a later one. `judge`
takes a batch and decides it in clip_id order after everything committed before; each `commit` appends one file
`OUT/dedup/commit-<n>.npz` (numbered, never rewritten), and loading replays them in number order. Judging the
clips of a whole run as one batch at its end (or committing sources in input order) makes the outcome
independent of worker timing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from curation.config_section import _Section
from curation.dedup_search import EmbeddingSearch, HashSearch

FORMAT_VERSION = 1
ID_BYTES = 64  # clip ids are stored as fixed-width bytes (`<16 hex>-<start>-<end>` is under 40)
_COMMIT = re.compile(r"^commit-(\d{8})\.npz$")


class DedupConfig(_Section):
    """Near-duplicate detection (reason `near_duplicate`, column `duplicate_of`)."""

    enabled: bool = Field(True, description="Look for near-duplicates among kept clips, within and across runs.")
    frames: int = Field(8, ge=1, le=64, description="Frames hashed per clip, at the centres of equal parts of it.")
    crops: tuple[float, ...] = Field(
        (0.9, 0.8), description="Centre crops hashed beside each whole frame (share of width and height kept): a "
        "copy cropped by about that much still matches."
    )
    hash_bits: int = Field(
        10, ge=0, le=31, description="Two frames match when the whole-frame pHash of one differs from any view's "
        "pHash of the other in at most this many bits (of 64)."
    )
    min_frames: int = Field(
        4, ge=1, description="A duplicate needs this many matched frames in each direction (each clip's frames "
        "having a match in the other)."
    )
    flat_std: float = Field(
        4.0, ge=0, description="Frames whose 32x32 grey image has a standard deviation below this (0-255) are not "
        "hashed (black or one-colour frames all share one pHash)."
    )
    embedding_cosine: float = Field(
        0.95, gt=0, le=1, description="Clip embeddings (when present) at least this similar mark a duplicate."
    )
    index: Literal["auto", "exact", "faiss"] = Field(
        "auto", description="`exact`: numpy (popcount, matrix product) over everything; `faiss`: faiss binary "
        "indexes for the hashes (see hash_exact_max_clips) and inner-product indexes for embeddings (see "
        "ivf_min_clips); `auto`: exact up to exact_max_clips, faiss beyond."
    )
    exact_max_clips: int = Field(2_000, ge=0, description="`auto` switches to faiss above this many indexed clips.")
    hash_exact_max_clips: int = Field(
        100_000, ge=0, description="faiss: hashes are compared with every indexed hash (IndexBinaryFlat, exact) up "
        "to this many indexed clips; beyond, multi-index hashing (IndexBinaryMultiHash) only compares frames that "
        "share a key up to hash_flips flipped bits."
    )
    hash_key_bits: int = Field(
        16, ge=8, le=32, description="Multi-index hashing: bits per key; the hash is split into 64 // this many keys "
        "(16: four keys). Longer keys make smaller buckets (faster at millions of clips) but fewer keys."
    )
    hash_flips: int = Field(
        0, ge=0, le=2, description="Multi-index hashing: flipped bits probed per key. With K keys, frames within "
        "K x (flips + 1) - 1 bits are always found (16-bit keys, 0 flips: 3 bits), farther ones when one key agrees; "
        "each flip costs about 20x."
    )
    ivf_min_clips: int = Field(
        100_000, ge=10_000, description="faiss: embeddings are searched exactly (IndexFlatIP) up to this many, "
        "through an inverted file (IndexIVFFlat, trained once on the first ones) beyond."
    )
    ivf_lists: int | None = Field(
        None, ge=1, description="Inverted-file lists (null: 4 x sqrt of the clips indexed when it is trained, faiss's "
        "rule of thumb; it is trained on the first 40 clips per list, so ivf_min_clips should be at least 40 x this)."
    )
    ivf_nprobe: int = Field(16, ge=1, description="Inverted-file lists searched per query.")

    @model_validator(mode="after")
    def _frames(self) -> DedupConfig:
        if self.min_frames > self.frames:
            raise ValueError("dedup.min_frames must be at most dedup.frames")
        if any(not 0.3 <= c < 1.0 for c in self.crops):
            raise ValueError("dedup.crops must lie in [0.3, 1)")
        return self

    @property
    def views(self) -> int:
        """Hashes per frame: the whole frame, then each crop."""
        return 1 + len(self.crops)


# --- frames and hashes ------------------------------------------------------------------------------------------
def sample_positions(num_frames: int, count: int) -> list[int]:
    """Indices of `count` frames at the centres of equal parts of `num_frames` (repeats when the clip is shorter)."""
    if num_frames <= 0:
        return []
    return [min(num_frames - 1, (2 * k + 1) * num_frames // (2 * count)) for k in range(count)]


def _frame_count(stream) -> int:  # noqa: ANN001 - a PyAV video stream
    """Frames in a stream: the container's count, else duration times rate (0: unknown)."""
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base and stream.average_rate:
        return int(round(float(stream.duration * stream.time_base * stream.average_rate)))
    return 0


def _rotate(rgb: np.ndarray, rotation: int) -> np.ndarray:
    turns = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _reduced_rgb(frame, max_side: int) -> np.ndarray:  # noqa: ANN001 - a PyAV VideoFrame
    """RGB of a frame with its long side at most `max_side`, display rotation applied."""
    w, h = frame.width, frame.height
    f = max(1.0, max(w, h) / max_side)
    rgb = frame.to_ndarray(format="rgb24", width=max(2, round(w / f)), height=max(2, round(h / f)))
    return _rotate(rgb, int(getattr(frame, "rotation", 0) or 0))


def _decode_at(path: str, positions: Sequence[int], max_side: int) -> tuple[list[np.ndarray], int]:
    """The frames at sorted `positions` (decode order) and the number of frames decoded."""
    import av

    wanted = sorted(set(positions))
    got: dict[int, np.ndarray] = {}
    count = 0
    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            count = i + 1
            if i in wanted:
                got[i] = _reduced_rgb(frame, max_side)
                if len(got) == len(wanted):
                    break
    return [got[p] for p in positions if p in got], count


def sample_clip_frames(path: str | os.PathLike, count: int, *, max_side: int = 256) -> list[np.ndarray]:
    """`count` RGB frames of a clip file at the centres of equal parts of it (see `sample_positions`), decoded in
    one pass and reduced to a long side of at most `max_side` (pHash looks at 32x32). A file whose header
    overstates its frame count is decoded a second time with the true count."""
    import av

    path = str(path)
    with av.open(path, metadata_errors="ignore") as container:
        total = _frame_count(container.streams.video[0])
    frames, decoded = _decode_at(path, sample_positions(total, count), max_side) if total else ([], 0)
    if len(frames) < count and decoded != total:  # the header's count was wrong (or missing): use the true one
        if not total:
            with av.open(path, metadata_errors="ignore") as container:
                decoded = sum(1 for _ in container.decode(video=0))
        frames, _ = _decode_at(path, sample_positions(decoded, count), max_side)
    return frames


def phash64(rgb: np.ndarray) -> int:
    """imagehash's pHash of an RGB frame as an unsigned 64-bit integer (bit 63 = the hash's first bit)."""
    import imagehash
    from PIL import Image

    bits = imagehash.phash(Image.fromarray(rgb)).hash.reshape(-1)
    return int(np.packbits(bits).view(">u8")[0])


def is_flat(rgb: np.ndarray, min_std: float) -> bool:
    """True when the 32x32 grey image that pHash sees has almost no contrast (its hash would say nothing)."""
    from PIL import Image

    grey = np.asarray(Image.fromarray(rgb).convert("L").resize((32, 32), Image.Resampling.LANCZOS), np.float32)
    return float(grey.std()) < min_std


def centre_crop(rgb: np.ndarray, keep: float) -> np.ndarray:
    """The centre of a frame keeping `keep` of its width and height."""
    h, w = rgb.shape[:2]
    ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(rgb[y:y + ch, x:x + cw])


def clip_hashes(frames: Iterable[np.ndarray], config: DedupConfig | None = None) -> np.ndarray:
    """pHashes (uint64) of the frames that are not flat: one row per frame, one column per view (the whole frame,
    then each of `config.crops`)."""
    config = config or DedupConfig()
    rows = [[phash64(f), *(phash64(centre_crop(f, keep)) for keep in config.crops)]
            for f in frames if not is_flat(f, config.flat_std)]
    return np.array(rows, dtype=np.uint64).reshape(len(rows), config.views)


def file_hashes(path: str | os.PathLike, config: DedupConfig | None = None) -> np.ndarray:
    """`clip_hashes` of a clip file's sampled frames."""
    config = config or DedupConfig()
    return clip_hashes(sample_clip_frames(path, config.frames), config)


def hash_distance(a: int | np.ndarray, b: int | np.ndarray) -> np.ndarray:
    """Hamming distances between 64-bit hashes (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))).astype(np.int64)


def hash_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The len(a) x len(b) matrix of Hamming distances between two lists of hashes."""
    return hash_distance(np.asarray(a, np.uint64).reshape(-1)[:, None], np.asarray(b, np.uint64).reshape(-1)[None, :])


def frame_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Frames of `a` x frames of `b`: the smallest distance between the whole-frame hash of one and any view of
    the other (rows of `clip_hashes`; a 1-D array is whole frames only)."""
    a, b = _rows(a), _rows(b)
    d = hash_distances(a[:, 0], b[:, 0])
    for v in range(1, b.shape[1]):
        d = np.minimum(d, hash_distances(a[:, 0], b[:, v]))
    for v in range(1, a.shape[1]):
        d = np.minimum(d, hash_distances(a[:, v], b[:, 0]))
    return d


def matched_frames(a: np.ndarray, b: np.ndarray, bits: int) -> tuple[int, int]:
    """How many frames of `a` match a frame of `b` within `bits` bits, and how many of `b` match one of `a`."""
    if len(a) == 0 or len(b) == 0:
        return 0, 0
    close = frame_distances(a, b) <= bits
    return int(close.any(axis=1).sum()), int(close.any(axis=0).sum())


def _rows(hashes: np.ndarray) -> np.ndarray:
    h = np.asarray(hashes, np.uint64)
    return h.reshape(-1, 1) if h.ndim == 1 else h


def unit(embedding: np.ndarray | Sequence[float]) -> np.ndarray:
    """An embedding as float32 of unit length (a zero vector stays zero)."""
    v = np.asarray(embedding, np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


# --- the index ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipSignature:
    """What dedup knows of a clip: its frame hashes and, when CLIP ran, its embedding."""

    clip_id: str
    hashes: np.ndarray
    embedding: np.ndarray | None = None


class DuplicateIndex:
    """The kept clips of an OUT, in commit order, and the decision taken for every clip judged.

    `root` (normally `OUT/dedup`) holds `commit-<n>.npz` files, one per `commit`, each holding the clips judged
    since the previous commit: clip_ids, duplicate_of ('' when kept), hashes and embeddings. None: in memory.
    Single writer: the process that commits clips (workers only compute signatures).
    """

    def __init__(self, root: str | os.PathLike | None = None, config: DedupConfig | None = None) -> None:
        self.root = Path(root) if root is not None else None
        self.config = config or DedupConfig()
        self.kept: list[str] = []  # ordinal -> clip_id, in commit order
        self.decisions: dict[str, str | None] = {}  # every judged clip -> the kept clip it duplicates, or None
        self._hashes = HashSearch(self.config.views, self.config.hash_key_bits)
        self._embeddings: EmbeddingSearch | None = None
        self._pending: list[tuple[ClipSignature, str | None]] = []
        if self.root is not None:
            for path in self.commit_files():
                self._replay(path)

    @classmethod
    def open(cls, out: str | os.PathLike, config: DedupConfig | None = None) -> DuplicateIndex:
        """The index of an OUT folder (`OUT/dedup/`), with every earlier commit loaded."""
        return cls(Path(out) / "dedup", config)

    def __len__(self) -> int:
        return len(self.kept)

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.decisions

    @property
    def use_faiss(self) -> bool:
        kind = self.config.index
        return kind == "faiss" or (kind == "auto" and len(self.kept) > self.config.exact_max_clips)

    @property
    def hash_search(self) -> str:
        """How hashes are searched now: "numpy", "flat" (faiss, exact) or "multihash" (faiss, fast)."""
        if not self.use_faiss:
            return "numpy"
        return "flat" if len(self.kept) <= self.config.hash_exact_max_clips else "multihash"

    # --- search ---------------------------------------------------------------------------------------------------
    def candidates(self, batch: Sequence[ClipSignature]) -> list[list[int]]:
        """For each signature, the ordinals of the indexed clips it duplicates, ascending (earliest committed
        first); one search for the whole batch."""
        cfg = self.config
        found: list[set[int]] = [set() for _ in batch]
        hashes = [self._check(sig.hashes) for sig in batch]
        judged = [i for i, h in enumerate(hashes) if len(h) >= cfg.min_frames]
        if judged and self._hashes.codes.size:
            rows = np.concatenate([hashes[i] for i in judged])
            row_clip = np.repeat(np.array(judged, np.int64), [len(hashes[i]) for i in judged])
            q, f = self._hashes.pairs(rows, cfg.hash_bits, self.hash_search, cfg.hash_flips)
            if len(q):
                clip, owner = row_clip[q], self._hashes.frame_owner.view[f]
                # per (query clip, indexed clip): distinct query frames and distinct indexed frames matched
                q_count = _distinct_count(clip, owner, q)
                f_count = _distinct_count(clip, owner, f)
                for (c, o), n in q_count.items():
                    if n >= cfg.min_frames and f_count[c, o] >= cfg.min_frames:
                        found[c].add(o)
        with_embedding = [i for i, sig in enumerate(batch) if sig.embedding is not None]
        if with_embedding and self._embeddings is not None:
            for start in range(0, len(with_embedding), 65536):
                part = with_embedding[start:start + 65536]
                vectors = np.stack([unit(batch[i].embedding) for i in part])
                q, owners = self._embeddings.similar(vectors, self.use_faiss)
                for qi, o in zip(q.tolist(), owners.tolist(), strict=True):
                    found[part[qi]].add(o)
        return [sorted(f) for f in found]

    def match(self, hashes: np.ndarray, embedding: np.ndarray | None = None) -> str | None:
        """The earliest committed clip that this signature duplicates, or None."""
        found = self.candidates([ClipSignature("", hashes, embedding)])[0]
        return self.kept[found[0]] if found else None

    # --- changes --------------------------------------------------------------------------------------------------
    def add(self, clip_id: str, hashes: np.ndarray, embedding: np.ndarray | None = None) -> None:
        """Index a kept clip now (searchable at once; written with the next `commit`)."""
        self.record(ClipSignature(clip_id, hashes, embedding), None)

    def judge(self, batch: Iterable[ClipSignature]) -> dict[str, str | None]:
        """Decide a batch in clip_id order: each clip against everything indexed before it (earlier commits,
        then the batch's earlier kept clips). Unique clips are indexed. A clip decided before keeps its decision.
        Returns clip_id -> duplicate_of (None: kept). Call `commit` to write the decisions.

        Two batched searches (the batch against the index, the batch against itself), then one pass in order:
        the same decisions as judging the clips one at a time."""
        out: dict[str, str | None] = {}
        fresh: list[ClipSignature] = []
        for sig in sorted(batch, key=lambda s: s.clip_id):
            if sig.clip_id in self.decisions:
                out[sig.clip_id] = self.decisions[sig.clip_id]
            elif not fresh or fresh[-1].clip_id != sig.clip_id:
                fresh.append(sig)
        fresh = [ClipSignature(s.clip_id, self._check(s.hashes), s.embedding) for s in fresh]
        before = self.candidates(fresh)
        among = DuplicateIndex(None, self.config)  # the batch's clips, ordinal = position in `fresh`
        among._index([(f"{i}", sig) for i, sig in enumerate(fresh)])
        within = among.candidates(fresh)
        del among
        kept: list[int] = []
        kept_set: set[int] = set()
        for i, sig in enumerate(fresh):
            if before[i]:
                duplicate_of = self.kept[before[i][0]]
            else:
                earlier = [j for j in within[i] if j < i and j in kept_set]
                duplicate_of = fresh[earlier[0]].clip_id if earlier else None
            if duplicate_of is None:
                kept.append(i)
                kept_set.add(i)
            self.decisions[sig.clip_id] = out[sig.clip_id] = duplicate_of
            self._pending.append((sig, duplicate_of))
        self._index([(fresh[i].clip_id, fresh[i]) for i in kept])
        return out

    def commit(self) -> Path | None:
        """Append the decisions taken since the last commit as the next `commit-<n>.npz`; its path (None when
        there was nothing to write or the index lives in memory)."""
        pending, self._pending = self._pending, []
        if not pending or self.root is None:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        arrays = _pack(pending, self._embeddings.dim if self._embeddings else None, self.config.views)
        tmp = self.root / f".commit.tmp-{os.getpid()}"
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            while True:  # link, not rename: an existing commit file is never replaced
                path = self.root / f"commit-{self._next_number():08d}.npz"
                try:
                    os.link(tmp, path)
                    return path
                except FileExistsError:
                    continue
        finally:
            tmp.unlink(missing_ok=True)

    def commit_files(self) -> list[Path]:
        if self.root is None or not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if _COMMIT.match(p.name))

    # --- files ------------------------------------------------------------------------------------------------
    def _next_number(self) -> int:
        files = self.commit_files()
        return int(_COMMIT.match(files[-1].name).group(1)) + 1 if files else 1

    def record(self, sig: ClipSignature, duplicate_of: str | None, *, pending: bool = True) -> None:
        """Record a decision as given (kept when `duplicate_of` is None: then indexed), without judging."""
        if sig.clip_id in self.decisions:
            raise ValueError(f"clip {sig.clip_id} was already judged")
        sig = ClipSignature(sig.clip_id, self._check(sig.hashes), sig.embedding)
        self.decisions[sig.clip_id] = duplicate_of
        if pending:
            self._pending.append((sig, duplicate_of))
        if duplicate_of is None:
            self._index([(sig.clip_id, sig)])

    def _index(self, clips: list[tuple[str, ClipSignature]]) -> None:
        """Append kept clips (under the given ids) to the search structures, in order."""
        if not clips:
            return
        first = len(self.kept)
        self.kept.extend(clip_id for clip_id, _ in clips)
        hashes = [sig.hashes for _, sig in clips]
        counts = np.array([len(h) for h in hashes], np.int64)
        owners = np.repeat(np.arange(first, first + len(clips), dtype=np.int32), counts)
        self._hashes.add(owners, np.concatenate(hashes))
        with_embedding = [(first + i, sig) for i, (_, sig) in enumerate(clips) if sig.embedding is not None]
        if with_embedding:
            dim = np.size(with_embedding[0][1].embedding)
            if self._embeddings is None:
                self._embeddings = EmbeddingSearch(dim, self.config)
            vectors = np.empty((len(with_embedding), self._embeddings.dim), np.float16)
            for row, (_, sig) in enumerate(with_embedding):
                if np.size(sig.embedding) != self._embeddings.dim:
                    raise ValueError(f"embedding of {sig.clip_id} has {np.size(sig.embedding)} dimensions, the "
                                     f"index {self._embeddings.dim}")
                vectors[row] = unit(sig.embedding)
            self._embeddings.add(np.array([o for o, _ in with_embedding], np.int64), vectors)

    def _check(self, hashes: np.ndarray) -> np.ndarray:
        """Hashes as rows of `config.views` columns (a 1-D array: whole frames only, not allowed with crops)."""
        h = _rows(hashes)
        if h.shape[1] != self.config.views:
            raise ValueError(f"hashes have {h.shape[1]} views per frame, dedup.crops asks for {self.config.views}")
        return h

    def _replay(self, path: Path) -> None:
        kept = []
        for sig, duplicate_of in _unpack(path):
            if sig.clip_id not in self.decisions:
                self.decisions[sig.clip_id] = duplicate_of
                if duplicate_of is None:
                    kept.append((sig.clip_id, ClipSignature(sig.clip_id, self._check(sig.hashes), sig.embedding)))
        self._index(kept)


def _distinct_count(a: np.ndarray, b: np.ndarray, members: np.ndarray) -> dict[tuple[int, int], int]:
    """Per (a, b) pair, how many distinct members it was seen with."""
    triples = np.unique(np.stack([a, b, members], axis=1), axis=0)
    keys, counts = np.unique(triples[:, :2], axis=0, return_counts=True)
    return {(int(x), int(y)): int(n) for (x, y), n in zip(keys, counts, strict=True)}


def _pack(pending: list[tuple[ClipSignature, str | None]], dim: int | None, views: int) -> dict[str, np.ndarray]:
    counts = np.array([len(s.hashes) for s, _ in pending], np.int64)
    arrays = {
        "version": np.array(FORMAT_VERSION),
        "clip_ids": np.array([s.clip_id.encode() for s, _ in pending], f"S{ID_BYTES}"),
        "duplicate_of": np.array([(d or "").encode() for _, d in pending], f"S{ID_BYTES}"),
        "hash_counts": counts,
        "hashes": np.concatenate([np.zeros((0, views), np.uint64), *(s.hashes for s, _ in pending)]),
    }
    with_embedding = [s.embedding is not None for s, _ in pending]
    if any(with_embedding):
        dim = dim or len(unit(next(s.embedding for s, _ in pending if s.embedding is not None)))
        emb = np.zeros((len(pending), dim), np.float16)
        for i, (s, _) in enumerate(pending):
            if s.embedding is not None:
                emb[i] = unit(s.embedding)
        arrays["has_embedding"] = np.array(with_embedding)
        arrays["embeddings"] = emb
    return arrays


def _unpack(path: Path) -> Iterator[tuple[ClipSignature, str | None]]:
    with np.load(path) as data:
        if int(data["version"]) != FORMAT_VERSION:
            raise ValueError(f"{path}: dedup index format {int(data['version'])}, this version reads "
                             f"{FORMAT_VERSION}")
        ids, dups = data["clip_ids"], data["duplicate_of"]
        counts, hashes = data["hash_counts"], data["hashes"]
        has = data["has_embedding"] if "has_embedding" in data else np.zeros(len(ids), bool)
        emb = data["embeddings"] if "embeddings" in data else None
    starts = np.concatenate([[0], np.cumsum(counts)])
    for i, clip_id in enumerate(ids):
        vector = emb[i].astype(np.float32) if has[i] else None
        yield (ClipSignature(clip_id.decode(), hashes[starts[i]:starts[i + 1]], vector),
               dups[i].decode() or None)


def rebuild_index(out: str | os.PathLike, clips: Iterable[tuple[str, str | None]],
                  config: DedupConfig | None = None,
                  embeddings: dict[str, np.ndarray] | None = None) -> DuplicateIndex:
    """Bring `OUT/dedup` up to date with decisions already recorded elsewhere (clips.parquet, the journal):
    `clips` are (clip_id, duplicate_of) of kept or near-duplicate clips in commit order (clip_id order when it is
    unknown). Clips the index lacks are recorded as given, the kept ones hashed from `OUT/clips/<clip_id>.mp4`;
    then one commit. Safe to run on a complete, partial or missing index."""
    config = config or DedupConfig()
    index = DuplicateIndex.open(out, config)
    clips_dir = Path(out) / "clips"
    for clip_id, duplicate_of in clips:
        if clip_id in index:
            continue
        hashes = np.zeros((0, config.views), np.uint64)
        if duplicate_of is None:
            hashes = file_hashes(clips_dir / f"{clip_id}.mp4", config)
        embedding = (embeddings or {}).get(clip_id)
        index.record(ClipSignature(clip_id, hashes, embedding), duplicate_of)
    index.commit()
    return index
