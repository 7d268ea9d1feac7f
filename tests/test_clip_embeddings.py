"""CLIP clip embeddings, the LAION aesthetic heads, zero-shot scene tags and the embedding store, on a tiny
open_clip model built from a model config with random weights and saved to local files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from curation.aesthetic import AestheticConfig, AestheticHead, AestheticThresholds
from curation.clip_scoring import ClipScorer, skipped_stages
from curation.embedding_store import EmbeddingStore, load_embeddings, read_embeddings_parquet
from curation.embeddings import ClipEmbedder, EmbeddingConfig, mean_embedding, middle_indices
from curation.scene_tags import DEFAULT_VOCABULARY, SceneTagConfig, SceneTagger
from droplet.sample_data.encode import H264Writer

TINY = {"embed_dim": 32, "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
PREPROCESS = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
              "interpolation": "bicubic", "resize_mode": "shortest"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny CLIP from a model config, random weights: as an open_clip folder (config + safetensors) and as a
    state-dict file for a registered architecture name."""
    import open_clip
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    folder = root / "folder"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": PREPROCESS}))
    save_file(state, str(folder / "open_clip_model.safetensors"))
    configs = root / "configs"
    configs.mkdir()
    (configs / "TinyCLIP-test.json").write_text(json.dumps(TINY))
    (configs / "TinyCLIP-narrow.json").write_text(json.dumps({**TINY, "embed_dim": 16}))
    open_clip.add_model_config(configs)
    torch.save(state, root / "tiny.pth")
    return {"folder": folder, "file": root / "tiny.pth"}


@pytest.fixture(scope="module")
def embedder(tiny: dict[str, Path]) -> ClipEmbedder:
    return ClipEmbedder(EmbeddingConfig(weights=str(tiny["folder"])))


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames of 64x48 whose grey level tells the frame index (8 * index), plus a coloured square."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    with H264Writer(path, 64, 48, fps=25, crf=0) as writer:
        for i in range(30):
            frame = np.full((48, 64, 3), 8 * i, np.uint8)
            frame[10:30, 2 * i % 40:2 * i % 40 + 20] = (250, 40, 40)
            writer.write(frame)
    return path


def test_middle_indices_are_centres_of_equal_parts():
    assert middle_indices(30, 3) == [5, 15, 25]
    assert middle_indices(80, 3) == [13, 40, 66]
    assert middle_indices(2, 3) == [0, 1] and middle_indices(1, 3) == [0] and middle_indices(0, 3) == []
    assert middle_indices(6, 3) == [1, 3, 5]
    for n in range(7, 300):  # more than 2 x 3 frames: never the first or the last
        picked = middle_indices(n, 3)
        assert len(set(picked)) == 3 and 0 < picked[0] and picked[-1] < n - 1


def test_reads_the_middle_frames_of_a_clip(embedder: ClipEmbedder, clip_file: Path):
    indices, frames = embedder.read_frames(clip_file)
    assert indices == [5, 15, 25]
    assert [round(float(np.median(f[35:]))) for f in frames] == pytest.approx([40, 120, 200], abs=3)
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)


def test_clip_embedding_is_the_normalised_mean_of_normalised_frames(embedder: ClipEmbedder, clip_file: Path):
    _, frames = embedder.read_frames(clip_file)
    per_frame = embedder.embed_images(frames)
    assert per_frame.shape == (3, 32) and per_frame.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(per_frame, axis=1), 1, atol=1e-5)
    clip = embedder.embed(frames)
    expected = per_frame.mean(axis=0) / np.linalg.norm(per_frame.mean(axis=0))
    np.testing.assert_allclose(clip, expected, atol=1e-6)
    assert embedder.embed([frames[0]]) == pytest.approx(per_frame[0], abs=1e-6)  # a still clip: the frame itself
    [result] = embedder.embed_clips([clip_file])
    assert result.frames == (5, 15, 25)
    np.testing.assert_allclose(result.embedding, clip, atol=1e-5)
    with pytest.raises(ValueError, match="no frames"):
        embedder.embed([])


def test_the_same_weights_load_from_a_state_dict_file(tiny: dict[str, Path], embedder: ClipEmbedder,
                                                      clip_file: Path):
    from_file = ClipEmbedder(EmbeddingConfig(model="TinyCLIP-test", weights=str(tiny["file"])))
    _, frames = embedder.read_frames(clip_file)
    np.testing.assert_allclose(from_file.embed(frames), embedder.embed(frames), atol=1e-6)
    text = ["a photo of a dog."]
    np.testing.assert_allclose(from_file.embed_texts(text), embedder.embed_texts(text), atol=1e-6)


