"""transformers caption backend benchmark: captioned clips/s and output tokens/s of `TransformersCaptioner`.

On CPU with the tiny random Qwen2-VL (`captioning.tiny_vlm`) this checks the method only: the numbers say how
fast the loop around the model is (frame sampling, chat template, processor, greedy generate, decode), not
how fast a real model captions. Synthetic clips are written into a temporary folder:

    python bench/transformers_caption_bench.py                          # tiny model, CPU, 8 clips
    python bench/transformers_caption_bench.py --clips 16 --media images

With real weights and a GPU, point it at the model folder and a curated OUT (its kept clips and their real
caption prompts); the same numbers then are the backend's throughput:

    python bench/transformers_caption_bench.py --model /models/Qwen2.5-VL-3B-Instruct --out OUT \\
        --device cuda --dtype bfloat16 --batch-size 8 --max-new-tokens 320 --clips 64

GPU method for a real 2-7B model (Qwen2-VL-2B-Instruct, Qwen2.5-VL-3B-Instruct or Qwen2.5-VL-7B-Instruct, from
`droplet models fetch`): bfloat16, sdpa attention (flash_attention_2 when flash-attn is installed), 16 frames
as one video at max_side 448, max_new_tokens 320 (a 150-260 word caption is about 250-330 tokens). Warm up
with one batch (not timed: weights load, kernels compile), then time >= 64 clips of a curated OUT; raise
--batch-size (4, 8, 16, 32) while GPU memory allows, and report the best clips/s with its batch size, the
mean input and output tokens per clip, and output tokens/s. Generation dominates (prefill of ~1-2k visual +
prompt tokens, then ~300 decode steps), so output tokens/s grows with the batch until the GPU is compute
bound; compare it with `vllm bench throughput` at the same input/output lengths (bench/vllm_caption_bench.py)
to see what the in-process loop leaves on the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_clips(folder: Path, count: int, seconds: float = 3.0, fps: int = 24) -> list[dict]:
    """`count` short H.264 clips of a panning gradient; their caption rows (clip_id, prompt, duration)."""
    import av

    from captioning.prompts import caption_prompt

    rows = []
    width, height = 320, 180
    ramp = np.tile(np.linspace(0, 255, width * 2, dtype=np.uint8), (height, 1))
    for i in range(count):
        clip_id = f"bench-{i:04d}"
        with av.open(str(folder / f"{clip_id}.mp4"), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for f in range(int(seconds * fps)):
                x = (f * 4 + i * 7) % width
                gray = ramp[:, x:x + width]
                frame = np.stack([gray, np.roll(gray, 40, axis=1), 255 - gray], axis=-1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        clip = {"clip_id": clip_id, "start_s": 0.0, "end_s": seconds,
                "camera_timeline": [{"start_s": 0.0, "end_s": seconds, "label": "pan_right", "speed": 0.1,
                                     "confidence": 0.9}]}
        rows.append({"clip_id": clip_id, "prompt": caption_prompt(clip, 150, 260, 0.5), "duration_s": seconds})
    return rows


def out_rows(out: Path, count: int) -> list[dict]:
    """The first `count` kept clips of a curated OUT with their caption prompts."""
    import pyarrow.parquet as pq

    from captioning.prompts import caption_prompt

    kept = [r for r in pq.read_table(out / "clips.parquet").to_pylist() if r["keep"]][:count]
    return [{"clip_id": c["clip_id"], "prompt": caption_prompt(c, 150, 260, 0.5),
             "duration_s": float(c["end_s"]) - float(c["start_s"])} for c in kept]


def bench(args: argparse.Namespace) -> dict:
    from captioning.config import CaptionConfig, FramesConfig, TransformersConfig
    from captioning.tiny_vlm import write_tiny_vlm
    from captioning.transformers_backend import TransformersCaptioner

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else write_tiny_vlm(Path(tmp) / "tiny-qwen2-vl", "qwen2_vl")
        if args.out:
            clips_dir, rows = Path(args.out) / "clips", out_rows(Path(args.out), args.clips)
        else:
            clips_dir = Path(tmp) / "clips"
            clips_dir.mkdir()
            rows = write_clips(clips_dir, args.clips)
        cfg = CaptionConfig(backend="transformers",
                            frames=FramesConfig(num_frames=args.frames, max_side=args.max_side),
                            transformers=TransformersConfig(model_path=str(model), device=args.device,
                                                            dtype=args.dtype, media=args.media,
                                                            batch_size=args.batch_size,
                                                            max_new_tokens=args.max_new_tokens))
        started = time.perf_counter()
        captioner = TransformersCaptioner(cfg, str(clips_dir))
        load_s = time.perf_counter() - started
        captioner.caption_rows(rows[:args.batch_size])  # warm-up, not timed
        started = time.perf_counter()
        answers = captioner.caption_rows(rows)
        seconds = time.perf_counter() - started
    done = [a for a in answers if not a["error"]]
    return {"model": model.name if args.model else "tiny random qwen2_vl", "model_type": captioner.model_type,
            "device": captioner.device, "dtype": str(captioner.model.dtype).removeprefix("torch."),
            "media": "video" if captioner.video else "images", "frames": args.frames, "batch_size": args.batch_size,
            "max_new_tokens": args.max_new_tokens, "clips": len(rows), "ok": len(done), "load_s": round(load_s, 2),
            "seconds": round(seconds, 2), "clips_per_s": round(len(done) / seconds, 3),
            "output_tokens_per_s": round(sum(a["output_tokens"] for a in done) / seconds, 1),
            "mean_input_tokens": round(sum(a["input_tokens"] for a in done) / max(1, len(done)), 1),
            "mean_output_tokens": round(sum(a["output_tokens"] for a in done) / max(1, len(done)), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a local VLM folder (default: a tiny random Qwen2-VL built here)")
    p.add_argument("--out", help="a curated OUT whose kept clips to caption (default: synthetic clips)")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--max-side", type=int, default=224)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--media", default="auto", choices=["auto", "video", "images"])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=64)
    print(json.dumps(bench(p.parse_args()), indent=2))


if __name__ == "__main__":
    main()
