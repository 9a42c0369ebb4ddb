"""Scoring tracks against point tracks: truth that has a position per cell and frame but no masks.

Point annotations are how most tracking truth is made (a click per nucleus, or a detector's blobs, e.g. napari
Tracks layers). A true point is matched to the predicted object it falls inside (traccuracy's point-to-segmentation
matcher); several points inside one object are a merge, which the AOGM charges as a non-split vertex. TRA, DET and
LNK are then the CTC measures over that matching. SEG needs true masks and is not defined here (NaN). Divisions are
scored when the points carry parent links and the matching is one-to-one (traccuracy's division metric needs it).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from subcell.errors import InputFileError, ValueRangeError
from subcell.image import VoxelSize
from subcell.track.tracks import Tracks

__all__ = ["evaluate_point_tracks", "read_point_tracks"]

POINT_SUFFIXES = (".csv", ".parquet", ".npy")


def read_point_tracks(
    path: str | Path, *, voxel_size: VoxelSize | tuple[float, ...], units: Literal["auto", "um", "px"] = "auto"
) -> Any:
    """Point tracks as a table ``track_id, t, z_um, y_um, x_um, parent_track``.

    Accepted: a napari Tracks array saved with ``numpy.save`` (columns track_id, t, [z,] y, x in data
    coordinates, i.e. pixels) or a CSV / Parquet table with columns ``track_id, t`` and ``y, x`` (pixels) or
    ``y_um, x_um`` (µm), ``z``/``z_um`` optional, ``parent_track`` optional (0 = none). ``units`` overrides
    what the column names say. Positions in pixels are converted with ``voxel_size`` (NGFF i·voxel).
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputFileError("point tracks not found", path=p)
    if p.suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
        if arr.ndim != 2 or arr.shape[1] not in (4, 5):
            raise InputFileError(f"expected a napari Tracks array (N, 4 or 5) [track_id, t, (z,) y, x], got "
                                 f"{arr.shape}", path=p, field="points")  # fmt: skip
        cols = ["track_id", "t", "y", "x"] if arr.shape[1] == 4 else ["track_id", "t", "z", "y", "x"]
        table = pd.DataFrame(arr, columns=cols)
    elif p.suffix in (".csv", ".parquet"):
        table = pd.read_csv(p) if p.suffix == ".csv" else pd.read_parquet(p)
    else:
        raise InputFileError(f"point tracks must be one of {', '.join(POINT_SUFFIXES)}", path=p, field="points")
    in_um = {"y_um", "x_um"} <= set(table.columns)
    in_px = {"y", "x"} <= set(table.columns)
    missing = {"track_id", "t"} - set(table.columns)
    if missing or not (in_um or in_px):
        raise InputFileError(f"point tracks need columns track_id, t and y, x (pixels) or y_um, x_um (µm); "
                             f"missing {sorted(missing) or ['y', 'x']}", path=p, field="columns")  # fmt: skip
    vs = VoxelSize.of(voxel_size).as_tuple()
    use_um = units == "um" or (units == "auto" and in_um)
    out = pd.DataFrame({"track_id": table["track_id"].astype(np.int64), "t": table["t"].astype(np.int64)})
    for axis, v in zip("zyx", vs, strict=True):
        src = f"{axis}_um" if use_um and f"{axis}_um" in table.columns else axis
        if src not in table.columns:
            out[f"{axis}_um"] = 0.0
            continue
        values = table[src].to_numpy(np.float64)
        if not np.isfinite(values).all():
            raise InputFileError(f"column {src!r} has missing or infinite values", path=p, field=src)
        out[f"{axis}_um"] = values if src.endswith("_um") or units == "um" else values * v
    parent = table["parent_track"] if "parent_track" in table.columns else 0
    out["parent_track"] = np.asarray(parent, dtype=np.int64) if np.ndim(parent) else 0
    if (out["t"] < 0).any():
        raise InputFileError("point tracks have negative frames", path=p, field="t")
    return out


