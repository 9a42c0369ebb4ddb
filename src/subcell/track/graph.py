"""Tracks as a graph: a tracks table as the nodes and edges of a geff graph, and a graph (geff, TrackMate XML;
on disk through :mod:`subcell.io.geff`) as tracks.

geff is how tracking tools exchange tracks (napari-geff, motile, ultrack, TrackMate, traccuracy): a Zarr group of
nodes (one per object and frame: frame and position) and directed edges (a link to the next frame, or from a
dividing cell to each daughter). ``subcell track`` writes its tracks as one, positions in µm beside the label image
whose ids the nodes name. Graphs from other tools come back as tracklets: the runs of nodes linked one to one; a
node with several successors is a division, each daughter a new tracklet whose parent is the run that divided.
A node with several predecessors (a merge) has no place in a lineage and is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import InputFileError
from subcell.image import VoxelSize
from subcell.io._units import LENGTH_UM, TIME_S

__all__ = ["describe_graph", "read_track_graph", "tracks_from_graph", "tracks_graph", "write_geff", "write_trackmate"]

_FRAME_PROPS = ("frame", "FRAME")  # a node's frame index where the time axis holds a time (TrackMate: FRAME)
_PIXEL_UNITS = (None, "", "pixel", "pixels", "px")


def tracks_graph(table: Any, *, two_d: bool) -> Any:
    """A networkx graph of a tracks table (``track_id, t, z_um, y_um, x_um, parent_track``): one node per object and
    frame with ``t`` (frame), ``z`` (omitted when ``two_d``), ``y``, ``x`` in µm, ``track_id`` (the tracklet),
    ``lineage_id`` (the tracklet's root), ``seg_id`` (its value in the track label image, the track id) and, where
    the table has them, ``volume_um3`` and ``mean_intensity`` (what a viewer colours tracks by)."""
    from subcell.track.evaluate import track_digraph

    parents = table.groupby("track_id")["parent_track"].first().astype(int).to_dict()
    measured = [c for c in ("volume_um3", "mean_intensity") if c in table.columns and table[c].notna().any()]

    def root(tid: int) -> int:
        seen: set[int] = set()
        while parents.get(tid, 0) > 0 and tid not in seen:
            seen.add(tid)
            tid = parents[tid]
        return tid

    def node(r: Any) -> dict[str, Any]:
        pos = {"y": float(r.y_um), "x": float(r.x_um)} if two_d else {"z": float(r.z_um), "y": float(r.y_um),
                                                                       "x": float(r.x_um)}  # fmt: skip
        return {"t": int(r.t), **pos, "track_id": int(r.track_id), "lineage_id": root(int(r.track_id)),
                "seg_id": int(r.track_id), **{c: float(getattr(r, c)) for c in measured}}  # fmt: skip

    return track_digraph(table, node)


def write_geff(path: str | Path, table: Any, *, two_d: bool, time_interval_s: float | None,
               labels_path: str | None = None) -> None:  # fmt: skip
    """Write a tracks table as a geff group at ``path`` (:func:`tracks_graph`; axes ``t`` in frames, scaled to
    seconds by the frame interval, and ``z, y, x`` in micrometres). ``labels_path``: the track label image,
    relative to ``path``, recorded as the related ``labels`` object whose ids are the nodes' ``seg_id``."""
    from subcell.io.geff import write_graph

    space = ["y", "x"] if two_d else ["z", "y", "x"]
    time = ("t", "time", None, time_interval_s, "second" if time_interval_s else None)
    write_graph(path, tracks_graph(table, two_d=two_d),
                axes=[time, *((a, "space", "micrometer", None, None) for a in space)],
                track_node_props={"tracklet": "track_id", "lineage": "lineage_id"}, labels_path=labels_path,
                label_prop="seg_id")  # fmt: skip


def write_trackmate(path: str | Path, table: Any, *, shape: tuple[int, int, int, int],
                    voxel_size: VoxelSize | tuple[float, ...], time_interval_s: float, image: str = "",
                    overwrite: bool = False) -> None:  # fmt: skip
    """Write a tracks table as a TrackMate XML model at ``path`` (:func:`subcell.io.trackmate.write_trackmate_xml`)
    for Fiji's TrackMate, Mastodon and MaMuT: a spot per object and frame at its centroid in µm, ``POSITION_T`` in
    seconds, ``RADIUS`` of the sphere (disc, in 2D) of the object's volume (area); a TrackMate track per lineage
    (our tracklets and their daughters: TrackMate's ``TRACK_ID`` is :func:`tracks_graph`'s ``lineage_id``) and the
    spot features ``TRACKLET_ID`` (the tracklet, = its id in the track label image), ``VOLUME_UM3`` and, where
    measured, ``MEAN_INTENSITY_CH1``. ``shape``: the movie's (T, Z, Y, X); ``image``: its file, relative to
    ``path``'s folder, for TrackMate to open beneath the tracks (an empty image of that shape otherwise)."""
    from subcell.io.trackmate import Feature, TrackMateImage, write_trackmate_xml

    vs = VoxelSize.of(voxel_size).as_tuple()
    two_d = shape[1] == 1
    graph = tracks_graph(table, two_d=two_d)
    # the measures tracks_graph put on the nodes (where the table has them), as TrackMate spot features; TrackMate's
    # own VOLUME has a dimension older releases lack: a feature of ours instead
    as_features = {"volume_um3": Feature("VOLUME_UM3", "Volume (µm³)", "Volume µm³"),
                   "mean_intensity": Feature("MEAN_INTENSITY_CH1", "Mean intensity ch1", "Mean ch1", "INTENSITY")}  # fmt: skip
    first: dict[str, Any] = next(iter(graph.nodes.values()), {})
    measured = {c: f for c, f in as_features.items() if c in first}
    for _, a in graph.nodes(data=True):
        volume = a.get("volume_um3", float("nan"))
        # a sphere (disc: the area is the volume over one z step) of the object's size; a voxel's where unknown
        radius = np.sqrt(volume / vs[0] / np.pi) if two_d else np.cbrt(3.0 * volume / (4.0 * np.pi))
        a.update(FRAME=a["t"], POSITION_T=a["t"] * time_interval_s, POSITION_X=a["x"], POSITION_Y=a["y"],
                 POSITION_Z=0.0 if two_d else a["z"], TRACKLET_ID=a["track_id"],
                 RADIUS=float(radius) if np.isfinite(radius) else max(vs[1:]),
                 **{f.key: a[c] for c, f in measured.items()})  # fmt: skip
    features = [Feature("TRACKLET_ID", "Tracklet (id in the track labels)", "Tracklet", "NONE", True),
                *measured.values()]  # fmt: skip
    t, z, y, x = shape
    write_trackmate_xml(path, graph, track_of="lineage_id", features=features, overwrite=overwrite,
                        image=TrackMateImage(width=x, height=y, nslices=z, nframes=t, pixel_size=vs,
                                             time_interval_s=time_interval_s, filename=image))  # fmt: skip


def read_track_graph(path: str | Path, *, voxel_size: VoxelSize | tuple[float, ...]) -> Any:
    """A geff group or a TrackMate XML file (:func:`subcell.io.geff.read_graph`) as point tracks: ``track_id, t,
    z_um, y_um, x_um, parent_track`` (the table :func:`~subcell.track.points.read_point_tracks` returns), and
    ``seg_id`` where the nodes name their object in a related label image. Positions stated in pixels (no unit, or
    TrackMate's ``pixel``) are scaled by ``voxel_size``."""
    from subcell.io.geff import read_graph

    graph, meta = read_graph(path)
    label_prop = next((o.label_prop for o in meta.related_objects or [] if o.type == "labels"), None)
    return _points(graph, meta, Path(path), voxel_size, label_prop)


def tracks_from_graph(labels: Any, points: Any, *, voxel_size: VoxelSize | tuple[float, ...],
                      time_interval_s: float | None = None) -> Any:  # fmt: skip
    """:class:`~subcell.track.Tracks` of a graph's points (:func:`read_track_graph`, with ``seg_id``) and the
    (T, Z, Y, X) label image whose ids they name: each frame's objects relabelled to their tracklet; objects no node
    names become background."""
    from subcell.errors import ValueRangeError
    from subcell.track.tracks import relabel, tracks_from_lineage

    if "seg_id" not in points.columns:
        raise ValueRangeError("the graph's nodes name no object of the label image (seg_id)", field="seg_id")
    lab = relabel(labels, points.rename(columns={"seg_id": "label"})[["t", "label", "track_id"]])
    parents = points.groupby("track_id")["parent_track"].first().astype(int).to_dict()
    return tracks_from_lineage(lab, parents, voxel_size=voxel_size, time_interval_s=time_interval_s)


def describe_graph(path: str | Path) -> dict[str, Any]:
    """What a geff group or TrackMate XML file holds, for ``subcell info``: nodes, tracklets, divisions, frames,
    the axes (positions without a unit are pixels) and the related label image."""
    from subcell.io.geff import is_geff, read_graph, related_labels

    p = Path(path)
    graph, meta = read_graph(p)
    points = _points(graph, meta, p, (1.0, 1.0, 1.0), None)  # units are reported, not applied
    named = related_labels(p)
    parents = points.groupby("track_id")["parent_track"].first()
    return {
        "path": str(p),
        "format": "geff" if is_geff(p) else "trackmate-xml",
        "nodes": len(points),
        "tracklets": int(points["track_id"].nunique()),
        "divisions": int(parents[parents > 0].nunique()),
        "frames": [int(points["t"].min()), int(points["t"].max())],
        "axes": [{"name": a.name, "type": a.type, "unit": a.unit, "scale": a.scale, "scaled_unit": a.scaled_unit}
                 for a in meta.axes or []],
        "related_labels": None if named is None else {"path": str(named), "exists": named.exists()},
    }  # fmt: skip


def _axis_role(name: str) -> str:
    """``t``, ``z``, ``y`` or ``x`` for an axis name (``t``, ``POSITION_X``, ``frame`` …), else the name."""
    n = name.lower().removeprefix("position_")
    return {"time": "t", "frame": "t"}.get(n, n)


def _points(graph: Any, meta: Any, path: Path, voxel_size: VoxelSize | tuple[float, ...],
            label_prop: str | None) -> Any:  # fmt: skip
    """Point tracks of a geff graph and its metadata (see :func:`read_track_graph`)."""
    import pandas as pd

    axes = {_axis_role(a.name): a for a in meta.axes or []}
    if not {"y", "x"} <= set(axes):
        raise InputFileError(f"the graph's axes {[a.name for a in meta.axes or []]} name no y and x position",
                             path=path, field="axes")  # fmt: skip
    if not meta.directed:
        raise InputFileError("the graph is undirected: tracks need edges from earlier to later frames",
                             path=path, field="directed")  # fmt: skip
    nodes = list(graph.nodes)
    if not nodes:
        raise InputFileError("the graph has no nodes", path=path, field="nodes")
    attrs = graph.nodes
    frame_prop = next((k for k in _FRAME_PROPS if all(k in attrs[n] for n in nodes)), None)
    if frame_prop is None and "t" not in axes:
        raise InputFileError("the graph has no time axis and its nodes no frame", path=path, field="axes")
    if frame_prop is None and axes["t"].scale is None and str(axes["t"].unit) in TIME_S:
        raise InputFileError(f"the time axis {axes['t'].name!r} is in {axes['t'].unit}, and the nodes have no frame: "
                             "give each node a 'frame' property (or store frames, scaled to time by the axis' scale)",
                             path=path, field=axes["t"].name)  # fmt: skip
    frame_key = frame_prop or axes["t"].name
    frames = np.array([attrs[n].get(frame_key, np.nan) for n in nodes], np.float64)
    if not np.isfinite(frames).all() or (frames != np.round(frames)).any():
        unit = axes["t"].unit if "t" in axes else None
        raise InputFileError(f"node {frame_key!r} must hold whole frame numbers (unit {unit!r}); a time in physical "
                             "units needs a 'frame' property", path=path, field=frame_key)  # fmt: skip
    vs = dict(zip("zyx", VoxelSize.of(voxel_size).as_tuple(), strict=True))
    out = pd.DataFrame({"node": nodes, "t": frames.astype(np.int64)})
    for role in "zyx":
        axis = axes.get(role)
        values = (
            np.array([attrs[n].get(axis.name, np.nan) for n in nodes], np.float64) if axis else np.zeros(len(nodes))
        )
        if not np.isfinite(values).all():
            raise InputFileError(f"nodes lack a finite {axis.name!r} position", path=path, field=axis.name)  # type: ignore[union-attr]
        out[f"{role}_um"] = values * _um_per_value(axis, vs[role], path) if axis else values
    if label_prop and all(label_prop in attrs[n] for n in nodes):
        out["seg_id"] = [int(attrs[n][label_prop]) for n in nodes]
    tracklet, parent = _tracklets(graph, dict(zip(nodes, out["t"].tolist(), strict=True)), path)
    out["track_id"] = out["node"].map(tracklet).astype(np.int64)
    out["parent_track"] = out["track_id"].map(parent).fillna(0).astype(np.int64)
    cols = ["track_id", "t", "z_um", "y_um", "x_um", "parent_track"] + (["seg_id"] if "seg_id" in out else [])
    result = out[cols].sort_values(["track_id", "t"]).reset_index(drop=True)
    result.attrs["positions_in_um"] = all(axes[r].unit not in _PIXEL_UNITS for r in "yx")  # else pixels × voxel
    return result


def _um_per_value(axis: Any, pixel_um: float, path: Path) -> float:
    """µm per stored value of a space axis: its ``scale`` times the ``scaled_unit`` (or the ``unit``) in µm; a
    value in pixels (no unit) is ``pixel_um`` (the image's voxel size)."""
    scale, unit = (axis.scale, axis.scaled_unit) if axis.scale is not None else (1.0, axis.unit)
    if axis.offset:
        raise InputFileError(f"axis {axis.name!r} has an offset, which positions here cannot take",
                             path=path, field=axis.name)  # fmt: skip
    if unit in _PIXEL_UNITS:
        return float(scale) * pixel_um
    if str(unit) not in LENGTH_UM:
        raise InputFileError(f"axis {axis.name!r} has unit {unit!r}; expected a length (e.g. micrometer) or pixels",
                             path=path, field=axis.name)  # fmt: skip
    return float(scale) * LENGTH_UM[str(unit)]


def _tracklets(graph: Any, frame: dict[Any, int], path: Path) -> tuple[dict[Any, int], dict[int, int]]:
    """Each node's tracklet (1, 2, … in order of first frame) and each tracklet's parent tracklet: a tracklet runs
    while a node has exactly one successor; the successors of a node with several start one tracklet each."""
    merges = [n for n in graph.nodes if graph.in_degree(n) > 1]
    if merges:
        raise InputFileError(f"{len(merges)} nodes have several predecessors (merging tracks, e.g. node "
                             f"{merges[0]!r} in frame {frame[merges[0]]}); a lineage cannot merge",
                             path=path, field="edges")  # fmt: skip
    backward = [(a, b) for a, b in graph.edges if frame[b] <= frame[a]]
    if backward:
        a, b = backward[0]
        raise InputFileError(f"{len(backward)} edges do not go forward in time (e.g. {a!r} in frame {frame[a]} → "
                             f"{b!r} in frame {frame[b]})", path=path, field="edges")  # fmt: skip
    starts = sorted((n for n in graph.nodes if graph.in_degree(n) == 0 or graph.out_degree(next(iter(
        graph.predecessors(n)))) > 1), key=lambda n: (frame[n], str(n)))  # fmt: skip
    tracklet: dict[Any, int] = {}
    parent: dict[int, int] = {}
    for tid, start in enumerate(starts, 1):
        node = start
        tracklet[node] = tid
        while graph.out_degree(node) == 1:
            node = next(iter(graph.successors(node)))
            tracklet[node] = tid
    for start in starts:
        if graph.in_degree(start):
            parent[tracklet[start]] = tracklet[next(iter(graph.predecessors(start)))]
    return tracklet, parent
