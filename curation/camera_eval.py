"""Scoring the camera-motion labeller against a hand-labelled reference of real shots.

The reference (`tests/data/real_camera_reference.json`, procedure in the `.md` beside it) names each video
by the installed package that ships it and the file inside it, so no video is copied into the repository.
Each source is decoded once (`analyze_source`, the pipeline's one pass); each shot is then labelled the way
the pipeline labels a clip (`clips.plan_clip` on the shot's frames, trimmed like a scene) and compared with
the label judged by eye. A prediction is right when it is the reference label or one of the shot's accepted
alternatives; a paper class is right when it is the class of one of those.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from curation.analyze import SourceAnalysis, analyze_source
from curation.camera import LAYER_KEYS
from curation.clips import SourceContext, plan_clip, source_context
from curation.config import CurateConfig
from curation.probe import probe_source
from shards.labels import PAPER_CLASS

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "real_camera_reference.json"


@dataclass(frozen=True)
class ReferenceShot:
    """One shot judged by eye: frames [start_frame, end_frame) of `source` in decode order."""

    id: str
    source: str
    start_frame: int
    end_frame: int
    label: str | None  # None: the camera's move could not be judged (not scored)
    confidence: str  # sure | unsure | unclear
    alternatives: tuple[str, ...] = ()
    note: str = ""

    @property
    def accepted(self) -> frozenset[str]:
        return frozenset(((self.label,) if self.label else ()) + self.alternatives)


@dataclass(frozen=True)
class Reference:
    sources: dict[str, dict]  # name -> package, member, sha256, num_frames, fps, ...
    shots: tuple[ReferenceShot, ...]


def load_reference(path: str | Path = REFERENCE) -> Reference:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    shots = tuple(ReferenceShot(**{**s, "alternatives": tuple(s.get("alternatives", ()))}) for s in data["shots"])
    unknown = sorted({s.source for s in shots} - set(data["sources"]))
    if unknown:
        raise ValueError(f"shots name sources the reference does not list: {unknown}")
    return Reference(sources=data["sources"], shots=shots)


def locate_source(entry: dict) -> Path:
    """The file `entry["member"]` installed by the package `entry["package"]`, checked against its sha256."""
    try:
        dist = metadata.distribution(entry["package"])
    except metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(f"{entry['package']} is not installed; it ships {entry['member']}") from exc
    path = Path(str(dist.locate_file(entry["member"])))
    if not path.is_file():
        raise FileNotFoundError(f"{entry['package']} {dist.version} does not ship {entry['member']}")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    if entry.get("sha256") and sha != entry["sha256"]:
        raise RuntimeError(f"{path} is not the file the reference was made on (sha256 {sha})")
    return path


@dataclass(frozen=True)
class LabelledSource:
    """One decoded source, ready to label any frame range of it like the pipeline labels a clip."""

    path: Path
    context: SourceContext  # the analysis, fade/dissolve mask, rate and config every clip is planned from

    def label(self, start: int, end: int) -> str:
        """The pipeline's `camera_motion` of frames [start, end), trimmed at both ends like a scene."""
        trim = self.context.cfg.clips.trim_frames
        a, b = (start + trim, end - trim) if end - start - 2 * trim >= 2 else (start, end)
        return plan_clip(self.context, a, b, None).row["camera_motion"]


def analyze_reference_source(entry: dict, cfg: CurateConfig, analysis: SourceAnalysis | None = None,
                             layers: bool = True) -> LabelledSource:
    """Probe and decode (once) the source of a reference entry; `analysis` reuses a decode already made.
    `layers=False` labels from the fitted similarity alone (the layer statistics dropped: no travel, orbit
    or tracking), for comparison."""
    path = locate_source(entry)
    probe = probe_source(str(path), cfg).to_row()
    if analysis is None:
        analysis = analyze_source(str(path), cfg.analysis, cfg.scenes, fps=probe["fps"])
    if analysis.num_frames != entry["num_frames"]:
        raise RuntimeError(f"{path} decodes to {analysis.num_frames} frames, the reference has {entry['num_frames']}")
    if not layers:
        kept = {k: v for k, v in analysis.features.items() if k not in LAYER_KEYS}
        analysis = dataclasses.replace(analysis, features=kept)
    return LabelledSource(path=path, context=source_context(analysis, probe, str(path), cfg))


