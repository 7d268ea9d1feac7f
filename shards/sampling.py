"""Adaptive equalization sampling and motion intensity M: the data contract's one function, in integers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameSample:
    """The frames to read from a clip of `num_frames` frames at `fps`, and its motion intensity."""

    indices: tuple[int, ...]
    window_start: int
    window_end: int  # inclusive
    motion: float

    @property
    def clip_n(self) -> int:
        return self.window_end - self.window_start + 1


def sampling_window(num_frames: int) -> tuple[int, int]:
    """Drop the first and last 10%: returns (a, b), both inclusive."""
    if num_frames < 1:
        raise ValueError("num_frames must be positive")
    return num_frames // 10, (9 * num_frames + 9) // 10 - 1


def sample_frames(num_frames: int, fps: float, n: int) -> FrameSample:
    """N indices spread uniformly over the trimmed window (round half up) and M = N * fps / clip_n."""
    if n < 2:
        raise ValueError("n must be at least 2")
    a, b = sampling_window(num_frames)
    clip_n = b - a + 1
    if n > clip_n:
        raise ValueError(f"cannot sample {n} frames from a window of {clip_n}")
    indices = tuple(a + (2 * k * (b - a) + n - 1) // (2 * (n - 1)) for k in range(n))
    return FrameSample(indices, a, b, n * fps / clip_n)


def largest_frame_count(num_frames: int, frame_counts: list[int]) -> int | None:
    """The largest configured N (of the form 4k+1) that fits the clip's window, or None."""
    a, b = sampling_window(num_frames)
    fitting = [n for n in frame_counts if n <= b - a + 1]
    return max(fitting) if fitting else None


def uniform_indices(num_frames: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over [0, num_frames), first and last included."""
    if num_frames <= 0:
        return []
    count = min(count, num_frames)
    if count == 1:
        return [num_frames // 2]
    return [round(i * (num_frames - 1) / (count - 1)) for i in range(count)]
