"""The typed rows that travel between curate's Ray Data stages, each carrying its stage's result:

    SourceTask -> Probe -> Analysis -> SourcePlan + ClipPlan (one per clip to write) -> ClipResult

A Ray Data row holds one of them, pickled, under `ROW`; `wrap` / `unwrap` convert. A failure is data:
`reason` + `message` on the row, never an exception that fails a block. The per-source commit is built by the
driver from a `SourcePlan` and its `ClipResult`s as they arrive; the files under `OUT/_work/` are the journal
each stage writes for a later run to resume from, not a channel between stages.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curation.analyze import SourceAnalysis
    from curation.extract import ClipSpec

ROW = "row"


def wrap(item: Any) -> dict[str, bytes]:
    """A typed row as a Ray Data row (pickled here, so Arrow stores plain binary and says nothing)."""
    return {ROW: pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)}


def unwrap(row: dict[str, Any]) -> Any:
    return pickle.loads(row[ROW])


@dataclass
class Failure:
    """Why a source or clip was rejected (a reason code and a message)."""

    reason: str
    message: str


@dataclass
class SourceTask:
    """A source to curate; `key` names its journal files (its URI hashed: the content hash is not known yet)."""

    key: str
    source: str


@dataclass
class Probe(SourceTask):
    """A probed source: its facts (`ProbeInfo.to_row()`), or why it is unusable."""

    info: dict | None = None
    failure: Failure | None = None


@dataclass
class Analysis(SourceTask):
    """The one decode pass of a source and its cuts (`cuts` None until a cut detector has run)."""

    info: dict
    analysis: SourceAnalysis | None = None
    cuts: list[int] | None = None
    failure: Failure | None = None


@dataclass
class SourcePlan(SourceTask):
    """Everything a source's commit needs but the clip files' facts: the source row's facts, its scenes, and
    every planned clip row (kept or not)."""

    info: dict
    decoded_frames: int = 0
    stopped_early: str | None = None
    scenes: list[dict] = field(default_factory=list)
    clips: list[dict] = field(default_factory=list)
    extract: dict[str, dict] = field(default_factory=dict)  # kept clip id -> its ClipSpec fields from the source
    done: dict[str, ClipResult] = field(default_factory=dict)  # clips a killed run wrote already (not journaled)
    failure: Failure | None = None

    def to_json(self) -> dict:
        return {"key": self.key, "source": self.source, "info": self.info, "decoded_frames": self.decoded_frames,
                "stopped_early": self.stopped_early, "scenes": self.scenes, "clips": self.clips,
                "extract": self.extract}

    @classmethod
    def from_json(cls, data: dict) -> SourcePlan:
        return cls(**data)


@dataclass
class ClipPlan:
    """One clip file to write."""

    key: str
    clip_id: str
    spec: ClipSpec


@dataclass
class ClipResult:
    """A clip file written (its facts: num_frames, fps, width, height, bytes), or why it could not be."""

    key: str
    clip_id: str
    facts: dict | None = None
    failure: Failure | None = None

    def to_json(self) -> dict:
        if self.failure is not None:
            return {"ok": False, "reason": self.failure.reason, "message": self.failure.message}
        return {"ok": True, **(self.facts or {})}

    @classmethod
    def from_json(cls, key: str, clip_id: str, data: dict) -> ClipResult:
        if data.get("ok"):
            return cls(key, clip_id, facts={k: v for k, v in data.items() if k != "ok"})
        return cls(key, clip_id, failure=Failure(data["reason"], data["message"]))
