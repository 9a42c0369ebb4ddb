"""Tracks as one object: track-consistent labels, the per-object table, the lineage; and their views
(napari Tracks layer data, Cell Tracking Challenge segments)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize, is_lazy, materialize
from subcell.track.config import TrackConfig

__all__ = [
    "FrameReader",
    "Tracks",
    "ctc_segment_table",
    "ctc_segments",
    "fates",
    "generations",
    "lineage_table",
    "napari_tracks",
    "relabel",
    "track_timelapse",
    "tracks_from_lineage",
    "write_frames",
]


@dataclass
class Tracks:
    """A tracked time-lapse.

    Attributes
    ----------
    labels : (T, Z, Y, X) integer array
        Every object carries its track id (the same id along a track, also across gaps).
    table : pandas.DataFrame
        One row per object and frame: ``track_id, t, z_um, y_um, x_um, label`` (the input label),
        ``volume_um3, mean_intensity, touches_border, parent_track, generation``; ``time_min`` after ``t``, the frame's time in
        minutes; from :func:`track_timelapse` also ``step_um, speed_um_per_min`` (:mod:`subcell.track.motion`) and,
        tracked with a drift, the frame's ``drift_z_um, drift_y_um, drift_x_um``.
    lineage : pandas.DataFrame
        One row per track: ``track_id, start, end, parent_track, generation, n_frames, in_field, begins, ends``
        (:func:`lineage_table`); from
        :func:`track_timelapse` also the motion measures (:data:`subcell.track.motion.MOTION_COLUMNS`) and the
        growth measures (:data:`subcell.track.growth.GROWTH_COLUMNS`).
    divisions_known : bool
        False where the tracks came from ids alone (no lineage given): a parent of 0 then means "not known", and
        scores against them leave divisions unscored.
    """

    labels: np.ndarray
    table: Any
    lineage: Any
    divisions_known: bool = True


class FrameReader:
    """A lazy ``(T, ...)`` array (Dask, Zarr) read one frame at a time: ``frames[t]`` (and ``frames[t, ...]``) is
    that frame as NumPy, any other index the lazy part as a :class:`FrameReader`. What code that walks a movie frame by
    frame needs (traccuracy's matchers index ``segmentation[t]``), without the movie ever being held whole."""

    def __init__(self, data: Any) -> None:
        self.data: Any = data.data if isinstance(data, FrameReader) else data

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.data.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.data.dtype)

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> Any:
        first = key[0] if isinstance(key, tuple) and key else key
        if isinstance(first, int | np.integer):
            return materialize(self.data[key])
        return FrameReader(self.data[key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = materialize(self.data)
        return whole if dtype is None else whole.astype(dtype)


def frames_of(labels: Any) -> Any:
    """``labels`` as they are when in memory (NumPy), else a :class:`FrameReader` of them."""
    return labels if isinstance(labels, np.ndarray) else FrameReader(labels)


def relabel(labels: Any, table: Any) -> Any:
    """Replace every frame's input label by its track id (objects not in ``table`` become background).

    A Dask array (a time-lapse read lazily) gives a Dask array, relabelled block by block when it is computed or
    written, so a movie larger than memory is never held whole."""
    top = int(table["track_id"].max()) if len(table) else 0
    dtype = np.uint32 if top < 2**32 else np.uint64
    luts = {int(t): (rows["label"].to_numpy(), rows["track_id"].to_numpy()) for t, rows in table.groupby("t")}

    def frames(block: np.ndarray, t0: int) -> np.ndarray:
        out = np.zeros(block.shape, dtype)
        for k in range(block.shape[0]):
            if t0 + k in luts:
                ids, tracks = luts[t0 + k]
                lut = np.zeros(max(int(block[k].max()), int(ids.max())) + 1, dtype)
                lut[ids] = tracks
                out[k] = lut[block[k]]
        return out

    if is_lazy(labels):
        return labels.map_blocks(lambda b, block_info=None: frames(b, block_info[0]["array-location"][0][0]),
                                 dtype=dtype)  # fmt: skip
    return frames(np.asarray(labels), 0)


def lineage_table(table: Any, *, n_frames: int | None = None) -> Any:
    """One row per track: first and last frame, parent track, generation, frames present, and how it begins and
    ends. ``begins``: ``division`` (a daughter), ``movie_start``, ``border`` (it entered the field: its first object
    touches the border) or ``appears``; ``ends``: ``division``, ``movie_end``, ``border`` (it left the field) or
    ``disappears`` (lost, died, or its segmentation stopped) — the first that applies, so a daughter born at the
    border began at its division. ``in_field``: no object of the track touches the border (all its volumes are
    whole). The movie's frames are 0 … ``n_frames`` − 1 (default: up to the table's last frame). Without a
    ``touches_border`` column (tracks read from a graph without masks) no track is said to cross the border and
    ``in_field`` is absent."""
    g = table.groupby("track_id")
    out = g.agg(start=("t", "min"), end=("t", "max"), parent_track=("parent_track", "first"),
                generation=("generation", "first"), n_frames=("t", "nunique")).reset_index()  # fmt: skip
    out = out.astype({"track_id": "int64", "start": "int64", "end": "int64", "parent_track": "int64"})
    last = (n_frames - 1) if n_frames is not None else (int(table["t"].max()) if len(table) else 0)
    has_daughters = out["track_id"].isin(out.loc[out["parent_track"] > 0, "parent_track"]).to_numpy()
    if "touches_border" in table.columns:
        ordered = table.sort_values(["track_id", "t"])
        by_track = ordered.groupby("track_id")["touches_border"]
        enters = by_track.first().reindex(out["track_id"]).to_numpy(bool)
        leaves = by_track.last().reindex(out["track_id"]).to_numpy(bool)
        out["in_field"] = ~by_track.any().reindex(out["track_id"]).to_numpy(bool)
    else:
        enters = leaves = np.zeros(len(out), bool)
    out["begins"] = np.select([out["parent_track"].to_numpy() > 0, out["start"].to_numpy() == 0, enters],
                              ["division", "movie_start", "border"], "appears")  # fmt: skip
    out["ends"] = np.select([has_daughters, out["end"].to_numpy() >= last, leaves],
                            ["division", "movie_end", "border"], "disappears")  # fmt: skip
    return out


def fates(lineage: Any) -> str:
    """How a lineage's tracks begin and end, counted (:func:`lineage_table`'s ``begins`` and ``ends``), e.g.
    "begin: 14 at the movie's start, 8 at a division, 3 through the border; end: …"; empty without those columns
    or tracks."""
    if not {"begins", "ends"} <= set(lineage.columns) or not len(lineage):
        return ""
    words = {"movie_start": "at the movie's start", "movie_end": "at the movie's end", "division": "at a division",
             "border": "through the border", "appears": "inside the field", "disappears": "inside the field"}  # fmt: skip
    parts = []
    for column, verb, kinds in (("begins", "begin", ("movie_start", "division", "border", "appears")),
                                ("ends", "end", ("movie_end", "division", "border", "disappears"))):  # fmt: skip
        counts = lineage[column].value_counts()
        parts.append(f"{verb}: " + ", ".join(f"{counts[k]} {words[k]}" for k in kinds if counts.get(k, 0)))
    return "; ".join(parts)


def napari_tracks(table: Any) -> tuple[np.ndarray, dict[int, list[int]]]:
    """Data and graph of a napari ``Tracks`` layer: rows ``[track_id, t, z, y, x]`` in µm (add the layer with
    scale 1 beside images added at their voxel size), sorted by track then time; graph = daughter → [parent]."""
    data = table.sort_values(["track_id", "t"])[["track_id", "t", "z_um", "y_um", "x_um"]].to_numpy(np.float64)
    parents = table.loc[table["parent_track"] > 0, ["track_id", "parent_track"]].drop_duplicates()
    graph = {int(d): [int(p)] for d, p in parents.itertuples(index=False)}
    return data, graph


def ctc_segment_table(table: Any) -> tuple[Any, Any]:
    """The Cell Tracking Challenge's segments of a tracks table: (per object ``t``, ``label`` = its track id and
    ``track_id`` = its segment id, for :func:`relabel` of the track labels; the ``L B E P`` rows).

    A track that pauses (a gap) is cut into segments; each later segment gets a new id whose parent is the
    segment before it, as the CTC format prescribes. Daughters' parents point to the parent's last segment. More
    segments than the format's 16-bit masks hold are refused here, before any mask is made.
    """
    import pandas as pd

    tab = table.sort_values(["track_id", "t"]).reset_index(drop=True)
    new_gap = tab["t"].diff().ne(1) & tab["track_id"].eq(tab["track_id"].shift())
    seg_index = new_gap.astype(int).groupby(tab["track_id"]).cumsum()
    next_id = (int(tab["track_id"].max()) if len(tab) else 0) + 1
    seg_id = tab["track_id"].to_numpy().copy()
    last_segment: dict[int, int] = {}
    rows = []
    for (tid, k), part in tab.groupby([tab["track_id"], seg_index], sort=True):
        if k == 0:
            sid = int(tid)
            parent = int(part["parent_track"].iloc[0])
            parent = last_segment.get(parent, parent)  # parents are numbered (and segmented) before daughters
        else:
            sid, next_id = next_id, next_id + 1
            parent = last_segment[int(tid)]
        seg_id[part.index] = sid
        last_segment[int(tid)] = sid
        rows.append({"L": sid, "B": int(part["t"].min()), "E": int(part["t"].max()), "P": parent})
    top = next_id - 1 if rows else 0  # the largest segment id: the last new one, or a track id (below next_id)
    if top > np.iinfo(np.uint16).max:  # refused here, before any mask is made
        raise ValueRangeError(f"CTC masks are 16-bit: {top} track segments do not fit", field="masks")
    segments = pd.DataFrame({"t": tab["t"], "label": tab["track_id"], "track_id": seg_id})
    return segments, pd.DataFrame(rows, columns=["L", "B", "E", "P"])


def ctc_segments(labels: np.ndarray, table: Any) -> tuple[np.ndarray, Any]:
    """Cell Tracking Challenge view of track labels: masks (segment ids, :func:`ctc_segment_table`) and ``L B E P``
    rows, where a track must be present in every frame."""
    segments, rows = ctc_segment_table(table)
    return relabel(labels, segments), rows


def write_frames(folder: Path, tracks: Tracks, *, image: dict[str, Any]) -> None:
    """Write a tracked movie's label image (``labels.ome.zarr``, the :class:`~subcell.io.OmeZarrWriter` arguments
    in ``image``) and its CTC folder (``ctc/``: masks and ``res_track.txt``) into ``folder``, reading and relabelling
    each frame of ``tracks.labels`` once for both, and writing each CTC mask as it is made (none held)."""
    from subcell.io import OmeZarrWriter
    from subcell.io.ctc import ctc_frame_files, ctc_track_file
    from subcell.io.files import write_files

    segments, rows = ctc_segment_table(tracks.table)  # more segments than 16 bits hold: refused before any read
    by_frame = {int(t): part.assign(t=0) for t, part in segments.groupby("t")}
    n = tracks.labels.shape[0]
    shape = (n, 1, *tracks.labels.shape[1:])
    with OmeZarrWriter(folder / "labels.ome.zarr", shape=shape, dtype=tracks.labels.dtype, is_label=True,
                       **image) as writer:  # fmt: skip
        for t in range(n):
            frame = materialize(tracks.labels[t])
            writer.write_region((slice(t, t + 1),), frame[None, None])
            part = by_frame.get(t, segments.iloc[:0])
            write_files(folder / "ctc", ctc_frame_files(t, n, relabel(frame[None], part)[0]))
    write_files(folder / "ctc", ctc_track_file(rows))


def track_timelapse(
    labels: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    time_interval_s: float,
    config: TrackConfig | None = None,
    intensity: np.ndarray | None = None,
    drift_um: Any = None,
) -> Tracks:
    """Track the objects of a (T, Z, Y, X) instance-label time-lapse (a (T, Y, X) one is read as Z = 1).

    ``drift_um``: the stage's drift, ``(T, 3)`` µm (:func:`subcell.transforms.drift.estimate_drift`): objects are
    linked where they lie once it is taken out, and steps, speeds and displacements are the cells' own; the
    table's ``z_um, y_um, x_um`` stay where each object is in its frame (the labels are not moved, so what touches
    the field's border is still known) and the drift is in the table beside them.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((3, 1, 32, 32), np.uint16)
    >>> for t in range(3):
    ...     lab[t, 0, 4:8, 4 + t:8 + t] = 5          # one object drifting 1 px per frame
    >>> tr = track_timelapse(lab, voxel_size=(1, 0.5, 0.5), time_interval_s=60)
    >>> tr.lineage[["track_id", "start", "end"]].values.tolist()
    [[1, 0, 2]]
    """
    import pandas as pd

    from subcell.track.growth import track_growth
    from subcell.track.link import link_objects
    from subcell.track.motion import step_motion, track_motion
    from subcell.track.objects import timelapse_objects

    lab = labels if is_lazy(labels) else np.asarray(labels)  # Dask stays lazy: read frame by frame
    if lab.ndim == 3:
        lab = lab[:, None]
    if lab.ndim != 4:
        raise ValueRangeError(f"expected (T, Z, Y, X) or (T, Y, X) labels, got {lab.ndim} axes", field="labels")
    if intensity is not None:
        intensity = (intensity if is_lazy(intensity) else np.asarray(intensity)).reshape(lab.shape)
    objects = timelapse_objects(lab, voxel_size=voxel_size, intensity=intensity)
    xyz = ["z_um", "y_um", "x_um"]
    drift = None
    if drift_um is not None:
        from subcell.transforms.drift import DRIFT_COLUMNS

        drift = np.asarray(drift_um, np.float64)
        if drift.shape != (lab.shape[0], 3) or not np.isfinite(drift).all():
            raise ValueRangeError(f"drift must be one finite (z, y, x) row per frame ({lab.shape[0]}), got shape "
                                  f"{drift.shape}", field="drift")  # fmt: skip
        objects[xyz] = objects[xyz].to_numpy(np.float64) - drift[objects["t"].to_numpy()]
    table = link_objects(objects, n_frames=lab.shape[0], time_interval_s=time_interval_s, config=config)
    table = _in_order(table, time_interval_s)
    table = pd.concat([table, step_motion(table)], axis=1)
    lineage = lineage_table(table, n_frames=lab.shape[0]).merge(track_motion(table), on="track_id", how="left")
    lineage = lineage.merge(track_growth(table), on="track_id", how="left")
    if drift is not None:  # back where each object is in its frame, the drift beside
        at = drift[table["t"].to_numpy()]
        table[xyz] = table[xyz].to_numpy(np.float64) + at
        for i, col in enumerate(DRIFT_COLUMNS):
            table[col] = at[:, i]
    return Tracks(labels=relabel(lab, table), table=table, lineage=lineage)


def _in_order(table: Any, time_interval_s: float | None) -> Any:
    """The tracks table's columns in their order, ``time_min`` (the frame's time in minutes) added, rows by track
    and frame."""
    table["time_min"] = table["t"] * (time_interval_s / 60.0) if time_interval_s else np.nan
    order = ["track_id", "t", "time_min", "z_um", "y_um", "x_um", "label", "volume_um3", "mean_intensity",
             "touches_border", "parent_track", "generation"]  # fmt: skip
    return table[[c for c in order if c in table.columns]].sort_values(["track_id", "t"]).reset_index(drop=True)


def generations(parents: dict[int, int], tracks: set[int]) -> dict[int, int]:
    """Each track's number of ancestors among ``tracks`` (0: no parent); a cycle in a bad file stops the walk."""

    def depth(tid: int) -> int:
        seen: set[int] = set()
        while parents.get(tid, 0) in tracks and tid not in seen:
            seen.add(tid)
            tid = parents[tid]
        return len(seen)

    return {tid: depth(tid) for tid in tracks}


def tracks_from_lineage(
    labels: np.ndarray,
    parents: dict[int, int] | None,
    *,
    voxel_size: VoxelSize | Sequence[float],
    time_interval_s: float | None = None,
) -> Tracks:
    """Tracks from a track-consistent (T, Z, Y, X) label image and each track's parent (0 or absent: none), as
    stored by CTC folders (``L B E P``) and by ``subcell synth`` (``tables/lineage.parquet``); ``time_min`` is
    NaN without ``time_interval_s``. ``parents`` None: no lineage is known (a label movie whose ids are its tracks,
    such as CTC reference masks without ``man_track.txt``): each id a track, its divisions unknown
    (``divisions_known`` False)."""
    from subcell.track.objects import timelapse_objects

    lab = labels if is_lazy(labels) else np.asarray(labels)  # Dask stays lazy: objects found frame by frame
    if lab.ndim == 3:
        lab = lab[:, None]
    table = timelapse_objects(lab, voxel_size=voxel_size)
    table["track_id"] = table["label"]
    known = parents is not None
    parents = parents or {}
    table["parent_track"] = table["track_id"].map(parents).fillna(0).astype(np.int64)
    present = set(table["track_id"].tolist())
    table.loc[~table["parent_track"].isin(present), "parent_track"] = 0  # a parent never seen in the masks

    generation = generations(parents, present)
    table["generation"] = table["track_id"].map(generation).astype(np.int64)
    table = _in_order(table, time_interval_s)
    return Tracks(labels=lab, table=table, lineage=lineage_table(table, n_frames=lab.shape[0]), divisions_known=known)
