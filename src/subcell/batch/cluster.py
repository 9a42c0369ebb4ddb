"""Where a batch runs: a local cluster (default), an existing scheduler, or an HPC queue via dask-jobqueue.

``--scheduler`` takes ``local``, an address (``tcp://host:8786``, ``tls://…``) or a YAML file describing a
queue (validated by :class:`JobqueueConfig` before anything is submitted), so a lab that outgrows one machine
changes one flag. Only :mod:`subcell.batch` imports ``distributed``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from subcell.errors import ClusterError

__all__ = [
    "JobqueueConfig",
    "build_jobqueue_cluster",
    "connect",
    "dashboard_link",
    "load_jobqueue_config",
    "worker_memory_default",
]

_QUEUES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}


class JobqueueConfig(BaseModel):
    """An HPC queue for ``--scheduler FILE.yaml`` (see ``docs/batch.md`` for a documented example).

    Each job runs ``processes`` Dask workers sharing ``cores`` and ``memory``; ``jobs`` jobs are requested.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    queue_system: Literal["slurm", "pbs", "sge", "lsf"] = "slurm"
    jobs: int = Field(1, ge=1, le=10_000, description="jobs to request (each starts `processes` workers)")
    cores: int = Field(..., ge=1, le=1024, description="cores per job")
    memory: str = Field(..., pattern=r"^\d+(\.\d+)?\s*(GB|GiB|MB|MiB|TB|TiB)$", description="memory per job, e.g. 32GB")
    processes: int = Field(1, ge=1, le=256, description="worker processes per job")
    walltime: str = Field("01:00:00", pattern=r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$", description="[D-]HH:MM:SS")
    queue: str | None = Field(None, description="partition / queue name")
    account: str | None = Field(None, description="project to charge")
    gpus_per_job: int = Field(0, ge=0, le=16, description="GPUs per job: workers get a GPU resource")
    job_extra_directives: list[str] = Field(default_factory=list, description="extra #SBATCH/#PBS lines")
    job_script_prologue: list[str] = Field(default_factory=list, description="shell lines before the worker starts")
    local_directory: str | None = Field(None, description="worker scratch folder on the node")
    log_directory: str | None = None
    interface: str | None = Field(None, description="network interface of the nodes, e.g. ib0")


def load_jobqueue_config(path: str | Path) -> JobqueueConfig:
    """Read and validate a queue YAML; errors name the file and the field."""
    from subcell.config import load_validated

    return load_validated(JobqueueConfig, path)


def build_jobqueue_cluster(cfg: JobqueueConfig) -> Any:
    """The dask-jobqueue cluster object for ``cfg`` (no job is submitted until it is scaled)."""
    try:
        import dask_jobqueue
    except ImportError:
        raise ClusterError(
            "a queue config needs dask-jobqueue: pip install 'subcell[batch]'", field="scheduler"
        ) from None
    cls = getattr(dask_jobqueue, _QUEUES[cfg.queue_system])
    kwargs: dict[str, Any] = {
        "cores": cfg.cores, "memory": cfg.memory, "processes": cfg.processes, "walltime": cfg.walltime,
        "job_extra_directives": list(cfg.job_extra_directives),
        # workers on the nodes keep glibc's default allocator, as local workers do (see _worker_settings)
        "job_script_prologue": [
            *(f"export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__{k}={v}" for k, v in _ALLOCATOR_ENV.items()),
            *cfg.job_script_prologue,
        ],
    }  # fmt: skip
    if _has_bokeh():  # a free port, as for local clusters: 8787 may be another user's on a shared login node
        kwargs["scheduler_options"] = {"dashboard_address": ":0"}
    if cfg.queue:
        kwargs["queue"] = cfg.queue
    if cfg.account:
        kwargs["account"] = cfg.account
    for key in ("local_directory", "log_directory", "interface"):
        if getattr(cfg, key):
            kwargs[key] = getattr(cfg, key)
    if cfg.gpus_per_job:
        per_worker = max(1, cfg.gpus_per_job // cfg.processes)
        kwargs["worker_extra_args"] = ["--resources", f"GPU={per_worker}"]
        if cfg.queue_system == "slurm":
            kwargs["job_extra_directives"].append(f"--gres=gpu:{cfg.gpus_per_job}")
    return cls(**kwargs)


def worker_memory_default(workers: int) -> int:
    """Bytes per local worker: the machine's memory shared evenly, less 10 % for the client and the system."""
    import psutil

    return int(psutil.virtual_memory().total * 0.9 / max(workers, 1))


# How a worker's C library allocates, for local and queued workers alike. glibc's default mmap threshold: the
# nanny's MALLOC_TRIM_THRESHOLD_=65536 fixes it at 128 kB, so every large temporary is mapped and page-faulted
# again (segmentation items ran 40 % slower). One malloc arena: items run in the worker's threads, and glibc gives
# each thread its own arena, whose heaps cannot hold a block over 64 MB, so a thread's large network activations
# were mmap-ed and page-faulted in on every pass even with subcell.train.host.tune_allocator (a tile's forward
# pass 1.5x slower than in the main thread).
_ALLOCATOR_ENV: dict[str, Any] = {"MALLOC_TRIM_THRESHOLD_": None, "MALLOC_ARENA_MAX": 1}


def thread_env(threads: int) -> dict[str, str]:
    """The environment that holds the numerical libraries (OpenMP, MKL, OpenBLAS) of a new process to
    ``threads`` threads; it has to be set before they are imported."""
    return {var: str(threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def _worker_settings(retries: int, threads: int = 1) -> dict[str, Any]:
    # A worker that dies mid-item (OOM, segfault) has the item retried `retries` times by the scheduler, then
    # the client sees KilledWorker and records the item as failed. Items keep no data in worker memory (they
    # return a small record), so spilling and pausing are off; the nanny still kills a worker that exceeds its
    # memory limit, which is the OOM path above. (Pausing on process memory would stall a worker whose allocator
    # keeps freed pages mapped, see subcell.train.host.)
    return {
        "distributed.scheduler.allowed-failures": retries,
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": 0.95,
        "distributed.worker.daemon": False,
        # a worker process runs like the single command (_ALLOCATOR_ENV), and numerical libraries use its threads
        "distributed.nanny.pre-spawn-environ": {**_ALLOCATOR_ENV, **thread_env(threads)},
    }


@contextmanager
def connect(
    scheduler: str = "local",
    *,
    workers: int | None = None,
    threads_per_worker: int = 1,
    memory_per_worker: int | None = None,
    retries: int = 2,
    resources: dict[str, float] | None = None,
    timeout: float = 10.0,
) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler``; a cluster created here is closed on exit.

    ``local`` starts a LocalCluster of ``workers`` processes (default: one per core / ``threads_per_worker``),
    each with ``memory_per_worker`` bytes and ``resources`` (e.g. ``{"MEMORY": bytes}``) declared.
    """
    import dask

    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError(
            "batch runs need dask distributed: pip install 'subcell[batch]'", field="scheduler"
        ) from None

    with dask.config.set(_worker_settings(retries, threads_per_worker)):
        if scheduler == "local":
            n = workers or max(1, (os.cpu_count() or 1) // threads_per_worker)
            mem = memory_per_worker or worker_memory_default(n)
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=threads_per_worker, processes=True, memory_limit=mem,
                resources=resources or None, dashboard_address=":0" if _has_bokeh() else None,
            )  # fmt: skip
            client = Client(cluster)
        elif "://" in scheduler:
            cluster = None
            _refused_at_once(scheduler)
            try:
                client = Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError) as e:
                raise ClusterError(
                    f"cannot reach the scheduler at {scheduler} within {timeout:.0f} s ({type(e).__name__})",
                    field="scheduler",
                ) from None
        elif scheduler.endswith((".yaml", ".yml")):
            cfg = load_jobqueue_config(scheduler)
            cluster = build_jobqueue_cluster(cfg)
            cluster.scale(jobs=cfg.jobs)
            client = Client(cluster)
        else:
            raise ClusterError(
                f"expected 'local', a scheduler address (tcp://HOST:PORT) or a queue config .yaml, got {scheduler!r}",
                field="scheduler",
            )
        try:
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _refused_at_once(address: str) -> None:
    """Fail in milliseconds when nothing listens at a tcp:// address (the client would retry until its timeout)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    if parts.scheme != "tcp" or not parts.hostname or not parts.port:
        return
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2.0):
            return
    except ConnectionRefusedError:
        raise ClusterError(f"cannot reach the scheduler at {address}: connection refused", field="scheduler") from None
    except OSError:
        return  # unknown host, a timeout…: the client's own connect reports it with its timeout


def dashboard_link(client: Any) -> str:
    """``dashboard: URL`` where the Dask dashboard is served, or how to get it."""
    if not _has_bokeh():
        return "no dashboard (pip install 'subcell[batch]' for the Dask dashboard)"
    return f"dashboard: {client.dashboard_link}"


def _has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True
