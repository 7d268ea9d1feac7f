"""The curation config: every threshold named, documented and validated (pydantic)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curation.aesthetic import AestheticConfig
from curation.config_section import _Section
from curation.dedup import DedupConfig
from curation.embeddings import EmbeddingConfig
from curation.ocr import OcrConfig
from curation.quality import QualityConfig
from curation.scene_tags import SceneTagConfig


class RayConfig(_Section):
    executor: Literal["auto", "local", "ray"] = Field(
        "auto", description="Who runs the stages. `ray`: Ray Data (on the cluster named by address / RAY_ADDRESS, "
        "else an embedded Ray on this machine). `local`: the same stages on this machine's CPUs without Ray (no "
        "Ray start, no Ray processes beside the work). `auto`: `ray` when there is a cluster to attach to, else "
        "`local`."
    )
    address: str | None = Field(None, description="Cluster to attach to; null: this machine (see executor).")
    num_cpus: int | None = Field(None, ge=1, description="CPUs used on this machine by the local executor or an "
                                 "embedded Ray (null: all).")
    progress_bars: bool = Field(True, description="Show Ray Data's progress bars.")
    check_cpus: float = Field(
        0.5, gt=0, description="CPUs a Ray task of the clip checks (quality, OCR, hashes) or a CLIP scoring actor asks "
        "for: a fraction, so the checks never starve the decode stages."
    )
    clip_gpus: float = Field(0.0, ge=0, description="GPUs a CLIP scoring actor asks Ray for (0: CPU; set "
                             "embeddings.device to cuda with it).")
    clip_actors: int = Field(1, ge=1, description="Ray actors of CLIP scoring at most (each holds the model).")


class LimitsConfig(_Section):
    """Source-level limits; a source outside them is rejected with the named reason."""

    min_short_side: int = Field(64, ge=1, description="Displayed short side below this: too_small.")
    max_long_side: int = Field(8192, ge=1, description="Displayed long side above this: too_large.")
    max_file_gb: float = Field(50.0, gt=0, description="File size above this: too_large.")
    max_duration_s: float = Field(4 * 3600.0, gt=0, description="Duration above this: too_long.")
    max_frames: int = Field(
        1_000_000, ge=1, description="Video frames above this: too_long (the probe stops counting there). Bounds "
        "the analysis's memory: it keeps about 250 bytes a frame (4 KB more with scenes.detector transnetv2)."
    )
    extensions: tuple[str, ...] = Field(
        (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".ts", ".mts", ".flv", ".wmv", ".mpg", ".mpeg"),
        description="File names a folder input is scanned for (a file given directly is always tried).",
    )


class TimeoutConfig(_Section):
    """Per-source time limits; a child process that runs past its limit is killed: reason timeout."""

    probe_s: float = Field(60.0, gt=0, description="Hashing + probing one source.")
    analyze_base_s: float = Field(120.0, gt=0, description="Decode + analysis: fixed part.")
    analyze_per_video_s: float = Field(2.0, ge=0, description="Decode + analysis: seconds per second of video.")
    extract_base_s: float = Field(60.0, gt=0, description="Extracting one clip: fixed part.")
    extract_per_clip_s: float = Field(4.0, ge=0, description="Extracting one clip: seconds per clip second.")


class AnalysisConfig(_Section):
    """The single decode pass that feeds scene splitting and motion together."""

    short_side: int = Field(
        90, ge=16, description="Analysis frames: the short side is divided by the integer factor that keeps "
        "it at least this (720p -> 160x90); flow, cut scores and thumbnails all use them."
    )
    thumb_size: tuple[int, int] = Field((48, 27), description="Thumbnail WxH kept for cut verification.")
    skip_loop_filter: bool = Field(
        True, description="Skip the codec's deblocking filter while analysing (decodes ~20% faster; invisible "
        "in 4-8x reduced frames; clips are always decoded in full)."
    )
    task_memory_mb: int = Field(1536, ge=64, description="Memory a decode + analysis task asks Ray for.")


class SceneConfig(_Section):
    """Hard-cut detection. `content_motion` (default): PySceneDetect's content score made adaptive and fused
    with how badly optical flow explains the change; `content` / `adaptive`: PySceneDetect's own rules on
    the same scores; `transnetv2`: TransNetV2's bundled weights."""

    detector: Literal["content_motion", "content", "adaptive", "transnetv2"] = "content_motion"
    fused_ratio: float = Field(
        2.3, gt=1, description="content_motion: geometric mean of the content and flow-residual scores over "
        "their neighbours' means must reach this."
    )
    local_ratio: float = Field(
        6.0, gt=1, description="content_motion: a cut in part of the frame (a subject swapped in front of the same "
        "background): the flow residual of the worst of 3 x 3 regions over its neighbours' mean must reach this."
    )
    window: int = Field(3, ge=1, description="Neighbour frames on each side for the adaptive ratios.")
    flash_frames: int = Field(
        4, ge=0, description="A change that returns to the previous picture within this many frames is a flash."
    )
    min_scene_frames: int = Field(3, ge=1, description="Cuts closer than this merge (the strongest stays).")
    content_threshold: float = Field(27.0, gt=0, description="`content`: ContentDetector's threshold.")
    adaptive_ratio: float = Field(3.0, gt=1, description="`adaptive`: AdaptiveDetector's ratio.")
    transnet_threshold: float = Field(0.5, gt=0, lt=1, description="`transnetv2`: cut probability threshold.")


