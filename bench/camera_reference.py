"""Camera-motion labels on real footage: the pipeline's labeller against the hand-labelled reference
(`tests/data/real_camera_reference.json`, procedure in `real_camera_reference.md`), as markdown.

Prints the overall and per-confidence accuracy, the per-label and per-paper-class tables, both confusion
matrices (reference x predicted), the misses, and two comparisons on the same shots: the labeller from its
fitted similarity alone (no layer statistics) and the majority label (`static` everywhere). One decode per
source; about 15 s on 2 cores.

    python bench/camera_reference.py [--reference PATH] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation.camera_eval import (  # noqa: E402
    REFERENCE,
    CameraScore,
    decode_reference,
    load_reference,
    predict_reference,
    score_predictions,
)
from curation.config import CurateConfig  # noqa: E402
from shards.labels import CAMERA_LABELS, PAPER_CLASSES  # noqa: E402


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def summary(name: str, score: CameraScore) -> str:
    sure, unsure = score.subset("sure"), score.subset("unsure")
    right = sum(r["right"] for r in score.rows)
    return (f"| {name} | {right}/{len(score.rows)} = **{_pct(score.accuracy)}** | {_pct(score.class_accuracy)} | "
            f"{_pct(sure.accuracy)} ({len(sure.rows)}) | {_pct(unsure.accuracy)} ({len(unsure.rows)}) |")


def group_table(groups: dict[str, dict], what: str) -> list[str]:
    lines = [f"| {what} | shots | right (label or accepted alternative) | exact | accuracy |", "|---|---|---|---|---|"]
    for key, g in groups.items():
        lines.append(f"| `{key}` | {g['shots']} | {g['right']} | {g['exact']} | {_pct(g['accuracy'])} |")
    return lines


def confusion_table(matrix: dict[str, dict[str, int]], order: list[str]) -> list[str]:
    rows = [k for k in order if k in matrix]
    cols = [k for k in order if any(k in r for r in matrix.values())]
    lines = ["| reference \\ predicted | " + " | ".join(f"`{c}`" for c in cols) + " | shots |",
             "|---|" + "---|" * (len(cols) + 1)]
    for r in rows:
        cells = [str(matrix[r].get(c, "")) if c != r else f"**{matrix[r].get(c, 0)}**" for c in cols]
        lines.append(f"| `{r}` | " + " | ".join(cells) + f" | {sum(matrix[r].values())} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", default=str(REFERENCE))
    ap.add_argument("--json", help="also write every shot's reference and predicted labels here")
    args = ap.parse_args()

    started = time.time()
    cfg = CurateConfig()
    reference = load_reference(args.reference)
    analyses = decode_reference(reference, cfg)
    ours = score_predictions(reference.shots, predict_reference(reference, cfg, analyses))
    flat = score_predictions(reference.shots, predict_reference(reference, cfg, analyses, layers=False))
    majority = score_predictions(reference.shots, {s.id: "static" for s in reference.shots})
    seconds = time.time() - started

    unjudged = [s.id for s in reference.shots if s.label is None]
    out = [f"Reference: {len(reference.shots)} shots, {len(ours.rows)} scored ({len(unjudged)} left unjudged: "
           f"{', '.join(unjudged) or 'none'}); {seconds:.0f} s.", "",
           "| labeller | right | paper class right | sure shots | unsure shots |", "|---|---|---|---|---|",
           summary("ours (curation.camera)", ours), summary("ours, similarity only (no layer statistics)", flat),
           summary("majority label (`static` everywhere)", majority), "",
           "Per reference label (ours):", "", *group_table(ours.per_label(), "reference label"), "",
           "Per paper class (ours; right: the class of the label or of an accepted alternative):", "",
           *group_table(ours.per_class(), "paper class"), "",
           "Confusion matrix, labels (ours; rows: reference, columns: predicted; an off-diagonal cell can be an "
           "accepted alternative):", "", *confusion_table(ours.confusion("label"), list(CAMERA_LABELS)), "",
           "Confusion matrix, paper classes (ours):", "",
           *confusion_table(ours.confusion("class"), list(PAPER_CLASSES)), "", "Misses (ours):", ""]
    out += [f"- `{r['id']}` ({r['confidence']}): `{r['truth']}` -> `{r['predicted']}`"
            for r in ours.rows if not r["right"]]
    print("\n".join(out))
    if args.json:
        Path(args.json).write_text(json.dumps({"ours": ours.rows, "similarity_only": flat.rows}, indent=1))


if __name__ == "__main__":
    main()
