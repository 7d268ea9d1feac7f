"""The local executor: curate's stages on this machine's CPUs, without Ray.

The stages are the ones Ray Data runs (`curation.stages`), called from a few driver threads; each stage's
decoding already runs in a child process of its own (`sandbox`), so the threads only wait. Starting Ray,
Ray Data's scheduling and Ray's own processes cost seconds of CPU a run that stays on one machine does not
need (`bench/curation_bench.py` measures both). Clip extraction goes before the next source's analysis, so
clips are written (and sources committed) as early as they can be, and only a few analyses are held at once.
TransNetV2 reseeds torch for its whole process, so its model lives in a process of its own.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait

from curation import reasons
from curation.clip_checks import ClipCheckStage, ClipScoreStage, needs, stage_plan
from curation.config import CurateConfig
from curation.rows import ClipPlan, ClipResult, Failure, Probe, SourcePlan, unwrap, wrap
from curation.sandbox import stop_all_children
from curation.stages import TransNetV2Stage, analyze_stage, extract_stage, plan_stage
from curation.store import OutStore

log = logging.getLogger("droplet.curate")

_transnet: TransNetV2Stage | None = None


def _load_transnet(cfg: CurateConfig) -> None:
    global _transnet
    _transnet = TransNetV2Stage(cfg)


def _run_transnet(row: dict) -> dict:
    return _transnet(row)


def local_workers(cfg: CurateConfig) -> int:
    """Stages at once: `ray.num_cpus` (else every CPU this process may use), fewer when the memory available
    does not hold that many of the larger task's `task_memory_mb`."""
    import psutil

    cpus = cfg.ray.num_cpus or len(os.sched_getaffinity(0))
    per_task = max(cfg.analysis.task_memory_mb, cfg.extract.task_memory_mb) * 2**20
    return max(1, min(cpus, psutil.virtual_memory().available // per_task))


class LocalExecutor:
    """Runs analyse -> (TransNetV2) -> plan -> extract for fresh sources and extract for planned ones, and
    hands every SourcePlan and ClipResult to `deliver` as it is ready (in the calling thread)."""

    def __init__(self, cfg: CurateConfig, store: OutStore, workers: int):
        self.cfg, self.store, self.workers = cfg, store, workers
        self.transnet: ProcessPoolExecutor | None = None
        self.stages = stage_plan(cfg)
        self.checks = ClipCheckStage(cfg, store) if self.stages.checks else None
        self.scores = ClipScoreStage(cfg, store) if self.stages.clip else None

    def run(self, fresh: list[Probe], planned: list[SourcePlan | ClipPlan],
            deliver: Callable[[SourcePlan | ClipResult], None]) -> None:
        extracts: deque[ClipPlan] = deque()
        for item in planned:
            (extracts.append(item) if isinstance(item, ClipPlan | ClipResult) else deliver(item))
        sources = deque(fresh)
        if sources and self.cfg.scenes.detector == "transnetv2":
            self.transnet = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=_load_transnet,
                                                initargs=(self.cfg,))
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="curate")
        running: set[Future] = set()
        try:
            while extracts or sources or running:
                while len(running) < self.workers and (extracts or sources):
                    if extracts:  # clips first: they finish sources; an analysis only starts a new one
                        running.add(pool.submit(self._write_and_check, extracts.popleft()))
                    else:
                        running.add(pool.submit(self._plan_source, sources.popleft()))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    for row in result if isinstance(result, list) else [result]:
                        item = unwrap(row)
                        to_do = isinstance(item, ClipPlan) or (isinstance(item, ClipResult) and needs(item, self.stages)
                                                               and not isinstance(result, dict))
                        (extracts.append(item) if to_do else deliver(item))
        except BaseException:  # Ctrl-C (or a bug): end the children now; what they were doing is not journaled
            stop_all_children()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if self.transnet is not None:
                self.transnet.shutdown(wait=True, cancel_futures=True)

    def _write_and_check(self, item: ClipPlan | ClipResult) -> dict:
        """Write one clip file (a ClipPlan) and run the clip checks on it (or on a journaled ClipResult)."""
        row = extract_stage(wrap(item), self.cfg, self.store) if isinstance(item, ClipPlan) else wrap(item)
        for stage in (self.checks, self.scores):
            if stage is not None:
                row = stage(row)
        return row

    def _plan_source(self, probe: Probe) -> list[dict]:
        """One source's analysis, cuts and plan: its SourcePlan and a ClipPlan per clip to write."""
        row = analyze_stage(wrap(probe), self.cfg, self.store)
        if self.transnet is not None:
            try:
                row = self.transnet.submit(_run_transnet, row).result()
            except Exception as exc:  # noqa: BLE001 - the model's process died: this source's reason
                item = unwrap(row)
                item.analysis, item.failure = None, Failure(reasons.DECODE_ERROR, f"TransNetV2: {exc}")
                row = wrap(item)
        return plan_stage(row, self.cfg, self.store)
