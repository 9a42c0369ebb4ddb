"""Run items on a Dask cluster: resumable, failure-isolated, with one record per item and a summary table.

The client plans (which items are already done, which are stale or failed), submits the rest, and gathers the
records; the worker runs each item through :func:`execute_item`, which commits the output (atomically, inside the
task) and then writes the item's record. Everything the next run needs is on disk, so killing the client or a
worker loses only the items in flight. ``OUTDIR/batch.parquet`` is rewritten (atomically) from the records as
items finish and at the end.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subcell.batch.items import (
    Item,
    ItemRecord,
    attempts_path,
    config_hash,
    fingerprint,
    read_record,
    safe_name,
    write_record,
)  # fmt: skip
from subcell.errors import OutputExistsError, SubcellError

__all__ = ["BatchPlan", "BatchSummary", "execute_item", "plan_batch", "run_batch", "worker_local_dask"]

STATE = ".batch"
TABLE = "batch.parquet"
Progress = Callable[[dict[str, int]], None]


@dataclass
class BatchPlan:
    """What a run will do: ``todo`` items (new, stale or failed before) and ``skipped`` records (done already)."""

    todo: list[Item]
    skipped: list[ItemRecord]
    fingerprints: dict[str, str]
    config_hash: str
    seconds: float = 0.0

    @property
    def memory_estimate(self) -> int:
        return max((i.memory for i in self.todo), default=0)


@dataclass
class BatchSummary:
    records: list[ItemRecord]
    table: Path
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        c = self.counts
        text = f"{c.get('done', 0)} done, {c.get('skipped', 0)} skipped, {c.get('failed', 0)} failed"
        return text + (f": see {self.table}" if c.get("failed") else "")


def _peak_rss_during(stop: threading.Event, out: list[int]) -> None:
    import psutil

    proc = psutil.Process()
    while not stop.is_set():
        out[0] = max(out[0], proc.memory_info().rss)
        stop.wait(0.02)


def worker_local_dask() -> Any:
    """Inside a task, compute dask arrays (lazy reads) in this process, as the single command would.

    On a worker, dask's default scheduler is the cluster itself: a task that computes a lazy array would send
    its reads back through the scheduler and secede from its thread, letting the worker start more items than it
    has threads (measured: 3-4 items at once on a 1-thread worker, each 4x slower). Items run with the threaded
    scheduler over the worker's own threads instead.
    """
    import dask

    try:
        from distributed import get_worker

        threads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        threads = 1
    if threads <= 1:
        return dask.config.set(scheduler="synchronous")
    return dask.config.set(scheduler="threads", num_workers=threads)


def _one_line(e: BaseException) -> str:
    text = str(e) if isinstance(e, SubcellError) else f"{type(e).__name__}: {e}"
    return " ".join(text.split())[:1000]


def execute_item(
    task: Callable[[Item], str], item: Item, fp: str, chash: str, state_dir: str, memory_estimate: int = 0
) -> dict[str, Any]:
    """Run one item on a worker and write its record; never raises for a failing item (the error is recorded).

    The peak is the worker process's resident memory sampled every 20 ms while the item runs.
    """
    sd = Path(state_dir)
    prior = read_record(sd, item.id)
    if prior is not None and _still_done(prior, item, fp, chash):
        # already finished in this run: the scheduler recomputes a task whose result died with its worker
        # before the client fetched it; the output is on disk, so that is not redone
        return prior.to_dict()
    started = attempts_path(sd, item.id)
    started.parent.mkdir(parents=True, exist_ok=True)
    try:
        attempts = int(started.read_text()) + 1
    except (OSError, ValueError):
        attempts = 1
    started.write_text(str(attempts))  # survives the worker: a retried item knows it is a retry
    import psutil

    start_rss = psutil.Process().memory_info().rss
    peak = [start_rss]
    stop = threading.Event()
    sampler = threading.Thread(target=_peak_rss_during, args=(stop, peak), daemon=True)
    sampler.start()
    started_at = time.time()
    t0 = time.perf_counter()
    status, error, message = "done", "", ""
    try:
        with worker_local_dask():
            message = task(item) or ""
    except Exception as e:  # isolation: one bad item is recorded, the batch goes on
        status, error = "failed", _one_line(e)
    finally:
        stop.set()
        sampler.join()
    rec = ItemRecord(
        id=item.id, status=status, output=str(item.output), fingerprint=fp, config_hash=chash,
        source=str(item.inputs[0]) if item.inputs else "", error=error, message=" ".join(message.split())[:500],
        started=started_at, seconds=time.perf_counter() - t0, start_memory_mb=start_rss / 2**20, peak_memory_mb=peak[0] / 2**20, memory_estimate_mb=memory_estimate / 2**20,
        attempts=attempts, worker=f"{socket.gethostname()}:{os.getpid()}",
    )  # fmt: skip
    write_record(sd, rec)
    started.unlink(missing_ok=True)
    return rec.to_dict()


def _still_done(rec: ItemRecord, item: Item, fp: str, chash: str) -> bool:
    return (
        rec.status in ("done", "skipped")
        and rec.fingerprint == fp
        and rec.config_hash == chash
        and item.output.exists()
    )


def _failed(item: Item, plan: BatchPlan, error: str, attempts: int = 1) -> ItemRecord:
    """The record of an item that failed outside the worker's own bookkeeping (refused, or its worker lost)."""
    return ItemRecord(item.id, "failed", str(item.output), plan.fingerprints[item.id], plan.config_hash,
                      source=str(item.inputs[0]) if item.inputs else "", error=error,
                      memory_estimate_mb=item.memory / 2**20, attempts=attempts)  # fmt: skip


