"""The OUT folder's paths (SPEC: OUT layout): the one place that names them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OutLayout:
    """Every path of one OUT folder. Curation writes the tables and clips, captioning the captions, the shard
    writer `shards/`; `_work/` holds the journals (commit files) each run resumes from."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    # --- curation -----------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def sources_parquet(self) -> Path:
        return self.root / "sources.parquet"

    @property
    def scenes_parquet(self) -> Path:
        return self.root / "scenes.parquet"

    @property
    def clips_parquet(self) -> Path:
        return self.root / "clips.parquet"

    @property
    def clips_dir(self) -> Path:
        return self.root / "clips"

    def clip_file(self, clip_id: str) -> Path:
        return self.clips_dir / f"{clip_id}.mp4"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def curate_log(self) -> Path:
        return self.root / "curate.log"

    @property
    def work(self) -> Path:
        return self.root / "_work"

    # --- captioning ---------------------------------------------------------------------------------
    @property
    def caption_config(self) -> Path:
        return self.root / "caption_config.yaml"

    @property
    def captions_parquet(self) -> Path:
        return self.root / "captions.parquet"

    @property
    def caption_batches(self) -> Path:
        return self.work / "captions"

    # --- shards -------------------------------------------------------------------------------------
    @property
    def shards_dir(self) -> Path:
        return self.root / "shards"