def test_weights_that_do_not_fit_or_do_not_exist(tiny: dict[str, Path], tmp_path: Path):
    with pytest.raises(ValueError, match="does not load as open_clip TinyCLIP-narrow"):
        ClipEmbedder(EmbeddingConfig(model="TinyCLIP-narrow", weights=str(tiny["file"])))  # another architecture
    with pytest.raises(FileNotFoundError, match="no such file"):
        ClipEmbedder(EmbeddingConfig(weights=str(tmp_path / "missing.safetensors")))
    with pytest.raises(ValueError, match="open_clip_config.json"):
        ClipEmbedder(EmbeddingConfig(weights=str(tmp_path)))
    with pytest.raises(ValueError, match="not set"):
        ClipEmbedder(EmbeddingConfig())


# --------------------------------------------------------------------------------------------- aesthetic heads
def _linear_head(path: Path, weight: np.ndarray, bias: float) -> Path:
    torch.save({"weight": torch.tensor(weight[None, :], dtype=torch.float32),
                "bias": torch.tensor([bias], dtype=torch.float32)}, path)
    return path


def _mlp_state(dim: int, seed: int) -> dict[str, np.ndarray]:
    """A state dict in the improved predictor's layout: layers.{0,2,4,6,7} of widths dim->1024->128->64->16->1."""
    rng = np.random.default_rng(seed)
    widths, state = (dim, 1024, 128, 64, 16, 1), {}
    for layer, (i, o) in zip((0, 2, 4, 6, 7), zip(widths, widths[1:], strict=False), strict=True):
        state[f"layers.{layer}.weight"] = rng.normal(0, 1 / np.sqrt(i), (o, i)).astype(np.float32)
        state[f"layers.{layer}.bias"] = rng.normal(0, 0.1, o).astype(np.float32)
    return state


def test_a_linear_head_with_known_weights_gives_the_exact_score(tmp_path: Path, embedder: ClipEmbedder,
                                                                clip_file: Path):
    weight = np.linspace(-1, 1, 32)
    head = AestheticHead.load(_linear_head(tmp_path / "head.pth", weight, 5.25), "linear")
    assert (head.kind, head.dim) == ("linear", 32)
    [clip] = embedder.embed_clips([clip_file])
    expected = float(np.dot(weight, clip.embedding.astype(np.float64))) + 5.25
    assert head.score(clip.embedding) == pytest.approx(expected, abs=1e-5)
    assert head.score(3.0 * clip.embedding) == pytest.approx(expected, abs=1e-5)  # normalised first
    unit = np.zeros(32, np.float32)
    unit[31] = 1
    assert head.score(unit) == pytest.approx(1 + 5.25, abs=1e-6)


def test_the_improved_mlp_layout_scores_as_its_layers_compute(tmp_path: Path):
    state = _mlp_state(32, seed=3)
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / "mlp.pth")
    head = AestheticHead.load(tmp_path / "mlp.pth", "improved_mlp")
    x = np.random.default_rng(4).normal(size=32)
    x /= np.linalg.norm(x)
    y = x
    for layer in (0, 2, 4, 6, 7):  # dropout is off in eval, and the published MLP has no activations
        y = state[f"layers.{layer}.weight"].astype(np.float64) @ y + state[f"layers.{layer}.bias"]
    assert head.score(x.astype(np.float32)) == pytest.approx(float(y[0]), abs=1e-4)
    assert head.scores(np.stack([x, x])).shape == (2,)


def test_heads_of_the_wrong_kind_or_size_say_so(tmp_path: Path):
    path = _linear_head(tmp_path / "b32.pth", np.ones(512), 0.0)
    with pytest.raises(ValueError, match=r"not an aesthetic head of kind improved_mlp.*found bias, weight"):
        AestheticHead.load(path, "improved_mlp")
    head = AestheticHead.load(path, "linear")
    with pytest.raises(ValueError, match="takes 512-dim embeddings .*ViT-B/32.* have 768"):
        head.score(np.ones(768, np.float32))
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a torch state dict"):
        AestheticHead.load(tmp_path / "junk.pth", "linear")


def test_aesthetic_config_threshold_per_head_kind():
    assert AestheticConfig().threshold == 4.5 and AestheticConfig().head is None
    cfg = AestheticConfig(kind="improved_mlp", thresholds=AestheticThresholds(linear=4.0, improved_mlp=5.5))
    assert cfg.threshold == 5.5
    assert AestheticConfig(thresholds={"linear": 3.0}).threshold == 3.0