class ClipConfig(_Section):
    """Clips: scenes trimmed of transition frames, within length limits, long scenes cut into pieces."""

    trim_frames: int = Field(2, ge=0, description="Frames dropped at both ends of every scene.")
    min_frames: int = Field(61, ge=2, description="Shorter clips are rejected (too_short); 61 feeds N=49.")
    max_frames: int = Field(250, ge=2, description="Longer scenes are cut into pieces of at most this.")

    @model_validator(mode="after")
    def _lengths(self) -> ClipConfig:
        if self.max_frames < self.min_frames:
            raise ValueError("clips.max_frames must be at least clips.min_frames")
        return self


class CameraConfig(_Section):
    """Camera-motion labels from the global motion model. Speeds are in frame widths per second: pan and
    tilt move the frame centre, zoom and roll move a frame corner that fast; so thresholds do not depend on
    the move, the resolution or the frame rate."""

    static_speed: float = Field(0.015, gt=0, description="A move slower than this (widths/s) is still.")
    shaky_jitter: float = Field(
        0.08, gt=0, description="RMS of the translation left after a moving median (widths/s) above this: shaky."
    )
    smooth_frames: int = Field(9, ge=1, description="Window of the moving median that separates jitter.")
    travel_ratio: float = Field(
        1.6, gt=1, description="Travel (truck, pedestal), not a turn: the fastest layer moves at least this many "
        "times as fast as the slowest, the same way (parallax)."
    )
    dolly_ratio: float = Field(2.0, gt=1, description="Dolly, not zoom: the same, for growth from the centre.")
    held_ratio: float = Field(
        0.4, gt=0, lt=1, description="A subject is held (tracking, orbit) when the frame's centre moves at most this "
        "share of the background's (tracking) or the fastest layer's (orbit) speed."
    )
    orbit_share: float = Field(0.1, gt=0, lt=0.5, description="Orbit: at least this share of the frame slides each "
                               "way.")
    orbit_spread: float = Field(0.025, gt=0, description="Orbit: the layers' speeds span at least this (widths/s).")
    still_ring: float = Field(
        0.18, gt=0, lt=1, description="A move the global fit sees is a subject's, and the camera still, when at "
        "least this share of the border held still (a camera move moves all of it)."
    )
    hold_share: float = Field(
        0.6, gt=0, le=1, description="A move goes on until its speed drops under this share of static_speed "
        "(hysteresis: a slow constant move is one segment, not move / static / move)."
    )
    min_segment_s: float = Field(0.5, gt=0, description="Timeline segments shorter than this merge away.")
    edit_gain: float = Field(
        0.4, gt=0, lt=1, description="A frame that a blend of its (camera-aligned) neighbours explains this well "
        "is in a fade or dissolve (1 = perfectly)."
    )
    edit_spread: float = Field(6.0, gt=0, description="... and whose neighbours differ by at least this (0-255).")
    edit_min_frames: int = Field(6, ge=2, description="A fade/dissolve spans at least this many frames.")


