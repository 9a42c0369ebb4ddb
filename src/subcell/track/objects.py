"""What the linker sees of each object in each frame: centroid (µm), size, mean intensity, whether it touches the
field's border — one table row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from subcell.image import VoxelSize
from subcell.metrics.shape import border_ids

__all__ = ["frame_objects", "mask_frames_as_objects", "timelapse_objects"]

COLUMNS = ["t", "label", "z_um", "y_um", "x_um", "volume_um3", "mean_intensity", "touches_border"]


def frame_objects(
    labels: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    intensity: np.ndarray | None = None,
    t: int = 0,
) -> Any:
    """One row per object of a (Z, Y, X) label frame.

    Centroids follow the NGFF convention (voxel index × voxel size, µm); ``volume_um3`` is the voxel count ×
    the voxel volume (for a single plane, the area in µm² × the z voxel size, which only scales the size cost);
    ``touches_border`` whether it reaches the field's lateral (y/x) border, where part of it may lie outside (its
    volume is then not the object's, and a track that starts or ends there entered or left the field). One pass of ``bincount`` over the foreground instead of per-object region properties: a frame of 10,000
    objects is measured in a fraction of a second.
    """
    import pandas as pd

    vs = np.asarray(VoxelSize.of(voxel_size).as_tuple())
    lab = np.asarray(labels)
    if lab.ndim == 2:
        lab = lab[None]
    flat = lab.ravel()
    nz = np.flatnonzero(flat)
    if nz.size == 0:
        dtypes = {"t": "int64", "label": "int64", "touches_border": "bool"}
        return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "float64")) for c in COLUMNS})
    ids, inverse = np.unique(flat[nz], return_inverse=True)
    counts = np.bincount(inverse).astype(np.float64)
    coords = np.unravel_index(nz, lab.shape)
    out: dict[str, Any] = {"t": np.full(ids.size, t, dtype=np.int64), "label": ids.astype(np.int64)}
    for axis, name in enumerate(("z_um", "y_um", "x_um")):
        out[name] = np.bincount(inverse, weights=coords[axis]) / counts * vs[axis]
    out["volume_um3"] = counts * float(np.prod(vs))
    if intensity is not None:
        values = np.asarray(intensity, dtype=np.float64).reshape(-1)[nz]
        out["mean_intensity"] = np.bincount(inverse, weights=values) / counts
    else:
        out["mean_intensity"] = np.full(ids.size, np.nan)
    out["touches_border"] = np.isin(ids, list(border_ids(lab)))
    return pd.DataFrame(out)


def timelapse_objects(
    labels: np.ndarray, *, voxel_size: VoxelSize | Sequence[float], intensity: np.ndarray | None = None
) -> Any:
    """:func:`frame_objects` of every frame of a (T, Z, Y, X) label time-lapse, concatenated (empty frames add
    no rows: the tracks pause there)."""
    import pandas as pd

    frames = [
        frame_objects(labels[t], voxel_size=voxel_size, intensity=None if intensity is None else intensity[t], t=t)
        for t in range(labels.shape[0])
    ]
    return pd.concat(frames, ignore_index=True)


def mask_frames_as_objects(labels: Any, *, components: bool | None = None) -> tuple[Any, dict[str, bool]]:
    """A (T, Z, Y, X) label movie whose mask frames are read as their connected components: what a mask of
    organelles or a thresholded nucleus channel (only 0 and 1, or 8-bit 0 and 255) holds as objects — tracked as
    it is, each frame would be one object. Frame by frame, the rule ``measure`` applies
    (:func:`subcell.segment.measure.frame_components`: 26-connected, ids 1..N in each frame; a frame holding
    instance ids is kept). ``components`` True splits every frame (its ids ignored); False, or None with a first frame of instance
    ids, returns the movie as it is.

    Returns the movie (lazy where split: int32, a frame per chunk, the components found as a frame is read) and a
    dict whose ``"split"`` turns True once a frame read has been changed (what a note to the user reports: a
    frame with one object of id 1 is read unchanged, and says nothing)."""
    import dask.array as da

    from subcell.image import is_lazy, materialize
    from subcell.segment.measure import frame_components

    state = {"split": False}
    arr = labels if is_lazy(labels) else np.asarray(labels)
    if components is False or (components is None and frame_components(materialize(arr[0]), None) is None):
        return labels, state
    frames = da.asarray(arr) if is_lazy(arr) else da.from_array(arr, chunks=(1, *arr.shape[1:]))

    def per_frame(block: np.ndarray) -> np.ndarray:
        frame = block[0]
        parts = frame_components(frame, components)
        if parts is None:
            return np.asarray(frame, dtype=np.int32)[None]
        state["split"] = state["split"] or not np.array_equal(parts, frame)
        return parts.astype(np.int32, copy=False)[None]

    return frames.rechunk((1, -1, -1, -1)).map_blocks(per_frame, dtype=np.int32), state
