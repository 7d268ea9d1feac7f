"""Build DeepSpeed's CPU communication op once, at setup (`make`), so runs and tests never compile it.

`python -m train.build_ops`. The op lands in `<venv>/torch_extensions`, where `droplet train` looks for it. On a
GPU machine DeepSpeed uses NCCL and nothing is built.
"""

from __future__ import annotations

import time

from .run import default_extensions_dir


def main() -> int:
    default_extensions_dir()
    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator()
    if accelerator.device_name() != "cpu":
        print(f"accelerator {accelerator.device_name()}: no CPU communication op to build")
        return 0
    start = time.perf_counter()
    accelerator.create_op_builder("ShareMemCommBuilder").load()
    print(f"DeepSpeed CPU communication op ready ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
