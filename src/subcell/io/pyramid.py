"""The resolution levels of an OME-Zarr image: which downsampling factors each level has (:func:`plan_pyramid`) and
filling each level from the one before, chunk-wise (:func:`build_pyramid`: a local mean for images, a stride for
labels, so memory stays bounded by a few chunks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from subcell.image import VoxelSize, dask_scheduler

__all__ = ["build_pyramid", "plan_pyramid"]


def plan_pyramid(
    shape: Sequence[int], voxel_size: VoxelSize, *, levels: int | None = None, min_size: int = 256
) -> list[tuple[int, int, int]]:
    """Cumulative (z, y, x) downsampling factors per level, level 0 first.

    Each level halves the axes that are finer than the coarsest one (so anisotropic z-stacks first become more
    isotropic), until the largest y/x extent fits ``min_size`` or ``levels`` is reached.
    """
    z, y, x = (int(s) for s in shape[-3:])
    vs = list(voxel_size.as_tuple())
    factors = [(1, 1, 1)]
    cur = [1, 1, 1]
    max_levels = levels if levels is not None else 10
    while len(factors) < max_levels:
        if levels is None and max(y // cur[1], x // cur[2]) <= min_size:
            break
        coarsest = max(v * c for v, c in zip(vs, cur, strict=True))
        step = [2 if (v * c * 2 <= coarsest * 1.5) else 1 for v, c in zip(vs, cur, strict=True)]
        if step == [1, 1, 1]:
            step = [2, 2, 2]
        nxt = [c * s for c, s in zip(cur, step, strict=True)]
        nxt = [c if n // c >= 1 else c // s for c, s, n in zip(nxt, step, (z, y, x), strict=True)]
        if all(n // c < 2 for n, c in zip((z, y, x), nxt, strict=True)) or nxt == cur:
            break
        cur = nxt
        factors.append((cur[0], cur[1], cur[2]))
    return factors


def build_pyramid(arrays: list[Any], factors: list[tuple[int, int, int]], *, labels: bool) -> None:
    """Fill level i from level i-1, chunk-wise with Dask (bounded memory)."""
    import dask.array as da

    for i in range(1, len(arrays)):
        prev = da.from_zarr(arrays[i - 1])
        step = tuple(int(a // b) for a, b in zip(factors[i], factors[i - 1], strict=True))
        target = arrays[i]
        if labels:
            down = prev[:, :, :: step[0], :: step[1], :: step[2]]
            down = down[tuple(slice(0, n) for n in target.shape)]
        else:
            trimmed = prev[
                tuple(slice(0, (n // s) * s if s > 1 else n) for n, s in zip(prev.shape, (1, 1, *step), strict=True))
            ]
            down = da.coarsen(
                np.mean, trimmed.astype(np.float32), {2: step[0], 3: step[1], 4: step[2]}, trim_excess=True
            )
            if np.issubdtype(target.dtype, np.integer):
                info = np.iinfo(target.dtype)
                down = da.clip(da.round(down), info.min, info.max)
            down = down[tuple(slice(0, n) for n in target.shape)]
        # without a scheduler (a client) to choose for, task rechunking is what Dask would pick; naming it spares
        # the import of distributed that choosing costs (:func:`~subcell.image.dask_scheduler`)
        scheduler = dask_scheduler()
        method = "tasks" if scheduler is not None else None
        da.store(down.astype(target.dtype).rechunk(target.chunks, method=method), target, lock=False,
                 scheduler=scheduler)  # fmt: skip
