"""vLLM captioning benchmark (GPU): our captioning throughput against vLLM's own ceiling.

The method is cosmos-curate's "speed of light": run our vLLM processor on N clips of a curated OUT and
measure captioned clips/s and output tokens/s; take the mean input and output token counts vLLM reported
for those requests; then run `vllm bench throughput` with the same model, the same input/output lengths
and the same number of prompts. Target: our output tokens/s >= 80% of that ceiling.

Needs a GPU and vLLM installed (the vLLM environment of configs/vllm-runtime-env.yaml, or an image), the
model weights in a local folder, and a curated OUT with clips:

    python bench/vllm_caption_bench.py OUT --config configs/caption-qwen2.5-vl.yaml [--clips 256]
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def ours(out: Path, cfg, clips: int) -> dict:  # noqa: ANN001
    import pyarrow.parquet as pq
    import ray

    from captioning.prompts import caption_prompt
    from captioning.vllm_backend import build_caption_processor, load_runtime_env

    kept = [r for r in pq.read_table(out / "clips.parquet").to_pylist() if r["keep"]][:clips]
    q = cfg.qa
    rows = [{"clip_id": c["clip_id"], "prompt": caption_prompt(c, q.min_words, q.max_words, q.min_confidence)}
            for c in kept]
    processor = build_caption_processor(cfg, str(out / "clips"), load_runtime_env(cfg.vllm.runtime_env))
    started = time.perf_counter()
    results = processor(ray.data.from_items(rows)).take_all()
    seconds = time.perf_counter() - started
    done = [r for r in results if not r["error"]]
    return {"clips": len(rows), "ok": len(done), "seconds": seconds, "clips_per_s": len(done) / seconds,
            "output_tokens_per_s": sum(r["output_tokens"] for r in done) / seconds,
            "mean_input_tokens": sum(r["input_tokens"] for r in done) / max(1, len(done)),
            "mean_output_tokens": sum(r["output_tokens"] for r in done) / max(1, len(done))}


def ceiling(cfg, input_len: int, output_len: int, prompts: int, vllm_cmd: str) -> dict:  # noqa: ANN001
    cmd = [*shlex.split(vllm_cmd), "bench", "throughput", "--model", cfg.vllm.model_path, "--input-len",
           str(input_len), "--output-len", str(output_len), "--num-prompts", str(prompts), "--max-model-len",
           str(cfg.vllm.max_model_len), "--tensor-parallel-size", str(cfg.vllm.tensor_parallel_size)]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"Throughput:\s*([\d.]+)\s*requests/s,\s*([\d.]+)\s*total tokens/s,\s*([\d.]+)\s*output", text)
    if not m:
        raise RuntimeError(f"could not read `vllm bench throughput` output:\n{text[-2000:]}")
    return {"requests_per_s": float(m[1]), "total_tokens_per_s": float(m[2]), "output_tokens_per_s": float(m[3])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="a curated OUT folder")
    parser.add_argument("--config", required=True, help="caption config with backend vllm")
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--vllm-cmd", default="vllm", help="how to run the vLLM CLI")
    args = parser.parse_args()
    from captioning.config import CaptionConfig
    from runtime.config import load_config

    cfg = load_config(args.config, CaptionConfig)
    mine = ours(args.out, cfg, args.clips)
    best = ceiling(cfg, round(mine["mean_input_tokens"]), round(mine["mean_output_tokens"]), mine["ok"], args.vllm_cmd)
    ratio = mine["output_tokens_per_s"] / best["output_tokens_per_s"]
    print(json.dumps({"ours": mine, "vllm_bench_throughput": best, "ratio": ratio}, indent=2))
    print(f"captioned {mine['clips_per_s']:.2f} clips/s, {mine['output_tokens_per_s']:.0f} output tokens/s = "
          f"{ratio:.0%} of `vllm bench throughput` at the same lengths (target >= 80%)")


if __name__ == "__main__":
    main()
