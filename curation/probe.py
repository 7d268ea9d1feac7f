"""Hash and probe one source with PyAV: identity, stream facts, and whether it is usable at all.

Runs in a child process (`curation.sandbox`). Counting frames demuxes packets without decoding them, which
also tells a variable frame rate (irregular timestamps) and a damaged tail (fewer packets than the header
promises). One frame is decoded, to know the stream decodes and how it is rotated; before it, the picture size
the container declares is checked against the limits (a header claiming 100000x100000 is rejected without
decoding anything). The file's size and modification time are kept (`mtime_ns`), so that a later stage can tell
that the file changed under it (`check_unchanged`: reason `changed`).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import av
import fsspec
import numpy as np

from curation import reasons
from curation.config import CurateConfig
from curation.media import file_stamp, is_local, open_container
from curation.reasons import Rejected
from shards.ids import source_id_from_stream


@dataclass
class ProbeInfo:
    """What a source is, as displayed (rotation applied)."""

    source_id: str
    file_bytes: int
    container: str
    codec: str
    pix_fmt: str
    width: int
    height: int
    rotation: int
    fps: float  # average rate: frames per second of timeline
    nominal_fps: float  # the stream's declared rate
    vfr: bool
    num_frames: int  # packets of the video stream (frames, for every common codec)
    duration_s: float
    has_audio: bool
    bit_rate: int
    warning: str | None = None
    mtime_ns: int | None = None  # a local file's modification time when it was hashed (None: remote)

    def to_row(self) -> dict:
        return asdict(self)


def hash_source(uri: str) -> tuple[str, int]:
    """(source_id, size in bytes) of a local path or fsspec URI."""
    try:
        with fsspec.open(uri, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            return source_id_from_stream(handle), size
    except Exception as exc:  # noqa: BLE001 - whatever stops the read (OS, HTTP, a redirect) makes it unreadable
        raise unreadable(exc) from None


def unreadable(exc: BaseException) -> Rejected:
    """`unreadable`, saying why: the HTTP status of a failed request, a redirect that was not followed (fsspec's
    HTTP client follows http(s) redirects only: never to a local file, ftp or another scheme), else the error."""
    seen = exc
    while seen is not None:
        status = getattr(seen, "status", None)
        if isinstance(status, int) and status >= 400:
            return Rejected(reasons.UNREADABLE, f"HTTP {status} {getattr(seen, 'message', '')}".rstrip())
        if "Redirect" in type(seen).__name__:
            return Rejected(reasons.UNREADABLE, f"a redirect to {seen} was not followed (only http and https "
                            "redirects are)")
        seen = seen.__cause__ or seen.__context__
    return Rejected(reasons.UNREADABLE, f"cannot read: {type(exc).__name__}: {exc}")


# FFmpeg refuses a picture size too large to allocate (and then reports the stream as 0x0); it says so in its log.
REFUSED_SIZE = re.compile(r"Picture size (\d+)x(\d+) is invalid")


def _open(uri: str) -> av.container.InputContainer:
    """Open with PyAV; the failure tells an mp4 without its index from something that is no video. A picture
    size FFmpeg refuses while opening (it then reports 0x0) is `too_large`, before any frame is decoded."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # only while opening: FFmpeg's log is off again for decoding
    try:
        with av.logging.Capture() as logs:
            container = _open_quietly(uri)
    finally:
        av.logging.set_level(level)
    for _, _, message in logs:
        if match := REFUSED_SIZE.search(message):
            container.close()
            raise Rejected(reasons.TOO_LARGE, f"the container declares a {match[1]}x{match[2]} picture, a size "
                           "FFmpeg refuses to decode; nothing was decoded")
    return container


def _open_quietly(uri: str) -> av.container.InputContainer:
    try:
        return open_container(uri)
    except av.error.InvalidDataError as exc:
        if _looks_like_cut_mp4(uri):  # not FFmpeg's "moov atom not found": it says that of a text file too
            raise Rejected(reasons.TRUNCATED, "an mp4/mov without its index (moov): cut short while written "
                           "or copied") from None
        raise Rejected(reasons.NOT_A_VIDEO, f"not a media file PyAV can read ({exc})") from None
    except av.error.FFmpegError as exc:
        raise Rejected(reasons.NOT_A_VIDEO, f"cannot open: {exc}") from None


