"""Scoring tracks against truth with the Cell Tracking Challenge measures.

TRA, DET and LNK (AOGM with the official weights) and division precision / recall / F1 within a frame tolerance
come from traccuracy's metrics (the community's maintained implementation). They are computed on matchings found
here, in one read of each frame (:func:`match_frames`, from the package's one overlap count): TRA/DET/LNK on the
CTC rule (a predicted object matches a true one when it covers more than half of it), divisions on a one-to-one
IoU >= 0.5 matching, which traccuracy's division metric requires. traccuracy's own matchers give the same
matchings (tested) but read every frame once per matcher. SEG, which traccuracy does not compute, comes from the
same pass. The biological measures (CT, TF, BC, CCA, BIO) are py-ctcmetrics' on the same CTC-rule matching
(:mod:`subcell.track.bio`). The test suite cross-checks all of them against py-ctcmetrics (the CTC's own Python
port) run on exported CTC folders.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.metrics.segmentation import overlaps
from subcell.track.bio import bio_scores, overall_scores
from subcell.track.tracks import Tracks, frames_of

__all__ = ["FrameMatches", "evaluate_tracks", "match_frames", "seg_score", "track_digraph", "tracking_graph"]


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


@dataclass(frozen=True)
class FrameMatches:
    """What scoring a movie needs from its label images, found in one read of each frame of both
    (:func:`match_frames`): the pairs ``(t, true id, predicted id)`` of the CTC rule (the predicted object covers
    more than half of the true one), those of a one-to-one IoU >= 0.5 matching, and SEG's row per true object."""

    ctc: list[tuple[int, int, int]]
    one_to_one: list[tuple[int, int, int]]
    seg: Any  # pandas.DataFrame: t, label, jaccard

    def seg_mean(self) -> float:
        return float(self.seg["jaccard"].mean()) if len(self.seg) else float("nan")


def match_frames(truth_labels: Any, pred_labels: Any, *, start: int = 0,
                 objects: tuple[set[tuple[int, int]], set[tuple[int, int]]] | None = None) -> FrameMatches:  # fmt: skip
    """:class:`FrameMatches` of two ``(T, ...)`` label movies (NumPy, Dask or Zarr), frame by frame from ``start``:
    each frame of each is read once, and its pairs come from the package's one overlap count
    (:func:`~subcell.metrics.overlaps`, the instance matcher's).

    ``objects``: the ``(t, label)`` of the true and of the predicted objects the matchings may pair (a tracking
    graph's nodes); SEG scores every true object of the label images."""
    import pandas as pd

    if truth_labels.shape != pred_labels.shape:
        raise ValueRangeError(f"truth {truth_labels.shape} and prediction {pred_labels.shape} differ in shape",
                              field="labels")  # fmt: skip
    truth_frames, pred_frames = frames_of(truth_labels), frames_of(pred_labels)
    ctc: list[tuple[int, int, int]] = []
    one: list[tuple[int, int, int]] = []
    rows: list[dict[str, Any]] = []
    for t in range(start, truth_labels.shape[0]):
        ov = overlaps(np.asarray(pred_frames[t]), np.asarray(truth_frames[t]))
        if ov.true_ids.size == 0:
            continue
        true_at, pred_at = ov.true_ids[ov.rows], ov.pred_ids[ov.cols]
        half = ov.covering()  # the CTC rule: shared > half the true object
        keep = np.ones(len(ov.rows), bool)
        if objects is not None:
            keep = np.array([(t, int(a)) in objects[0] and (t, int(b)) in objects[1]
                             for a, b in zip(true_at.tolist(), pred_at.tolist(), strict=True)], bool)  # fmt: skip
        ctc.extend((t, int(a), int(b)) for a, b in zip(true_at[half & keep], pred_at[half & keep], strict=True))
        r, c = ov.one_to_one(0.5, keep)
        one.extend((t, int(a), int(b)) for a, b in zip(ov.true_ids[r], ov.pred_ids[c], strict=True))
        # SEG: each true object's Jaccard index with the predicted object covering more than half of it, else 0
        rows.extend({"t": t, "label": i, "jaccard": j} for i, j in zip(ov.true_ids.tolist(),
                                                                         ov.seg_jaccard().tolist(), strict=True))  # fmt: skip
    return FrameMatches(ctc, one, pd.DataFrame(rows, columns=["t", "label", "jaccard"]))