@dataclass
class CameraScore:
    """Predictions against the reference (shots without a reference label are left out)."""

    rows: list[dict] = field(default_factory=list)  # id, truth, predicted, right, class_right, confidence

    def subset(self, confidence: str) -> CameraScore:
        return CameraScore([r for r in self.rows if r["confidence"] == confidence])

    @property
    def accuracy(self) -> float:
        return _share(r["right"] for r in self.rows)

    @property
    def class_accuracy(self) -> float:
        return _share(r["class_right"] for r in self.rows)

    def per_label(self) -> dict[str, dict]:
        """Reference label -> shots, right (label or accepted alternative), exact (the label itself), accuracy."""
        return _grouped(self.rows, "truth")

    def per_class(self) -> dict[str, dict]:
        """Paper class of the reference label -> shots, right (class of the label or of an alternative),
        exact (the class of the label itself), accuracy."""
        return _grouped([{**r, "right": r["class_right"], "exact": r["class_exact"]} for r in self.rows],
                        "truth_class")

    def confusion(self, key: str = "label") -> dict[str, dict[str, int]]:
        """Reference x predicted counts, by `label` or by paper `class`."""
        truth, pred = ("truth", "predicted") if key == "label" else ("truth_class", "predicted_class")
        out: dict[str, dict[str, int]] = {}
        for r in self.rows:
            row = out.setdefault(r[truth], {})
            row[r[pred]] = row.get(r[pred], 0) + 1
        return out


def _share(flags: Iterable[bool]) -> float:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else 0.0


def _grouped(rows: list[dict], key: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in rows:
        g = out.setdefault(r[key], {"shots": 0, "right": 0, "exact": 0})
        g["shots"] += 1
        g["right"] += int(r["right"])
        g["exact"] += int(r["exact"])
    for g in out.values():
        g["accuracy"] = g["right"] / g["shots"]
    return dict(sorted(out.items(), key=lambda kv: (-kv[1]["shots"], kv[0])))


def score_predictions(shots: Iterable[ReferenceShot], predicted: dict[str, str]) -> CameraScore:
    """Compare `predicted` (shot id -> label) with the reference labels of `shots`."""
    rows = []
    for shot in shots:
        if shot.label is None:
            continue
        guess = predicted[shot.id]
        classes = {PAPER_CLASS[label] for label in shot.accepted}
        rows.append({"id": shot.id, "truth": shot.label, "predicted": guess, "confidence": shot.confidence,
                     "right": guess in shot.accepted, "exact": guess == shot.label,
                     "truth_class": PAPER_CLASS[shot.label], "predicted_class": PAPER_CLASS[guess],
                     "class_right": PAPER_CLASS[guess] in classes,
                     "class_exact": PAPER_CLASS[guess] == PAPER_CLASS[shot.label]})
    return CameraScore(rows)


def decode_reference(reference: Reference, cfg: CurateConfig | None = None) -> dict[str, SourceAnalysis]:
    """One decode of every source that has shots (source name -> analysis), to label them more than once."""
    cfg = cfg or CurateConfig()
    used = {s.source for s in reference.shots}
    return {name: analyze_reference_source(entry, cfg).context.analysis
            for name, entry in reference.sources.items() if name in used}


def predict_reference(reference: Reference, cfg: CurateConfig | None = None,
                      analyses: dict[str, SourceAnalysis] | None = None, layers: bool = True) -> dict[str, str]:
    """Shot id -> the pipeline's label, one decode per source (`analyses`: decodes already made, by source
    name, made with `cfg`'s analysis settings; `layers`: see `analyze_reference_source`)."""
    cfg = cfg or CurateConfig()
    analyses = analyses or {}
    predicted = {}
    for name, entry in reference.sources.items():
        shots = [s for s in reference.shots if s.source == name]
        if not shots:
            continue
        source = analyze_reference_source(entry, cfg, analyses.get(name), layers)
        for shot in shots:
            predicted[shot.id] = source.label(shot.start_frame, shot.end_frame)
    return predicted


def evaluate_reference(reference: Reference | None = None, cfg: CurateConfig | None = None,
                       analyses: dict[str, SourceAnalysis] | None = None) -> CameraScore:
    """Run the labeller on every reference shot and score it."""
    reference = reference or load_reference()
    return score_predictions(reference.shots, predict_reference(reference, cfg, analyses))
