"""Scoring tracks against truth with the Cell Tracking Challenge measures.

TRA, DET and LNK (AOGM with the official weights) and division precision / recall / F1 within a frame tolerance
come from traccuracy (the community's maintained implementation). TRA/DET/LNK match by the CTC rule (a predicted
object matches a true one when it covers more than half of it); divisions by a one-to-one IoU >= 0.5 matching,
which traccuracy's division metric requires. SEG is computed here from the same rule, because
traccuracy does not compute it; the test suite cross-checks both against py-ctcmetrics (the CTC's own Python
port) on exported CTC folders.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.metrics.segmentation import overlaps
from subcell.track.tracks import Tracks, frames_of

__all__ = ["evaluate_tracks", "seg_score", "track_digraph", "tracking_graph"]


def track_digraph(table: Any, node: Callable[[Any], dict[str, Any]]) -> Any:
    """A networkx graph of a tracks table (``track_id, t, parent_track`` and what ``node`` reads): one node per
    row (ids 1, 2, … in track, then frame order; attributes from ``node(row)``), edges along each track (across
    gaps too) and from a parent's last node to each daughter's first."""
    import networkx as nx

    tab = table.sort_values(["track_id", "t"]).reset_index(drop=True)
    graph = nx.DiGraph()
    node_ids = np.arange(1, len(tab) + 1)
    for nid, row in zip(node_ids, tab.itertuples(index=False), strict=True):
        graph.add_node(int(nid), **node(row))
    same = tab["track_id"].to_numpy()[1:] == tab["track_id"].to_numpy()[:-1]
    graph.add_edges_from(zip(node_ids[:-1][same].tolist(), node_ids[1:][same].tolist(), strict=True))
    last_row = {int(tid): int(i) for i, tid in tab.groupby("track_id").tail(1)["track_id"].items()}
    for idx, row in tab.groupby("track_id").head(1).iterrows():
        parent = int(row["parent_track"])
        if parent in last_row:
            graph.add_edge(int(node_ids[last_row[parent]]), int(node_ids[idx]))
    return graph


def tracking_graph(tracks: Tracks, *, name: str = "tracks") -> Any:
    """A traccuracy ``TrackingGraph`` of :func:`track_digraph` with the segmentation (node label = track id)."""
    from traccuracy import TrackingGraph

    graph = track_digraph(tracks.table, lambda r: {"t": int(r.t), "segmentation_id": int(r.track_id),
                                                   "z": float(r.z_um), "y": float(r.y_um), "x": float(r.x_um)})  # fmt: skip
    seg = frames_of(tracks.labels)  # traccuracy indexes seg[t]: a stored movie is read a frame at a time
    if seg.ndim == 4 and seg.shape[1] == 1:
        seg = seg[:, 0]
    return TrackingGraph(graph, segmentation=seg, frame_key="t", label_key="segmentation_id", name=name)


def seg_score(truth_labels: np.ndarray, pred_labels: np.ndarray) -> tuple[float, Any]:
    """CTC SEG: for every true object the Jaccard index with the predicted object covering more than half of it
    (0 when none does), averaged over all true objects of all frames. Returns the mean and one row per object."""
    import pandas as pd

    if truth_labels.shape != pred_labels.shape:
        raise ValueRangeError(f"truth {truth_labels.shape} and prediction {pred_labels.shape} differ in shape",
                              field="labels")  # fmt: skip
    rows: list[dict[str, Any]] = []
    for t in range(truth_labels.shape[0]):
        # the package's one overlap count (the matcher's): sizes and shared voxels of every overlapping pair
        ov = overlaps(np.asarray(pred_labels[t]), np.asarray(truth_labels[t]))
        if ov.true_ids.size == 0:
            continue
        jac = np.zeros(ov.true_ids.size)
        half = ov.shared > 0.5 * ov.true_sizes[ov.rows]  # the predicted object covering more than half
        g, n = ov.rows[half], ov.shared[half]
        jac[g] = n / (ov.true_sizes[g] + ov.pred_sizes[ov.cols[half]] - n)
        rows.extend({"t": t, "label": i, "jaccard": j} for i, j in zip(ov.true_ids.tolist(), jac.tolist(),
                                                                         strict=True))  # fmt: skip
    table = pd.DataFrame(rows, columns=["t", "label", "jaccard"])
    return (float(table["jaccard"].mean()) if len(table) else float("nan")), table


def evaluate_tracks(pred: Tracks, truth: Tracks, *, frame_tolerance: int = 1) -> tuple[dict[str, float], Any]:
    """TRA, DET, LNK, SEG and division precision/recall/F1 (a division counts when found within
    ``frame_tolerance`` frames), plus one row per true track: frames, frames detected, predicted tracks it was
    split into, identity switches, whether its division was found.

    Parameters
    ----------
    pred, truth : Tracks
        Same (T, Z, Y, X) shape.
    """
    import pandas as pd

    _quiet_progress()
    try:
        from traccuracy import run_metrics
    except ImportError:
        raise ValueRangeError(
            "scoring tracks needs traccuracy: pip install 'subcell[track]'", field="evaluate"
        ) from None
    from traccuracy.matchers import CTCMatcher, IOUMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    if pred.labels.shape != truth.labels.shape:
        raise ValueRangeError(f"prediction {pred.labels.shape} and truth {truth.labels.shape} differ in shape "
                              "(T, Z, Y, X)", field="labels")  # fmt: skip
    if len(truth.table) == 0:
        raise ValueRangeError("the truth has no objects", field="truth")
    # traccuracy indexes the segmentation from the truth's first frame: give both from there
    start = int(truth.table["t"].min())
    pred_s = _from_frame(pred, start)
    truth_s = _from_frame(truth, start)
    logging.getLogger("traccuracy").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt_graph = tracking_graph(truth_s, name="truth")
        pr_graph = tracking_graph(pred_s, name="prediction")
        results, matched = run_metrics(gt_graph, pr_graph, CTCMatcher(), [CTCMetrics()])
        # division scores need a one-to-one matching (the CTC rule lets one predicted object match two true ones)
        div_graphs = tracking_graph(truth_s, name="truth"), tracking_graph(pred_s, name="prediction")
        div_results, _ = run_metrics(*div_graphs, IOUMatcher(iou_threshold=0.5, one_to_one=True),
                                     [DivisionMetrics(max_frame_buffer=frame_tolerance)])  # fmt: skip
    ctc = results[0]["results"]
    div = div_results[0]["results"]
    div_tol = div[f"Frame Buffer {frame_tolerance}"]
    seg, _ = seg_score(truth.labels, pred.labels)
    summary = {
        "TRA": float(ctc["TRA"]),
        "DET": float(ctc["DET"]),
        "LNK": float(ctc["LNK"]),
        "SEG": seg,
        "AOGM": float(ctc["AOGM"]),
        "division_precision": float(div_tol["Division Precision"]),
        "division_recall": float(div_tol["Division Recall"]),
        "division_f1": float(div_tol["Division F1"]),
        "true_divisions": int(div_tol["Total GT Divisions"]),
        "predicted_divisions": int(div_tol["Total Predicted Divisions"]),
        "frame_tolerance": frame_tolerance,
        "true_objects": len(truth.table),
        "predicted_objects": len(pred.table),
        "true_tracks": int(truth.table["track_id"].nunique()),
        "predicted_tracks": int(pred.table["track_id"].nunique()),
    }
    per_track = _per_track(matched, gt_graph, pr_graph, truth_s)
    return summary, pd.DataFrame(per_track)


def _quiet_progress() -> None:
    """traccuracy draws tqdm bars per frame on stderr; a library call should not. Its modules bind ``tqdm`` at
    import, so each binding is replaced by one with ``disable=True`` (TQDM_DISABLE works only before tqdm's import)."""
    import functools
    import sys

    import traccuracy.matchers
    import traccuracy.metrics  # noqa: F401  (imports every module that binds tqdm)

    for name, module in list(sys.modules.items()):
        bar = getattr(module, "tqdm", None) if name.startswith("traccuracy") else None
        if bar is not None and not isinstance(bar, functools.partial):
            module.tqdm = functools.partial(bar, disable=True)  # type: ignore[attr-defined]


def _from_frame(tracks: Tracks, start: int) -> Tracks:
    if start == 0:
        return tracks
    tab = tracks.table[tracks.table["t"] >= start].assign(t=lambda d: d["t"] - start)
    return Tracks(labels=frames_of(tracks.labels)[start:], table=tab, lineage=tracks.lineage)  # not read here


def _per_track(matched: Any, gt_graph: Any, pr_graph: Any, truth: Tracks) -> list[dict[str, Any]]:
    from traccuracy import NodeFlag

    gt_nodes = gt_graph.graph.nodes
    pr_nodes = pr_graph.graph.nodes
    by_track: dict[int, list[tuple[int, int | None]]] = {}
    for node in gt_nodes:
        tid = int(gt_nodes[node]["segmentation_id"])
        pred_node = (matched.gt_pred_map.get(node) or [None])[0]  # the CTC rule matches a true object at most once
        pred_track = int(pr_nodes[pred_node]["segmentation_id"]) if pred_node is not None else None
        by_track.setdefault(tid, []).append((int(gt_nodes[node]["t"]), pred_track))
    divisions = {int(gt_nodes[n]["segmentation_id"]): n for n in gt_graph.get_divisions()}
    rows: list[dict[str, Any]] = []
    for tid, seq in sorted(by_track.items()):
        seq.sort()
        found = [p for _, p in seq if p is not None]
        switches = sum(1 for a, b in itertools.pairwise(found) if a != b)
        row: dict[str, Any] = {
            "track_id": tid,
            "start": seq[0][0],
            "end": seq[-1][0],
            "frames": len(seq),
            "frames_detected": len(found),
            "predicted_tracks": len(set(found)),
            "id_switches": switches,
            "main_predicted_track": max(set(found), key=found.count) if found else 0,
            "division_found": None,
        }
        if tid in divisions:
            attrs = gt_nodes[divisions[tid]]
            row["division_found"] = bool(attrs.get(NodeFlag.TP_DIV, False) or attrs.get(NodeFlag.TP_DIV_SKIP, False))
        rows.append(row)
    return rows