def seg_score(truth_labels: Any, pred_labels: Any) -> tuple[float, Any]:
    """CTC SEG: for every true object the Jaccard index with the predicted object covering more than half of it
    (0 when none does), averaged over all true objects of all frames. Returns the mean and one row per object."""
    m = match_frames(truth_labels, pred_labels)
    return m.seg_mean(), m.seg


def evaluate_tracks(pred: Tracks, truth: Tracks, *, frame_tolerance: int = 1) -> tuple[dict[str, Any], Any]:
    """TRA, DET, LNK, SEG and division precision/recall/F1 (a division counts when found within
    ``frame_tolerance`` frames), the challenge's biological measures CT, TF, BC, CCA, BIO and its overall scores
    OP_CTB, OP_CSB, OP_CLB (:mod:`subcell.track.bio`), plus one row per true track: frames, frames detected, predicted tracks it was
    split into, identity switches, whether its division was found.

    A truth whose divisions are unknown (``truth.divisions_known`` False: tracks from ids alone) leaves them
    unscored: the division scores NaN and ``true_divisions`` None.

    Parameters
    ----------
    pred, truth : Tracks
        Same (T, Z, Y, X) shape.
    """
    import pandas as pd

    _quiet_progress()
    try:
        from traccuracy.matchers import Matched
    except ImportError:
        raise ValueRangeError(
            "scoring tracks needs traccuracy: pip install 'subcell[track]'", field="evaluate"
        ) from None
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    if pred.labels.shape != truth.labels.shape:
        raise ValueRangeError(f"prediction {pred.labels.shape} and truth {truth.labels.shape} differ in shape "
                              "(T, Z, Y, X)", field="labels")  # fmt: skip
    if len(truth.table) == 0:
        raise ValueRangeError("the truth has no objects", field="truth")
    # traccuracy counts frames from the truth's first frame: both graphs from there
    start = int(truth.table["t"].min())
    pred_s = _from_frame(pred, start)
    truth_s = _from_frame(truth, start)
    logging.getLogger("traccuracy").setLevel(logging.ERROR)
    # both matchings and SEG from one read of each frame of both movies (traccuracy's matchers read every frame
    # again, each of them, and count overlaps object by object); the metrics are traccuracy's, on these matchings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt_graph, pr_graph = tracking_graph(truth_s, name="truth"), tracking_graph(pred_s, name="prediction")
        # division scores on graphs of their own (the metrics mark the nodes they score); node ids follow the
        # table's order, the same in every graph of one table
        div_graphs = tracking_graph(truth_s, name="truth"), tracking_graph(pred_s, name="prediction")
        node_of = [{(int(a["t"]) + start, int(a["segmentation_id"])): n for n, a in g.graph.nodes(data=True)}
                   for g in (gt_graph, pr_graph)]  # fmt: skip
        found = match_frames(truth.labels, pred.labels, start=start, objects=(set(node_of[0]), set(node_of[1])))

        def mapping(pairs: list[tuple[int, int, int]]) -> list[tuple[Any, Any]]:
            return [(node_of[0][(t, a)], node_of[1][(t, b)]) for t, a, b in pairs]

        matched = Matched(gt_graph, pr_graph, mapping(found.ctc), {"name": "CTC rule (subcell.metrics.overlaps)"})
        results = [CTCMetrics().compute(matched).to_dict()]
        # the division metric needs a one-to-one matching (the CTC rule lets one predicted object match two true)
        one = Matched(
            *div_graphs,
            mapping(found.one_to_one),
            {"name": "IoU >= 0.5 one-to-one (subcell.metrics.overlaps)", "matching type": "one-to-one"},
        )
        div_results = [DivisionMetrics(max_frame_buffer=frame_tolerance).compute(one).to_dict()]
    ctc = results[0]["results"]
    div = div_results[0]["results"]
    div_tol = div[f"Frame Buffer {frame_tolerance}"]
    seg = found.seg_mean()
    summary: dict[str, Any] = {
        "TRA": float(ctc["TRA"]),
        "DET": float(ctc["DET"]),
        "LNK": float(ctc["LNK"]),
        "SEG": seg,
        "AOGM": float(ctc["AOGM"]),
        "division_precision": float(div_tol["Division Precision"]),
        "division_recall": float(div_tol["Division Recall"]),
        "division_f1": float(div_tol["Division F1"]),
        "true_divisions": int(div_tol["Total GT Divisions"]) if truth.divisions_known else None,
        "predicted_divisions": int(div_tol["Total Predicted Divisions"]),
        "frame_tolerance": frame_tolerance,
        "true_objects": len(truth.table),
        "predicted_objects": len(pred.table),
        "true_tracks": int(truth.table["track_id"].nunique()),
        "predicted_tracks": int(pred.table["track_id"].nunique()),
    }
    if not truth.divisions_known:  # a truth of ids alone: its divisions are unknown, not absent
        summary.update(division_precision=float("nan"), division_recall=float("nan"), division_f1=float("nan"))
    summary.update(bio_scores(pred.table, truth.table, found.ctc, n_frames=truth.labels.shape[0],
                              frame_tolerance=frame_tolerance, divisions_known=truth.divisions_known))  # fmt: skip
    summary.update(overall_scores(summary))
    per_track = _per_track(matched, gt_graph, pr_graph, div_graphs[0], frame_tolerance)
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
    return Tracks(labels=frames_of(tracks.labels)[start:], table=tab, lineage=tracks.lineage,  # (not read here)
                  divisions_known=tracks.divisions_known)  # fmt: skip


