"""Compare two OUT folders made from the same inputs: every parquet table (captions without their creation
time), every clip file and every shard file, byte for byte. How a refactor shows it changed no output:

    python bench/compare_outs.py OUT_BEFORE OUT_AFTER
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import pyarrow.parquet as pq

TABLES = ("sources", "scenes", "clips", "captions")


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*")) if p.is_file()}


def compare(a: Path, b: Path) -> list[str]:
    """What differs between the two OUT folders (empty when nothing does)."""
    problems = []
    for name in TABLES:
        if not (a / f"{name}.parquet").exists():
            continue
        ta, tb = pq.read_table(a / f"{name}.parquet"), pq.read_table(b / f"{name}.parquet")
        if name == "captions":
            ta, tb = ta.drop(["created_at"]), tb.drop(["created_at"])
        if not ta.equals(tb):
            problems.append(f"{name}.parquet differs")
    for folder in ("clips", "shards"):
        if file_hashes(a / folder) != file_hashes(b / folder):
            problems.append(f"{folder}/ differs")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args()
    problems = compare(Path(args.a), Path(args.b))
    print("\n".join(problems) or "identical: tables, clip files and shards")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
