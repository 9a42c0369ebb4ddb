"""Each cell's neighbourhood in a label image: touching neighbours, contact, spacing, and its colony.

hiPSC grow as compact colonies, and a cell's place in its colony (at the edge, or deep inside) changes its shape,
its organization and its cycle; a cell's neighbours are what contact inhibition and tracking errors are about.
CellProfiler's MeasureObjectNeighbors measures 2D neighbours in pixels; nothing in our dependencies measures
them in µm on anisotropic 3D labels, or the colony a cell belongs to, so both are written here from SciPy's
Euclidean distance transform (exact distances in µm for any voxel size).

Two objects are *neighbours* when at most ``distance_um`` of background separates them (0: their voxels touch,
face to face). A segmentation that leaves a line of background between cells (a watershed line, a
Cellpose mask) keeps its neighbours with the default 1 µm.

A *colony* is the cells' footprint in the substrate plane (their labels projected along z), its gaps narrower
than ``gap_um`` closed (a morphological closing in µm) and its enclosed holes filled; its *edge* is where the
footprint meets the dish. The default 1 µm closes the lines a segmentation leaves between cells and keeps the
notches between rounded edge cells (5 µm filled them: distances to the edge 2 µm longer, a fifth of the edge
cells called inner; ``benchmarks/segment/neighbours.py``); from nuclei alone, close the cytoplasm between them
(about 15 µm for hiPSC). Distances to the edge are lateral, from each cell's (y, x) centroid. The field's
border is not an edge: where the border is nearer than the nearest edge seen, the colony goes on unseen and the
distance is not known (NaN, ``colony_edge_censored``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize
from subcell.metrics._zyx import zyx

__all__ = ["NeighbourSpec", "colony_context", "colony_footprint", "neighbour_table", "neighbours"]


@dataclass(frozen=True)
class NeighbourSpec:
    """What :func:`neighbour_table` is asked: the background two neighbours may have between them and the gaps a
    colony closes (µm)."""

    distance_um: float = 1.0
    gap_um: float = 1.0

    def __post_init__(self) -> None:
        if not self.distance_um >= 0:
            raise ValueRangeError(f"neighbour distance must be >= 0 µm, got {self.distance_um}", field="neighbour_um")
        if not self.gap_um >= 0:
            raise ValueRangeError(f"colony gap must be >= 0 µm, got {self.gap_um}", field="colony_gap_um")


_FACES = [(axis, step) for axis in range(3) for step in (-1, 1)]


def _shift(a: np.ndarray, axis: int, step: int, fill: bool | int) -> np.ndarray:
    """``a`` moved by ``step`` along ``axis``: out[p] = a[p + step], ``fill`` beyond the array."""
    out = np.full_like(a, fill)
    src = [slice(None)] * a.ndim
    dst = [slice(None)] * a.ndim
    if step > 0:
        src[axis], dst[axis] = slice(step, None), slice(None, -step)
    else:
        src[axis], dst[axis] = slice(None, step), slice(-step, None)
    out[tuple(dst)] = a[tuple(src)]
    return out


def neighbours(
    labels: np.ndarray, *, voxel_size: VoxelSize | Sequence[float], distance_um: float = 1.0
) -> dict[int, dict[str, Any]]:
    """Each object's neighbours and the share of its surface in contact with them.

    Returns ``{label: {"ids": sorted neighbour labels, "contact_um2": {neighbour: area}, "contact_fraction":
    float}}``. A face of the object is in contact with the object nearest to the voxel across it (the voxel
    itself, or one within ``distance_um`` of it); its area (µm²; in a single plane, its length in µm) counts
    towards that neighbour; an object behind a nearer one is no neighbour through it. Neighbours are mutual (a
    pair seen from one side only, at a corner, has 0 µm² on the other). The contact fraction is the share of the
    object's faces in contact: 0 for a cell alone, about the lateral share of its surface for a cell
    inside a monolayer (its apical and basal faces touch nothing). Where the field's border cuts an object, the
    cut is not its surface and is left out (a cell cut so — ``touches_border`` — may have neighbours that were
    not imaged).
    """
    NeighbourSpec(distance_um=distance_um)
    lab = zyx(labels, "labels", labels=True)
    vs = np.asarray(VoxelSize.of(voxel_size).as_tuple(), dtype=np.float64)
    flat = lab.shape[0] == 1
    margin = [0 if flat and a == 0 else math.ceil(distance_um / vs[a]) + 1 for a in range(3)]
    # a face's area in µm² (in a single plane its edge's length in µm)
    face_area = [0.0, vs[2], vs[1]] if flat else [vs[1] * vs[2], vs[0] * vs[2], vs[0] * vs[1]]
    out: dict[int, dict[str, Any]] = {}
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        box = tuple(
            slice(max(0, s.start - m), min(n, s.stop + m)) for s, m, n in zip(sl, margin, lab.shape, strict=True)
        )
        crop = lab[box]
        obj = crop == i
        others = (crop != 0) & ~obj
        if not others.any():
            out[i] = {"contact_um2": {}, "total_um2": 0.0}
            continue
        nearest = _nearest_other(crop, obj, others, vs, distance_um, flat)
        total = 0.0
        areas: dict[int, float] = {}
        for axis, step in _FACES:
            if flat and axis == 0:
                continue
            # faces with a voxel across inside the field (a face cut by the field's border is not the cell's
            # surface; the crop's margin reaches past every face but those)
            inside = _shift(np.ones_like(obj), axis, step, False)
            faces = obj & ~_shift(obj, axis, step, False) & inside
            total += face_area[axis] * float(faces.sum())
            across = _shift(nearest, axis, step, 0)[faces]
            for j, n in zip(*np.unique(across[across > 0], return_counts=True), strict=True):
                areas[int(j)] = areas.get(int(j), 0.0) + face_area[axis] * float(n)
        out[i] = {"contact_um2": areas, "total_um2": total}
    # neighbours are mutual: a pair found from either side (voxel faces seen from one object and the other differ
    # at corners)
    for i, rec in out.items():
        for j in rec["contact_um2"]:
            out[j]["contact_um2"].setdefault(i, 0.0)
    return {
        i: {
            "ids": sorted(rec["contact_um2"]),
            "contact_um2": dict(sorted(rec["contact_um2"].items())),
            "contact_fraction": sum(rec["contact_um2"].values()) / rec["total_um2"] if rec["total_um2"] else 0.0,
        }
        for i, rec in out.items()
    }


def _nearest_other(
    crop: np.ndarray, obj: np.ndarray, others: np.ndarray, vs: np.ndarray, distance_um: float, flat: bool
) -> np.ndarray:
    """The id of the other object nearest to each voxel across a face of ``obj`` if it lies within
    ``distance_um`` (0 elsewhere): a face is in contact with that object (so an object behind a nearer one is no
    neighbour through it).

    The nearest voxel of an object seen from outside it lies on its surface, so only the other objects' surface
    voxels are searched (a k-d tree in µm) and only from the voxels across the object's faces: a distance
    transform of the whole box took 2–3 times as long on real cells of 10^7-voxel boxes, for the same ids and
    fractions)."""
    across = np.zeros_like(obj)
    surface = np.zeros_like(obj)
    for axis, step in _FACES:
        if flat and axis == 0:
            continue
        across |= _shift(obj, axis, step, False) & ~obj
        surface |= others & (_shift(crop, axis, step, 0) != crop)
    nearest = np.zeros(crop.shape, crop.dtype)
    points = np.argwhere(surface)
    if not len(points):
        return nearest
    asking = np.argwhere(across)
    dist, which = cKDTree(points * vs).query(asking * vs, distance_upper_bound=distance_um + 1e-9)
    hit = np.isfinite(dist)
    found = points[which[hit]]
    nearest[tuple(asking[hit].T)] = crop[tuple(found.T)]
    return nearest


def _distance_to_false(mask: np.ndarray, sampling: Sequence[float]) -> np.ndarray:
    """Distance (µm) from every pixel to the nearest False pixel; infinite where the mask has none (SciPy's
    transform measures from an invented corner then)."""
    if mask.all():
        return np.full(mask.shape, np.inf)
    return np.asarray(ndi.distance_transform_edt(mask, sampling=sampling))


def _nearest_false(mask: np.ndarray, sampling: Sequence[float]) -> tuple[np.ndarray, Any]:
    """From one distance transform: every pixel's distance (µm) to the nearest False pixel (infinite where the
    mask has none), and a function giving the distance from any point (y, x) in pixels to the nearest False
    pixel's near side, from the nearest False pixels of the four pixels around the point (interpolating the
    distance map instead cut corners: half a pixel short where two edges are equally near)."""
    if mask.all():
        return np.full(mask.shape, np.inf), lambda y, x: np.inf
    dist, (iy, ix) = ndi.distance_transform_edt(mask, sampling=sampling, return_indices=True)
    ny, nx = mask.shape

    def at(y: float, x: float) -> float:
        best = np.inf
        for py in {min(max(math.floor(y), 0), ny - 1), min(max(math.ceil(y), 0), ny - 1)}:
            for px in {min(max(math.floor(x), 0), nx - 1), min(max(math.ceil(x), 0), nx - 1)}:
                qy, qx = iy[py, px], ix[py, px]
                # to the pixel's near side, not its centre: the edge lies between the pixels
                dy = max(abs(qy - y) - 0.5, 0.0) * sampling[0]
                dx = max(abs(qx - x) - 0.5, 0.0) * sampling[1]
                best = min(best, math.hypot(dy, dx))
        return best

    return np.asarray(dist), at


def colony_footprint(footprint: np.ndarray, *, pixel_um: Sequence[float], gap_um: float) -> np.ndarray:
    """The colonies of a (Y, X) cell footprint: gaps narrower than ``gap_um`` closed, enclosed holes filled.

    The field's border neither grows nor erodes the colony (a colony cut by the border stays cut, not shrunk).
    """
    fp = np.asarray(footprint, dtype=bool)
    # a gap of gap_um of background lies between pixel centres gap_um + one pixel apart: discs that reach over it
    r = (gap_um + max(pixel_um)) / 2
    grown = fp if not fp.any() else _distance_to_false(~fp, pixel_um) <= r
    closed = (_distance_to_false(grown, pixel_um) > r) | fp
    return np.asarray(ndi.binary_fill_holes(closed))


def colony_context(labels: np.ndarray, *, voxel_size: VoxelSize | Sequence[float], gap_um: float = 1.0) -> Any:
    """Each object's colony and its place in it (one row per label).

    Columns: ``colony`` (1..N, the connected colonies of the footprint, :func:`colony_footprint`),
    ``colony_cells`` (objects in it), ``colony_area_um2``, ``colony_touches_border`` (the field cuts the colony:
    its area and count are partial), ``colony_edge`` (the object reaches the colony's edge seen in the field),
    ``colony_edge_distance_um`` (from the object's lateral centroid to the edge; NaN where the field's border is
    nearer than any edge seen: ``colony_edge_censored``).
    """
    import pandas as pd

    NeighbourSpec(gap_um=gap_um)
    lab = zyx(labels, "labels", labels=True)
    vs = VoxelSize.of(voxel_size).as_tuple()
    pixel = (vs[1], vs[2])
    footprint = np.asarray(lab.any(axis=0))
    colonies, _ = ndi.label(colony_footprint(footprint, pixel_um=pixel, gap_um=gap_um), structure=np.ones((3, 3)))
    to_edge, edge_from = _nearest_false(colonies > 0, pixel)
    adjacent = math.hypot(*pixel) + 1e-9
    ny, nx = footprint.shape
    area = np.bincount(colonies.ravel()) * pixel[0] * pixel[1]
    touches = np.zeros(len(area), bool)
    for edge in (colonies[0], colonies[-1], colonies[:, 0], colonies[:, -1]):
        touches[np.unique(edge)] = True
    rows = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        own = (lab[sl] == i).any(axis=0)
        yy, xx = np.nonzero(own)
        yy, xx = yy + sl[1].start, xx + sl[2].start
        cy, cx = yy.mean(), xx.mean()
        at = edge_from(cy, cx)
        border = min(cy, ny - 1 - cy) * pixel[0], min(cx, nx - 1 - cx) * pixel[1]
        censored = min(border) < at
        rows.append({
            "label": i, "colony": int(colonies[yy[0], xx[0]]),
            "colony_edge": bool(to_edge[yy, xx].min() <= adjacent),
            "colony_edge_distance_um": np.nan if censored else at,
            "colony_edge_censored": censored,
        })  # fmt: skip
    # the same dtypes with no object (a frame's tables are concatenated and gathered into one Parquet dataset)
    dtypes = {"label": np.int64, "colony": np.int64, "colony_edge": bool, "colony_edge_distance_um": np.float64,
              "colony_edge_censored": bool}  # fmt: skip
    table = pd.DataFrame(rows, columns=list(dtypes)).astype(dtypes)
    counts = table["colony"].value_counts()
    table.insert(2, "colony_cells", table["colony"].map(counts).fillna(0).astype(np.int64))
    table.insert(3, "colony_area_um2", area[table["colony"].to_numpy()] if len(table) else np.zeros(0))
    table.insert(4, "colony_touches_border", touches[table["colony"].to_numpy()] if len(table) else np.zeros(0, bool))
    return table


def neighbour_table(
    labels: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    distance_um: float = 1.0,
    gap_um: float = 1.0,
) -> Any:
    """:func:`neighbours` and :func:`colony_context` as one table, with each object's spacing.

    Columns: ``label``, ``neighbours`` (how many), ``neighbour_ids`` (``;``-separated labels),
    ``neighbour_contact_um2`` (the area of this object's surface in contact with each, in the same order; µm in a
    single plane; 0 where only the other object's faces reach this one, at a corner), ``contact_fraction``, ``nearest_neighbour_um`` (centroid to the nearest other object's centroid; NaN where
    the field's lateral border is nearer than that object, so one beyond the field could be nearer) and the
    colony columns.
    """
    import pandas as pd

    lab = zyx(labels, "labels", labels=True)
    size = VoxelSize.of(voxel_size).as_tuple()
    vs = np.asarray(size, dtype=np.float64)
    near = neighbours(lab, voxel_size=size, distance_um=distance_um)
    ids = np.array(sorted(near), dtype=np.int64)
    # each object's centroid from its own box (SciPy's center_of_mass reads the whole frame per statistic: 7 of
    # the 26 s of a 76×1024×1024 field)
    boxes = ndi.find_objects(lab)
    centroids = np.array(
        [np.mean(np.nonzero(lab[boxes[i - 1]] == i), axis=1) + [s.start for s in boxes[i - 1]] for i in ids]
    ).reshape(-1, 3)
    if lab.shape[0] == 1:
        centroids[:, 0] = 0.0
    nearest = np.full(len(ids), np.nan)
    if len(ids) > 1:
        dist, _ = cKDTree(centroids * vs).query(centroids * vs, k=2)
        nearest = dist[:, 1]
    ny, nx = lab.shape[1:]
    if len(ids):
        border = np.minimum.reduce([centroids[:, 1] * vs[1], (ny - 1 - centroids[:, 1]) * vs[1],
                                    centroids[:, 2] * vs[2], (nx - 1 - centroids[:, 2]) * vs[2]])  # fmt: skip
        nearest = np.where(border < nearest, np.nan, nearest)
    table = pd.DataFrame({
        "label": ids,
        "neighbours": np.array([len(near[i]["ids"]) for i in ids], dtype=np.int64),
        "neighbour_ids": pd.Series([";".join(str(j) for j in near[i]["ids"]) for i in ids], dtype=object),
        "neighbour_contact_um2": pd.Series(
            [";".join(f"{a:.4g}" for a in near[i]["contact_um2"].values()) for i in ids], dtype=object
        ),
        "contact_fraction": np.array([near[i]["contact_fraction"] for i in ids], dtype=np.float64),
        "nearest_neighbour_um": nearest,
    })  # fmt: skip
    return table.merge(colony_context(lab, voxel_size=size, gap_um=gap_um), on="label", how="left")
