"""``python -m droplet.sample_data DIR [--no-music-video]``: write the sample inputs and truth.json."""

from __future__ import annotations

import argparse
import time

from . import write_sample_data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m droplet.sample_data", description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--no-music-video", action="store_true", help="skip the real music video")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    truth = write_sample_data(args.out_dir, music_video=not args.no_music_video)
    print(f"wrote {len(truth['inputs'])} inputs to {args.out_dir} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
