"""`droplet curate`: the driver that runs the Ray Data stages and commits each source as it completes.

Two datasets run one after the other: probe (hash + probe every new source; duplicates are decided
between them, in input order) and then the streaming chain analyze -> cuts -> plan -> extract, whose rows
are typed (`curation.rows`) and carry their results. The driver consumes the chain's rows as they come and
commits a source (one JSON file) as soon as all its clips are in, from what the rows carried; the parquet
tables are rebuilt from the commit files at the end. Each stage journals its own result (probe, plan, clip),
so the next run on the same OUT after a kill starts from them.

Without a cluster to attach to, the same stages run on this machine without Ray (`curation.local`, the
`local` executor): Ray's start and its processes cost more than a run on one machine gains from them.

Adding a stage: one callable in `curation.stages` (a function, or a class when it holds a model) that maps
one typed row to the next, and one line in `_analyze_and_extract` (and in `LocalExecutor._plan_source`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from curation import reasons
from curation.clip_checks import ClipCheckStage, ClipScoreStage, clip_columns, stage_plan
from curation.config import CurateConfig
from curation.decisions import decide
from curation.embedding_store import EmbeddingStore
from curation.inputs import extension_of, scan_input
from curation.report import StageRun, write_report
from curation.rows import ClipResult, Failure, Probe, SourcePlan, SourceTask, unwrap, wrap
from curation.stages import TransNetV2Stage, analyze_stage, clip_plans, extract_stage, plan_stage, probe_stage
from curation.store import OutStore, source_key
from curation.summary import CurateSummary, summarize
from runtime.faults import maybe_fail
from runtime.out_lock import hold_folder_lock
from runtime.ray_connect import ray_target
from shards.layout import OutLayout

log = logging.getLogger("droplet.curate")


def connect_ray(cfg: CurateConfig, address: str | None) -> None:
    """Attach to `address` / RAY_ADDRESS / the config's, or start an embedded Ray on loopback; set up Ray Data."""
    from runtime.ray_connect import connect_ray as connect

    connect(_ray_address(cfg, address), num_cpus=cfg.ray.num_cpus)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = cfg.ray.progress_bars
    ctx.enable_operator_progress_bars = cfg.ray.progress_bars
    ctx.execution_options.preserve_order = False


def _ray_address(cfg: CurateConfig, address: str | None) -> str | None:
    """`--address`, else RAY_ADDRESS, else the config's `ray.address`; None: this machine."""
    return ray_target(address) or cfg.ray.address


def use_ray(cfg: CurateConfig, address: str | None) -> bool:
    """Ray Data runs the stages (else the local executor): `ray.executor`, where `auto` means "on a cluster"."""
    if cfg.ray.executor == "local" and _ray_address(cfg, address):
        raise ValueError(f"ray.executor is local, but a Ray cluster is named ({_ray_address(cfg, address)}): "
                         "drop the address (--address, RAY_ADDRESS, ray.address) or use executor ray or auto")
    return cfg.ray.executor == "ray" or (cfg.ray.executor == "auto" and _ray_address(cfg, address) is not None)


def _dataset(items: list):
    """Typed rows as a dataset, one block each (so every source is its own task)."""
    import ray

    return ray.data.from_items([wrap(i) for i in items], override_num_blocks=max(1, len(items)))


def run_curate(input_value: str, out: str, cfg: CurateConfig, address: str | None = None) -> CurateSummary:
    """Curate every source named by `input_value` into `out`, holding `OUT/_work/curate.lock` throughout (another
    curate on `out` raises `FolderBusy`). Raises ValueError for unusable input."""
    with hold_folder_lock(OutLayout(out).curate_lock, out, "curate"):
        return _curate(input_value, out, cfg, address)


