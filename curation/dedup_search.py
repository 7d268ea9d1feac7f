"""Search structures of the near-duplicate index (curation/dedup.py): frame hashes within a Hamming radius
(numpy popcount, faiss IndexBinaryFlat, faiss IndexBinaryMultiHash) and embeddings above a cosine (numpy,
faiss IndexFlatIP, faiss IndexIVFFlat). Append-only; ids are clip ordinals in commit order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from curation.dedup import DedupConfig


class Grow:
    """An append-only numpy array with amortised growth."""

    def __init__(self, dtype: np.dtype | type, width: int | None = None) -> None:
        self.width = width
        self.data = np.zeros((1024,) if width is None else (1024, width), dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        n = len(values)
        if self.size == 0 and n > len(self.data) and values.dtype == self.data.dtype and values.flags.owndata:
            self.data, self.size = values, n  # a fresh array that fills an empty buffer is taken over, not copied
            return
        if self.size + n > len(self.data):
            cap = max(2 * len(self.data), self.size + n)
            shape = (cap,) if self.width is None else (cap, self.width)
            grown = np.zeros(shape, self.data.dtype)
            grown[:self.size] = self.data[:self.size]
            self.data = grown
        self.data[self.size:self.size + n] = values
        self.size += n

    @property
    def view(self) -> np.ndarray:
        return self.data[:self.size]


class HashSearch:
    """Every view hash of every indexed frame (frame-major: code c is view c % views of frame c // views) and each
    frame's clip ordinal. Radius search: numpy popcount, faiss IndexBinaryFlat (both exact), or faiss
    IndexBinaryMultiHash (64 // key_bits keys; finds the pairs of which some key is within `flips` bits)."""

    def __init__(self, views: int, key_bits: int = 16) -> None:
        self.views = views
        self.key_bits = key_bits
        self.codes = Grow(np.uint64)
        self.frame_owner = Grow(np.int32)
        self._faiss = None  # the faiss index in use, holding codes[:_faiss_size]
        self._faiss_size = 0

    def add(self, owners: np.ndarray, hashes: np.ndarray) -> None:
        """Frames (rows of `hashes`) of the clips `owners` (one ordinal per row)."""
        self.frame_owner.extend(owners)
        self.codes.extend(hashes.reshape(-1))

    def pairs(self, hashes: np.ndarray, bits: int, mode: str, flips: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(query frame, indexed frame) pairs that match: a whole-frame hash within `bits` of any view.
        `mode`: "numpy", "flat" or "multihash" (probing `flips` flipped bits per key)."""
        if len(hashes) == 0 or self.codes.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        flat = hashes.reshape(-1)
        if mode == "numpy":
            q, c = within(flat, self.codes.view, bits)
        else:
            index = self._faiss_index(mode)
            if mode == "multihash":
                index.nflip = flips
            lims, _, ids = index.range_search(as_bytes(flat), bits + 1)  # faiss: distance < radius
            q = np.repeat(np.arange(len(flat)), np.diff(lims.astype(np.int64)))
            c = ids.astype(np.int64)
        keep = (q % self.views == 0) | (c % self.views == 0)  # whole frame against any view, never crop-crop
        return q[keep] // self.views, c[keep] // self.views

    def _faiss_index(self, mode: str):  # noqa: ANN202 - a faiss index
        import faiss

        kind = faiss.IndexBinaryFlat if mode == "flat" else faiss.IndexBinaryMultiHash
        if not isinstance(self._faiss, kind):
            self._faiss = faiss.IndexBinaryFlat(64) if mode == "flat" else \
                faiss.IndexBinaryMultiHash(64, 64 // self.key_bits, self.key_bits)
            self._faiss_size = 0
        if self._faiss_size < self.codes.size:
            self._faiss.add(as_bytes(self.codes.view[self._faiss_size:]))
            self._faiss_size = self.codes.size
        return self._faiss


def within(queries: np.ndarray, codes: np.ndarray, bits: int, block: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Exact radius search by popcount: (query, code) index pairs at most `bits` apart, in blocks of about
    `block` comparisons."""
    qs, cs = [], []
    q_step = min(len(queries), 4096)
    c_step = max(1, block // q_step)
    for i in range(0, len(queries), q_step):
        for j in range(0, len(codes), c_step):
            qi, ci = np.nonzero(np.bitwise_count(queries[i:i + q_step, None] ^ codes[None, j:j + c_step]) <= bits)
            qs.append(qi + i)
            cs.append(ci + j)
    return np.concatenate(qs), np.concatenate(cs)


class EmbeddingSearch:
    """Unit embeddings with their clip ordinals; the clips at least `cosine` similar to a query.

    Exact: a numpy matrix product over float16 vectors (half the memory; cosines within about 1e-3). faiss: the
    vectors move into an IndexFlatIP (and out of numpy, so memory is held once), which becomes an IndexIVFFlat
    trained on the first clips when they pass `ivf_min_clips`."""

    def __init__(self, dim: int, config: DedupConfig) -> None:
        self.dim = dim
        self.config = config
        self.vectors = Grow(np.float16, dim)  # not yet in the faiss index
        self.owner = Grow(np.int64)  # every vector's clip ordinal (faiss ids are positions in this)
        self._faiss = None
        self._faiss_size = 0

    def add(self, ordinals: np.ndarray, vectors: np.ndarray) -> None:
        self.vectors.extend(vectors)
        self.owner.extend(ordinals)

    def similar(self, vectors: np.ndarray, use_faiss: bool) -> tuple[np.ndarray, np.ndarray]:
        """(query row, indexed clip ordinal) pairs with cosine >= the threshold."""
        threshold = self.config.embedding_cosine
        vectors = np.ascontiguousarray(vectors, np.float32)
        qs, rows = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        if use_faiss and self.vectors.size:
            self._to_faiss()
        if self._faiss is not None:
            lims, _, ids = self._faiss.range_search(vectors, threshold)
            qs.append(np.repeat(np.arange(len(vectors)), np.diff(lims.astype(np.int64))))
            rows.append(ids.astype(np.int64))
        stored = self.vectors.view  # not in faiss (yet)
        for j in range(0, len(stored), 65536):
            block = stored[j:j + 65536].astype(np.float32)
            for i in range(0, len(vectors), 1024):
                ri, qi = np.nonzero(block @ vectors[i:i + 1024].T >= threshold)
                qs.append(qi + i)
                rows.append(ri + j + self._faiss_size)
        return np.concatenate(qs), self.owner.view[np.concatenate(rows)]

    def _to_faiss(self) -> None:
        """Move the numpy vectors into the faiss index (switching to an inverted file past ivf_min_clips)."""
        import faiss

        total = self._faiss_size + self.vectors.size
        if self._faiss is None:
            self._faiss = faiss.IndexFlatIP(self.dim)
        if isinstance(self._faiss, faiss.IndexFlatIP) and total > self.config.ivf_min_clips:
            flat = self._faiss
            nlist = self.config.ivf_lists or int(min(65536, 4 * np.sqrt(total)))
            quantizer = faiss.IndexFlatIP(self.dim)
            ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            ivf.cp.seed = 1234
            ivf.cp.niter = 10  # enough to block near-duplicates (they sit far closer than any cell's size)
            stored = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * self.dim).reshape(flat.ntotal, self.dim) \
                if flat.ntotal else np.zeros((0, self.dim), np.float32)
            sample = 40 * nlist  # the first clips in commit order, 40 per list (faiss wants 39)
            ivf.train(np.concatenate([stored[:sample], self.vectors.view[:max(0, sample - len(stored))]])
                      .astype(np.float32))
            ivf.nprobe = self.config.ivf_nprobe
            add_chunks(ivf, stored)
            self._quantizer = quantizer  # the inverted file does not own its quantizer
            self._faiss = ivf
        add_chunks(self._faiss, self.vectors.view)
        self._faiss_size = total
        self.vectors = Grow(np.float16, self.dim)


def add_chunks(index, vectors: np.ndarray, chunk: int = 65536) -> None:  # noqa: ANN001 - a faiss index
    """Add vectors to a faiss index as float32, a chunk at a time (no float32 copy of them all)."""
    for i in range(0, len(vectors), chunk):
        index.add(np.ascontiguousarray(vectors[i:i + chunk], np.float32))


def as_bytes(hashes: np.ndarray) -> np.ndarray:
    """uint64 hashes as faiss binary codes (8 bytes each, most significant first)."""
    return np.ascontiguousarray(np.asarray(hashes, np.uint64).astype(">u8")).view(np.uint8).reshape(-1, 8)
