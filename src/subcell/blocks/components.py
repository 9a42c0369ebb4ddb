"""Objects that continue across block faces, and a canonical order of ids.

One union-find for the package: the connected components of a graph of id pairs, computed by
``scipy.sparse.csgraph.connected_components`` (so nothing is hand-written). Block-wise labelling gives each
block's objects block-unique ids; :func:`face_pairs` lists the ids that touch across a face between two blocks;
:func:`components_of_pairs` joins them. :func:`canonical_order` numbers objects by their first voxel in raster
order, so a block-wise run and a whole-volume run give identical ids, not just identical partitions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["canonical_order", "components_of_pairs", "face_pairs", "first_voxels", "number_by_first_voxel"]


def face_pairs(left: np.ndarray, right: np.ndarray, *, min_contact: float = 0.0) -> np.ndarray:
    """``(K, 2)`` id pairs that touch across a face; ``left`` and ``right`` are the two facing voxel layers.

    With ``min_contact`` > 0 a pair counts only when its contact covers at least that share of the smaller
    object's footprint on the face (two objects that merely touch at the face stay apart).

    Examples
    --------
    >>> import numpy as np
    >>> face_pairs(np.array([1, 1, 0, 2]), np.array([5, 5, 6, 0])).tolist()
    [[1, 5]]
    """
    a, b = np.asarray(left).ravel(), np.asarray(right).ravel()
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros((0, 2), np.int64)
    pairs, counts = np.unique(np.stack([a[both], b[both]]).astype(np.int64), axis=1, return_counts=True)
    if min_contact <= 0:
        return pairs.T
    ia, ca = np.unique(a[a > 0], return_counts=True)
    ib, cb = np.unique(b[b > 0], return_counts=True)
    area_a = ca[np.searchsorted(ia, pairs[0])]
    area_b = cb[np.searchsorted(ib, pairs[1])]
    keep = counts >= min_contact * np.minimum(area_a, area_b)
    return pairs[:, keep].T


def components_of_pairs(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component of every id ``0..n-1`` when the ids in each row of ``pairs`` are joined (0 stays alone).

    Returns an array ``root`` of length ``n``: ids with the same root belong together; a root is the smallest
    id of its component.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    p = np.asarray(pairs, np.int64).reshape(-1, 2)
    if p.size == 0:
        return np.arange(n, dtype=np.int64)
    graph = coo_matrix((np.ones(len(p), np.int8), (p[:, 0], p[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    smallest = np.full(comp.max() + 1, n, np.int64)
    np.minimum.at(smallest, comp, np.arange(n, dtype=np.int64))
    return smallest[comp]


def first_voxels(
    labels: np.ndarray,
    *,
    offset: tuple[int, ...] | None = None,
    shape: tuple[int, ...] | None = None,
    ordered: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, raster index of each id's first voxel) of a label array.

    For a block of a larger volume give its ``offset`` and the volume ``shape``: the indices are then global.
    C order within a block is the volume's raster order restricted to the block, so the block's first voxel of
    an id is its first voxel in the volume among the block's voxels. ``ordered`` says the ids were assigned in
    order of first appearance (as ``scipy.ndimage.label`` does): their first voxels are then where the running
    maximum grows, found in one pass instead of a sort.
    """
    lab = np.asarray(labels)
    flat = lab.ravel()
    if ordered:
        running = np.maximum.accumulate(flat) if flat.size else flat
        where = np.flatnonzero(np.diff(running, prepend=0) > 0)
        ids = flat[where]
    else:
        pos = np.flatnonzero(flat)
        ids, first = np.unique(flat[pos], return_index=True)
        where = pos[first]
    if offset is None or shape is None:
        return ids, where
    coords = np.unravel_index(where, lab.shape)
    glob = tuple(c + o for c, o in zip(coords, offset, strict=True))
    return ids, np.ravel_multi_index(glob, shape).astype(np.int64)


def canonical_order(ids: np.ndarray, first: np.ndarray) -> np.ndarray:
    """New ids ``1..n`` for ``ids``, numbered by their first voxel in raster order (ties cannot occur)."""
    order = np.argsort(first, kind="stable")
    new = np.empty(len(ids), np.int64)
    new[order] = np.arange(1, len(ids) + 1)
    return new


def number_by_first_voxel(ids: np.ndarray, first: np.ndarray, n: int) -> np.ndarray:
    """New ids 1..n for objects 0..n-1 seen (possibly in several blocks) with candidate first voxels ``first``:
    each object's earliest voxel decides its place in raster order."""
    earliest = np.full(n, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(earliest, np.asarray(ids, np.int64), np.asarray(first, np.int64))
    return canonical_order(np.arange(n), earliest)
