"""Per-object measurements in physical units (µm, µm², µm³) from label images, with intensity statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize, as_array, materialize
from subcell.metrics._zyx import components as _components
from subcell.metrics._zyx import mask_components
from subcell.metrics.colocalization import ColocalizationSpec, colocalization
from subcell.metrics.compartments import compartment_table, nc_ratios
from subcell.metrics.neighbours import NeighbourSpec, neighbour_table
from subcell.metrics.radial import radial_table
from subcell.metrics.shape import border_ids, principal_axes, skeleton_stats, sphericity, surface_area

__all__ = [
    "border_ids",
    "frame_components",
    "interpolated_mask",
    "mask_components",
    "measure_frames",
    "measure_objects",
    "structures_per_cell",
]


def measure_objects(
    labels: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    intensity: Mapping[str, np.ndarray] | None = None,
    surface: bool = True,
    skeleton: bool = False,
    background_um: float = 2.0,
    colocalize: ColocalizationSpec | None = None,
    excluded: np.ndarray | None = None,
) -> Any:
    """One row per object id: volume, surface area, sphericity, centroid, bounding box, principal axes, intensities.

    A single plane (2D image) is measured in 2D: ``area_um2``, ``perimeter_um`` and ``circularity``
    (4π·area/perimeter²) instead of volume, surface and sphericity, and no z centroid — the z voxel size of a
    2D image is never used.

    Parameters
    ----------
    labels : (Z, Y, X) integer array
        Instance labels, 0 = background.
    voxel_size : (z, y, x) µm
    intensity : mapping of channel name → (Z, Y, X) array, optional
        Adds ``<name>_mean``, ``_std``, ``_min``, ``_max``, ``_integrated`` columns, and ``<name>_background``: the
        median of the unlabelled voxels within ``background_um`` of the object's bounding box (its local
        background — of a large box, of a regular sample of ~2^16 of its voxels —; NaN where no voxel around it is
        unlabelled), so ``_integrated − _background × voxels`` is the
        object's own signal (DNA content, a tagged protein's amount) and ``_mean − _background`` its contrast,
        free of the background's differences between fields and wells.
    surface : bool
        Compute surface area (marching cubes) and sphericity π^(1/3)(6V)^(2/3)/A.
    background_um : float
        How far around each object's bounding box its local background is taken (µm; default 2).
    skeleton : bool
        Add ``skeleton_length_um``, ``branch_points``, ``end_points`` (:func:`~subcell.metrics.shape.skeleton_stats`):
        the network measures of tubular objects (mitochondria, ER).
    colocalize : ColocalizationSpec, optional
        Pairs of ``intensity`` channels compared in each object (:func:`~subcell.metrics.colocalization.
        colocalization`): ``coloc_<a>_<b>_pearson``, ``_spearman``, ``_m1``, ``_m2``, ``_threshold_a``,
        ``_threshold_b``, ``_pearson_above``, ``_overlap``, ``_icq`` and, with randomizations, ``_p_value``
        (seeded by the object's id: the same numbers every run).
    excluded : (Z, Y, X) bool array, optional
        Voxels taken out of the labels before they were given here (nuclei out of cells: the cytoplasm); they are
        not background either, so no object's local background includes them.

    Returns
    -------
    pandas.DataFrame
        Columns carry their units (``volume_um3``, ``surface_area_um2``, ``centroid_z_um``, ...).
    """
    import pandas as pd

    lab = np.asarray(labels)
    lab = lab[None] if lab.ndim == 2 else lab
    if lab.ndim != 3 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueRangeError(f"labels must be an integer (Z, Y, X) array, got {lab.dtype} {lab.shape}", field="labels")
    vs = VoxelSize.of(voxel_size).as_tuple()
    voxel = vs[0] * vs[1] * vs[2]
    chans = {}
    for name, arr in (intensity or {}).items():
        a = np.asarray(arr)
        a = a[None] if a.ndim == 2 else a
        if a.shape != lab.shape:
            raise ValueRangeError(
                f"intensity {name!r} has shape {a.shape} but labels have {lab.shape}", field="intensity"
            )
        chans[name] = a
    if excluded is not None:
        excluded = excluded[None] if excluded.ndim == 2 else excluded
        if excluded.shape != lab.shape:
            raise ValueRangeError(
                f"excluded voxels have shape {excluded.shape} but labels {lab.shape}", field="exclude"
            )
    for pair in colocalize.pairs if colocalize else ():
        for name in pair:
            if name not in chans:
                raise ValueRangeError(
                    f"channel {name!r} to colocalize is not among the intensity channels {list(chans)}",
                    field="colocalize",
                )
    border = border_ids(lab)
    flat = lab.shape[0] == 1
    # the background ring's reach in voxels per axis (none along z of a single plane)
    grow = [0 if flat and axis == 0 else math.ceil(background_um / v) for axis, v in enumerate(vs)]
    rows = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        obj = lab[sl] == i
        n = int(obj.sum())
        coords = np.argwhere(obj).astype(np.float64) + np.array([s.start for s in sl])
        um = coords * np.array(vs)  # voxel i at i·voxel: NGFF, napari, skimage regionprops(spacing=)
        centroid = um.mean(axis=0)
        if flat:
            area = n * vs[1] * vs[2]
            perim = _perimeter(obj[0], vs[1:])
            row: dict[str, Any] = {
                "label": i, "pixels": n, "area_um2": area, "perimeter_um": perim,
                "circularity": 4 * np.pi * area / perim**2 if perim > 0 else np.nan,
                "centroid_y_um": centroid[1], "centroid_x_um": centroid[2],
                "bbox_y0": sl[1].start, "bbox_x0": sl[2].start, "bbox_y1": sl[1].stop, "bbox_x1": sl[2].stop,
                "touches_border": i in border,
            }  # fmt: skip
            axes = principal_axes(um)
            row.update(axis_major_um=axes[0], axis_minor_um=axes[1])
        else:
            row = {
                "label": i,
                "voxels": n,
                "volume_um3": n * voxel,
                "centroid_z_um": centroid[0],
                "centroid_y_um": centroid[1],
                "centroid_x_um": centroid[2],
                "bbox_z0": sl[0].start, "bbox_y0": sl[1].start, "bbox_x0": sl[2].start,
                "bbox_z1": sl[0].stop, "bbox_y1": sl[1].stop, "bbox_x1": sl[2].stop,
                "touches_border": i in border,
            }  # fmt: skip
            axes = principal_axes(um)
            row.update(axis_major_um=axes[0], axis_medium_um=axes[1], axis_minor_um=axes[2])
        if surface and not flat:
            area = surface_area(obj, vs)
            row["surface_area_um2"] = area
            row["sphericity"] = sphericity(row["volume_um3"], area)
        if skeleton:
            row.update(skeleton_stats(obj, vs))
        around = tuple(
            slice(max(0, s.start - g), min(n, s.stop + g)) for s, g, n in zip(sl, grow, lab.shape, strict=True)
        )
        # a large box's background from a regular sample of its voxels (at most ~2^16: a cell's box held ~10^7,
        # and its median took longer than the rest of the object's measures); a median of so many is exact enough
        size = [s.stop - s.start for s in around]
        step = max(1, math.ceil((math.prod(size) / 2**16) ** (1 / sum(n > 1 for n in size))))
        around = tuple(slice(s.start, s.stop, step) for s in around)
        unlabelled = lab[around] == 0
        if excluded is not None:
            unlabelled &= ~excluded[around]
        for name, a in chans.items():
            vals = a[sl][obj].astype(np.float64)
            ring = a[around][unlabelled]
            row.update({
                f"{name}_mean": vals.mean(), f"{name}_std": vals.std(), f"{name}_min": vals.min(),
                f"{name}_max": vals.max(), f"{name}_integrated": vals.sum(),
                f"{name}_background": float(np.median(ring)) if ring.size else np.nan,
            })  # fmt: skip
        if colocalize:
            row.update(_colocalized(colocalize, chans, sl, obj, vs, i))
        rows.append(row)
    if not rows:  # no object: the same columns and dtypes as a table with objects (a field's or a frame's tables
        # are concatenated and written as one Parquet dataset), taken from a one-voxel object measured alike
        probe = np.zeros((1, 2, 2) if flat else (2, 2, 2), lab.dtype)
        probe.flat[0] = 1
        return measure_objects(
            probe, voxel_size=vs, intensity={k: np.zeros(probe.shape, a.dtype) for k, a in chans.items()},
            surface=surface, skeleton=skeleton, background_um=background_um, colocalize=colocalize,
        ).iloc[:0]  # fmt: skip
    return pd.DataFrame(rows)


def _colocalized(
    spec: ColocalizationSpec, chans: Mapping[str, np.ndarray], box: tuple[slice, ...], obj: np.ndarray,
    voxel_size: tuple[float, float, float], label: int,
) -> dict[str, float]:  # fmt: skip
    """The colocalization columns of one object (its bounding box ``box``, its voxels ``obj`` in the box)."""
    block = spec.block(voxel_size)
    if block is not None and obj.shape[0] == 1:  # a single plane: blocks of one plane
        block[0] = 1
    out = {}
    for a, b in spec.pairs:
        c = colocalization(chans[a][box], chans[b][box], obj, thresholds=spec.thresholds,
                           randomizations=spec.randomizations, block=block, seed=label)  # fmt: skip
        values = c.as_dict()
        if not spec.randomizations:
            values.pop("p_value")
        out.update({f"coloc_{a}_{b}_{k}": v for k, v in values.items()})
    return out


def frame_components(frame: np.ndarray, components: bool | None) -> np.ndarray | None:
    """The connected components of a label frame where they are its objects, else None (its ids are): always with
    ``components`` True (the ids ignored), never with False, and for None where the frame is a mask
    (:func:`mask_components`). The rule ``measure`` and ``track`` apply frame by frame."""
    if components is False:
        return None
    return _components(np.asarray(frame) > 0) if components else mask_components(frame)


def interpolated_mask(frame: np.ndarray, *, max_voxels: int = 1 << 24) -> str | None:
    """What gives a label frame away as a mask resampled with interpolation (a 0/255 mask resized or rotated with
    a linear filter, its edge voxels any value between), else None. Ten or more ids below the largest one, and
    either they lie (95 % of their voxels) against it while it holds most of the foreground (one object's mask),
    or it holds a tenth of the foreground and 90 % of their voxels touch another id (a mask of many small or thin
    objects: every intermediate value is an edge). Instance labels have interiors: an object's voxels touch only
    their own id, the background, or another object along a face. Read as instance ids, each intermediate value
    would be an object: a shell of a few voxels around the true ones. A frame (NumPy or lazy) above ``max_voxels``
    is judged on its middle (the signature is local)."""
    shape = tuple(int(n) for n in frame.shape)
    if np.dtype(frame.dtype).kind not in "iu" or 0 in shape or len(shape) < 2:
        return None
    keep = [slice(None)] * len(shape)
    planes = int(np.prod(shape[:-2]))
    for axis in (len(shape) - 2, len(shape) - 1):  # y and x, to at most sqrt(max_voxels / planes) each
        n = min(shape[axis], max(8, int(np.sqrt(max_voxels / planes))))
        keep[axis] = slice((shape[axis] - n) // 2, (shape[axis] - n) // 2 + n)
    f = np.asarray(frame[tuple(keep)])  # (a lazy frame: only its middle is read)
    ids, counts = np.unique(f[f > 0], return_counts=True)
    if len(ids) < 11:
        return None
    top, share = ids[-1], counts[-1] / counts.sum()
    if share < 0.1:
        return None
    others = (f > 0) & (f != top)
    cube = np.ones((3,) * f.ndim, bool)
    near = ndi.binary_dilation(f == top, structure=cube) if share >= 0.5 else np.zeros_like(others)
    if (near & others).sum() < 0.95 * others.sum():
        low = np.where(f > 0, f, np.iinfo(f.dtype).max)  # (background never the smaller neighbour)
        touching = (ndi.maximum_filter(f, footprint=cube) != f) | (ndi.minimum_filter(low, footprint=cube) != low)
        if (touching & others).sum() < 0.9 * others.sum():
            return None
    return (f"ids {int(ids[0])}–{int(ids[-2])} ({len(ids) - 1} of them) lie along the edges of id {int(top)} "
            f"({share:.0%} of the foreground): a mask resampled with interpolation, not instance labels; make it a "
            f"mask first (subcell convert IN OUT [-c CHANNEL] --threshold {int(top) // 2 + 1})")  # fmt: skip


def structures_per_cell(
    cells: np.ndarray, structures: Mapping[str, np.ndarray], *, voxel_size: VoxelSize | Sequence[float]
) -> Any:
    """Per cell: volume fraction (µm³ of structure / µm³ of cell) and count of objects of each structure inside.

    A structure given as a mask (:func:`mask_components`) is split into connected components; an object counts for
    the cell that holds most of its voxels.
    """
    import pandas as pd

    lab = np.asarray(cells)
    lab = lab[None] if lab.ndim == 2 else lab
    vs = VoxelSize.of(voxel_size).as_tuple()
    voxel = vs[0] * vs[1] * vs[2]
    n = int(lab.max()) + 1
    cell_vox = np.bincount(lab.ravel(), minlength=n)
    table = pd.DataFrame({"label": np.arange(1, n), "cell_volume_um3": cell_vox[1:] * voxel})
    for name, s in structures.items():
        a = np.asarray(s)
        a = a[None] if a.ndim == 2 else a
        if a.shape != lab.shape:
            raise ValueRangeError(
                f"structure {name!r} has shape {a.shape} but cells have {lab.shape}", field="structures"
            )
        parts = mask_components(a)
        objs = a.astype(np.int64) if parts is None else parts
        inside = np.bincount(lab[objs > 0].ravel(), minlength=n)
        table[f"{name}_volume_um3"] = inside[1:] * voxel
        table[f"{name}_volume_fraction"] = np.divide(
            inside[1:], cell_vox[1:], out=np.zeros(n - 1), where=cell_vox[1:] > 0
        )
        counts = np.zeros(n, np.int64)
        if objs.max() > 0:
            m = objs.max() + 1
            pair = objs[objs > 0].astype(np.int64) * n + lab[objs > 0]
            votes = np.bincount(pair, minlength=m * n).reshape(m, n)
            owner = votes.argmax(axis=1)[1:]
            has = votes[1:].sum(axis=1) > 0
            counts = np.bincount(owner[has & (owner > 0)], minlength=n)
        table[f"{name}_count"] = counts[1:]
    return table[table.cell_volume_um3 > 0].reset_index(drop=True)


def _perimeter(mask2d: np.ndarray, spacing: Sequence[float]) -> float:
    """Length (µm) of the object's outline, with anisotropic pixels: the 0.5 iso-contour of the mask smoothed by
    one pixel (σ = 1 px), which follows the boundary instead of its pixel staircase (a digital disc of radius
    5–40 px measures within 0.4 % of 2πr; the raw staircase contour overestimates by 6–14 %)."""
    from skimage.measure import find_contours

    padded = ndi.gaussian_filter(np.pad(mask2d.astype(np.float32), 3), 1.0)
    total = 0.0
    for c in find_contours(padded, 0.5):
        d = np.diff(c, axis=0) * np.asarray(spacing, np.float64)
        total += float(np.hypot(d[:, 0], d[:, 1]).sum())
    return total


def measure_frames(
    labels: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    intensity: Mapping[str, np.ndarray] | None = None,
    structures: Mapping[str, np.ndarray] | None = None,
    time_interval_s: float | None = None,
    components: bool | None = None,
    skeleton: bool = False,
    colocalize: ColocalizationSpec | None = None,
    exclude: np.ndarray | None = None,
    neighbours: NeighbourSpec | None = None,
    nuclei: np.ndarray | None = None,
    nc_margin_um: float = 0.3,
    nc_background: Mapping[str, float] | None = None,
    radial: int = 0,
) -> Any:
    """Measure every frame of a ``(T, Z, Y, X)`` label array: one row per object and frame, with a ``t`` column
    (and ``time_min``, the frame's time in minutes, when ``time_interval_s`` is given).

    A mask (an organelle segmentation: only 0 and 1, or 0 and 255; :func:`mask_components`) is measured per
    connected component, numbered 1..N in each frame, and ``result.attrs["components"]`` is True; ``components``
    True splits every frame's labels so (instance ids are then ignored), False measures a mask as one object.
    ``skeleton`` adds each object's skeleton length, branch and end points, ``colocalize`` the colocalization of
    pairs of ``intensity`` channels in each object (:func:`measure_objects`). ``exclude`` (``(T, Z, Y, X)``, labels
    or a mask) takes its voxels out of every object: cells without their nuclei are measured as their cytoplasm.
    ``neighbours`` adds each object's neighbours, contact, spacing and colony
    (:func:`~subcell.metrics.neighbours.neighbour_table`), found from the labels before ``exclude``. ``nuclei``
    (``(T, Z, Y, X)`` labels or a mask) adds each cell's nucleus and cytoplasm (sizes, nuclei count, each
    ``intensity`` channel's means and N/C ratio above the local background or the channel's in ``nc_background``
    (:func:`~subcell.metrics.compartments.nc_ratios`), ``radial`` (a number of shells) where each channel's
    signal lies from the centre, or the nucleus, out to the edge (:func:`~subcell.metrics.radial.radial_table`),
    ``nc_margin_um`` each side of the
    nuclear boundary left out: :func:`~subcell.metrics.compartments.compartment_table`), of the whole cell.

    ``intensity`` arrays are ``(T, Z, Y, X)`` per channel; ``structures`` (masks or labels, ``(T, Z, Y, X)``)
    add per-cell volume fractions and counts (:func:`structures_per_cell`). Lazy arrays (Dask, Zarr) are read a
    frame at a time: a time-lapse larger than memory is measured holding one frame of each input.
    """
    import pandas as pd

    lab = as_array(labels)
    if len(lab.shape) != 4:
        raise ValueRangeError(f"expected (T, Z, Y, X) labels, got {len(lab.shape)} dimensions", field="labels")
    excluding = {"exclude": exclude} if exclude is not None else {}
    nucleus = {"nuclei": nuclei} if nuclei is not None else {}
    for what, group in (("intensity", intensity or {}), ("structure", structures or {}), ("exclude", excluding),
                        ("nuclei", nucleus)):  # fmt: skip
        for name, arr in group.items():
            if np.shape(arr) != lab.shape:
                raise ValueRangeError(
                    f"{what} image {name!r} has T,Z,Y,X {np.shape(arr)} but the labels have {lab.shape}", field=what
                )
    frames, split = [], False
    for t in range(lab.shape[0]):
        frame = materialize(lab[t])
        parts = frame_components(frame, components)
        if parts is not None:
            frame, split = parts, True
        chans = {k: materialize(v[t]) for k, v in (intensity or {}).items()}
        parts_of = None
        nuc = materialize(nuclei[t]) if nuclei is not None else None
        if nuc is not None:  # of the whole cell, before any exclusion
            parts_of = compartment_table(frame, nuc, voxel_size=voxel_size, intensity=chans, margin_um=nc_margin_um)
        whole = frame
        near = None
        if neighbours is not None:
            near = neighbour_table(frame, voxel_size=voxel_size, distance_um=neighbours.distance_um,
                                   gap_um=neighbours.gap_um)  # fmt: skip
        out = None
        if exclude is not None:  # after the components: a cell mask's pieces keep their numbers without the nuclei
            out = np.asarray(materialize(exclude[t])) > 0
            frame = np.where(out, 0, frame)
        table = measure_objects(frame, voxel_size=voxel_size, intensity=chans, skeleton=skeleton,
                                colocalize=colocalize, excluded=out)  # fmt: skip
        if structures:
            per_cell = structures_per_cell(frame, {k: materialize(v[t]) for k, v in structures.items()},
                                           voxel_size=voxel_size)  # fmt: skip
            table = table.merge(per_cell.drop(columns=["cell_volume_um3"]), on="label", how="left")
        if near is not None:
            table = table.merge(near, on="label", how="left")
        if parts_of is not None:
            table = nc_ratios(table.merge(parts_of, on="label", how="left"), list(chans), nc_background)
        if radial and chans:
            bg = {k: dict(zip(table["label"], table[f"{k}_background"], strict=True)) for k in chans}
            table = table.merge(radial_table(whole, voxel_size=voxel_size, intensity=chans, bins=radial, nuclei=nuc,
                                             background=bg), on="label", how="left")  # fmt: skip
        # one block per dtype again: merged tables keep each part's blocks, and with many channels (17 in a
        # synthetic field) pandas warned on the insert below
        table = table.copy()
        table.insert(0, "t", t)
        if time_interval_s:
            table.insert(1, "time_min", t * time_interval_s / 60.0)
        frames.append(table)
    result = pd.concat(frames, ignore_index=True)
    result.attrs["components"] = split
    return result
