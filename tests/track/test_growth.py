"""Growth measures of tracks: start and end volume, added volume, exponential growth rate, full cycles; worked
out by hand and on a tracked movie of a growing, dividing object."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from subcell.track import track_timelapse
from subcell.track.growth import GROWTH_COLUMNS, track_growth


def test_an_exponentially_growing_track_and_the_edges_medians() -> None:
    hours = np.arange(8) * 0.5
    volume = 400.0 * np.exp(0.2 * hours)
    volume[0] *= 0.8  # a condensed first frame: the start is the median of the first three, not that frame
    table = pd.DataFrame({"track_id": 7, "t": np.arange(8), "time_min": hours * 60, "volume_um3": volume,
                          "parent_track": 0})  # fmt: skip
    row = track_growth(table).iloc[0]
    assert row.volume_start_um3 == pytest.approx(np.median(volume[:3]))
    assert row.volume_end_um3 == pytest.approx(np.median(volume[-3:]))
    assert row.volume_added_um3 == pytest.approx(row.volume_end_um3 - row.volume_start_um3)
    clean = table.assign(volume_um3=400.0 * np.exp(0.2 * hours))
    exact = track_growth(clean).iloc[0]
    assert exact.growth_rate_per_h == pytest.approx(0.2) and exact.doubling_time_h == pytest.approx(np.log(2) / 0.2)
    assert not exact.full_cycle
    assert track_growth(table, edge_frames=1).iloc[0].volume_start_um3 == pytest.approx(volume[0])
    with pytest.raises(ValueError, match="edge_frames must be >= 1"):
        track_growth(table, edge_frames=0)


def test_full_cycles_shrinking_and_short_tracks() -> None:
    # 1 → daughters 2 and 3; 3 → daughters 4 and 5: only 3 is born at a division and ends in one
    rows = []
    for tid, parent, ts, v in ((1, 0, range(0, 4), 500.0), (2, 1, range(4, 9), 300.0), (3, 1, range(4, 7), 300.0),
                               (4, 3, range(7, 9), 250.0), (5, 3, range(7, 8), 250.0)):  # fmt: skip
        rows += [{"track_id": tid, "t": t, "time_min": 10.0 * t, "volume_um3": v * (1 - 0.01 * (t - ts[0])),
                  "parent_track": parent} for t in ts]  # fmt: skip
    per = track_growth(pd.DataFrame(rows)).set_index("track_id")
    assert per.full_cycle.to_dict() == {1: False, 2: False, 3: True, 4: False, 5: False}
    assert per.loc[2, "growth_rate_per_h"] < 0 and np.isnan(per.loc[2, "doubling_time_h"])  # shrinking
    assert per.loc[[3, 4, 5], "growth_rate_per_h"].isna().all()  # fewer than five objects
    assert track_growth(pd.DataFrame(rows), min_objects=3).set_index("track_id").growth_rate_per_h.notna().sum() == 3
    no_times = pd.DataFrame(rows).assign(time_min=np.nan)
    assert track_growth(no_times).growth_rate_per_h.isna().all()


def test_tracking_a_movie_gives_growth_in_the_lineage() -> None:
    """A 2D square growing 10 % in area per frame for 6 frames (5 min apart), then dividing into two halves."""
    lab = np.zeros((9, 1, 40, 60), np.uint16)
    side = [8.0 * 1.1 ** (t / 2) for t in range(6)]
    for t, s in enumerate(side):
        n = round(s)
        lab[t, 0, 10 : 10 + n, 20 : 20 + n] = 1
    for t in range(6, 9):
        lab[t, 0, 10:18, 10:16] = 2
        lab[t, 0, 10:18, 30:36] = 3
    tr = track_timelapse(lab, voxel_size=(1.0, 0.5, 0.5), time_interval_s=300)
    assert set(GROWTH_COLUMNS) <= set(tr.lineage.columns)
    mother = tr.lineage[tr.lineage.parent_track == 0].iloc[0]
    areas = [round(s) ** 2 * 0.25 for s in side]  # µm² × the 1 µm z voxel
    assert mother.volume_start_um3 == pytest.approx(np.median(areas[:3]))
    rate = np.polyfit(np.arange(6) * 5 / 60, np.log(areas), 1)[0]
    assert mother.growth_rate_per_h == pytest.approx(rate) and rate > 0.5
    daughters = tr.lineage[tr.lineage.parent_track == mother.track_id]
    assert len(daughters) == 2 and not daughters.full_cycle.any() and not mother.full_cycle


def test_tracks_say_how_they_begin_and_end_and_cut_objects_do_not_grow() -> None:
    """A 2D movie of 10 frames: A stays inside the field throughout; B drifts in through the left border (its area
    grows as it enters: 2, 4, 6, 8 columns in view, then clear of the border), C appears and disappears inside the field, D leaves
    through the right border; E divides into F and G inside the field. Each track's begins / ends / in_field, and
    B's growth: its entering frames, seen in part, are left out (they made it grow)."""
    lab = np.zeros((10, 1, 60, 80), np.uint16)
    for t in range(10):
        lab[t, 0, 5:13, 30:38] = 1  # A
        lab[t, 0, 20:28, max(0, 2 * t - 6) : 2 * t + 2] = 2  # B: 2, 4, 6, 8 columns in view, then inside
        if 3 <= t <= 6:
            lab[t, 0, 40:48, 30:38] = 3  # C
        if t <= 5:
            lab[t, 0, 5:13, 72 + t : 80] = 4  # D: a shrinking part of it stays in view, then it is gone
        if t <= 4:
            lab[t, 0, 48:56, 55:63] = 5  # E
        else:
            lab[t, 0, 48:56, 50:56] = 6  # F
            lab[t, 0, 48:56, 64:70] = 7  # G
    tr = track_timelapse(lab, voxel_size=(1.0, 0.5, 0.5), time_interval_s=300)
    at = tr.table[tr.table.t == 0].set_index("label").touches_border.to_dict()
    assert at == {1: False, 2: True, 4: True, 5: False}
    lin = tr.lineage.set_index("track_id")
    track = tr.table.groupby("label").track_id.first()  # the input id → its track
    fate = {k: (lin.loc[track[k], "begins"], lin.loc[track[k], "ends"], bool(lin.loc[track[k], "in_field"]))
            for k in (1, 2, 3, 4, 5, 6)}  # fmt: skip
    assert fate == {1: ("movie_start", "movie_end", True), 2: ("movie_start", "movie_end", False),
                    3: ("appears", "disappears", True), 4: ("movie_start", "border", False),
                    5: ("movie_start", "division", True), 6: ("division", "movie_end", True)}  # fmt: skip
    b = lin.loc[track[2]]
    assert np.isnan(b.volume_start_um3) and b.volume_end_um3 == pytest.approx(16.0)  # 8 × 8 px of 0.25 µm²
    assert b.growth_rate_per_h == pytest.approx(0.0, abs=1e-9)  # whole from frame 3 on: it does not grow
    from subcell.track.tracks import fates

    assert fates(tr.lineage) == ("begin: 4 at the movie's start, 2 at a division, 1 inside the field; end: "
                                 "4 at the movie's end, 1 at a division, 1 through the border, 1 inside the field")  # fmt: skip
    assert fates(tr.lineage.iloc[:0]) == ""  # no tracks (an empty movie): no line, not "begin: ; end: "
