"""Collections on Dask distributed: run items over a cluster, resumable and failure-isolated.

The only package that imports ``distributed``. :func:`run_batch` runs any picklable ``task(item) -> message``
over :class:`Item` objects; ``subcell batch <command>`` (:mod:`subcell.cli.batch`) builds the items and the
task from a manifest and one of the single-item commands. :class:`DaskExecutor` plugs a cluster into the block
engine so one large volume is spread over workers.
"""

from subcell.batch.cluster import JobqueueConfig, build_jobqueue_cluster, connect, load_jobqueue_config
from subcell.batch.executor import DaskExecutor
from subcell.batch.items import Item, ItemRecord, config_hash, fingerprint
from subcell.batch.runner import BatchPlan, BatchSummary, execute_item, plan_batch, run_batch

__all__ = [
    "BatchPlan", "BatchSummary", "DaskExecutor", "Item", "ItemRecord", "JobqueueConfig", "build_jobqueue_cluster",
    "config_hash", "connect", "execute_item", "fingerprint", "load_jobqueue_config", "plan_batch", "run_batch",
]  # fmt: skip
