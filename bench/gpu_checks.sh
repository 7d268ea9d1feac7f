#!/usr/bin/env bash
# The GPU checks of the model and trainer issues, as one script for a lent GPU machine (see README: Benchmarks).
# Needs torch with CUDA; wheels for what the machine lacks (diffusers, deepspeed, ...) in .whl/.
set -u
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 TORCH_EXTENSIONS_DIR=/tmp/torch_extensions
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 200 python3 bench/model_bench.py --gpu --repeats 10 2>&1 | grep -v Warning | tee "$OUT/model_bench_gpu.txt"
for ds in deepspeed-zero2-offload deepspeed-zero2-bf16; do
  timeout 260 python3 bench/train_bench.py --gpu-5b --deepspeed $ds --steps 4 --torch-adam 2>&1 \
    | grep -E "^\||step [0-9]|Error|error|memory" | tee "$OUT/train_bench_gpu_$ds.txt"
done
