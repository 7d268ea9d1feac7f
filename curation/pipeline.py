"""`droplet curate`: the driver that runs the Ray Data stages and commits each source as it completes.

Two datasets run one after the other: probe (hash + probe every new source; duplicates are decided
between them, in input order) and then the streaming chain analyze -> cuts -> plan -> extract. The driver
consumes the chain's rows as they come and commits a source (one JSON file) as soon as all its clips are
written; the parquet tables are rebuilt from the commit files at the end. A killed run leaves commit,
plan, probe and clip files behind, and the next run on the same OUT starts from them.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from curation import reasons
from curation.config import CurateConfig
from curation.inputs import expand_input
from curation.store import OutStore, source_key
from curation.summary import CurateSummary, summarize

log = logging.getLogger("droplet.curate")


def connect_ray(cfg: CurateConfig, address: str | None) -> None:
    """Attach to `address` / RAY_ADDRESS / the config's, or start an embedded Ray on loopback; set up Ray Data."""
    from runtime.ray_connect import connect_ray as connect

    connect(address or cfg.ray.address, num_cpus=cfg.ray.num_cpus)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = cfg.ray.progress_bars
    ctx.enable_operator_progress_bars = cfg.ray.progress_bars
    ctx.execution_options.preserve_order = False


def _dataset(rows: list[dict]):
    import ray

    return ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))


def run_curate(input_value: str, out: str, cfg: CurateConfig, address: str | None = None) -> CurateSummary:
    """Curate every source named by `input_value` into `out`. Raises ValueError for unusable input."""
    started = time.time()
    store = OutStore(out)
    store.lock_config(cfg.fingerprint(), cfg.model_dump(mode="json"))
    store.prepare()
    _log_to_file(store.log_path)
    sources = expand_input(input_value, cfg.limits.extensions)
    if not sources:
        raise ValueError(f"no video files found in {input_value}")
    committed = store.committed()
    todo = [s for s in sources if source_key(s) not in committed]
    log.info("%d sources; %d already done (skipped), %d to do", len(sources), len(sources) - len(todo), len(todo))
    config = cfg.model_dump(mode="json")
    if todo:
        connect_ray(cfg, address)
        probes = _probe_all(todo, store, config)
        ok = _resolve_duplicates(probes, committed, store)
        _analyze_and_extract(ok, store, config, cfg)
    tables = store.rebuild_tables()
    summary = summarize(store, len(sources) - len(todo), time.time() - started)
    from curation.report import write_report

    write_report(store, summary)
    log.info("tables: %s; report: %s", tables, store.report_path)
    return summary


def _log_to_file(path: Path) -> None:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("droplet")
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(path.resolve()) for h in root.handlers):
        root.addHandler(handler)


def _probe_all(todo: list[str], store: OutStore, config: dict) -> dict[str, dict]:
    """Probe records by key (cached in OUT/_work/probes, so a re-run does not hash again)."""
    from curation.stages import probe_row

    records: dict[str, dict] = {}
    missing = []
    for source in todo:
        key = source_key(source)
        cached = store.load(store.probe_path(key))
        if cached is not None:
            records[key] = cached
        else:
            missing.append({"key": key, "source": source})
    if missing:
        ds = _dataset(missing).map(probe_row, fn_kwargs={"config": config}, num_cpus=1)
        for row in tqdm(ds.iter_rows(), total=len(missing), desc="probe", unit="src"):
            record = {"source": row["source"], "probe": json.loads(row["probe"]) if row["probe"] else None,
                      "reason": row["reason"], "message": row["message"]}
            store.save(store.probe_path(row["key"]), record)
            records[row["key"]] = record
    return records


def _reject(store: OutStore, key: str, source: str, reason: str, message: str, probe: dict | None) -> None:
    log.warning("rejected %s: %s: %s", source, reason, message)
    row = {**(probe or {}), "source": source, "status": "rejected", "reason": reason, "message": message,
           "scenes": 0, "clips": 0, "clips_kept": 0}
    store.save(store.commit_path(key), {"source": row, "scenes": [], "clips": []})


def _resolve_duplicates(probes: dict[str, dict], committed: dict[str, dict], store: OutStore) -> list[dict]:
    """Commit rejected probes; of sources with equal bytes the first in input order stays."""
    seen = {c["source"]["source_id"]: c["source"]["source"] for c in committed.values()
            if c["source"].get("source_id") and c["source"]["status"] == "ok"}
    ok = []
    for key, record in sorted(probes.items(), key=lambda kv: kv[1]["source"]):
        probe = record["probe"]
        if probe is None:
            _reject(store, key, record["source"], record["reason"], record["message"], None)
            continue
        first = seen.setdefault(probe["source_id"], record["source"])
        if first != record["source"]:
            _reject(store, key, record["source"], reasons.DUPLICATE, f"same bytes as {first}", probe)
            continue
        if probe.get("warning"):
            log.warning("%s: %s", record["source"], probe["warning"])
        ok.append({"key": key, "source": record["source"], "probe": json.dumps(probe)})
    return ok


