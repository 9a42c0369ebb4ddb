"""Linking objects over time into tracks with divisions and gap closing (laptrack's LAP solver, costs in µm).

laptrack (Jaqaman et al. 2008: frame-to-frame assignment, then gap closing and splitting as a second
assignment) does the optimisation. What is ours: costs in physical units from the time interval, a size and an
intensity term folded into the points' coordinates (so laptrack's vectorised squared-Euclidean metric prices
them, instead of a Python callable per pair, which is ~1000× slower at 10,000 objects), and turning its graph
into tracks that keep one id across gaps and start new ids at divisions (the CTC convention).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.track.config import TrackConfig

__all__ = ["assign_tracks", "link_objects", "max_displacement_um", "resolve_merges"]


def max_displacement_um(config: TrackConfig, time_interval_s: float) -> float:
    """The largest distance (µm) an object may move between consecutive frames."""
    if not time_interval_s or time_interval_s <= 0:
        raise ValueRangeError(f"expected a positive time interval in seconds, got {time_interval_s!r}",
                              field="time_interval")  # fmt: skip
    return config.max_speed_um_per_min * time_interval_s / 60.0


def _features(objects: Any, config: TrackConfig, max_dist: float) -> np.ndarray:
    """Coordinates whose squared Euclidean distance is the link cost (µm²)."""
    cols = [objects[c].to_numpy(np.float64) for c in ("z_um", "y_um", "x_um")]
    if config.size_weight > 0:
        diameter = np.cbrt(6.0 * objects["volume_um3"].to_numpy(np.float64) / np.pi)
        cols.append(config.size_weight * diameter)
    intensity = objects["mean_intensity"].to_numpy(np.float64)
    if config.intensity_weight > 0 and np.isfinite(intensity).all():
        scale = float(np.median(np.abs(intensity))) or 1.0
        cols.append(config.intensity_weight * max_dist * intensity / scale)
    return np.stack(cols, axis=1)


def link_objects(objects: Any, *, n_frames: int, time_interval_s: float, config: TrackConfig | None = None) -> Any:
    """Assign every object (one row per object and frame, see :func:`~subcell.track.frame_objects`) to a track.

    Returns
    -------
    pandas.DataFrame
        ``objects`` sorted by ``t`` and ``label`` with ``track_id`` (1, 2, … in order of first appearance; the
        same id across gaps), ``parent_track`` (0 for none) and ``generation`` (0 for a track without parent).
    """
    from laptrack import LapTrack

    cfg = config or TrackConfig()
    max_dist = max_displacement_um(cfg, time_interval_s)
    objs = objects.sort_values(["t", "label"], kind="stable").reset_index(drop=True)
    feats = _features(objs, cfg, max_dist)
    t = objs["t"].to_numpy()
    if len(t) and (t.min() < 0 or t.max() >= n_frames):
        raise ValueRangeError(f"object frames {t.min()}..{t.max()} outside 0..{n_frames - 1}", field="t")
    starts = np.searchsorted(t, np.arange(n_frames + 1))
    coords = [feats[starts[i] : starts[i + 1]] for i in range(n_frames)]
    gap = cfg.max_gap_frames
    link_cut = max_dist**2
    # a cell missed for k frames may have moved k+1 steps; random motion spreads as sqrt(k+1)
    gap_cut = link_cut * (gap + 1)
    split_cut = (cfg.division_distance_factor * max_dist) ** 2
    tracker = LapTrack(
        metric="sqeuclidean",
        cutoff=link_cut,
        gap_closing_metric="sqeuclidean",
        gap_closing_cutoff=gap_cut if gap > 0 else False,
        gap_closing_max_frame_count=gap + 1,
        splitting_metric="sqeuclidean",
        splitting_cutoff=split_cut if cfg.divisions else False,
        merging_cutoff=split_cut if cfg.resolve_merges else False,
        # alternative costs at the cutoffs instead of laptrack's percentile estimate: any link within reach beats
        # starting or ending a track (cells rarely appear or vanish inside a colony), and with few candidates the
        # percentile estimate fell below plausible division links (divisions were missed on synthetic truth)
        track_start_cost=link_cut,
        track_end_cost=link_cut,
        segment_start_cost=max(gap_cut, split_cut),
        segment_end_cost=max(gap_cut, split_cut),
        no_splitting_cost=split_cut,
        no_merging_cost=split_cut,
    )
    graph = tracker.predict(coords) if len(objs) else None
    if graph is not None and cfg.resolve_merges:
        resolve_merges(graph, coords, max_frames=cfg.max_merge_frames)
    if graph is not None and cfg.border_entries and "touches_border" in objs.columns:
        unlink_border_entries(graph, objs, starts)
    objs = assign_tracks(objs, graph)
    if cfg.min_track_frames > 1:
        objs = _drop_short(objs, cfg.min_track_frames)
    return objs


def resolve_merges(graph: Any, coords: list[np.ndarray], *, max_frames: int) -> None:
    """Undo merges in a laptrack graph (in place), so every node keeps at most one predecessor.

    A merge (two tracks A, B linked into one object M) is what a segmentation that joins two touching nuclei
    looks like. When the chain from M splits again into C, D within ``max_frames``, the two tracks went through
    M side by side: the predecessor nearer to M keeps the chain, the pairing of (A, B) with (C, D) that moves
    least decides which daughter each continues into, and the other track skips the merged frames (a gap).
    Without it the split reads as a division of a cell that never divided, and one identity is lost. A merge
    that never splits keeps only its nearest predecessor (the other track ends there).

    Written here because laptrack links merges and splits but leaves their meaning to the caller; a merge is
    resolved from the positions alone (``coords`` per frame, the link features, µm first).
    """

    def pos(node: tuple[int, int]) -> np.ndarray:
        return coords[node[0]][node[1], :3]

    def far(a: Any, b: Any) -> float:
        return float(np.sum((pos(a) - pos(b)) ** 2))

    for merge in sorted(n for n in graph.nodes if graph.in_degree(n) > 1):
        preds = sorted(graph.predecessors(merge), key=lambda p: far(p, merge))
        node, steps = merge, 0
        while graph.out_degree(node) == 1 and steps < max_frames:
            nxt = next(iter(graph.successors(node)))
            if graph.in_degree(nxt) > 1:
                break
            node, steps = nxt, steps + 1
        keep, other = preds[0], preds[1]
        for extra in preds[2:]:
            graph.remove_edge(extra, merge)
        graph.remove_edge(other, merge)
        if graph.out_degree(node) != 2 or node[0] - merge[0] > max_frames:
            continue
        c, d = sorted(graph.successors(node))
        # the pairing that moves least: (keep → c, other → d) or (keep → d, other → c)
        if far(keep, c) + far(other, d) > far(keep, d) + far(other, c):
            c, d = d, c
        graph.remove_edge(node, d)
        graph.add_edge(other, d)


def unlink_border_entries(graph: Any, objs: Any, starts: np.ndarray) -> None:
    """Undo divisions in a laptrack graph (in place) that are a cell entering the field beside another: of a
    parent's two successors, one touches the field's border while the other goes on with at least 90 % of the
    parent's volume, parent and sibling clear of the border (the cell went on unchanged; a division's daughters take
    about half of it each — on synthetic movies a daughter's first object held 50–85 % of its parent's last, whose
    chromatin is still condensed). The entering object then starts its own track."""
    border = objs["touches_border"].to_numpy(bool)
    volume = objs["volume_um3"].to_numpy(np.float64)

    def row(node: tuple[int, int]) -> int:
        return int(starts[node[0]]) + node[1]

    for parent in [n for n in graph.nodes if graph.out_degree(n) == 2]:
        a, b = graph.successors(parent)
        p = row(parent)
        for enters, goes_on in ((a, b), (b, a)):
            whole = not (border[row(goes_on)] or border[p])  # the parent's and the sibling's volumes seen whole
            if border[row(enters)] and whole and volume[row(goes_on)] >= 0.9 * volume[p]:
                graph.remove_edge(parent, enters)
                break


def assign_tracks(objs: Any, graph: Any) -> Any:
    """Track ids from a laptrack graph over ``objs`` (sorted by ``t``, ``label``; nodes are (frame, index within
    the frame)): one id along a chain, across gaps too; a node with two successors is a division, and each
    daughter starts a new track whose ``parent_track`` is the parent's. Tracks are numbered 1, 2, … in order of
    first appearance, so parents are numbered before their daughters."""
    t = objs["t"].to_numpy()
    starts = np.searchsorted(t, np.arange(int(t.max()) + 2 if len(t) else 1))
    track = np.zeros(len(objs), dtype=np.int64)
    parent_of: dict[int, int] = {}
    next_id = 1
    for row in range(len(objs)):
        node = (int(t[row]), row - int(starts[t[row]]))
        preds = list(graph.predecessors(node)) if graph is not None else []
        if preds:
            p_row = int(starts[preds[0][0]]) + preds[0][1]
            if graph.out_degree(preds[0]) == 1:
                track[row] = track[p_row]
                continue
            parent_of[next_id] = int(track[p_row])  # a division: each daughter starts a track
        track[row] = next_id
        next_id += 1
    objs = objs.assign(track_id=track)
    objs["parent_track"] = objs["track_id"].map(parent_of).fillna(0).astype(np.int64)
    from subcell.track.tracks import generations

    objs["generation"] = objs["track_id"].map(generations(parent_of, set(range(1, next_id)))).astype(np.int64)
    return objs


def _drop_short(objs: Any, min_frames: int) -> Any:
    """Drop tracks seen in fewer than ``min_frames`` frames that have neither parent nor daughters."""
    length = objs.groupby("track_id")["t"].nunique()
    related = set(objs.loc[objs["parent_track"] > 0, "parent_track"]) | set(
        objs.loc[objs["parent_track"] > 0, "track_id"]
    )
    keep = [tid for tid, n in length.items() if n >= min_frames or tid in related]
    return objs[objs["track_id"].isin(keep)].reset_index(drop=True)
