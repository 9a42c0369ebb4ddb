"""Tracks as a graph: the Graph Exchange File Format (geff) written and read, TrackMate XML read.

geff is how tracking tools exchange tracks (napari-geff, motile, ultrack, TrackMate, traccuracy): a Zarr group of
nodes (one per object and frame: frame and position) and directed edges (a link to the next frame, or from a
dividing cell to each daughter). ``subcell track`` writes its tracks as one, positions in µm beside the label image
whose ids the nodes name. Graphs from other tools come back as tracklets: the runs of nodes linked one to one; a
node with several successors is a division, each daughter a new tracklet whose parent is the run that divided.
A node with several predecessors (a merge) has no place in a lineage and is refused.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import InputFileError
from subcell.image import VoxelSize
from subcell.io._units import LENGTH_UM, TIME_S

__all__ = [
    "describe_graph",
    "is_geff",
    "is_trackmate_xml",
    "read_track_graph",
    "related_labels",
    "tracks_from_graph",
    "tracks_graph",
    "write_geff",
]

GEFF_NAME = "tracks.geff"
_FRAME_PROPS = ("frame", "FRAME")  # a node's frame index where the time axis holds a time (TrackMate: FRAME)
_PIXEL_UNITS = (None, "", "pixel", "pixels", "px")
_TIME_UNITS = {u.lower() for u in TIME_S} | {"sec", "seconds", "minutes", "hours", "day", "microsecond", "nanosecond"}


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
    import geff
    from geff_spec import GeffMetadata, RelatedObject

    graph = tracks_graph(table, two_d=two_d)
    space = ["y", "x"] if two_d else ["z", "y", "x"]
    geff.write(graph, Path(path), axis_names=["t", *space], axis_types=["time", *["space"] * len(space)],
               axis_units=[None, *["micrometer"] * len(space)], axis_scales=[time_interval_s, *[None] * len(space)],
               scaled_units=["second" if time_interval_s else None, *[None] * len(space)])  # fmt: skip
    meta = GeffMetadata.read(Path(path))  # the node and edge properties' metadata as geff derives it, then ours
    meta.track_node_props = {"tracklet": "track_id", "lineage": "lineage_id"}
    if labels_path:
        meta.related_objects = [RelatedObject(type="labels", path=labels_path, label_prop="seg_id")]
    meta.write(Path(path))


def is_geff(path: str | Path) -> bool:
    """Whether ``path`` is a geff group (a Zarr group whose attributes hold ``geff`` metadata)."""
    p = Path(path)
    for name in (".zattrs", "zarr.json"):
        if (p / name).is_file() and '"geff"' in (p / name).read_text(errors="replace"):
            return True
    return False


def is_trackmate_xml(path: str | Path) -> bool:
    """Whether ``path`` is an XML file whose root element is TrackMate's (the first kilobyte is read)."""
    p = Path(path)
    if p.suffix.lower() != ".xml" or not p.is_file():
        return False
    with p.open("rb") as f:
        return b"<TrackMate" in f.read(1024)


def related_labels(path: str | Path) -> Path | None:
    """The label image a geff group names as related (its path resolved against the group), or None: no such
    object, or a TrackMate XML file."""
    p = Path(path)
    if p.suffix.lower() == ".xml" or not is_geff(p):
        return None
    from geff_spec import GeffMetadata

    try:
        meta = GeffMetadata.read(p)
    except Exception as err:  # any reader failure is a bad file
        raise InputFileError(f"unreadable geff metadata: {_first_line(err)}", path=p, field="geff") from err
    rel = next((o.path for o in meta.related_objects or [] if o.type == "labels"), None)
    return (p / rel).resolve() if rel else None


