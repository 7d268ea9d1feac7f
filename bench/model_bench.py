"""Transformer step time: ours against diffusers' CogVideoXTransformer3DModel of the same size, same run.

CPU (default): forward + backward of the tiny and a medium config, both models holding the same weights, runs
interleaved, median of --repeats; prints the ratio ours / diffusers (target <= 1.05).

GPU (--gpu): tokens/s and MFU of one 5B block at 49x480x720 (13 latent frames x 30 x 45 patches = 17,550 video
tokens + 400 text tokens) in bf16, forward + backward, beside the same block of diffusers. MFU counts
6 x params x tokens plus the attention matmuls (12 x layers x tokens^2 x dim for forward + backward).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.utils import logging as diffusers_logging

from model.flops import PEAK_BF16_TFLOPS, training_flops
from model.transformer import DropletVideoTransformer3DModel

CONFIGS = {
    "tiny": dict(model=dict(num_attention_heads=2, attention_head_dim=32, num_layers=2, time_embed_dim=32,
                            text_embed_dim=32, sample_height=8, sample_width=8, max_text_seq_length=32),
                 latent=(3, 8, 8), text=32, batch=2),
    "medium": dict(model=dict(num_attention_heads=8, attention_head_dim=64, num_layers=4, time_embed_dim=256,
                              text_embed_dim=256, sample_height=20, sample_width=30, max_text_seq_length=64),
                   latent=(5, 20, 30), text=64, batch=1),
    "5b-block": dict(model=dict(num_attention_heads=48, attention_head_dim=64, num_layers=1, time_embed_dim=512,
                                text_embed_dim=4096, sample_height=60, sample_width=90, max_text_seq_length=400),
                     latent=(13, 60, 90), text=400, batch=1),
}


def twins(name: str, device: str, dtype: torch.dtype):
    cfg = {**CONFIGS[name]["model"], "in_channels": 16, "out_channels": 16, "use_rotary_positional_embeddings": True}
    torch.manual_seed(0)
    theirs = CogVideoXTransformer3DModel(**cfg).to(device, dtype)
    ours = DropletVideoTransformer3DModel(**cfg).to(device, dtype)
    ours.load_state_dict(theirs.state_dict(), strict=False)
    return ours.train(), theirs.train()


def inputs(name: str, device: str, dtype: torch.dtype):
    spec = CONFIGS[name]
    f, h, w = spec["latent"]
    b = spec["batch"]
    x = torch.randn(b, f, 16, h, w, device=device, dtype=dtype)
    text = torch.randn(b, spec["text"], spec["model"]["text_embed_dim"], device=device, dtype=dtype)
    t = torch.randint(0, 1000, (b,), device=device)
    return x, text, t


def rope_for(model: DropletVideoTransformer3DModel, x: torch.Tensor):
    _, f, _, h, w = x.shape
    return model.positions(f, h // 2, w // 2, x.device)


def step(model, x, text, t, rope, ours: bool) -> None:
    model.zero_grad(set_to_none=True)
    if ours:
        out = model(x, text, t, motion=torch.full_like(t, 8, dtype=torch.float32), return_dict=False)[0]
    else:
        out = model(x, text, t, image_rotary_emb=rope, return_dict=False)[0]
    out.float().square().mean().backward()


def timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(name: str, device: str, dtype: torch.dtype, repeats: int, warmup: int = 2, sdpa: list[str] | None = None,
            compiled: bool = False) -> dict:
    ours, theirs = twins(name, device, dtype)
    ours.set_sdpa_backends(sdpa)
    if compiled:
        ours.compile_blocks()
        warmup += 2
    x, text, t = inputs(name, device, dtype)
    rope = rope_for(ours, x)
    times = {"ours": [], "diffusers": []}
    for i in range(warmup + repeats):
        order = [("ours", ours), ("diffusers", theirs)] if i % 2 == 0 else [("diffusers", theirs), ("ours", ours)]
        for label, model in order:
            seconds = timed(lambda m=model, lab=label: step(m, x, text, t, rope, lab == "ours"), device)
            if i >= warmup:
                times[label].append(seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    f, h, w = CONFIGS[name]["latent"]
    tokens = CONFIGS[name]["batch"] * (f * h * w // 4 + CONFIGS[name]["text"])
    label = name + (f" sdpa={','.join(sdpa)}" if sdpa else "") + (" compiled" if compiled else "")
    result = {"config": label, "ours_s": med["ours"], "diffusers_s": med["diffusers"],
              "ratio": med["ours"] / med["diffusers"], "tokens": tokens}
    if device == "cuda":
        batch = CONFIGS[name]["batch"]
        flops = batch * training_flops(ours, tokens // batch)
        for label in ("ours", "diffusers"):
            result[f"{label}_tokens_per_s"] = tokens / med[label]
            result[f"{label}_mfu"] = flops / med[label] / (PEAK_BF16_TFLOPS["H100"] * 1e12)
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="one 5B block at 49x480x720 in bf16 (needs CUDA)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--configs", nargs="+", default=["tiny", "medium"], choices=sorted(CONFIGS))
    args = parser.parse_args()
    diffusers_logging.set_verbosity_error()
    if args.gpu:
        if not torch.cuda.is_available():
            raise SystemExit("--gpu needs CUDA")
        rows = [compare("5b-block", "cuda", torch.bfloat16, args.repeats, sdpa=sdpa, compiled=compiled)
                for sdpa, compiled in [(None, False), (["cudnn"], False), (None, True), (["cudnn"], True)]]
    else:
        rows = [compare(name, "cpu", torch.float32, args.repeats) for name in args.configs]
    print(f"\ntransformer forward+backward, median of {args.repeats} interleaved steps "
          f"({'cuda bf16' if args.gpu else 'cpu fp32'})")
    mfu_head, mfu_rule = (" ours MFU | diffusers MFU |", "---:|---:|") if args.gpu else ("", "")
    print(f"| config | tokens | ours s/step | diffusers s/step | ours / diffusers |{mfu_head}")
    print(f"|---|---:|---:|---:|---:|{mfu_rule}")
    for r in rows:
        extra = f" {r['ours_mfu']:.1%} | {r['diffusers_mfu']:.1%} |" if args.gpu else ""
        print(f"| {r['config']} | {r['tokens']} | {r['ours_s']:.4f} | {r['diffusers_s']:.4f} | {r['ratio']:.3f} |"
              f"{extra}")
    if args.gpu:
        for r in rows:
            print(f"{r['config']}: ours {r['ours_tokens_per_s']:.0f} tokens/s, peak {r['peak_gib']:.1f} GiB")


if __name__ == "__main__":
    main()
