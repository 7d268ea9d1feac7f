"""Ray Train launcher: `python -m train.ray_launch --config F --data ... --name RUN --storage-path DIR`.

A `TorchTrainer` runs `Trainer` on every worker (gloo on CPU, NCCL on GPUs). Every rank reports its own DeepSpeed
files with each checkpoint (`ray.train.report` from all ranks: Ray merges them into one checkpoint folder under
`storage-path/name/`), and the last checkpoint carries the exported pipeline. Launching again with the same
name and storage path resumes from the latest checkpoint. The data's URLs and kind (clips or `droplet precompute`
latents) are resolved once, here, by the setup `droplet train` uses (`train.setup.plan_run`). This is the
`ray job submit` entry point (the head started, and the job submitted, from the activated venv: the job's
`python` is the one on the head's PATH):

    source .venv/bin/activate
    ray job submit --working-dir . -- python -m train.ray_launch --config configs/train-5b.yaml \\
        --data /shared/OUT --name droplet-5b --storage-path /shared/runs --num-workers 8 --use-gpu
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from .config import TrainConfig, read_train_config
from .setup import TrainData

log = logging.getLogger(__name__)


def train_loop_per_worker(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch
    import torch

    from .checkpoint import restore_layout
    from .distributed import DistInfo
    from .run import default_extensions_dir
    from .trainer import Trainer

    default_extensions_dir()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ctx = ray.train.get_context()
    rank, world, local_rank = ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank()
    device = ray.train.torch.get_device() if torch.cuda.is_available() else torch.device("cpu")
    log.info("rank %d of %d on node %s", rank, world, ray.get_runtime_context().get_node_id())
    work = Path(tempfile.mkdtemp(prefix=f"droplet-train-rank{rank}-"))
    # each rank writes into its own folder; samples at the end are Ray's business (the last checkpoint's pipeline)
    config = TrainConfig.model_validate(loop_config["config"]).updated(
        {"output": str(work), "train.validation.at_end": False})
    data = TrainData(tuple(loop_config["urls"]), loop_config["kind"])
    max_steps = loop_config.get("max_steps") or config.train.max_steps
    trainer: Trainer | None = None

    def report(folder: Path, metrics: dict) -> None:
        if metrics["step"] >= max_steps:  # the last checkpoint carries the pipeline (rank 0 writes it)
            trainer.export(folder / "pipeline")
        ray.train.report({"step": metrics["step"], "loss": trainer.last_loss},
                         checkpoint=ray.train.Checkpoint.from_directory(str(folder)))

    trainer = Trainer(config, data, work, DistInfo(rank, world, local_rank, device), on_checkpoint=report)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.resume(restore_layout(Path(folder), work / "restore"))
        log.info("rank %d resumed at step %d", rank, trainer.step)
    trainer.fit(max_steps=max_steps, progress=rank == 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.ray_launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="train YAML")
    parser.add_argument("--data", nargs="+", help="OUT folder(s) or shard URLs (default: the config's data.urls)")
    parser.add_argument("--name", required=True, help="run name: launching again with it resumes")
    parser.add_argument("--storage-path", required=True, help="where Ray Train keeps checkpoints (shared or s3://)")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--use-gpu", action="store_true")
    parser.add_argument("--cpus-per-worker", type=float, default=1)
    parser.add_argument("--placement", choices=["pack", "spread", "strict-spread"], default="pack",
                        help="where the workers go: pack (fewest nodes, the default), spread (over nodes when it "
                        "can), strict-spread (each on a node of its own, or wait)")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from .setup import plan_run

        plan = plan_run(read_train_config(args.config), args.data)
    except ValueError as exc:
        print(f"train.ray_launch: error: {exc}", file=sys.stderr)
        return 2
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from runtime.ray_connect import connect_ray

    connect_ray(args.address)
    storage = args.storage_path if "://" in args.storage_path else str(Path(args.storage_path).resolve())
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": plan.config.model_dump(mode="json"), "urls": list(plan.data.urls),
                           "kind": plan.data.kind, "max_steps": args.max_steps},
        scaling_config=ScalingConfig(num_workers=args.num_workers, use_gpu=args.use_gpu,
                                     resources_per_worker={"CPU": args.cpus_per_worker},
                                     placement_strategy=args.placement.upper().replace("-", "_")),
        run_config=RunConfig(name=args.name, storage_path=storage,
                             checkpoint_config=CheckpointConfig(num_to_keep=plan.config.train.keep_checkpoints)),
        torch_config=TorchConfig(backend="nccl" if args.use_gpu else "gloo", timeout_s=7200),
    )
    result = trainer.fit()
    path = result.checkpoint.path if result.checkpoint else None
    print(f"run {args.name}: last metrics {result.metrics}; checkpoint {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
