"""Per-frame state probabilities smoothed along tracks by a constrained-transition decoder (Viterbi).

States follow an order (e.g. M0 → M1M2 → M3 → M4M5 → M6M7, or G1 → S → G2 → M): a cell stays or moves to the
next state, never back; a division ends the parent (in its last states) and each daughter starts over in the
first state. Written here because the decoder is a few lines of dynamic programming over our own constraint
graph; hmmlearn and friends fit emission models we do not need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError

__all__ = ["ordered_transitions", "smooth_tracks", "transitions_table", "viterbi"]


def ordered_transitions(n: int, *, cyclic: bool = False, skip: int = 0) -> np.ndarray:
    """(n, n) allowed-transition matrix for states in order: stay, or go forward by 1 (up to ``1 + skip``
    states, for stages shorter than a frame); ``cyclic`` lets the last state return to the first."""
    allowed = np.eye(n, dtype=bool)
    for i in range(n):
        for step in range(1, skip + 2):
            j = i + step
            if j < n:
                allowed[i, j] = True
            elif cyclic:
                allowed[i, j % n] = True
    return allowed


def viterbi(log_probs: np.ndarray, allowed: np.ndarray, *, switch_cost: float = 2.0,
            start: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """The most probable state sequence (T,) given per-frame log probabilities (T, K), allowed transitions
    (K, K) and a cost (nats) per change of state; ``start`` (K,) bool restricts the first state."""
    lp = np.asarray(log_probs, dtype=np.float64)
    t_len, k = lp.shape
    trans = np.where(allowed, -switch_cost, -np.inf)
    np.fill_diagonal(trans, np.where(np.diag(allowed), 0.0, -np.inf))
    score = lp[0] + (0.0 if start is None else np.where(start, 0.0, -np.inf))
    if not np.isfinite(score).any():
        raise ValueRangeError("no allowed first state", field="start")
    back = np.zeros((t_len, k), dtype=np.int64)
    for t in range(1, t_len):
        cand = score[:, None] + trans  # from i to j
        back[t] = cand.argmax(axis=0)
        score = cand[back[t], np.arange(k)] + lp[t]
    path = np.empty(t_len, dtype=np.int64)
    path[-1] = int(score.argmax())
    for t in range(t_len - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def smooth_tracks(tracks: Any, proba: np.ndarray, classes: Sequence[str], *, order: Sequence[str] | None = None,
                  cyclic: bool = False, switch_cost: float = 2.0, daughter_start: Sequence[str] | None = None,
                  skip: int = 0) -> np.ndarray:  # fmt: skip
    """Smoothed state per row of ``tracks`` (columns ``track_id``, ``t``, ``parent_track``), from per-row
    probabilities (N, K) over ``classes``.

    ``order`` gives the states' biological order (default: ``classes`` as given); ``daughter_start`` the states a
    daughter may start in (default: the first in order) — a track without parent may start anywhere.
    """
    order = list(order or classes)
    unknown = set(order) ^ set(classes)
    if unknown:
        raise ValueRangeError(f"order and classes differ: {sorted(unknown)}", field="order")
    idx = [list(classes).index(c) for c in order]
    p = np.clip(np.asarray(proba, dtype=np.float64)[:, idx], 1e-9, 1.0)
    allowed = ordered_transitions(len(order), cyclic=cyclic, skip=skip)
    first = np.isin(order, list(daughter_start or order[:1]))
    out = np.empty(len(tracks), dtype=object)
    rows = tracks.reset_index(drop=True)
    for _, part in rows.groupby("track_id", sort=False):
        part = part.sort_values("t")
        start = first if int(part["parent_track"].iloc[0]) > 0 else None
        path = viterbi(np.log(p[part.index.to_numpy()]), allowed, switch_cost=switch_cost, start=start)
        out[part.index.to_numpy()] = np.asarray(order, dtype=object)[path]
    return out.astype(str)


def transitions_table(tracks: Any, state: str = "state", *, time_interval_s: float | None = None) -> Any:
    """Per track, one row per visit to a state: entry frame, frames present, duration (min when the interval
    is known: ``time_interval_s``, else the table's ``time_min``), and whether the visit's entry and exit were seen. A track's first visit was entered out of sight
    (``entry_seen`` False: the movie began, or the cell came into view, in that state) unless the track began at a
    division (``parent_track``), and its last visit left out of sight (``exit_seen`` False) unless the track ends in
    a division of its own; a visit's duration is the state's only where both were seen (``complete``), a lower
    bound otherwise — stage durations from the complete visits alone are not biased short."""
    import pandas as pd

    if time_interval_s is None and "time_min" in tracks:  # a tracks table's own frame times
        moving = tracks[tracks["t"] > 0]
        per_frame = float((moving["time_min"] / moving["t"]).median()) * 60 if len(moving) else float("nan")
        time_interval_s = per_frame if np.isfinite(per_frame) and per_frame > 0 else None
    divides = set(tracks.loc[tracks["parent_track"] > 0, "parent_track"]) if "parent_track" in tracks else set()
    rows = []
    for tid, part in tracks.sort_values(["track_id", "t"]).groupby("track_id", sort=True):
        values, frames = part[state].to_numpy(), part["t"].to_numpy()
        change = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        ends = np.r_[change[1:], len(values)]
        born = "parent_track" in part and int(part["parent_track"].iloc[0]) > 0
        for i, (a, b) in enumerate(zip(change, ends, strict=True)):
            row = {"track_id": int(tid), "state": values[a], "entry_frame": int(frames[a]),
                   "frames": int(frames[b - 1] - frames[a] + 1)}  # fmt: skip
            if time_interval_s:
                row["duration_min"] = row["frames"] * time_interval_s / 60.0
            row["entry_seen"] = bool(i > 0 or born)
            row["exit_seen"] = bool(i < len(change) - 1 or tid in divides)
            row["complete"] = row["entry_seen"] and row["exit_seen"]
            rows.append(row)
    return pd.DataFrame(rows)
