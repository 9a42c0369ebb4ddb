"""A regular grid of blocks over an N-d volume: cores that tile it, read regions with a halo, and trims."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from subcell.errors import ValueRangeError

__all__ = ["Block", "BlockGrid"]


@dataclass(frozen=True)
class Block:
    """One block: ``core`` is what it writes, ``read`` what it reads (core + halo), in volume coordinates."""

    index: tuple[int, ...]
    core: tuple[slice, ...]
    read: tuple[slice, ...]

    @property
    def trim(self) -> tuple[slice, ...]:
        """The core inside an array of the read region."""
        return tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(self.core, self.read, strict=True))

    @property
    def read_shape(self) -> tuple[int, ...]:
        return tuple(r.stop - r.start for r in self.read)


class BlockGrid:
    """Blocks of ``block`` voxels per axis over ``shape``, each read with ``halo`` voxels around its core.

    Parameters
    ----------
    shape : sequence of int
        Volume shape.
    block : sequence of int
        Core size per axis (the last block of an axis may be smaller); ``>= shape`` gives one block on that axis.
    halo : sequence of int, optional
        Voxels read beyond the core on each side (clipped at the volume border, where the volume's own
        boundary rule applies, as in a whole-volume run).

    Examples
    --------
    >>> grid = BlockGrid((4, 100, 100), (4, 64, 64), halo=(0, 8, 8))
    >>> len(grid)
    4
    >>> grid.block((0, 1, 1)).read
    (slice(0, 4, None), slice(56, 100, None), slice(56, 100, None))
    """

    def __init__(
        self,
        shape: Sequence[int],
        block: Sequence[int],
        *,
        halo: Sequence[int] | None = None,
    ) -> None:
        self.shape = tuple(int(s) for s in shape)
        n = len(self.shape)
        if len(block) != n:
            raise ValueRangeError(f"block and halo need {n} values for a {n}-d volume", field="block")
        self.block_shape = tuple(min(int(b), s) for b, s in zip(block, self.shape, strict=True))
        self.halo = tuple(int(h) for h in (halo or (0,) * n))
        if len(self.halo) != n:
            raise ValueRangeError(f"block and halo need {n} values for a {n}-d volume", field="block")
        if any(s < 1 for s in self.shape):
            raise ValueRangeError(f"the volume is empty (shape {self.shape})", field="shape")
        if any(b < 1 for b in self.block_shape) or any(h < 0 for h in self.halo):
            raise ValueRangeError(
                f"blocks must be >= 1 voxel and halo >= 0 (got block {tuple(block)}, halo {self.halo})", field="block"
            )
        for ax, (s, b, h) in enumerate(zip(self.shape, self.block_shape, self.halo, strict=True)):
            if b < s and h > s:
                raise ValueRangeError(
                    f"halo of {h} voxels along axis {ax} is larger than the volume ({s}); process it whole",
                    field="halo",
                )
        self.counts = tuple(-(-s // b) for s, b in zip(self.shape, self.block_shape, strict=True))

    def __len__(self) -> int:
        out = 1
        for c in self.counts:
            out *= c
        return out

    def __iter__(self) -> Iterator[Block]:
        for index in itertools.product(*(range(c) for c in self.counts)):
            yield self.block(index)

    def block(self, index: Sequence[int]) -> Block:
        core, read = [], []
        for i, s, b, h in zip(index, self.shape, self.block_shape, self.halo, strict=True):
            c0, c1 = i * b, min(s, (i + 1) * b)
            if b >= s:  # one block along this axis: nothing to read beyond the volume
                r0, r1 = 0, s
            else:
                r0 = max(0, c0 - h)
                r1 = min(s, c1 + h)
            core.append(slice(c0, c1))
            read.append(slice(r0, r1))
        return Block(tuple(int(i) for i in index), tuple(core), tuple(read))

    def faces(self, axis: int) -> list[int]:
        """Coordinates along ``axis`` where one block's core ends and the next begins."""
        b = self.block_shape[axis]
        return list(range(b, self.shape[axis], b))