def _curate(input_value: str, out: str, cfg: CurateConfig, address: str | None) -> CurateSummary:
    started = time.time()
    store = OutStore(out)
    store.lock_config(cfg.fingerprint(), cfg.model_dump(mode="json"))
    store.prepare()
    log_to_file(store.log_path)
    scanned = scan_input(input_value, cfg.limits.extensions)
    skipped = _log_skipped_files(scanned.skipped)
    for entry, why in scanned.unusable:
        log.warning("skipped %s: %s", entry, why)
    if not scanned.sources:
        raise ValueError(f"no video files found in {input_value}")
    with_ray = use_ray(cfg, address)
    stages = stage_plan(cfg)
    log_stages(stages)
    committed = store.committed()
    todo = [SourceTask(source_key(s), s) for s in scanned.sources if source_key(s) not in committed]
    log.info("%d sources; %d already done (skipped), %d to do", len(scanned.sources),
             len(scanned.sources) - len(todo), len(todo))
    if todo:
        probes = probe_all(todo, store, cfg, address, with_ray)
        log.info("probed %d sources%s in %.1f s", len(probes), " and connected to Ray" if with_ray else "",
                 time.time() - started)
        tracker = CommitTracker(store, len(todo))
        ok = resolve_duplicates(probes, committed, tracker)
        _analyze_and_extract(ok, store, cfg, tracker, with_ray)
        log.info("analysed and extracted %d sources at %.1f s", len(ok), time.time() - started)
        tracker.close()
    retried = store.report_attempts()
    if retried:
        log.warning("retried after a failure: %s", ", ".join(f"{stage} {n}" for stage, n in sorted(retried.items())))
    decide(store, cfg)
    tables = store.rebuild_tables()
    if stages.clip:
        embeddings = EmbeddingStore(store.root)
        embeddings.merge_committed(store.committed())
        tables["embeddings"] = embeddings.rebuild()
    summary = summarize(store, len(scanned.sources) - len(todo), time.time() - started)
    summary.skipped_files = skipped
    write_report(store, summary, stages=stage_runs(stages), thresholds=thresholds(cfg))
    log.info("tables: %s; report: %s (done at %.1f s)", tables, store.report_path, time.time() - started)
    return summary


def log_stages(stages) -> None:  # noqa: ANN001 - a StagePlan
    """One line per clip stage: ran, or skipped and why."""
    for name, what in stages.ran.items():
        log.info("%s: runs (%s)", name, what)
    for name, why in stages.skipped.items():
        log.info("%s: skipped (%s)", name, why)


def stage_runs(stages) -> list[StageRun]:  # noqa: ANN001 - a StagePlan
    runs = [StageRun(name, True, what) for name, what in stages.ran.items()]
    return runs + [StageRun(name, False, f"skipped: {why}") for name, why in stages.skipped.items()]


def thresholds(cfg: CurateConfig) -> dict[str, float | tuple]:
    """Score column -> the threshold applied, for the report's histograms."""
    out: dict[str, float | tuple] = {}
    if cfg.quality.enabled:
        out["sharpness"] = cfg.quality.min_sharpness
    if cfg.ocr.enabled:
        out["text_area"] = cfg.ocr.max_text_area
    if cfg.aesthetic.head is not None:
        out["aesthetic_score"] = cfg.aesthetic.threshold
    return out


class OneLineFormatter(logging.Formatter):
    """One line of curate.log per message: control characters in it (a file name holding a newline, say) are
    escaped as \\n, \\r, \\xNN; a traceback below a message stays as it is."""

    ESCAPES = {c: repr(chr(c))[1:-1] for c in [*range(32), 127] if chr(c) != "\t"}

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return super().formatMessage(record).translate(self.ESCAPES)


def log_to_file(path: Path) -> None:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("droplet")
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(path.resolve()) for h in root.handlers):
        root.addHandler(handler)


