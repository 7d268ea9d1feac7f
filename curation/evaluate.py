"""Scoring cut detection against a reference: greedy one-to-one matching within a tolerance."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CutScore:
    tp: int
    fp: int
    fn: int
    missed: list[int] = field(default_factory=list)
    spurious: list[int] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score_cuts(
    detected: list[int], reference: list[int], tolerance: int = 2, ignore: list[tuple[int, int]] = ()
) -> CutScore:
    """Match each detection to the nearest unmatched reference cut within `tolerance` frames.

    Detections inside an `ignore` span [start, end) (a gradual transition) count neither way.
    """
    detected = sorted(d for d in detected if not any(a <= d < b for a, b in ignore))
    free = sorted(reference)
    used: set[int] = set()
    spurious = []
    for d in detected:
        near = [c for c in free if abs(c - d) <= tolerance and c not in used]
        if near:
            used.add(min(near, key=lambda c: (abs(c - d), c)))
        else:
            spurious.append(d)
    missed = [c for c in free if c not in used]
    return CutScore(tp=len(used), fp=len(spurious), fn=len(missed), missed=missed, spurious=spurious)
