"""Tile grids cover the volume with the requested overlap and their weights blend without seams."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from subcell.errors import ValueRangeError
from subcell.transforms.tiling import TileGrid, axis_weights, tile_starts


@pytest.mark.parametrize(("n", "tile"), [(100, 32), (64, 64), (10, 64), (257, 64), (33, 32)])
def test_tile_starts_cover_with_overlap(n: int, tile: int) -> None:
    starts = tile_starts(n, tile, overlap=0.25)
    assert starts[0] == 0
    assert starts[-1] + min(tile, n) == max(n, min(tile, n))
    for a, b in itertools.pairwise(starts):
        assert b - a <= tile * 0.75  # at least 25 % overlap
        assert b > a


@pytest.mark.parametrize(
    ("n", "tile", "multiple", "overlap"), [(512, 160, 8, 0.25), (208, 112, 8, 0.8), (96, 32, 16, 0.5)]
)
def test_tile_starts_on_a_multiple_keep_the_stride_phase_and_the_overlap(
    n: int, tile: int, multiple: int, overlap: float
) -> None:
    starts = tile_starts(n, tile, overlap=overlap, multiple=multiple)
    # a strided network sees every tile on the phase a whole-volume pass sees (unaligned: 0, 117, 235, 352)
    assert all(s % multiple == 0 for s in starts)
    assert starts[0] == 0 and starts[-1] + tile == n
    for a, b in itertools.pairwise(starts):
        assert 0 < b - a <= tile * (1 - overlap)
    # no fewer tiles would keep the overlap on such starts
    assert (len(starts) - 2) * (tile * (1 - overlap) // multiple * multiple) < n - tile


def test_tile_starts_on_a_multiple_refuse_what_they_cannot_place() -> None:
    with pytest.raises(ValueRangeError, match="pad the axis to 104"):
        tile_starts(100, 32, multiple=8)  # the last tile would start at 68
    with pytest.raises(ValueRangeError, match="cannot overlap"):
        tile_starts(64, 16, overlap=0.25, multiple=16)  # the only step on the grid is a whole tile


@pytest.mark.parametrize("trim", [0, 2, 5])
def test_axis_weights_sum_to_one_and_trim_inner_edges(trim: int) -> None:
    n, tile = 150, 40
    starts = tile_starts(n, tile, overlap=0.3)
    weights = axis_weights(n, tile, starts, trim=trim)
    total = np.zeros(n)
    for s, w in zip(starts, weights, strict=True):
        total[s : s + tile] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    if trim:
        assert np.all(weights[1][:trim] == 0) and np.all(weights[1][-trim:] == 0)
        assert weights[0][0] > 0 and weights[-1][-1] > 0  # volume edges keep their weight


def test_a_trim_of_half_the_overlap_abuts_neighbours_without_a_ramp() -> None:
    starts = tile_starts(96, 32, overlap=0.5, multiple=16)  # overlap 16
    weights = axis_weights(96, 32, starts, trim=8)
    total = np.zeros(96)
    for s, w in zip(starts, weights, strict=True):
        total[s : s + 32] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    # each voxel comes from exactly one tile: the one it lies at least 8 voxels inside (or at the volume edge)
    assert all(set(np.unique(w)) <= {0.0, 1.0} for w in weights)
    assert np.all(weights[1][:8] == 0) and np.all(weights[1][8:24] == 1) and np.all(weights[1][24:] == 0)


def test_trim_too_large_is_rejected() -> None:
    with pytest.raises(ValueRangeError, match="trim"):
        axis_weights(100, 40, tile_starts(100, 40, overlap=0.25), trim=10)


def test_constant_tiles_blend_to_a_constant_volume() -> None:
    grid = TileGrid((20, 90, 70), (8, 32, 32), overlap=0.25, trim=(0, 2, 2))
    out = np.zeros(grid.shape)
    for k in range(len(grid.rows())):
        for ky, kx, sl in grid.row_tiles(k):
            out[sl] += 3.5 * grid.weight(k, ky, kx)
    assert len(grid) > 8
    np.testing.assert_allclose(out, 3.5, rtol=1e-6)