def _points_graph(points: Any, voxel_size: tuple[float, float, float], *, two_d: bool) -> Any:
    """A traccuracy graph of the points, positions as voxel indices of the labels they are scored on (y, x only
    for a 2D time-lapse, whose labels the tracking graph holds as (T, Y, X))."""
    import networkx as nx
    from traccuracy import TrackingGraph

    tab = points.sort_values(["track_id", "t"]).reset_index(drop=True)
    graph = nx.DiGraph()
    ids = np.arange(1, len(tab) + 1)
    for nid, row in zip(ids, tab.itertuples(index=False), strict=True):
        graph.add_node(int(nid), t=int(row.t), z=row.z_um / voxel_size[0], y=row.y_um / voxel_size[1],
                       x=row.x_um / voxel_size[2], track_id=int(row.track_id))  # fmt: skip
    same = tab["track_id"].to_numpy()[1:] == tab["track_id"].to_numpy()[:-1]
    graph.add_edges_from(zip(ids[:-1][same].tolist(), ids[1:][same].tolist(), strict=True))
    last = {int(tid): int(ids[i]) for i, tid in tab.groupby("track_id").tail(1)["track_id"].items()}
    for i, row in tab.groupby("track_id").head(1).iterrows():
        if int(row["parent_track"]) in last:
            graph.add_edge(last[int(row["parent_track"])], int(ids[i]))
    keys = ("y", "x") if two_d else ("z", "y", "x")
    return TrackingGraph(graph, frame_key="t", location_keys=keys, name="points")


def evaluate_point_tracks(
    pred: Tracks, points: Any, *, voxel_size: VoxelSize | tuple[float, ...], frame_tolerance: int = 1
) -> dict[str, Any]:
    """TRA, DET, LNK of predicted tracks against point tracks (see the module text); divisions when the points
    have parent links and every matched object holds one point. ``points`` as :func:`read_point_tracks` returns."""
    from traccuracy import run_metrics
    from traccuracy.matchers import PointSegMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    from subcell.track.evaluate import _quiet_progress, tracking_graph

    vs = VoxelSize.of(voxel_size).as_tuple()
    labels = pred.labels if pred.labels.ndim == 4 else pred.labels[:, None]
    if len(points) == 0:
        raise ValueRangeError("the point tracks are empty", field="points")
    t_max = int(points["t"].max())
    if t_max >= labels.shape[0]:
        raise ValueRangeError(f"points reach frame {t_max}, the prediction has {labels.shape[0]} frames", field="t")
    idx = np.round(points[["z_um", "y_um", "x_um"]].to_numpy() / np.asarray(vs)).astype(np.int64)
    outside = ((idx < 0) | (idx >= np.asarray(labels.shape[1:]))).any(axis=1)
    if outside.any():
        raise ValueRangeError(f"{int(outside.sum())} points lie outside the {labels.shape[1:]} voxels of the "
                              "prediction (wrong units or voxel size?)", field="points")  # fmt: skip
    _quiet_progress()
    logging.getLogger("traccuracy").setLevel(logging.ERROR)
    p4 = Tracks(labels=labels, table=pred.table, lineage=pred.lineage)
    two_d = labels.shape[1] == 1

    def graphs() -> tuple[Any, Any]:
        return _points_graph(points, vs, two_d=two_d), tracking_graph(p4, name="prediction")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results, matched = run_metrics(*graphs(), PointSegMatcher(), [CTCMetrics()])
    ctc = results[0]["results"]
    from collections import Counter

    hits = Counter(p for _, p in matched.mapping)  # predicted object → points inside it
    summary: dict[str, Any] = {
        "TRA": float(ctc["TRA"]), "DET": float(ctc["DET"]), "LNK": float(ctc["LNK"]), "SEG": float("nan"),
        "AOGM": float(ctc["AOGM"]),
        "points_matched": len(set(g for g, _ in matched.mapping)) / len(points),
        "objects_with_several_points": sum(1 for n in hits.values() if n > 1),
        "true_tracks": int(points["track_id"].nunique()), "predicted_tracks": int(pred.table["track_id"].nunique()),
        "true_objects": len(points), "predicted_objects": len(pred.table),
        "division_precision": float("nan"), "division_recall": float("nan"), "division_f1": float("nan"),
        "true_divisions": int((points.groupby("track_id")["parent_track"].first() > 0).sum() // 2),
        "predicted_divisions": int((pred.lineage["parent_track"] > 0).sum() // 2), "frame_tolerance": frame_tolerance,
    }  # fmt: skip
    if summary["true_divisions"] and summary["objects_with_several_points"] == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            div, _ = run_metrics(*graphs(), PointSegMatcher(), [DivisionMetrics(max_frame_buffer=frame_tolerance)])
        d = div[0]["results"][f"Frame Buffer {frame_tolerance}"]
        summary.update(division_precision=float(d["Division Precision"]), division_recall=float(d["Division Recall"]),
                       division_f1=float(d["Division F1"]))  # fmt: skip
    return summary