def is_batch_folder(path: str | Path) -> bool:
    """True for the OUTDIR of a ``subcell batch`` run (it holds ``batch.parquet``)."""
    return Path(path).is_dir() and (Path(path) / TABLE).is_file()


def read_batch_state(outdir: str | Path) -> dict[str, Any]:
    """What ``.batch/batch.json`` says of the batch in OUTDIR (command, options, config hash, manifest); ``{}``
    when there is none or it is unreadable."""
    try:
        state = json.loads((Path(outdir) / STATE / "batch.json").read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _check_outdir(outdir: Path, description: dict[str, Any], chash: str, *, overwrite: bool) -> None:
    if (outdir / STATE / "batch.json").exists() and not overwrite:
        prior = read_batch_state(outdir)
        if prior.get("config_hash") != chash:
            raise OutputExistsError(
                f"holds the outputs of another batch ({prior.get('command', '?')}, config {prior.get('config_hash')}"
                f"; this one is {description.get('command', '?')}, config {chash}); use another folder or --overwrite",
                path=outdir,
            )


def plan_batch(items: Sequence[Item], outdir: Path, description: dict[str, Any]) -> BatchPlan:
    """Decide what to run: an item is skipped when its output exists and its record says done with the same
    input fingerprint and config hash; everything else (new, failed, stale, half-done) is to do."""
    t0 = time.perf_counter()
    chash = config_hash(description)
    state_dir = outdir / STATE
    todo, skipped, fps = [], [], {}
    for item in items:
        fp = fingerprint(item.inputs, skip=(item.output,))  # an output written into its input is not an input
        fps[item.id] = fp
        rec = read_record(state_dir, item.id)
        if rec is not None and _still_done(rec, item, fp, chash):
            rec.status = "skipped"
            skipped.append(rec)
        else:
            todo.append(item)
    return BatchPlan(todo, skipped, fps, chash, time.perf_counter() - t0)


def _remove_partials(outdir: Path) -> None:
    from subcell.io._atomic import remove_temporaries

    for folder in (outdir, *[p for p in outdir.iterdir() if p.is_dir() and not p.name.startswith(".")]):
        remove_temporaries(folder)


def _write_table(outdir: Path, records: dict[str, ItemRecord], order: list[str]) -> Path:
    import pandas as pd

    from subcell.io import write_table

    rows = [records[i].to_dict() for i in order if i in records]
    path = outdir / TABLE
    write_table(pd.DataFrame(rows, columns=list(ItemRecord.__dataclass_fields__)), path, overwrite=True)
    return path


def _declared(client: Any, resource: str) -> list[float]:
    workers = client.scheduler_info().get("workers", {})
    return [float(w.get("resources", {}).get(resource, 0)) for w in workers.values()]


def run_batch(
    items: Sequence[Item],
    task: Callable[[Item], str],
    outdir: str | Path,
    client: Any,
    *,
    description: dict[str, Any],
    overwrite: bool = False,
    progress: Progress | None = None,
    flush_seconds: float = 5.0,
    manifest: str | Path | None = None,
) -> BatchSummary:
    """Run ``task`` on every item not already done, on ``client`` (a ``distributed.Client``).

    ``description`` says what is run (command, options, fingerprints of models/configs); its hash decides
    which earlier outputs are still valid. Raises before submitting anything if OUTDIR holds another batch's
    outputs (unless ``overwrite``). ``manifest`` (the file or batch folder the items came from) is recorded in
    ``.batch/batch.json``, outside the hash, for a next batch to carry its columns. Returns the summary; the
    caller decides the exit status.
    """
    from distributed import as_completed

    t0 = time.perf_counter()
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_batch(items, out, description)
    _check_outdir(out, description, plan.config_hash, overwrite=overwrite)
    state_dir = out / STATE
    state_dir.mkdir(exist_ok=True)
    from subcell.io._atomic import atomic_output

    with atomic_output(state_dir / "batch.json", overwrite=True) as tmp:
        state = {
            **description,
            "config_hash": plan.config_hash,
            "manifest": str(Path(manifest).resolve()) if manifest else None,
        }
        tmp.write_text(json.dumps(state, indent=1, default=str))
    _remove_partials(out)

    records: dict[str, ItemRecord] = {r.id: r for r in plan.skipped}
    order = [i.id for i in items]
    memory = _declared(client, "MEMORY")
    gpus = _declared(client, "GPU")
    futures = {}
    for item in plan.todo:
        res = dict(item.resources)
        reason = ""
        if res.get("GPU") and not any(g >= res["GPU"] for g in gpus):
            reason = f"needs a GPU worker; none of the {len(gpus)} workers declares a GPU resource"
        if memory and all(m > 0 for m in memory) and item.memory:
            if item.memory > max(memory):
                reason = (f"needs about {item.memory / 2**30:.1f} GB; workers have {max(memory) / 2**30:.1f} GB"
                          " (raise --memory-per-worker)")  # fmt: skip
            res["MEMORY"] = float(item.memory)
        if reason:
            rec = _failed(item, plan, reason)
            write_record(state_dir, rec)
            records[item.id] = rec
            continue
        fut = client.submit(
            execute_item, task, item, plan.fingerprints[item.id], plan.config_hash, str(state_dir), item.memory,
            key=f"subcell-{safe_name(item.id)}-{plan.config_hash}-{os.urandom(4).hex()}",
            resources=res or None, pure=False,
        )  # fmt: skip
        futures[fut] = item
    counts = {"total": len(items), "done": 0, "failed": 0, "skipped": len(plan.skipped), "running": len(futures)}
    counts["failed"] = sum(r.status == "failed" for r in records.values())
    if progress:
        progress(dict(counts))
    last_flush = time.monotonic()
    for fut in as_completed(list(futures)):
        item = futures[fut]
        try:
            rec = ItemRecord(**fut.result())
        except Exception as e:  # the worker died (KilledWorker after the retries) or the task could not run
            tries = attempts_path(state_dir, item.id)
            try:
                attempts = int(tries.read_text())
            except (OSError, ValueError):
                attempts = 1
            rec = _failed(item, plan, f"worker lost: {_one_line(e)}", attempts)
            write_record(state_dir, rec)
            tries.unlink(missing_ok=True)
        records[item.id] = rec
        counts[rec.status if rec.status in counts else "failed"] += 1
        counts["running"] -= 1
        if progress:
            progress(dict(counts))
        if time.monotonic() - last_flush > flush_seconds:
            _write_table(out, records, order)
            last_flush = time.monotonic()
    table = _write_table(out, records, order)
    final = [records[i] for i in order if i in records]
    tally = {s: sum(r.status == s for r in final) for s in ("done", "failed", "skipped")}
    return BatchSummary(final, table, time.perf_counter() - t0, tally)