def read_track_graph(path: str | Path, *, voxel_size: VoxelSize | tuple[float, ...]) -> Any:
    """A geff group or a TrackMate XML file as point tracks: ``track_id, t, z_um, y_um, x_um, parent_track`` (the
    table :func:`~subcell.track.points.read_point_tracks` returns), and ``seg_id`` where the nodes name their
    object in a related label image. Positions stated in pixels (no unit, or TrackMate's ``pixel``) are scaled by
    ``voxel_size``."""
    p = Path(path)
    if p.suffix.lower() == ".xml":
        return _read_trackmate(p, voxel_size)
    if not p.is_dir() or not is_geff(p):
        raise InputFileError("not a geff group (a Zarr group with geff metadata)", path=p, field="tracks")
    import geff

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # geff warns of units outside OME's list; units are checked here
            graph, meta = geff.read(p)
    except Exception as err:  # any reader failure is a bad file
        raise InputFileError(f"unreadable geff: {_first_line(err)}", path=p, field="tracks") from err
    label_prop = next((o.label_prop for o in meta.related_objects or [] if o.type == "labels"), None)
    return _points(graph, meta, p, voxel_size, label_prop)


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


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def describe_graph(path: str | Path) -> dict[str, Any]:
    """What a geff group or TrackMate XML file holds, for ``subcell info``: nodes, edges, tracklets, divisions,
    frames, the position axes' units (positions without a unit are pixels) and the related label image."""
    p = Path(path)
    points = read_track_graph(p, voxel_size=(1.0, 1.0, 1.0))  # units are reported, not applied
    axes: list[dict[str, Any]] = []
    labels = None
    if is_geff(p):
        from geff_spec import GeffMetadata

        meta = GeffMetadata.read(p)
        axes = [{"name": a.name, "type": a.type, "unit": a.unit, "scale": a.scale, "scaled_unit": a.scaled_unit}
                for a in meta.axes or []]  # fmt: skip
        named = related_labels(p)
        labels = None if named is None else {"path": str(named), "exists": named.exists()}
    parents = points.groupby("track_id")["parent_track"].first()
    return {
        "path": str(p),
        "format": "geff" if is_geff(p) else "trackmate-xml",
        "nodes": len(points),
        "tracklets": int(points["track_id"].nunique()),
        "divisions": int(parents[parents > 0].nunique()),
        "frames": [int(points["t"].min()), int(points["t"].max())],
        "axes": axes,
        "related_labels": labels,
    }


def _read_trackmate(path: Path, voxel_size: VoxelSize | tuple[float, ...]) -> Any:
    """TrackMate's XML through geff's converter (spots → nodes with FRAME and POSITION_X/Y/Z in the model's
    spatial units, edges of every track)."""
    import geff

    if not path.is_file():
        raise InputFileError("TrackMate XML not found", path=path)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # missing display settings, undeclared features: not needed here
                from geff.convert import from_trackmate_xml_to_geff

                from_trackmate_xml_to_geff(path, Path(tmp) / "tm.geff")
                graph, meta = geff.read(Path(tmp) / "tm.geff")
        except Exception as err:  # any converter failure is a bad file
            raise InputFileError(
                f"not a readable TrackMate XML ({_first_line(err)})", path=path, field="tracks"
            ) from err
    return _points(graph, meta, path, voxel_size, None)


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
    if frame_prop is None and axes["t"].scale is None and str(axes["t"].unit).lower() in _TIME_UNITS:
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
    return out[cols].sort_values(["track_id", "t"]).reset_index(drop=True)


def _um_per_value(axis: Any, pixel_um: float, path: Path) -> float:
    """µm per stored value of a space axis: its ``scale`` times the ``scaled_unit`` (or the ``unit``) in µm; a
    value in pixels (no unit) is ``pixel_um`` (the image's voxel size)."""
    scale, unit = (axis.scale, axis.scaled_unit) if axis.scale is not None else (1.0, axis.unit)
    if axis.offset:
        raise InputFileError(f"axis {axis.name!r} has an offset, which positions here cannot take",
                             path=path, field=axis.name)  # fmt: skip
    if unit in _PIXEL_UNITS:
        return float(scale) * pixel_um
    key = str(unit).lower().replace("micron", "micrometer").rstrip("s")
    if key not in LENGTH_UM and str(unit) not in LENGTH_UM:
        raise InputFileError(f"axis {axis.name!r} has unit {unit!r}; expected a length (e.g. micrometer) or pixels",
                             path=path, field=axis.name)  # fmt: skip
    return float(scale) * LENGTH_UM.get(key, LENGTH_UM.get(str(unit), 1.0))


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
