"""How tracked objects grow: per track, its volume at the start and end, what it added, its exponential growth
rate, and whether it spans a whole cycle (born at a division, ending in one).

The measures of nuclear growth analysis over a live-cell time-lapse (a nucleus roughly doubles its volume between
two divisions): ``volume_start_um3`` and ``volume_end_um3`` are medians over the track's first and last
``edge_frames`` objects (a single frame's segmentation varies by several percent), ``volume_added_um3`` their
difference, ``growth_rate_per_h`` the least-squares slope of ln(volume) over hours (exponential growth: V(t) = V0 ·
e^(rate·t)), ``doubling_time_h`` = ln 2 / rate where the rate is positive, and ``full_cycle`` whether the track
starts as a daughter and ends in a division of its own (only then is its duration a cell-cycle duration and its
added volume a whole cycle's). Volumes in µm³ (a 2D movie's areas times the z voxel size); a track of fewer than
``min_objects`` (5) objects, or without frame times, has NaN growth rate: a slope through three or four volumes a
few minutes apart is segmentation noise (on the CTC's CHO masks, 60 s apart, such tracks gave −5 to +3.4 per hour). A nucleus condenses just before and just after
mitosis, so a full-cycle track's first and last frames are its smallest: the medians over ``edge_frames`` soften
that, as do fits that leave those frames out (take the tracks table's ``volume_um3`` for that).

Objects that touch the field's border (``touches_border``) are partly outside it: their volumes are not the cell's
(a nucleus drifting in at the edge "grows" as it enters). They are left out of the fit, and ``volume_start_um3`` /
``volume_end_um3`` are NaN where one of the track's first / last ``edge_frames`` objects touches the border (the
track entered or left the field: its first or last volume was never seen whole).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GROWTH_COLUMNS", "track_growth"]

GROWTH_COLUMNS = ["volume_start_um3", "volume_end_um3", "volume_added_um3", "growth_rate_per_h", "doubling_time_h",
                  "full_cycle"]  # fmt: skip


def track_growth(table: Any, *, edge_frames: int = 3, min_objects: int = 5) -> Any:
    """One row per track of a tracks table (``track_id, t, time_min, volume_um3, parent_track``): ``track_id`` and
    :data:`GROWTH_COLUMNS` (see the module text)."""
    import pandas as pd

    if edge_frames < 1 or min_objects < 2:
        raise ValueError(f"edge_frames must be >= 1 and min_objects >= 2, got {edge_frames} and {min_objects}")
    tab = table.sort_values(["track_id", "t"])
    ids = tab["track_id"].unique()
    parents = tab.groupby("track_id")["parent_track"].first().reindex(ids)
    has_daughters = np.isin(ids, parents[parents > 0].to_numpy())
    rows = []
    for tid, part in tab.groupby("track_id", sort=False):
        volume = part["volume_um3"].to_numpy(np.float64)
        hours = part["time_min"].to_numpy(np.float64) / 60.0 if "time_min" in part else np.full(len(part), np.nan)
        whole = ~part["touches_border"].to_numpy(bool) if "touches_border" in part else np.ones(len(part), bool)
        start = np.median(volume[:edge_frames]) if whole[:edge_frames].all() else np.nan
        end = np.median(volume[-edge_frames:]) if whole[-edge_frames:].all() else np.nan
        rate = np.nan
        ok = np.isfinite(hours) & np.isfinite(volume) & (volume > 0) & whole
        if ok.sum() >= min_objects and np.ptp(hours[ok]) > 0:
            rate = float(np.polyfit(hours[ok], np.log(volume[ok]), 1)[0])
        rows.append((tid, start, end, end - start, rate, np.log(2) / rate if rate > 0 else np.nan))
    out = pd.DataFrame(rows, columns=["track_id", *GROWTH_COLUMNS[:-1]])
    full = (parents.to_numpy() > 0) & has_daughters
    out["full_cycle"] = pd.Series(full, index=ids).reindex(out["track_id"]).to_numpy(bool)
    return out.astype({"track_id": "int64"})