def _per_track(matched: Any, gt_graph: Any, pr_graph: Any, div_graph: Any, tolerance: int) -> list[dict[str, Any]]:
    """A row per true track: frames detected, predicted tracks, identity switches, and whether its division was
    found — read from ``div_graph``, the truth graph the division metric marked (``gt_graph`` carries the CTC
    metric's marks only: read there, no division was ever found): a true positive, or a division found within
    ``tolerance`` frames of it (traccuracy leaves those marked false negative, with the smallest frame shift that
    corrects them)."""
    from traccuracy import NodeFlag

    gt_nodes = gt_graph.graph.nodes
    pr_nodes = pr_graph.graph.nodes
    by_track: dict[int, list[tuple[int, int | None]]] = {}
    for node in gt_nodes:
        tid = int(gt_nodes[node]["segmentation_id"])
        pred_node = (matched.gt_pred_map.get(node) or [None])[0]  # the CTC rule matches a true object at most once
        pred_track = int(pr_nodes[pred_node]["segmentation_id"]) if pred_node is not None else None
        by_track.setdefault(tid, []).append((int(gt_nodes[node]["t"]), pred_track))
    div_nodes = div_graph.graph.nodes  # (the same node ids: one table's graphs number its rows alike)
    divisions = {int(div_nodes[n]["segmentation_id"]): n for n in div_graph.get_divisions()}
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
            attrs = div_nodes[divisions[tid]]
            shifted = [attrs.get(k) for k in ("min_buffer_correct", "min_buffer_skip_correct")]
            row["division_found"] = bool(attrs.get(NodeFlag.TP_DIV, False) or attrs.get(NodeFlag.TP_DIV_SKIP, False)
                                         or any(b is not None and b == b and b <= tolerance for b in shifted))  # fmt: skip
        rows.append(row)
    return rows
