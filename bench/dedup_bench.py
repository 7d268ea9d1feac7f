"""Near-duplicate detection benchmark (curation/dedup.py): how far apart copies and distinct clips are, and what
the index costs at scale.

    python bench/dedup_bench.py sample OUT [--work DIR]
        OUT: a curated OUT (e.g. `droplet sample-data S && droplet curate S OUT`). Each kept clip gets the copies of
        droplet/sample_data/copies.py (re-encode, 10% centre crop, half size, 30 fps, 2x speed) plus 15% and 20%
        crops;
        prints per-frame pHash distances and, per pair of clips, D_k: the smallest `hash_bits` at which the pair
        is a duplicate under the rule (k = min_frames matched frames each way). Copies must sit at or below the
        threshold, distinct clips above it.
    python bench/dedup_bench.py scale [--sizes 100000 1000000] [--dim 512] [--frames 8] [--queries 200]
        Random 64-bit frame hashes and random unit embeddings, 1% planted near copies: the time to dedup all N
        (one `judge` into an empty index, the fast faiss paths; hashes up to --judge-hashes-max), copies found,
        clips wrongly flagged, the time of one more query against the N (fast and exact searches), and peak
        resident memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation.dedup import ClipSignature, DedupConfig, DuplicateIndex, file_hashes, frame_distances  # noqa: E402
from droplet.sample_data.copies import COPIES, write_copy  # noqa: E402

KINDS = {**COPIES, "crop15": {"keep": 0.85}, "crop20": {"keep": 0.8}}


def rss_gb() -> float:
    """Peak resident memory of this process so far (GiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# --- sample ---------------------------------------------------------------------------------------------------
def best_match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each frame of `a`, the distance to the closest frame of `b` (whole frame against any view)."""
    return frame_distances(a, b).min(axis=1) if len(a) and len(b) else np.zeros(0, np.int64)


def rule_distance(a: np.ndarray, b: np.ndarray, k: int) -> int:
    """The smallest hash_bits at which `a` and `b` have k matched frames each way (99: never)."""
    if len(a) < k or len(b) < k:
        return 99
    return int(max(np.sort(best_match(a, b))[k - 1], np.sort(best_match(b, a))[k - 1]))


def pct(values: list[int] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def run_sample(out: Path, work: Path, config: DedupConfig) -> None:
    import pyarrow.parquet as pq

    clips = pq.read_table(out / "clips.parquet", columns=["clip_id", "source", "keep"]).to_pandas()
    clips = clips[clips["keep"]].sort_values("clip_id")
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    original: dict[str, np.ndarray] = {}
    copies: dict[str, dict[str, np.ndarray]] = {kind: {} for kind in KINDS}
    for clip_id in clips["clip_id"]:
        path = out / "clips" / f"{clip_id}.mp4"
        original[clip_id] = file_hashes(path, config)
        for kind, params in KINDS.items():
            dst = work / f"{clip_id}.{kind}.mp4"
            if not dst.exists():
                write_copy(path, dst, **params)
            copies[kind][clip_id] = file_hashes(dst, config)
    print(f"{len(original)} kept clips x {len(KINDS)} copies hashed in {time.perf_counter() - started:.0f} s "
          f"({config.frames} frames per clip, k = {config.min_frames})")
    ids = list(original)
    source = dict(zip(clips["clip_id"], clips["source"], strict=True))
    k = config.min_frames

    print("\nduplicates (copy vs its original)")
    print(f"{'copy':10s} {'frame d p50':>11s} {'p90':>4s} {'max':>4s} | {'D_k p50':>7s} {'max':>4s} "
          f"{'found':>6s}")
    for kind in KINDS:
        frame_d = np.concatenate([best_match(copies[kind][c], original[c]) for c in ids])
        dk = [rule_distance(copies[kind][c], original[c], k) for c in ids]
        found = sum(d <= config.hash_bits for d in dk)
        print(f"{kind:10s} {pct(frame_d, 50):11.0f} {pct(frame_d, 90):4.0f} {frame_d.max():4d} | "
              f"{pct(dk, 50):7.0f} {max(dk):4d} {found:3d}/{len(ids)}")

    print("\ndistinct clips (every pair of kept clips; and each copy against the other originals)")
    pairs = []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            pairs.append((rule_distance(original[a], original[b], k), a, b, "original"))
        for b in ids:
            if b != a:
                pairs.extend((rule_distance(copies[kind][a], original[b], k), f"{a}.{kind}", b, kind)
                             for kind in KINDS)
    frame_d = np.concatenate([best_match(original[a], original[b]) for i, a in enumerate(ids) for b in ids[i + 1:]])
    dks = [p[0] for p in pairs if p[0] < 99]
    flagged = [p for p in pairs if p[0] <= config.hash_bits]
    print(f"pairs {len(pairs)} (judgeable {len(dks)}); frame best-match distance min {frame_d.min()} "
          f"p1 {pct(frame_d, 1):.0f} p50 {pct(frame_d, 50):.0f}; D_k min {min(dks)} p1 {pct(dks, 1):.0f} "
          f"p5 {pct(dks, 5):.0f} p50 {pct(dks, 50):.0f}; flagged at hash_bits={config.hash_bits}: {len(flagged)}")
    print("closest distinct pairs:")
    for d, a, b, _ in sorted(pairs)[:12]:
        sa, sb = source[a.split(".")[0]], source[b]
        print(f"  D_k={d:2d}  {a} ({Path(sa).parent.name}/{Path(sa).name})  vs  {b} "
              f"({Path(sb).parent.name}/{Path(sb).name})")
    cross = [p for p in pairs if source[p[1].split(".")[0]] != source[p[2]]]
    d, a, b, _ = min(cross)
    print(f"closest pair from different sources: D_k={d} {a} ({Path(source[a.split('.')[0]]).name}) vs {b} "
          f"({Path(source[b]).name})")
    print("\nthe index itself: originals judged first (one batch), then every copy (one batch)")
    paths = {"numpy (exact)": {"index": "exact"}, "faiss flat (exact)": {"index": "faiss"},
             "faiss multi-index hashing": {"index": "faiss", "hash_exact_max_clips": 0},
             "faiss multi-index 21-bit": {"index": "faiss", "hash_exact_max_clips": 0, "hash_key_bits": 21}}
    for label, update in paths.items():
        index = DuplicateIndex(None, config.model_copy(update=update))
        flagged = sum(d is not None for d in index.judge(ClipSignature(c, original[c]) for c in ids).values())
        decided = index.judge(ClipSignature(f"{c}.{kind}", copies[kind][c]) for kind in KINDS for c in ids)
        found = {kind: sum(decided[f"{c}.{kind}"] == c for c in ids) for kind in KINDS}
        print(f"  {label:26s} originals flagged {flagged}; copies found " + " ".join(f"{k} {n}/{len(ids)}"
                                                                               for k, n in found.items()))
    no_hash = [c for c in ids if len(original[c]) < k]
    print(f"clips with fewer than {k} hashable (non-flat) frames: {len(no_hash)} {no_hash[:5]}")


# --- scale ----------------------------------------------------------------------------------------------------
def random_hashes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 2**64 - 1, shape, dtype=np.uint64, endpoint=True)


def flip_bits(rng: np.random.Generator, hashes: np.ndarray, bits: int) -> np.ndarray:
    """Each hash with `bits` random bits flipped."""
    positions = rng.random((hashes.size, 64)).argsort(axis=1)[:, :bits].astype(np.uint64)
    masks = np.bitwise_or.reduce(np.left_shift(np.uint64(1), positions), axis=1)
    return hashes ^ masks.reshape(hashes.shape)


def planted(rng: np.random.Generator, n: int, share: float = 0.01) -> dict[int, int]:
    """copy -> original: the last `share` of the clips copy distinct clips among the first ones."""
    m = max(1, int(n * share))
    originals = rng.choice(n - m, m, replace=False)
    return {n - m + i: int(o) for i, o in enumerate(originals)}


def clip_id(i: int) -> str:
    return f"c{i:09d}"


def judge_all(sigs: list[ClipSignature], copies: dict[int, int], config: DedupConfig) -> dict:
    """One `judge` of every clip into an empty index: seconds, planted copies found, other clips flagged."""
    index = DuplicateIndex(None, config)
    t0 = time.perf_counter()
    decided = index.judge(sigs)
    seconds = time.perf_counter() - t0
    found = sum(decided[clip_id(c)] == clip_id(o) for c, o in copies.items())
    false = sum(d is not None for k, d in decided.items() if int(k[1:]) not in copies)
    return {"index": index, "s": seconds, "found": found, "false": false, "rss": rss_gb()}


def query(index: DuplicateIndex, queries: list[tuple[str | None, ClipSignature]]) -> tuple[float, int, int]:
    """ms per query, planted queries found, fresh queries flagged."""
    index.match(queries[0][1].hashes, queries[0][1].embedding)  # brings the search structures up to date
    found = false = 0
    t0 = time.perf_counter()
    for want, q in queries:
        got = index.match(q.hashes, q.embedding)
        found += want is not None and got == want
        false += want is None and got is not None
    return (time.perf_counter() - t0) / len(queries) * 1e3, found, false


def row(what: str, n: int, judge_s: float | None, found: str, false: int, ms: float) -> None:
    judge = f"{judge_s:8.1f}" if judge_s is not None else f"{'~' + format(ms * n / 1e3, '.0f'):>8s}"
    print(f"{what:34s} {n:9d} {judge} {found:>11s} {false:6d} {ms:9.2f} {rss_gb():9.1f}")


def scale_hashes(n: int, rng: np.random.Generator, copies: dict[int, int], targets: np.ndarray,
                 base: DedupConfig, n_queries: int, judge_max: int) -> None:
    label = f"hashes, multi-index {base.hash_key_bits}-bit keys"
    frames, views = base.frames, base.views
    hashes = random_hashes(rng, (n, frames, views))
    for c, o in copies.items():
        hashes[c] = flip_bits(rng, hashes[o], 6)
    queries = [(clip_id(t), ClipSignature("q", flip_bits(rng, hashes[t], 6))) for t in targets]
    queries += [(None, ClipSignature("q", h)) for h in random_hashes(rng, (n_queries // 2, frames, views))]
    multihash = base.model_copy(update={"index": "faiss", "hash_exact_max_clips": 0})
    if n <= judge_max:
        r = judge_all([ClipSignature(clip_id(i), hashes[i]) for i in range(n)], copies, multihash)
        index = r["index"]
        ms, _, _ = query(index, queries)
        row(label, n, r["s"], f"{r['found']}/{len(copies)}", r["false"], ms)
    else:  # the clips loaded as a later run loads them, then queried
        index = DuplicateIndex(None, multihash)
        index._index([(clip_id(i), ClipSignature(clip_id(i), hashes[i])) for i in range(n)])
        ms, found, false = query(index, queries)
        row(label, n, None, f"{found}/{len(targets)}", false, ms)
    index.config = base.model_copy(update={"index": "faiss", "hash_exact_max_clips": 10 * n})  # searched exactly
    ms, found, false = query(index, queries[::10])
    row("hashes, exact (faiss flat)", n, None, f"{found}/{len(targets[::10])}", false, ms)


def scale_embeddings(n: int, rng: np.random.Generator, copies: dict[int, int], targets: np.ndarray,
                     base: DedupConfig, n_queries: int, dim: int) -> None:
    empty = np.zeros((0, base.views), np.uint64)
    vectors = np.empty((n, dim), np.float16)  # half the memory: the index keeps its own copy
    for i in range(0, n, 65536):
        part = rng.standard_normal((min(65536, n - i), dim), dtype=np.float32)
        vectors[i:i + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    noise = 0.25 / np.sqrt(dim)
    for c, o in copies.items():
        vectors[c] = vectors[o] + rng.standard_normal(dim, dtype=np.float32) * noise
    sigs = [ClipSignature(clip_id(i), empty, vectors[i]) for i in range(n)]
    queries = [(clip_id(t), ClipSignature("q", empty, vectors[t].astype(np.float32)
                                          + rng.standard_normal(dim, dtype=np.float32) * noise)) for t in targets]
    queries += [(None, ClipSignature("q", empty, v)) for v in rng.standard_normal((n_queries // 2, dim),
                                                                                  dtype=np.float32)]
    ivf = base.model_copy(update={"index": "faiss", "ivf_min_clips": min(n // 2, 100_000)})
    r = judge_all(sigs, copies, ivf)
    ms, _, _ = query(r["index"], queries)
    row("embeddings, IVFFlat", n, r["s"], f"{r['found']}/{len(copies)}", r["false"], ms)
    del r
    index = DuplicateIndex(None, base.model_copy(update={"index": "faiss", "ivf_min_clips": 10 * n}))
    index._index([(sig.clip_id, sig) for sig in sigs])
    ms, found, false = query(index, queries[::10])
    row("embeddings, exact (IndexFlatIP)", n, None, f"{found}/{len(targets[::10])}", false, ms)


def run_scale(sizes: list[int], dim: int, frames: int, n_queries: int, judge_max: int, parts: list[str],
              key_bits: int) -> None:
    import faiss

    base = DedupConfig(frames=frames, min_frames=min(4, frames), hash_key_bits=key_bits)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads; {frames} frames x {base.views} views "
          f"per clip, hash_bits {base.hash_bits}, min_frames {base.min_frames}, hash_flips {base.hash_flips}; "
          f"{dim}-d embeddings, cosine >= {base.embedding_cosine}, nprobe {base.ivf_nprobe}")
    print("Planted copies: every hash 6 random bits off / the embedding plus noise to cosine ~0.97.\n"
          "dedup s: one `judge` of all N clips (1% planted copies) into an empty index, the whole dedup of N "
          "clips; ~: N x ms/query, where the whole pass was not run.\n"
          "ms/query: one more clip against the N indexed (half planted copies, half new clips); found / false "
          "from the judge where it ran, else from the queries.")
    print(f"{'what':34s} {'N':>9s} {'dedup s':>8s} {'found':>11s} {'false':>6s} {'ms/query':>9s} {'peak GiB':>9s}")
    for n in sizes:
        rng = np.random.default_rng(n)
        copies = planted(rng, n)
        targets = rng.choice(n - len(copies), n_queries // 2, replace=False)
        if "hashes" in parts:
            scale_hashes(n, rng, copies, targets, base, n_queries, judge_max)
        if "embeddings" in parts:
            scale_embeddings(n, rng, copies, targets, base, n_queries, dim)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("sample")
    s.add_argument("out", type=Path)
    s.add_argument("--work", type=Path, default=None, help="where the copies go (kept: a re-run reuses them)")
    s.add_argument("--frames", type=int, default=DedupConfig().frames)
    s.add_argument("--min-frames", type=int, default=DedupConfig().min_frames)
    s.add_argument("--hash-bits", type=int, default=DedupConfig().hash_bits)
    c = sub.add_parser("scale")
    c.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    c.add_argument("--dim", type=int, default=512)
    c.add_argument("--frames", type=int, default=DedupConfig().frames)
    c.add_argument("--queries", type=int, default=200)
    c.add_argument("--hash-key-bits", type=int, default=DedupConfig().hash_key_bits)
    c.add_argument("--parts", nargs="+", choices=["hashes", "embeddings"], default=["hashes", "embeddings"])
    c.add_argument("--judge-hashes-max", type=int, default=100_000,
                   help="run the whole hash dedup up to this N; beyond, time queries against the N loaded")
    args = parser.parse_args()
    if args.mode == "sample":
        config = DedupConfig(frames=args.frames, min_frames=args.min_frames, hash_bits=args.hash_bits)
        work = args.work or Path(tempfile.mkdtemp(prefix="dedup-copies-"))
        run_sample(args.out, work, config)
    else:
        run_scale(args.sizes, args.dim, args.frames, args.queries, args.judge_hashes_max, args.parts,
                  args.hash_key_bits)


if __name__ == "__main__":
    main()
