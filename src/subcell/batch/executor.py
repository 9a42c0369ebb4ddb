"""The block engine's executor seam on Dask: ``DaskExecutor(client).map(fn, blocks)`` runs blocks on workers.

Block functions write their own region-aligned part of the output (no two blocks share a chunk), so the
result is the same as the serial run whatever worker runs which block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["DaskExecutor"]


class DaskExecutor:
    """An ordered ``map`` over a ``distributed.Client`` (what :func:`subcell.blocks.map_blocks` expects)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getstate__(self) -> dict[str, Any]:
        # block functions are closures over the field they walk, which holds this executor; a worker running a
        # block never maps further blocks, so the client (not picklable) stays behind
        return {"client": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.client = state["client"]

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        futures = self.client.map(_in_worker, *[list(it) for it in iterables], fn=fn, pure=False)
        return list(self.client.gather(futures))


def _in_worker(*args: Any, fn: Callable[..., Any]) -> Any:
    from subcell.batch.runner import worker_local_dask

    with worker_local_dask():  # a block's lazy reads are computed here, not sent back through the scheduler
        return fn(*args)
