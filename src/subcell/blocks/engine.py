"""``map_blocks``: run a per-block function over a :class:`~subcell.blocks.BlockGrid`.

The function does its own reading and writing of its block (region-aligned: no two cores overlap, so blocks
can be written in any order or in parallel) and returns a small result (a summary, a count). Serial by default;
``executor`` is any object with a ``map(fn, iterable)`` method that returns results in order (a
``concurrent.futures`` executor, or the Dask adapter of :mod:`subcell.batch`): that is the seam where a cluster
plugs in without the callers changing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from subcell.blocks.grid import Block, BlockGrid

__all__ = ["Executor", "map_blocks"]

R = TypeVar("R")


class Executor(Protocol):
    def map(self, fn: Callable[..., Any], *iterables: Any) -> Any: ...


def map_blocks(fn: Callable[[Block], R], grid: BlockGrid, *, executor: Executor | None = None) -> list[R]:
    """``[fn(block) for block in grid]``, through ``executor`` when given.

    Examples
    --------
    >>> import numpy as np
    >>> from subcell.blocks import BlockGrid
    >>> vol = np.arange(20).reshape(4, 5)
    >>> sums = map_blocks(lambda b: int(vol[b.core].sum()), BlockGrid(vol.shape, (2, 5)))
    >>> sums, sum(sums) == vol.sum()
    ([45, 145], True)
    """
    blocks = list(grid)
    if executor is None:
        return [fn(b) for b in blocks]
    return list(executor.map(fn, blocks))
