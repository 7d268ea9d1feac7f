"""The OUT folder's paths (data contract: OUT layout): the one place that names them."""

from __future__ import annotations

from pathlib import Path


class OutLayout:
    """Every path of one OUT folder. Curation writes the tables, clips, report and log; captioning the
    captions; the shard writer `shards/`. `work` (`_work/`) holds the journals each run resumes from."""

    def __init__(self, root: str | Path) -> None:
        self.root = root = Path(root)
        # curation
        self.config = root / "config.yaml"
        self.sources_parquet, self.scenes_parquet = root / "sources.parquet", root / "scenes.parquet"
        self.clips_parquet, self.clips_dir = root / "clips.parquet", root / "clips"
        self.report, self.curate_log = root / "report.html", root / "curate.log"
        self.work = root / "_work"
        self.dedup_dir = root / "dedup"  # the near-duplicate index: commit-<n>.npz, appended run after run
        self.embeddings_parquet, self.embedding_batches = root / "embeddings.parquet", self.work / "embeddings"
        self.decisions = self.work / "decisions.json"  # near-duplicate and selection decisions of the last run
        self.curate_lock = self.work / "curate.lock"  # one curate (or import-droplet) per OUT at a time
        # captioning
        self.caption_config, self.captions_parquet = root / "caption_config.yaml", root / "captions.parquet"
        self.caption_batches = self.work / "captions"
        self.caption_lock = self.work / "caption.lock"  # one caption per OUT at a time
        # shards
        self.shards_dir = root / "shards"

    def clip_file(self, clip_id: str) -> Path:
        return self.clips_dir / f"{clip_id}.mp4"
