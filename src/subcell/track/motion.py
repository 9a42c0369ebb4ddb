"""How tracks move: each step's length and speed, and per track the measures of cell migration analysis.

Per object and frame (:func:`step_motion`): ``step_um``, the distance from the track's previous object, and
``speed_um_per_min``, that distance over the time between them (a gap's frames included): NaN at a track's first
object. Per track (:func:`track_motion`): ``duration_min`` (first to last object), ``path_length_um`` (the sum of
its steps), ``net_displacement_um`` (first to last centroid), ``mean_speed_um_per_min`` (path over duration),
``max_speed_um_per_min`` (its fastest step) and ``straightness`` (net displacement over path length, the
confinement ratio: 1 for a straight run, near 0 for a cell wandering in place). Centroids in µm and times in
minutes, so a track reads the same at any voxel size and frame interval; a track of one object has NaN for what
needs a step. Daughters start their own path: the step from the mother's last position is a division, not motion.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MOTION_COLUMNS", "step_motion", "track_motion"]

MOTION_COLUMNS = ["duration_min", "path_length_um", "net_displacement_um", "mean_speed_um_per_min",
                  "max_speed_um_per_min", "straightness"]  # fmt: skip


def step_motion(table: Any) -> Any:
    """``step_um`` and ``speed_um_per_min`` of each row of a tracks table (``track_id, t, time_min, z_um, y_um,
    x_um``), in the table's row order; speeds are NaN where the table has no times (``time_min`` NaN)."""
    import pandas as pd

    tab = table.sort_values(["track_id", "t"])
    same = tab["track_id"].eq(tab["track_id"].shift()).to_numpy()
    pos = tab[["z_um", "y_um", "x_um"]].to_numpy(np.float64)
    step = np.full(len(tab), np.nan)
    if len(tab) > 1:
        step[1:] = np.where(same[1:], np.linalg.norm(np.diff(pos, axis=0), axis=1), np.nan)
    minutes = tab["time_min"].to_numpy(np.float64) if "time_min" in tab else np.full(len(tab), np.nan)
    dt = np.full(len(tab), np.nan)
    if len(tab) > 1:
        dt[1:] = np.diff(minutes)
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.where(dt > 0, step / dt, np.nan)
    out = pd.DataFrame({"step_um": step, "speed_um_per_min": speed}, index=tab.index)
    return out.loc[table.index]


def track_motion(table: Any) -> Any:
    """One row per track of a tracks table: ``track_id`` and :data:`MOTION_COLUMNS` (see the module text); the
    steps are the table's own ``step_um, speed_um_per_min`` where it has them (:func:`step_motion` otherwise)."""
    import pandas as pd

    tab = table.sort_values(["track_id", "t"])
    if not {"step_um", "speed_um_per_min"} <= set(tab.columns):
        tab = pd.concat([tab, step_motion(tab)], axis=1)
    g = tab.groupby("track_id", sort=True)
    first, last = g.head(1).set_index("track_id"), g.tail(1).set_index("track_id")
    xyz = ["z_um", "y_um", "x_um"]
    net = np.linalg.norm(last[xyz].to_numpy(np.float64) - first[xyz].to_numpy(np.float64), axis=1)
    minutes = tab["time_min"] if "time_min" in tab else pd.Series(np.nan, index=tab.index)
    span = minutes.groupby(tab["track_id"]).agg(["min", "max"]).reindex(first.index)
    duration = (span["max"] - span["min"]).to_numpy(np.float64)
    path = g["step_um"].sum(min_count=1).reindex(first.index).to_numpy(np.float64)
    fastest = g["speed_um_per_min"].max().reindex(first.index).to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_speed = np.where(duration > 0, path / duration, np.nan)
        straight = np.where(path > 0, net / path, np.nan)
    return pd.DataFrame({
        "track_id": first.index.to_numpy(np.int64), "duration_min": duration, "path_length_um": path,
        "net_displacement_um": np.where(np.isfinite(path), net, np.nan), "mean_speed_um_per_min": mean_speed,
        "max_speed_um_per_min": fastest, "straightness": straight,
    })  # fmt: skip
