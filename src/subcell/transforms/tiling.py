"""Overlapping tiles and smooth blending weights for sliding-window prediction (pure NumPy).

A volume is covered by a regular grid of tiles per axis (:func:`tile_starts`). Each tile gets a separable
weight: 1 in its interior and at the volume border, a raised-cosine ramp across the overlap with its neighbours,
and exactly 0 in a ``trim`` margin at its inner edges (where a network's zero padding corrupts the output).
Because the grid is a product of per-axis grids, the sum of all tile weights is the product of per-axis sums,
so :func:`axis_weights` returns per-axis weights already divided by that sum: blending is a weighted sum of
tiles with no weight volume to keep, and a constant prediction stays exactly constant (no seams).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from subcell.errors import ValueRangeError

__all__ = ["TileGrid", "axis_weights", "tile_starts"]


def tile_starts(n: int, tile: int, *, overlap: float = 0.25, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``range(n)`` with at least ``overlap`` (fraction).

    The last tile ends exactly at ``n``; starts are spread evenly. ``tile >= n`` gives one tile at 0.
    With ``multiple``, every start is a multiple of it (``n - tile`` must be one): a network that downsamples by
    strides of ``multiple`` then sees each tile on the same stride phase as the whole volume, which is what
    makes a tiled prediction equal a whole-volume one.
    """
    if tile < 1 or n < 1 or multiple < 1:
        raise ValueRangeError(f"expected positive lengths, got n={n}, tile={tile}, multiple={multiple}", field="tile")
    if not 0 <= overlap < 1:
        raise ValueRangeError(f"expected an overlap fraction in [0, 1), got {overlap}", field="overlap")
    if tile >= n:
        return [0]
    if (n - tile) % multiple:
        raise ValueRangeError(f"tiles of {tile} cannot end at {n} on starts that are multiples of {multiple}: "
                              f"pad the axis to {tile + -(-(n - tile) // multiple) * multiple}", field="tile")  # fmt: skip
    # in units of ``multiple``: the longest step that keeps the overlap, and the fewest tiles that need no longer
    units = (n - tile) // multiple
    max_step = math.floor(tile * (1 - overlap)) // multiple
    if max_step < 1:
        raise ValueRangeError(f"tiles of {tile} on starts that are multiples of {multiple} cannot overlap by "
                              f"{overlap:.0%}: use tiles of at least {math.ceil(multiple / (1 - overlap))}",
                              field="tile")  # fmt: skip
    count = math.ceil(units / max_step) + 1
    # consecutive rounded starts differ by floor or ceil of units / (count - 1) <= max_step
    return [multiple * round(i * units / (count - 1)) for i in range(count)]


def _ramp(length: int) -> np.ndarray:
    """Strictly positive raised-cosine ramp rising towards 1 over ``length`` samples."""
    t = (np.arange(length, dtype=np.float64) + 0.5) / length
    return np.sin(0.5 * np.pi * t) ** 2


def axis_weights(n: int, tile: int, starts: Sequence[int], *, trim: int = 0) -> list[np.ndarray]:
    """Per-tile weights along one axis, normalised so that they sum to 1 at every position.

    Parameters
    ----------
    n, tile : int
        Axis length and tile length.
    starts : sequence of int
        Tile starts from :func:`tile_starts`.
    trim : int
        Samples at each *inner* tile edge that get weight 0 (at most half the smallest overlap; at exactly half,
        neighbours abut with no blending ramp, which is exact when the trim covers the network's edge reach).

    Returns
    -------
    list of ndarray
        One float64 array of length ``min(tile, n)`` per tile.
    """
    tile = min(tile, n)
    if len(starts) == 1:
        return [np.ones(tile)]
    overlaps = [starts[i] + tile - starts[i + 1] for i in range(len(starts) - 1)]
    smallest = min(overlaps)
    if smallest < 2 * trim:
        raise ValueRangeError(f"trim {trim} must be at most half the smallest overlap {smallest}", field="trim")
    ramp = _ramp(smallest - 2 * trim)
    raw = []
    for k, _s in enumerate(starts):
        w = np.ones(tile)
        if k > 0:
            w[:trim] = 0.0
            w[trim : trim + ramp.size] = ramp
        if k < len(starts) - 1:
            w[tile - trim :] = 0.0
            w[tile - trim - ramp.size : tile - trim] = np.minimum(w[tile - trim - ramp.size : tile - trim], ramp[::-1])
        raw.append(w)
    total = np.zeros(n)
    for s, w in zip(starts, raw, strict=True):
        total[s : s + tile] += w
    if np.any(total <= 0):  # cannot happen with trim <= overlap / 2; kept as a guard for future edits
        raise ValueRangeError("tile weights leave part of the axis uncovered", field="trim")
    return [w / total[s : s + tile] for s, w in zip(starts, raw, strict=True)]


class TileGrid:
    """A product grid of overlapping tiles over a ZYX volume, with normalised separable blending weights.

    Parameters
    ----------
    shape : (Z, Y, X)
    tile : (z, y, x)
        Tile size; clipped to the volume per axis.
    overlap : float or (z, y, x)
        Minimum overlap fraction between neighbouring tiles (default 0.25), or one per axis.
    trim : (z, y, x) or int
        Zero-weight margin at inner tile edges.
    multiple : (z, y, x) or int
        Tile starts are multiples of this per axis (a network's downsampling factor; see :func:`tile_starts`).

    Examples
    --------
    >>> grid = TileGrid((10, 100, 100), (8, 64, 64))
    >>> len(grid)
    8
    """

    def __init__(
        self,
        shape: Sequence[int],
        tile: Sequence[int],
        *,
        overlap: float | Sequence[float] = 0.25,
        trim: int | Sequence[int] = 0,
        multiple: int | Sequence[int] = 1,
    ) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.tile = tuple(min(int(t), n) for t, n in zip(tile, self.shape, strict=True))
        trims = (trim,) * 3 if isinstance(trim, int) else tuple(int(t) for t in trim)
        mults = (multiple,) * 3 if isinstance(multiple, int) else tuple(int(m) for m in multiple)
        overlaps = (float(overlap),) * 3 if isinstance(overlap, int | float) else tuple(float(o) for o in overlap)
        self.starts = [
            tile_starts(n, t, overlap=o, multiple=m)
            for n, t, o, m in zip(self.shape, self.tile, overlaps, mults, strict=True)
        ]
        self.weights = [
            axis_weights(n, t, s, trim=tr)
            for n, t, s, tr in zip(self.shape, self.tile, self.starts, trims, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.starts[0]) * len(self.starts[1]) * len(self.starts[2])

    def rows(self) -> list[int]:
        """Start offsets along z (tiles are processed row by row to bound memory)."""
        return list(self.starts[0])

    def row_tiles(self, kz: int) -> list[tuple[int, int, tuple[slice, slice, slice]]]:
        """The tiles of z-row ``kz`` as (y index, x index, ZYX slices into the volume)."""
        sz = self.starts[0][kz]
        return [
            (ky, kx, (slice(sz, sz + self.tile[0]), slice(sy, sy + self.tile[1]), slice(sx, sx + self.tile[2])))
            for ky, sy in enumerate(self.starts[1])
            for kx, sx in enumerate(self.starts[2])
        ]

    def weight(self, kz: int, ky: int, kx: int) -> np.ndarray:
        """The normalised float32 weight of one tile (a product of its per-axis weights)."""
        w = self.weights[0][kz][:, None, None] * self.weights[1][ky][None, :, None] * self.weights[2][kx][None, None, :]
        return w.astype(np.float32)