def _log_skipped_files(files: list[str]) -> dict[str, int]:
    """Name every file of the input folder that is not taken as a video; counts by extension."""
    counts: dict[str, int] = {}
    for path in files:
        ext = extension_of(path)
        counts[ext] = counts.get(ext, 0) + 1
        log.warning("skipped %s: extension %s is not in limits.extensions", path, ext)
    if counts:
        log.info("skipped %d file(s) of the input folder by extension: %s", len(files),
                 ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return counts


def probe_all(todo: list[SourceTask], store: OutStore, cfg: CurateConfig, address: str | None,
               with_ray: bool, progress: bool = True) -> list[Probe]:
    """A Probe per source (from the journal when a killed run probed it already), and Ray connected when Ray
    runs the stages.

    On a cluster the probe stage runs as a Ray Data job. On this machine (the local executor, or an embedded
    Ray) the sources are probed by the same stage in the driver (a child process each), while an embedded Ray
    starts: the few seconds Ray takes to start are not added to the run.
    """
    probes, missing = [], []
    for task in todo:
        cached = store.load_probe(task.key)
        (probes.append(cached) if cached is not None else missing.append(task))
    on_cluster = _ray_address(cfg, address) is not None
    if with_ray and (not missing or on_cluster):
        connect_ray(cfg, address)
    if missing and on_cluster:
        ds = _dataset(missing).map(probe_stage, fn_kwargs={"cfg": cfg, "store": store}, num_cpus=1)
        for row in tqdm(ds.iter_rows(), total=len(missing), desc="probe", unit="src"):
            probes.append(unwrap(row))
    elif missing:
        pool = ThreadPoolExecutor(max_workers=cfg.ray.num_cpus or len(os.sched_getaffinity(0)))
        try:
            running = [pool.submit(probe_stage, wrap(task), cfg, store) for task in missing]
            if with_ray:
                connect_ray(cfg, address)
            for future in tqdm(running, desc="probe", unit="src", disable=not progress):
                probes.append(unwrap(future.result()))
        finally:  # on Ctrl-C: the probes in flight finish (and are journaled), the rest never start
            pool.shutdown(wait=True, cancel_futures=True)
    return probes


def resolve_duplicates(probes: list[Probe], committed: dict[str, dict], tracker: CommitTracker) -> list[Probe]:
    """Commit the failed probes; of sources with equal bytes the first in input order stays."""
    seen = {c["source"]["source_id"]: c["source"]["source"] for c in committed.values()
            if c["source"].get("source_id") and c["source"]["status"] == "ok"}
    ok = []
    for probe in sorted(probes, key=lambda p: p.source):
        if probe.info is None:
            tracker.reject(probe.key, probe.source, probe.failure, None)
            continue
        first = seen.setdefault(probe.info["source_id"], probe.source)
        if first != probe.source:
            tracker.reject(probe.key, probe.source, Failure(reasons.DUPLICATE, f"same bytes as {first}"), probe.info)
            continue
        if probe.info.get("warning"):
            log.warning("%s: %s", probe.source, probe.info["warning"])
        ok.append(probe)
    return ok


def _analyze_and_extract(ok: list[Probe], store: OutStore, cfg: CurateConfig, tracker: CommitTracker,
                         with_ray: bool) -> None:
    """Planned sources (a killed run's) write their missing clips; the others run the whole chain."""
    resumed, fresh = [], []
    for probe in ok:
        plan = store.load_plan(probe.key)
        if plan is None:
            fresh.append(probe)
        else:
            resumed.extend(unwrap(r) for r in clip_plans(plan, store, cfg))
    if resumed:
        log.info("resuming %d planned sources", sum(isinstance(r, SourcePlan) for r in resumed))
    if with_ray:
        _ray_chain(fresh, resumed, store, cfg, tracker)
    else:
        from curation.local import LocalExecutor, local_workers

        workers = local_workers(cfg)
        log.info("local executor (no Ray): %d stages at once", workers)
        LocalExecutor(cfg, store, workers).run(fresh, resumed, tracker.add)


def _ray_chain(fresh: list[Probe], resumed: list, store: OutStore, cfg: CurateConfig,
               tracker: CommitTracker) -> None:
    """The stages as Ray Data datasets: extraction of the resumed clips, then the whole chain for fresh sources."""
    from ray.data import ActorPoolStrategy

    stores = {"cfg": cfg, "store": store}
    extract_args = {"num_cpus": 1, "memory": cfg.extract.task_memory_mb * 2**20}
    if resumed:
        ds = _clip_stages(_dataset(resumed).map(extract_stage, fn_kwargs=stores, **extract_args), store, cfg)
        for row in ds.iter_rows():
            tracker.add(unwrap(row))
    if fresh:
        analyze_args = {"num_cpus": 1, "memory": cfg.analysis.task_memory_mb * 2**20}
        ds = _dataset(fresh).map(analyze_stage, fn_kwargs=stores, **analyze_args)
        if cfg.scenes.detector == "transnetv2":
            ds = ds.map(TransNetV2Stage, fn_constructor_kwargs={"cfg": cfg},
                        compute=ActorPoolStrategy(min_size=1, max_size=1), num_cpus=1)
        ds = ds.flat_map(plan_stage, fn_kwargs=stores, **analyze_args)
        ds = ds.repartition(target_num_rows_per_block=1)  # one clip a task: a source's clips spread over the CPUs
        ds = _clip_stages(ds.map(extract_stage, fn_kwargs=stores, **extract_args), store, cfg)
        for row in ds.iter_rows():
            tracker.add(unwrap(row))


def _clip_stages(ds, store: OutStore, cfg: CurateConfig):  # noqa: ANN001, ANN202 - Ray datasets
    """The checks on written clip files. The weightless ones (quality, OCR, hashes) run as tasks of
    `ray.check_cpus` each, with the OCR engine cached per worker process: an actor pool would hold its CPUs for
    the whole run, and beside TransNetV2's actor on a small cluster leave too little for the extraction tasks
    (a deadlock). CLIP runs as an actor stage holding its model (on `ray.clip_gpus` GPUs)."""
    from ray.data import ActorPoolStrategy

    stages = stage_plan(cfg)
    if stages.checks:
        ds = ds.map(check_task, fn_kwargs={"cfg": cfg, "store": store}, num_cpus=cfg.ray.check_cpus)
    if stages.clip:
        ds = ds.map(ClipScoreStage, compute=ActorPoolStrategy(min_size=1, max_size=cfg.ray.clip_actors),
                    fn_constructor_kwargs={"cfg": cfg, "store": store}, num_cpus=cfg.ray.check_cpus,
                    num_gpus=cfg.ray.clip_gpus or None)
    return ds


_CHECKS: dict[str, ClipCheckStage] = {}  # per worker process: the check stage (and its OCR engine) of an OUT


def check_task(row: dict, cfg: CurateConfig, store: OutStore) -> dict:
    """`ClipCheckStage` as a Ray task: the stage (and its OCR engine) is made once per worker process."""
    key = f"{store.root}:{cfg.model_dump_json()}"
    if key not in _CHECKS:
        _CHECKS.clear()
        _CHECKS[key] = ClipCheckStage(task_ocr_threads(cfg), store)
    return _CHECKS[key](row)


def task_ocr_threads(cfg: CurateConfig) -> CurateConfig:
    """`cfg` with OCR on as many threads as a check task has CPUs (`ray.check_cpus`, at least one) when
    `ocr.threads` is 0: ONNX Runtime's default of every core would oversubscribe a node running several tasks."""
    if cfg.ocr.threads:
        return cfg
    threads = max(1, math.ceil(cfg.ray.check_cpus))
    return cfg.model_copy(update={"ocr": cfg.ocr.model_copy(update={"threads": threads})})


class CommitTracker:
    """Collects each source's SourcePlan and ClipResults as they arrive and commits the source (from what the
    rows carry) when its last clip is in."""

    def __init__(self, store: OutStore, total: int, progress: bool = True):
        self.store = store
        self.embeddings = EmbeddingStore(store.root)
        self.bar = tqdm(total=total, desc="sources", unit="src", disable=not progress)
        self.plans: dict[str, SourcePlan] = {}
        self.results: dict[str, dict[str, ClipResult]] = defaultdict(dict)

    def add(self, item: SourcePlan | ClipResult) -> None:
        if isinstance(item, SourcePlan):
            if item.failure is not None:
                self.reject(item.key, item.source, item.failure, item.info)
                return
            self.plans[item.key] = item
            self.results[item.key].update(item.done)
        else:
            self.results[item.key][item.clip_id] = item
        self._maybe_commit(item.key)

    def _maybe_commit(self, key: str) -> None:
        plan = self.plans.get(key)
        if plan is not None and set(plan.extract) <= set(self.results[key]):
            results = self.results.pop(key)
            self.store.commit(key, source_commit(plan, results))
            self.embeddings.merge(key, list(results))
            del self.plans[key]
            maybe_fail("commit")
            self.bar.update(1)

    def reject(self, key: str, source: str, failure: Failure, info: dict | None) -> None:
        log.warning("rejected %s: %s: %s", source, failure.reason, failure.message)
        row = {**(info or {}), "source": source, "status": "rejected", "reason": failure.reason,
               "message": failure.message, "scenes": 0, "clips": 0, "clips_kept": 0}
        self.store.commit(key, {"source": row, "scenes": [], "clips": []})
        self.bar.update(1)

    def close(self) -> None:
        """End of the run: every source that reached the driver is committed (else say which are not)."""
        self.bar.close()
        for key, plan in self.plans.items():
            missing = sorted(set(plan.extract) - set(self.results[key]))
            log.error("%s not committed: no result for %d clip(s) (%s); a re-run resumes it", plan.source,
                      len(missing), ", ".join(missing[:3]))


def source_commit(plan: SourcePlan, results: dict[str, ClipResult]) -> dict:
    """A source's commit: its sources.parquet row, its scenes, and every clip row with the file's facts (or,
    for a clip that could not be written, its reason)."""
    clips = []
    for planned in plan.clips:
        row = {**planned, "reject_message": None, "file_bytes": None}
        result = results.get(row["clip_id"]) if row["keep"] else None
        if result is not None and result.failure is None:
            facts = result.facts
            row.update(num_frames=facts["num_frames"], fps=facts["fps"], width=facts["width"],
                       height=facts["height"], file_bytes=facts["bytes"])
            columns, reject = clip_columns(facts)
            row.update(columns)
            if reject is not None:  # the clip keeps its file and its scores
                row.update(keep=False, reject_reason=reject[0], reject_message=reject[1])
        elif result is not None:
            row.update(keep=False, reject_reason=result.failure.reason, reject_message=result.failure.message)
            log.warning("clip %s not written: %s: %s", row["clip_id"], result.failure.reason, result.failure.message)
        clips.append(row)
    info = plan.info
    source_row = {**info, "source": plan.source, "status": "ok", "reason": None, "message": None,
                  "decoded_frames": plan.decoded_frames, "scenes": len(plan.scenes), "clips": len(clips),
                  "clips_kept": sum(1 for c in clips if c["keep"])}
    if plan.stopped_early:
        source_row["warning"] = "; ".join(filter(None, [info.get("warning"), plan.stopped_early]))
    return {"source": source_row, "scenes": plan.scenes, "clips": clips}
