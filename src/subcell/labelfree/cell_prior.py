"""Where a nucleus sits in its cell, from the cell outlines alone and with a prediction (NumPy arrays in and out).

An interphase nucleus fills the middle of its cell: :func:`cell_depth` measures that middle, :func:`deepest_in_cells`
is the outline-only nucleus mask (the baseline a prediction inside segmented cells has to beat, reported by
``labelfree evaluate``), and :func:`nucleus_score` / :func:`nuclei_from_score` are what ``labelfree nuclei``
makes of a prediction with them (:mod:`subcell.labelfree.nuclei` applies them to images).
"""

from __future__ import annotations

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize

__all__ = ["cell_depth", "deepest_in_cells", "nuclei_from_score", "nucleus_score"]


def cell_depth(cells: np.ndarray, sampling: tuple[float, ...]) -> np.ndarray:
    """Each labelled voxel's distance to its cell's boundary (µm, ``sampling`` per axis of ``cells``, ZYX) over the
    largest in that cell: 1 at the cell's centre, towards 0 at its edge; 0 outside the cells. Axes of length 1 (a
    single plane) are left out of the distance. An interphase nucleus fills the middle of its cell, so the depth is
    the prior a mask prediction inside segmented cells has to beat."""
    from scipy import ndimage as ndi

    keep = [i for i, n in enumerate(cells.shape) if n > 1]
    flat = cells.reshape([cells.shape[i] for i in keep])
    step = tuple(sampling[i] for i in keep)
    depth = np.zeros(flat.shape, np.float32)
    for i, box in enumerate(ndi.find_objects(flat), start=1):
        if box is None:
            continue
        m = np.pad(flat[box] == i, 1)  # the box's edge is outside the cell
        d = ndi.distance_transform_edt(m, sampling=step)[tuple(slice(1, -1) for _ in step)]
        inside = flat[box] == i
        depth[box][inside] = d[inside] / max(float(d.max()), 1e-12)
    return depth.reshape(cells.shape)


def deepest_in_cells(depth: np.ndarray, cells: np.ndarray, fraction: float) -> np.ndarray:
    """In each labelled cell, its ``fraction`` of voxels deepest inside it (:func:`cell_depth`; or any score): a
    nucleus mask from the cell outlines alone, given the nucleus share of the cell volume. Exactly that share
    (rounded to voxels): where voxels tie at the cut, the first in raster order are taken."""
    from scipy import ndimage as ndi

    out = np.zeros(cells.shape, bool)
    for i, box in enumerate(ndi.find_objects(cells), start=1):
        if box is None:
            continue
        where = np.flatnonzero(cells[box] == i)
        keep = where[np.argsort(-depth[box].ravel()[where], kind="stable")[: round(fraction * where.size)]]
        chosen = np.zeros(cells[box].size, bool)
        chosen[keep] = True
        out[box] |= chosen.reshape(cells[box].shape)
    return out


def nucleus_score(
    prediction: np.ndarray, cells: np.ndarray, voxel_size: VoxelSize | tuple[float, float, float], *,
    prior_weight: float = 0.5,
) -> np.ndarray:  # fmt: skip
    """The nucleus score of every voxel inside the cells (``(Z, Y, X)`` arrays; 0 outside the cells).

    ``(1 - prior_weight) × z(prediction) + prior_weight × z(depth)``, both z-scored over the cells' voxels, where
    depth is each voxel's distance to its cell's boundary over the largest in that cell (µm, ``voxel_size``).

    Examples
    --------
    >>> cells = np.zeros((1, 9, 9), np.int32); cells[0, 1:8, 1:8] = 1
    >>> s = nucleus_score(np.zeros((1, 9, 9), np.float32), cells, (1.0, 1.0, 1.0), prior_weight=1.0)
    >>> bool(s[0, 4, 4] > s[0, 1, 1])
    True
    """
    if not 0.0 <= prior_weight <= 1.0:
        raise ValueRangeError(f"expected a weight in [0, 1], got {prior_weight}", field="prior_weight")
    inside = cells > 0
    if not inside.any():
        raise ValueRangeError("no labelled cell to find a nucleus in", field="cells")
    vs = VoxelSize.of(voxel_size).as_tuple()
    score = np.zeros(cells.shape, np.float32)
    parts = [(1.0 - prior_weight, prediction), (prior_weight, cell_depth(cells, vs))]
    for weight, values in parts:
        if weight == 0:
            continue
        v = np.asarray(values, np.float32)[inside]  # float32 arrays, moments accumulated in float64
        mean, sd = float(v.mean(dtype=np.float64)), float(v.std(dtype=np.float64))
        if sd > 0:  # a constant part (a prediction flat over the cells) carries no ranking: it adds nothing
            v -= mean
            v *= weight / sd
            score[inside] += v
    return score


def _largest_piece_filled(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    pieces, n = ndi.label(mask)
    if n == 0:
        return mask
    largest = pieces == 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
    return ndi.binary_fill_holes(largest)


def nuclei_from_score(score: np.ndarray, cells: np.ndarray, *, share: float | None = None) -> np.ndarray:
    """Nucleus labels from a score (``(Z, Y, X)``): thresholded inside the cells, one object per cell, each
    labelled with its cell's id.

    The threshold is Otsu's over every cell voxel's score, or with ``share`` each cell's highest-scoring
    ``share`` of its voxels. Each cell keeps its largest connected piece (face connectivity), holes filled,
    clipped to the cell. A cell where nothing passes the threshold gets no nucleus.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    inside = cells > 0
    if not inside.any():
        raise ValueRangeError("no labelled cell to find a nucleus in", field="cells")
    if share is not None:
        if not 0.0 < share < 1.0:
            raise ValueRangeError(f"expected a share of the cell volume in (0, 1), got {share}", field="share")
        passed = deepest_in_cells(score, cells, share)
    else:
        values = score[inside]
        t = float(threshold_otsu(values)) if values.min() < values.max() else float(values.min())
        passed = (score > t) & inside
    out = np.zeros(cells.shape, cells.dtype)
    for i, box in enumerate(ndi.find_objects(cells), start=1):
        if box is None:
            continue
        own = cells[box] == i
        nucleus = _largest_piece_filled(passed[box] & own) & own
        out[box][nucleus] = i
    return out