def _looks_like_cut_mp4(uri: str) -> bool:
    """An ISO-BMFF file (an `ftyp` box up front) that PyAV cannot open has lost its index."""
    try:
        with fsspec.open(uri, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    return len(head) >= 8 and head[4:8] == b"ftyp"


def _packet_times(container: av.container.InputContainer, stream,
                  max_count: int) -> tuple[np.ndarray, int, str | None]:
    """Presentation times (stream time base) of every video packet, their count, and a demux error. Stops after
    `max_count` + 1 packets (the count then says the stream is over the limit)."""
    stamps: list[int] = []
    count = 0
    error = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            count += 1
            if count > max_count:
                break
            if packet.pts is not None:
                stamps.append(packet.pts)
    except av.error.FFmpegError as exc:
        error = f"demuxing stopped after {count} packets: {exc}"
    return np.sort(np.asarray(stamps, dtype=np.int64)), count, error


def _rate(stamps: np.ndarray, time_base: float, count: int, nominal: float) -> tuple[float, bool, float]:
    """(average fps, variable?, duration s) from sorted packet timestamps."""
    if len(stamps) < 2 or time_base <= 0:
        duration = count / nominal if nominal > 0 else 0.0
        return nominal, False, duration
    steps = np.diff(stamps).astype(np.float64) * time_base
    steps = steps[steps > 0]
    if len(steps) == 0:
        return nominal, False, 0.0
    typical = float(np.median(steps))
    duration = float((stamps[-1] - stamps[0]) * time_base + typical)
    fps = len(stamps) / duration if duration > 0 else nominal
    # Variable: more than 5% of the steps are off the typical one by over a quarter of it.
    irregular = float(np.mean(np.abs(steps - typical) > 0.25 * typical))
    return fps, irregular > 0.05, duration


def probe_source(uri: str, config: CurateConfig) -> ProbeInfo:
    """Hash and probe `uri`; raises `Rejected` with a reason when it is unusable."""
    stamp = file_stamp(uri)
    source_id, size = hash_source(uri)
    if size == 0:
        raise Rejected(reasons.EMPTY_FILE, "the file is empty (0 bytes)")
    limits = config.limits
    if size > limits.max_file_gb * 1e9:
        raise Rejected(reasons.TOO_LARGE, f"{size / 1e9:.1f} GB is over limits.max_file_gb")
    container = _open(uri)
    try:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            raise Rejected(reasons.NO_VIDEO_STREAM, f"no video stream (streams: {kinds})")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        nominal = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0.0)
        has_audio = bool(container.streams.audio)
        time_base = float(stream.time_base or 0.0)

        _check_declared_size(ctx.width, ctx.height, limits)
        first = _first_frame(container, stream)
        rotation = int(first.rotation or 0)
        coded_w, coded_h = first.width, first.height
        container.seek(0, stream=stream) if _seekable(container) else None
        stamps, count, demux_error = _packet_times(container, stream, limits.max_frames)
        fps, vfr, duration = _rate(stamps, time_base, count, nominal)
        declared = int(stream.frames or 0)
        warning = demux_error
        if declared and count < declared * 0.98:
            warning = f"the file ends early: {count} of {declared} frames readable; the readable prefix is kept"
        width, height = (coded_h, coded_w) if rotation % 180 else (coded_w, coded_h)
        info = ProbeInfo(
            source_id=source_id, file_bytes=size, container=container.format.name, codec=ctx.name,
            pix_fmt=first.format.name, width=width, height=height, rotation=rotation,
            fps=round(fps, 6), nominal_fps=round(nominal, 6), vfr=vfr, num_frames=count,
            duration_s=round(duration, 6), has_audio=has_audio, bit_rate=int(container.bit_rate or 0),
            warning=warning, mtime_ns=stamp[1] if stamp else None,
        )
    finally:
        container.close()
    if file_stamp(uri) != stamp:
        raise Rejected(reasons.CHANGED, "the file changed while it was probed (its size or modification time)")
    _check_limits(info, config)
    return info


def probed_stamp(info: dict) -> tuple[int, int] | None:
    """A probe row's (size, modification time) of a local file: what `check_unchanged` compares (None: remote,
    or probed before the time was kept; not checked)."""
    return None if info.get("mtime_ns") is None else (info["file_bytes"], info["mtime_ns"])


def check_unchanged(uri: str, probed: tuple[int, int] | None, when: str) -> None:
    """Raise `changed` when the local file `uri` is no longer the one probed (`probed`: its `probed_stamp`): its
    size or modification time differ, so its bytes may not be the ones its source_id names. `when` says at which
    step, for the message."""
    if probed is None or not is_local(uri):
        return
    now = file_stamp(uri)
    if now == probed:
        return
    if now is None:
        detail = "it is gone"
    elif now[0] != probed[0]:
        detail = f"{probed[0]} bytes when probed, {now[0]} now"
    else:
        detail = "the same size, written to again since it was probed"
    raise Rejected(reasons.CHANGED, f"the file changed {when}: {detail}")


def _seekable(container: av.container.InputContainer) -> bool:
    return bool(container.file is None or getattr(container.file, "seekable", lambda: False)())


def _first_frame(container: av.container.InputContainer, stream) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise Rejected(reasons.DECODE_ERROR, f"the first frame does not decode: {exc}") from None
    raise Rejected(reasons.DECODE_ERROR, "the video stream holds no decodable frame")


def _check_declared_size(width: int, height: int, limits) -> None:  # noqa: ANN001 - LimitsConfig
    """The size the container declares (stored orientation; 0 when it declares none), before decoding."""
    if max(width, height) > limits.max_long_side:
        raise Rejected(reasons.TOO_LARGE, f"the container declares {width}x{height}: long side over "
                       f"limits.max_long_side ({limits.max_long_side}); nothing was decoded")


def _check_limits(info: ProbeInfo, config: CurateConfig) -> None:
    limits = config.limits
    short, long = min(info.width, info.height), max(info.width, info.height)
    if short < limits.min_short_side:
        raise Rejected(reasons.TOO_SMALL, f"{info.width}x{info.height}: short side under {limits.min_short_side}")
    if long > limits.max_long_side:
        raise Rejected(reasons.TOO_LARGE, f"{info.width}x{info.height}: long side over {limits.max_long_side}")
    if info.num_frames > limits.max_frames:
        raise Rejected(reasons.TOO_LONG, f"over {limits.max_frames} frames (limits.max_frames); counting stopped "
                       "there")
    if info.duration_s > limits.max_duration_s:
        raise Rejected(reasons.TOO_LONG, f"{info.duration_s:.0f} s is over limits.max_duration_s")
    min_frames = config.clips.min_frames + 2 * config.clips.trim_frames
    if info.num_frames < min_frames or not math.isfinite(info.fps) or info.fps <= 0:
        raise Rejected(
            reasons.TOO_SHORT, f"{info.num_frames} frames: a clip needs {min_frames} (clips.min_frames + trims)"
        )
