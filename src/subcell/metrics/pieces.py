"""How many voxels a metric handles at once.

Metrics of large volumes are sums over voxels (counts, products, SSIM map values), so they are computed piece by
piece and summed: the temporaries (masks, sorted copies, float64 products, ~15 arrays for SSIM) are those of one
piece, not of the volume. One setting for every metric (tests lower it to force many pieces).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

__all__ = ["PIECE_VOXELS", "stored_blocks"]

PIECE_VOXELS = 1 << 22  # 4 M voxels: ~160 MB of int64/float64 temporaries


def stored_blocks(array: Any) -> Iterator[tuple[slice, ...]]:
    """Regions covering a chunked array (Dask, Zarr) made of its whole storage chunks, one chunk grown along the last
    axes first (by whole chunks) up to :data:`PIECE_VOXELS` voxels: read one at a time, a volume larger than memory is
    visited once, no chunk decompressed twice. A Dask array's chunk is its first (the regular) one per axis."""
    shape = tuple(int(s) for s in array.shape)
    chunk = tuple(c if isinstance(c, int) else c[0] for c in array.chunks)
    block = [max(1, min(int(c), s)) for c, s in zip(chunk, shape, strict=True)]
    for ax in reversed(range(len(shape))):
        rest = 1
        for i, b in enumerate(block):
            rest *= b if i != ax else 1
        block[ax] = min(shape[ax], block[ax] * max(1, PIECE_VOXELS // max(rest * block[ax], 1)))
        if block[ax] < shape[ax]:
            break
    for corner in itertools.product(*(range(0, s, b) for s, b in zip(shape, block, strict=True))):
        yield tuple(slice(c, min(c + b, s)) for c, b, s in zip(corner, block, shape, strict=True))