# ------------------------------------------------------------------------------------------------ scene tags
def test_scene_tag_scores_are_a_softmax_per_group(embedder: ClipEmbedder, clip_file: Path):
    tagger = SceneTagger(SceneTagConfig(), embedder)
    [clip] = embedder.embed_clips([clip_file])
    scores = tagger.scores(clip.embedding)
    assert {g: set(t) for g, t in scores.items()} == {g: set(t) for g, t in DEFAULT_VOCABULARY.items()}
    for group in scores.values():
        assert all(0 <= s <= 1 for s in group.values()) and sum(group.values()) == pytest.approx(1, abs=1e-6)
    kept = tagger.tags(clip.embedding)
    assert kept == [{"tag": t, "score": s} for g, group in scores.items()
                    for t, s in sorted(group.items(), key=lambda kv: -kv[1]) if s >= SceneTagConfig().group_min(g)]
    assert {k["tag"] for k in kept} >= {max(scores[g], key=scores[g].get) for g in ("setting", "time")}


def test_a_tag_whose_text_is_the_picture_wins_its_group(embedder: ClipEmbedder):
    config = SceneTagConfig(vocabulary={"place": {"harbour": "a harbour", "desert": "a desert", "forest": "a forest"}},
                            templates=("a photo of {}.",), min_score=0.34)
    tagger = SceneTagger(config, embedder)
    for tag, phrase in config.vocabulary["place"].items():
        text = embedder.embed_texts([f"a photo of {phrase}."])[0]
        scores = tagger.scores(text)["place"]
        assert max(scores, key=scores.get) == tag
        assert tagger.tags(text)[0]["tag"] == tag


@pytest.mark.parametrize("update, words", [
    ({"vocabulary": {"solo": {"one": "one thing"}}}, "at least two tags"),
    ({"vocabulary": {"a": {"x": "x", "y": "y"}, "b": {"x": "x", "z": "z"}}}, "tag x is in two groups"),
    ({"min_scores": {"weather": 0.5}}, "weather is no vocabulary group"),
    ({"templates": ("a photo",)}, "holds {} exactly once"),
])
def test_scene_tag_config_is_checked(update: dict, words: str):
    with pytest.raises(ValueError, match=words):
        SceneTagConfig(**update)


# ------------------------------------------------------------------------------------- the scorer and skipping
def test_skipped_stages_name_what_is_missing():
    none = skipped_stages(EmbeddingConfig(), AestheticConfig(), SceneTagConfig())
    assert none == {"embeddings": "embeddings.weights is not set", "aesthetic": "aesthetic.head is not set",
                    "scene_tags": "it needs CLIP weights and embeddings.weights is not set"}
    head_only = skipped_stages(EmbeddingConfig(), AestheticConfig(head="h.pth"), SceneTagConfig(enabled=False))
    assert set(head_only) == {"embeddings", "aesthetic", "scene_tags"}
    assert "embeddings.weights" in head_only["aesthetic"]
    assert skipped_stages(EmbeddingConfig(weights="w"), AestheticConfig(head="h.pth"), SceneTagConfig()) == {}


def test_scorer_scores_clip_files_and_turns_a_broken_one_into_data(tmp_path: Path, tiny: dict[str, Path],
                                                                  clip_file: Path):
    weight = np.linspace(1, -1, 32)
    head = _linear_head(tmp_path / "head.pth", weight, 0.5)
    embeddings = EmbeddingConfig(weights=str(tiny["folder"]), frames=2)
    threshold = 0.5  # bias 0.5: scores on either side of it
    scorer = ClipScorer(embeddings, AestheticConfig(head=str(head), thresholds={"linear": threshold}),
                        SceneTagConfig())
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    good, bad = scorer.score_files([clip_file, broken])
    assert good.error is None and good.frames == (7, 22)
    assert good.aesthetic_score == pytest.approx(float(weight @ good.embedding) + 0.5, abs=1e-5)
    assert good.low_aesthetic == (good.aesthetic_score < threshold)
    assert good.reject_reason == ("low_aesthetic" if good.low_aesthetic else None)
    assert good.scene_tags and all(0 <= t["score"] <= 1 for t in good.scene_tags)
    assert bad.embedding is None and bad.aesthetic_score is None and bad.error.startswith("decode_error: ")
    wrong = _linear_head(tmp_path / "l14.pth", np.ones(768), 0.0)
    with pytest.raises(ValueError, match="takes 768-dim embeddings"):
        ClipScorer(embeddings, AestheticConfig(head=str(wrong)), SceneTagConfig())


