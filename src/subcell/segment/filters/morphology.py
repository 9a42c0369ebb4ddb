"""Masks and objects: watershed, hole filling, membrane filling, size filter, thinning."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize
from subcell.segment.filters._common import _as_3d

__all__ = [
    "basal_run_lengths",
    "columns_filled",
    "fill_between_membranes",
    "fill_cut_tops",
    "fill_holes",
    "membrane_columns",
    "seeded_watershed",
    "size_filter",
    "topology_preserving_thinning",
]


def seeded_watershed(
    landscape: np.ndarray,
    *,
    seeds: np.ndarray,
    mask: np.ndarray | None = None,
    compactness: float = 0.0,
    max_distance_um: float | None = None,
    voxel_size: VoxelSize | Sequence[float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Watershed from labelled ``seeds`` on ``landscape`` (flooded from low to high), restricted to ``mask``.

    Output ids are the seed ids, so region i grows from seed i (e.g. cell i from nucleus i).

    Parameters
    ----------
    landscape : (Z, Y, X) or (Y, X) array
        Flooded from low to high: e.g. a membrane image (walls are bright) or a negated distance map.
    seeds : integer array of the same shape
        Labelled seeds; 0 is unseeded.
    mask : bool array, optional
        Regions never grow outside it.
    compactness : float
        Compact watershed (0: classic).
    max_distance_um : float, optional
        Regions stop this far (µm) from every seed (cells have a maximum size).
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.

    Returns
    -------
    (Z, Y, X) int32 labels with the seed ids.

    Examples
    --------
    >>> import numpy as np
    >>> land = np.zeros((1, 1, 7), np.float32); land[0, 0, 3] = 1
    >>> seeds = np.zeros((1, 1, 7), np.int32); seeds[0, 0, 0] = 4; seeds[0, 0, 6] = 9
    >>> seeded_watershed(land, seeds=seeds)[0, 0].tolist()
    [4, 4, 4, 4, 9, 9, 9]
    """
    from skimage.segmentation import watershed

    land = _as_3d(landscape)
    sd = _as_3d(seeds, "seeds")
    if sd.shape != land.shape or (mask is not None and _as_3d(mask, "mask").shape != land.shape):
        raise ValueRangeError(f"seeds/mask shape must match the image {land.shape}", field="seeds")
    if not np.issubdtype(sd.dtype, np.integer):
        raise ValueRangeError(f"seeds must be integer labels, got {sd.dtype}", field="seeds")
    m = None if mask is None else _as_3d(mask, "mask").astype(bool)
    if max_distance_um is not None:
        near = ndi.distance_transform_edt(sd == 0, sampling=VoxelSize.of(voxel_size).as_tuple()) <= max_distance_um
        m = near if m is None else (m & near)
    return watershed(land, markers=sd, mask=m, compactness=compactness).astype(np.int32)


def fill_holes(
    mask: np.ndarray,
    *,
    max_hole_um: float | None = None,
    voxel_size: VoxelSize | Sequence[float],
    per_slice: bool = False,
    close_lateral_border: bool = False,
) -> np.ndarray:
    """Fill enclosed holes: per z-plane (``per_slice``) or in 3D.

    Parameters
    ----------
    mask : (Z, Y, X) or (Y, X) bool array
    max_hole_um : float, optional
        Largest hole filled: an area in µm² per plane, a volume in µm³ in 3D; None fills every hole.
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.
    per_slice : bool
        Fill each z-plane on its own (a single plane always is).
    close_lateral_border : bool
        Treat the y/x edges of the field as walls, so objects cut by the field edge (cells at the border of a
        colony image) are filled too; the top and bottom of the stack stay open.

    Returns
    -------
    (Z, Y, X) bool array.

    Examples
    --------
    >>> import numpy as np
    >>> ring = np.ones((1, 5, 5), bool); ring[0, 2, 2] = False
    >>> bool(fill_holes(ring, voxel_size=(1, 1, 1))[0, 2, 2])
    True
    """
    m = _as_3d(mask, "mask").astype(bool)
    if close_lateral_border:
        padded = np.pad(m, ((0, 0), (1, 1), (1, 1)), constant_values=True)
        filled = fill_holes(padded, max_hole_um=max_hole_um, voxel_size=voxel_size, per_slice=per_slice)
        return filled[:, 1:-1, 1:-1] | m
    vs = VoxelSize.of(voxel_size).as_tuple()
    planes = [(z, m[z]) for z in range(m.shape[0])] if per_slice or m.shape[0] == 1 else [(None, m)]
    out = m.copy()
    unit = vs[1] * vs[2] if per_slice or m.shape[0] == 1 else vs[0] * vs[1] * vs[2]
    for z, plane in planes:
        filled = ndi.binary_fill_holes(plane)
        holes = filled & ~plane
        if max_hole_um is not None and holes.any():
            lab, _n = ndi.label(holes)
            sizes = np.bincount(lab.ravel())[1:] * unit
            small = np.concatenate([[False], sizes <= max_hole_um])
            holes = small[lab]
        if z is None:
            out |= holes
        else:
            out[z] |= holes
    return out


