"""The field a workflow runs on: its stored arrays and how to walk it (one block, or a grid of lateral blocks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from subcell.blocks import BlockGrid, map_blocks
from subcell.errors import ValueRangeError
from subcell.image import VoxelSize, materialize
from subcell.segment import steps as S

__all__ = ["DTYPES", "Field", "Op"]

Scratch = Callable[[str, Any], Any]
DTYPES = {"image": np.float32, "mask": np.bool_, "labels": np.int32}


@dataclass
class Op:
    index: int
    name: str
    step: S.Step
    src: str
    refs: dict[str, str]  # field name on the step (seeds, mask, …) → stored array name
    out: str
    params: dict[str, Any] = field(default_factory=dict)


class Field:
    """The arrays of one field and how to walk it: one block (whole) or a grid of lateral blocks."""

    def __init__(
        self, shape: tuple[int, int, int], vs: VoxelSize, block_yx: int | None, scratch: Scratch | None, executor: Any
    ) -> None:
        self.shape, self.vs, self.block_yx, self.executor = shape, vs, block_yx, executor
        self.whole = block_yx is None or (block_yx >= shape[1] and block_yx >= shape[2])
        self._scratch = scratch
        self.store: dict[str, Any] = {}
        self.kinds: dict[str, str] = {}

    def grid(self, halo: Sequence[int] = (0, 0, 0), *, what: str = "") -> BlockGrid:
        if self.whole:
            return BlockGrid(self.shape, self.shape)
        assert self.block_yx is not None
        if min(halo) < 0:
            raise ValueRangeError(
                f"{what} has no bounded reach, so it cannot run block-wise (give it a distance bound, "
                "e.g. max_distance_um, or segment the field whole)",
                field="block_yx",
            )
        if max(halo[1:]) > self.block_yx:
            raise ValueRangeError(
                f"blocks of {self.block_yx} px are smaller than the reach of {what} ({max(halo[1:])} px at this "
                f"voxel size); use a block of at least {max(halo[1:])} px",
                field="block_yx",
            )
        h = (0, min(halo[1], self.shape[1]), min(halo[2], self.shape[2]))
        return BlockGrid(self.shape, (self.shape[0], self.block_yx, self.block_yx), halo=h)

    def read(self, name: str, region: tuple[slice, ...]) -> np.ndarray:
        return materialize(self.store[name][region])

    def new(self, name: str, dtype: Any) -> Any:
        arr = np.zeros(self.shape, dtype) if self.whole or self._scratch is None else self._scratch(name, dtype)
        self.store[name] = arr
        return arr

    def map(self, fn: Callable[[Any], Any], grid: BlockGrid) -> list[Any]:
        return map_blocks(fn, grid, executor=None if self.whole else self.executor)


def write(fld: Field, name: str, dtype: Any, make: Callable[[Any], np.ndarray]) -> None:
    """Store ``make(block)`` (the block's core) as array ``name``."""
    target = fld.new(name, dtype)

    def task(block: Any) -> None:
        target[block.core] = np.asarray(make(block)).astype(dtype, copy=False)

    fld.map(task, fld.grid())


def reader(fld: Field, name: str) -> Callable[[Any], np.ndarray]:
    return lambda block: fld.read(name, block.core)


def unit(fld: Field, per_slice: bool) -> float:
    z, y, x = fld.vs.as_tuple()
    return y * x if per_slice or fld.shape[0] == 1 else z * y * x