class FilterConfig(_Section):
    """Clip filters. A clip whose camera and object motion are both below the thresholds is `static`."""

    static_camera: float = Field(0.01, ge=0, description="camera_motion_score at or below this is still.")
    static_object: float = Field(0.004, ge=0, description="object_motion_score at or below this is still.")
    reject_edited: bool = Field(True, description="Reject clips labelled `edited` (fades, dissolves).")


class ExtractConfig(_Section):
    """Clip files: H.264 yuv420p mp4, CFR, rotation applied, no audio, short side capped, never upscaled."""

    max_short_side: int = Field(720, ge=16, description="Short side at most this; never upscaled.")
    crf: int = Field(18, ge=0, le=51, description="x264 constant rate factor.")
    preset: str = Field("veryfast", description="x264 preset.")
    keyframe_interval_s: float = Field(1.0, gt=0, description="A keyframe about this often.")
    crop_black_borders: bool = Field(
        True, description="Crop black bars (letterbox, pillarbox) found on the clip's first second from every "
        "frame before scaling; the clip's `crop` is the picture kept, [x, y, w, h] in source pixels."
    )
    task_memory_mb: int = Field(
        768, ge=64, description="Memory an extraction task asks Ray for (it also keeps extraction a stage of "
        "its own, so one source's clips spread over the cluster)."
    )


class SelectionConfig(_Section):
    """The paper's selection over every kept clip of an OUT, at the end of each run (clips already in a shard are
    never unselected): classes in `keep_classes` kept, static clips (C5) kept up to `static_share` of the kept
    clips (best aesthetic_score first, then clip_id), the rest (C6, unlabelled) rejected `not_selected`."""

    enabled: bool = Field(False, description="Apply the selection.")
    keep_classes: tuple[str, ...] = Field(("C1", "C2", "C3", "C4"), description="paper_class values always kept.")
    static_share: float = Field(0.05, ge=0, lt=1, description="Most share of C5 (static, shaky) clips among the "
                                "kept clips of the OUT.")




class CurateConfig(_Section):
    """Everything `droplet curate` reads."""

    ray: RayConfig = RayConfig()
    limits: LimitsConfig = LimitsConfig()
    timeouts: TimeoutConfig = TimeoutConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    scenes: SceneConfig = SceneConfig()
    clips: ClipConfig = ClipConfig()
    camera: CameraConfig = CameraConfig()
    filters: FilterConfig = FilterConfig()
    extract: ExtractConfig = ExtractConfig()
    quality: QualityConfig = QualityConfig()
    ocr: OcrConfig = OcrConfig()
    embeddings: EmbeddingConfig = EmbeddingConfig()
    aesthetic: AestheticConfig = AestheticConfig()
    scene_tags: SceneTagConfig = SceneTagConfig()
    dedup: DedupConfig = DedupConfig()
    selection: SelectionConfig = SelectionConfig()

    def fingerprint(self) -> dict:
        """The parts that shape OUT's content (a different one on an existing OUT is refused)."""
        data = self.model_dump(mode="json")
        data.pop("ray")
        return data


FREE_KEYS = ("ray", "ocr.threads", "embeddings.device", "embeddings.batch_size")
"""Settings that say how fast, not what: they may change between runs on one OUT."""

CURATE_YAML_HEADER = """\
# droplet curate config. Every key is optional: a missing one takes the default shown here.
# Validated on load: unknown keys and bad values stop the command (exit 2) with one line saying which.
# Generated from curation/config.py (a test keeps the two equal): `droplet config-defaults curate`.
"""