def _first_run(mask: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (y, x) column: start, end (exclusive) and brightest plane of the lowest run of ``mask`` along z."""
    nz = mask.shape[0]
    z = np.arange(nz)[:, None, None]
    start = np.argmax(mask, axis=0)
    gap = (z >= start) & ~mask
    end = np.where(gap.any(0), np.argmax(gap, axis=0), nz)
    run = (z >= start) & (z < end)
    peak = np.argmax(np.where(run, values, -np.inf), axis=0)
    return start, end, peak


def basal_run_lengths(mask: np.ndarray) -> np.ndarray:
    """Length (planes) of the lowest run of ``mask`` in every column that has more than one run."""
    m = _as_3d(mask, "mask").astype(bool)
    nz = m.shape[0]
    if nz < 3:
        return np.zeros(0, np.int64)
    zeros = np.zeros(m.shape, np.float32)
    b_start, b_end, _ = _first_run(m, zeros)
    t_start, _, _ = _first_run(m[::-1], zeros)
    several = m.any(0) & (b_end < nz - t_start)
    return (b_end - b_start)[several].astype(np.int64)


def fill_between_membranes(
    mask: np.ndarray,
    intensity: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    max_gap_um: float = 3.0,
    basal_len: float | None = None,
) -> np.ndarray:
    """The volume enclosed by cell membranes in a monolayer, filled column by column.

    ``mask`` is the thresholded membrane signal, ``intensity`` the (lightly smoothed) membrane image. In each
    (y, x) column the lowest run of ``mask`` along z is the basal membrane and the highest run the apical one;
    the column is filled from the brightest plane of the first to the brightest plane of the last, so the
    blur of the optics below the glass and above the cells is not counted as cell. A single run much longer
    than the basal membrane (at least twice the median over columns) is a lateral wall and is filled whole. Where the apical
    membrane is missing (dim or broken), the height of the nearest column that has one, within
    ``max_gap_um``, is used; the inside of a cell taller than the stack (its apical membrane above the last
    plane), enclosed by columns that reach the last plane, is filled to it. Columns without membrane stay empty
    (outside the colony). A single plane
    (2D image) is returned unchanged: fill it with :func:`fill_holes`.

    Parameters
    ----------
    mask : (Z, Y, X) bool array
        Membrane foreground.
    intensity : (Z, Y, X) array
        Membrane intensities of the same shape, used to place each membrane at its brightest plane.
    voxel_size : VoxelSize or (z, y, x) µm
    max_gap_um : float
        Largest lateral distance (µm) across which a missing apical membrane is bridged.
    basal_len : float, optional
        The median basal-membrane run (planes) of the field (:func:`basal_run_lengths`); fitted on ``mask``
        when not given.

    Returns
    -------
    (Z, Y, X) bool array
    """
    m = _as_3d(mask, "mask").astype(bool)
    if m.shape[0] < 3:
        return m.copy()
    low, high, known, has = membrane_columns(
        m, intensity, voxel_size=voxel_size, max_gap_um=max_gap_um, basal_len=basal_len
    )
    fill_cut_tops(has, known, high, m.shape[0])
    return columns_filled(low, high, known, m.shape[0])


def membrane_columns(
    mask: np.ndarray,
    intensity: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    max_gap_um: float = 3.0,
    basal_len: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The per-column part of :func:`fill_between_membranes`: each (y, x) column's lowest and highest filled plane
    (``low``, ``high``), whether it is filled (``known``: both membranes, a wall, or bridged within
    ``max_gap_um``) and whether it has membrane at all (``has``), as (Y, X) arrays. Each column depends on the
    columns within ``max_gap_um`` only, so a block read with that much halo gives the whole field's columns."""
    m = _as_3d(mask, "mask").astype(bool)
    a = _as_3d(intensity, "intensity").astype(np.float32, copy=False)
    if a.shape != m.shape:
        raise ValueRangeError(f"intensity has shape {a.shape}, the mask {m.shape}", field="intensity")
    if max_gap_um < 0:
        raise ValueRangeError(f"max_gap_um must be >= 0, got {max_gap_um}", field="max_gap_um")
    nz = m.shape[0]
    vs = VoxelSize.of(voxel_size).as_tuple()
    has = np.asarray(m.any(0))
    b_start, b_end, b_peak = _first_run(m, a)
    t_start, _t_end, t_peak = _first_run(m[::-1], a[::-1])
    top_end, top_peak = nz - t_start, nz - 1 - t_peak
    single = has & (b_end >= top_end)  # the lowest run is also the highest
    several = has & ~single
    run_len = b_end - b_start
    if basal_len is None:
        basal_len = float(np.median(run_len[several])) if several.any() else np.inf
    # a lateral wall rises from the basal membrane: a single run under twice the basal membrane's thickness is
    # a thicker or tilted patch of the basal membrane, whose top is no cell height (taken as a wall, the bridge
    # below spread its low top to the columns around it: on 32-plane synthetic fields, cells cut by the top of
    # the stack lost a quarter of their volume, the cells workflow's coverage 0.59-0.95, now 0.90-0.95)
    wall = single & (run_len >= 2 * basal_len)
    low = np.where(wall, b_start, b_peak)
    high = np.where(several, top_peak, np.where(wall, top_end - 1, -1))
    known = several | wall
    missing = has & ~known
    if missing.any() and known.any():
        dist, (iy, ix) = ndi.distance_transform_edt(~known, sampling=vs[1:], return_indices=True)
        bridged = missing & (dist <= max_gap_um)
        high = np.where(bridged, high[iy, ix], high)
        known |= bridged
    return low, high, known, has


def columns_filled(low: np.ndarray, high: np.ndarray, known: np.ndarray, nz: int) -> np.ndarray:
    """The (Z, Y, X) mask of columns filled from ``low`` to ``high`` where ``known`` (:func:`membrane_columns`)."""
    z = np.arange(nz)[:, None, None]
    return (z >= low) & (z <= high) & known


def fill_cut_tops(has: np.ndarray, known: np.ndarray, high: np.ndarray, nz: int) -> None:
    """Columns of a cell taller than the stack, filled to its last plane (``high``, ``known`` updated in place).

    Needs the whole field's (Y, X) column maps (:func:`membrane_columns`): a piece of columns is judged by its
    whole ring, however far it reaches (the block engine gathers the maps of every block first).

    Such a cell's apical membrane lies above the stack: its columns farther than the bridge from a wall have a
    basal membrane only. Each connected piece of such columns (``rest``) that is enclosed by filled columns, most
    of which reach the last plane, is the inside of a cell cut by the top; a piece beside a column without
    membrane (the dish), or among columns that end lower (a dim apical membrane), stays as it was."""
    rest = has & ~known
    if not rest.any() or not known.any():
        return
    pieces, _ = ndi.label(rest)
    for k, box in enumerate(ndi.find_objects(pieces), start=1):
        if box is None:
            continue
        grow = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
        piece = pieces[grow] == k
        ring = ndi.binary_dilation(piece) & ~piece
        if ring.any() and known[grow][ring].all() and np.mean(high[grow][ring] >= nz - 1) >= 0.5:
            high[grow][piece] = nz - 1
            known[grow][piece] = True


def size_filter(
    mask: np.ndarray, *, min_volume_um3: float, voxel_size: VoxelSize | Sequence[float], per_slice: bool = False
) -> np.ndarray:
    """Remove objects smaller than ``min_volume_um3`` (µm³; µm² per plane with ``per_slice``).

    Parameters
    ----------
    mask : (Z, Y, X) or (Y, X) bool mask or integer labels
        A label image keeps its ids (objects are judged by id, and a label image with one object stays a
        label image); a mask is judged by connected components (face connectivity).
    min_volume_um3 : float
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.
    per_slice : bool
        Judge the objects of each z-plane by their area.

    Returns
    -------
    Array of the input's kind: bool for a mask, the same integer dtype for labels.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((1, 4, 8), bool); m[0, :2, :2] = True; m[0, :, 4:] = True
    >>> int(size_filter(m, min_volume_um3=5, voxel_size=(1, 1, 1)).sum())
    16
    """
    m = _as_3d(mask, "mask")
    vs = VoxelSize.of(voxel_size).as_tuple()
    if np.issubdtype(m.dtype, np.integer) and m.dtype != np.bool_ and m.max() > 1:
        sizes = np.bincount(m.ravel())
        keep = sizes * (vs[0] * vs[1] * vs[2]) >= min_volume_um3
        keep[0] = False
        return np.where(keep[m], m, 0).astype(m.dtype)
    b = m.astype(bool)
    if per_slice or b.shape[0] == 1:
        unit = vs[1] * vs[2]
        out = np.zeros_like(b)
        for z in range(b.shape[0]):
            lab, _ = ndi.label(b[z])
            keep = np.bincount(lab.ravel()) * unit >= min_volume_um3
            keep[0] = False
            out[z] = keep[lab]
    else:
        lab, _ = ndi.label(b)
        keep = np.bincount(lab.ravel()) * (vs[0] * vs[1] * vs[2]) >= min_volume_um3
        keep[0] = False
        out = keep[lab]
    if np.issubdtype(m.dtype, np.integer) and m.dtype != np.bool_:  # labels with a single id stay labels
        return np.where(out, m, 0).astype(m.dtype)
    return out


def topology_preserving_thinning(
    mask: np.ndarray, *, min_thickness_um: float, thin_um: float, voxel_size: VoxelSize | Sequence[float]
) -> np.ndarray:
    """Thin a mask by ``thin_um`` without breaking it.

    Voxels within ``min_thickness_um`` of each plane's skeleton are protected, so thin connections and the
    topology survive while thick parts lose their rim (the Segmenter's Golgi post-processing).

    Parameters
    ----------
    mask : (Z, Y, X) or (Y, X) bool array
    min_thickness_um : float
        Half-width (µm) around the skeleton that is never removed.
    thin_um : float
        How much (µm) the rim of thick parts is eroded.
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.

    Returns
    -------
    (Z, Y, X) bool array, a subset of ``mask``.
    """
    from skimage.morphology import skeletonize

    m = _as_3d(mask, "mask").astype(bool)
    vs = VoxelSize.of(voxel_size).as_tuple()
    protected = np.zeros_like(m)
    for z in range(m.shape[0]):
        if m[z].any():
            skel = skeletonize(m[z])
            dist = ndi.distance_transform_edt(~skel, sampling=vs[1:])
            protected[z] = dist <= min_thickness_um
    r = [max(0, round(thin_um / v)) for v in vs]
    if m.shape[0] == 1:
        r[0] = 0
    zz, yy, xx = np.ogrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1, -r[2] : r[2] + 1]
    ball = (zz * vs[0]) ** 2 + (yy * vs[1]) ** 2 + (xx * vs[2]) ** 2 <= thin_um**2 + 1e-9
    eroded = ndi.binary_erosion(m, structure=ball, border_value=1)
    rim = m & ~eroded
    return m & ~(rim & ~protected)
