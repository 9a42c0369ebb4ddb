"""The block engine: grid geometry, map_blocks through an executor, objects labelled across block faces."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi

from subcell.blocks import BlockGrid, canonical_order, components_of_pairs, label_blocks, map_blocks
from subcell.blocks.components import first_voxels
from subcell.errors import ValueRangeError


def test_cores_tile_the_volume_and_reads_add_the_clipped_halo() -> None:
    grid = BlockGrid((5, 100, 70), (5, 32, 32), halo=(0, 6, 6))
    cover = np.zeros((5, 100, 70), int)
    for b in grid:
        cover[b.core] += 1
        for c, r, n in zip(b.core[1:], b.read[1:], (100, 70), strict=True):
            assert r.start == max(0, c.start - 6) and r.stop == min(n, c.stop + 6)
        inner = np.zeros(b.read_shape, bool)
        inner[b.trim] = True
        assert inner.sum() == np.prod([c.stop - c.start for c in b.core])
    assert (cover == 1).all() and len(grid) == 4 * 3


def test_bad_grids_are_one_line_errors() -> None:
    with pytest.raises(ValueRangeError, match="larger than the volume"):
        BlockGrid((4, 64, 64), (4, 16, 16), halo=(0, 80, 0))
    with pytest.raises(ValueRangeError, match="blocks must be >= 1"):
        BlockGrid((4, 64, 64), (4, 0, 16))
    with pytest.raises(ValueRangeError, match="need 3 values"):
        BlockGrid((4, 64, 64), (4, 16))


def test_map_blocks_through_an_executor_equals_serial() -> None:
    vol = np.random.default_rng(0).random((3, 50, 41))
    grid = BlockGrid(vol.shape, (3, 16, 16), halo=(0, 2, 2))

    def fn(b):  # type: ignore[no-untyped-def]
        return float(ndi.uniform_filter(vol[b.read], 3)[b.trim].sum())

    with ThreadPoolExecutor(2) as pool:
        assert map_blocks(fn, grid, executor=pool) == map_blocks(fn, grid)


def test_union_of_pairs_and_canonical_order() -> None:
    root = components_of_pairs(6, np.array([[1, 4], [4, 5], [2, 3]]))
    assert root.tolist() == [0, 1, 2, 2, 1, 1]
    assert canonical_order(np.array([7, 8, 9]), np.array([50, 3, 20])).tolist() == [3, 1, 2]


@given(
    mask=arrays(np.bool_, (2, 12, 13), elements=st.booleans()),
    by=st.integers(1, 12),
    bx=st.integers(1, 13),
    per_slice=st.booleans(),
)
@settings(max_examples=120, deadline=None)
def test_objects_labelled_in_blocks_equal_the_whole_volume(mask: np.ndarray, by: int, bx: int, per_slice: bool) -> None:
    """Any block size, including 1-voxel blocks: the same ids as labelling the whole volume at once."""
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndi.generate_binary_structure(2, 1)
    whole, n = ndi.label(mask, structure=structure if per_slice else None)
    ids, first = first_voxels(whole)
    expected = np.zeros(n + 1, np.int64)
    expected[ids] = canonical_order(ids, first)
    grid = BlockGrid(mask.shape, (2, by, bx))
    objs = label_blocks(grid, lambda b: mask[b.core], np.zeros(mask.shape, np.int32), per_slice=per_slice)
    got = np.zeros(mask.shape, np.int64)
    for b in grid:
        got[b.core] = objs.ids(b)
    assert objs.n == n
    np.testing.assert_array_equal(got, expected[whole])
    np.testing.assert_array_equal(objs.sizes[1:], np.bincount(got.ravel(), minlength=n + 1)[1:])