# -------------------------------------------------------------------------------------------- embedding store
def test_store_appends_batches_resumes_and_derives_the_table(tmp_path: Path):
    store = EmbeddingStore(tmp_path)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 8)).astype(np.float32), rng.normal(size=(1, 8)).astype(np.float32)
    store.write_batch("src-b", ["c2", "c0"], a, meta={"model": "tiny", "frames": 3})
    store.write_batch("src-a", ["c1"], b, meta={"model": "tiny", "frames": 3})
    (store.dir / ".src-c.npz.tmp-123").write_bytes(b"torn")  # what a killed run leaves: never read
    assert store.done_clip_ids() == {"c0", "c1", "c2"}
    ids, matrix = store.load()
    assert ids == ["c0", "c1", "c2"]
    np.testing.assert_array_equal(matrix, np.stack([a[1], b[0], a[0]]))
    assert store.rebuild() == 3
    table = pq.read_table(store.parquet)
    assert table.schema.field("embedding").type.list_size == 8
    assert json.loads(table.schema.metadata[b"droplet.embeddings"]) == {"dim": 8, "frames": 3, "model": "tiny"}
    parquet_ids, parquet_matrix = read_embeddings_parquet(store.parquet)
    assert parquet_ids == ids and np.array_equal(parquet_matrix, matrix)
    assert load_embeddings(tmp_path)[0] == ids
    # a re-embedded clip: the newest batch wins; an OUT without its journal reads the table
    store.write_batch("src-z", ["c1"], np.ones((1, 8), np.float32))
    assert np.array_equal(load_embeddings(tmp_path)[1][1], np.ones(8, np.float32))
    for path in store.batch_files():
        path.unlink()
    assert load_embeddings(tmp_path)[0] == ids
    store.write_batch("other", ["c9"], np.ones((1, 4), np.float32))
    store.write_batch("again", ["c8"], np.ones((1, 8), np.float32))
    with pytest.raises(ValueError, match="different sizes"):
        store.load()
    with pytest.raises(ValueError, match="letters, digits"):
        store.batch_path("../x")


def test_merge_folds_one_clip_batches_into_their_source(tmp_path: Path):
    store = EmbeddingStore(tmp_path)
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(4, 8)).astype(np.float32)
    for cid, vector in zip(["c0", "c1", "c2"], vectors, strict=False):
        store.write_batch(cid, [cid], vector[None, :], meta={"model": "tiny"})
    assert store.merge("abc", ["c0", "c1", "gone"]) == 2
    assert sorted(p.name for p in store.batch_files()) == ["c2.npz", "src-abc.npz"]
    # a resumed run adds a re-embedded clip to the merged source: its newer vector wins
    store.write_batch("c1", ["c1"], vectors[3][None, :], meta={"model": "tiny"})
    assert store.merge("abc", ["c1"]) == 1 and store.merge("abc", ["c1"]) == 0
    ids, matrix, meta = store.read_batch(store.batch_path("src-abc"))
    assert ids == ["c0", "c1"] and np.array_equal(matrix, vectors[[0, 3]]) and meta == {"model": "tiny"}
    # one-clip batches left beside a committed source (killed between commit and merge) are swept up
    assert store.merge_committed({"def": {"clips": [{"clip_id": "c2"}]}, "abc": {"clips": []}}) == 1
    assert sorted(p.name for p in store.batch_files()) == ["src-abc.npz", "src-def.npz"]
    assert store.load()[0] == ["c0", "c1", "c2"]


def test_an_empty_store():
    ids, matrix = load_embeddings("/nonexistent-out")
    assert ids == [] and matrix.shape == (0, 0)
    assert mean_embedding(np.array([[3.0, 4.0]])) == pytest.approx([0.6, 0.8])


def test_weight_paths_are_checked_before_a_run(tiny: dict[str, Path], tmp_path: Path):
    from runtime.paths import MissingPath, require_local_paths

    require_local_paths(**EmbeddingConfig(weights=str(tiny["folder"])).local_paths())
    require_local_paths(**EmbeddingConfig(weights=str(tiny["file"])).local_paths())
    require_local_paths(**EmbeddingConfig().local_paths())
    require_local_paths(**AestheticConfig().local_paths())
    with pytest.raises(MissingPath, match=r"embeddings.weights .*missing.safetensors: no such file"):
        require_local_paths(**EmbeddingConfig(weights=str(tmp_path / "missing.safetensors")).local_paths())
    with pytest.raises(MissingPath, match="aesthetic.head .*: not a file"):
        require_local_paths(**AestheticConfig(head=str(tmp_path)).local_paths())