def _analyze_and_extract(ok: list[dict], store: OutStore, config: dict, cfg: CurateConfig) -> None:
    from ray.data import ActorPoolStrategy

    from curation.stages import TransNetV2Stage, analyze_row, clip_rows, extract_row, plan_row

    planned, fresh = [], []
    for row in ok:
        plan = store.load(store.plan_path(row["key"]))
        (planned if plan is not None else fresh).append((row, plan))
    bar = tqdm(total=len(ok), desc="sources", unit="src")
    tracker = _CommitTracker(store, bar)
    resumed_rows = []
    for row, plan in planned:
        rows = clip_rows(row["key"], row["source"], plan, store)
        if rows:
            resumed_rows.extend(rows)
        else:
            tracker.commit(row["key"], row["source"])
    kwargs = {"config": config, "out_dir": str(store.root)}
    extract_args = {"num_cpus": 1, "memory": cfg.extract.task_memory_mb * 2**20}
    if resumed_rows:
        log.info("resuming %d clips of %d planned sources", len(resumed_rows), len(planned))
        for row in _dataset(resumed_rows).map(extract_row, fn_kwargs=kwargs, **extract_args).iter_rows():
            tracker.add(row)
    if fresh:
        analyze_args = {"num_cpus": 1, "memory": cfg.analysis.task_memory_mb * 2**20}
        ds = _dataset([row for row, _ in fresh]).map(analyze_row, fn_kwargs={"config": config}, **analyze_args)
        if cfg.scenes.detector == "transnetv2":
            ds = ds.map_batches(TransNetV2Stage, fn_constructor_kwargs={"config": config}, batch_size=1,
                                compute=ActorPoolStrategy(min_size=1, max_size=1), num_cpus=1)
        ds = ds.flat_map(plan_row, fn_kwargs=kwargs, **analyze_args)
        ds = ds.map(extract_row, fn_kwargs=kwargs, **extract_args)
        for row in ds.iter_rows():
            tracker.add(row)
    bar.close()


class _CommitTracker:
    """Counts a source's finished clip rows and commits the source when the last one arrives."""

    def __init__(self, store: OutStore, bar: tqdm):
        self.store = store
        self.bar = bar
        self.seen: dict[str, int] = defaultdict(int)

    def add(self, row: dict) -> None:
        key = row["key"]
        if row.get("clip_id") is None:
            if row.get("reason"):
                probe = self.store.load(self.store.probe_path(key)) or {}
                _reject(self.store, key, row["source"], row["reason"], row["message"] or "", probe.get("probe"))
                self.bar.update(1)
            else:
                self.commit(key, row["source"])
            return
        self.seen[key] += 1
        if self.seen[key] >= row["expected"]:
            self.commit(key, row["source"])

    def commit(self, key: str, source: str) -> None:
        plan = self.store.load(self.store.plan_path(key))
        clips = []
        for c in plan["clips"]:
            row = dict(c["row"])
            row["reject_message"] = None
            row["file_bytes"] = None
            if row["keep"]:
                result = self.store.load(self.store.clip_result_path(row["clip_id"])) or {
                    "ok": False, "reason": reasons.DECODE_ERROR, "message": "clip result missing"}
                if result["ok"]:
                    row.update(num_frames=result["num_frames"], fps=result["fps"], width=result["width"],
                               height=result["height"], file_bytes=result["bytes"])
                else:
                    row.update(keep=False, reject_reason=result["reason"], reject_message=result["message"])
                    log.warning("clip %s not written: %s: %s", row["clip_id"], result["reason"], result["message"])
            clips.append(row)
        probe = plan["probe"]
        source_row = {**probe, "source": source, "status": "ok", "reason": None, "message": None,
                      "decoded_frames": plan["decoded_frames"], "scenes": len(plan["scenes"]),
                      "clips": len(clips), "clips_kept": sum(1 for c in clips if c["keep"])}
        if plan.get("stopped_early"):
            source_row["warning"] = "; ".join(filter(None, [probe.get("warning"), plan["stopped_early"]]))
        self.store.save(self.store.commit_path(key), {"source": source_row, "scenes": plan["scenes"],
                                                      "clips": clips})
        self.bar.update(1)
