"""Motion measures of tracks: steps, speeds and per-track migration statistics, worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from subcell.track import TrackConfig, track_timelapse
from subcell.track.motion import MOTION_COLUMNS, step_motion, track_motion

VS = (1.0, 0.5, 0.5)  # µm; frames 60 s apart below


def _movie(xs: list[int | None]) -> np.ndarray:
    """One 2D square whose left edge is at column ``xs[t]`` (None: missing in that frame)."""
    lab = np.zeros((len(xs), 1, 12, 40), np.uint16)
    for t, x in enumerate(xs):
        if x is not None:
            lab[t, 0, 4:8, x : x + 4] = 3
    return lab


def test_a_straight_run_at_constant_speed() -> None:
    tr = track_timelapse(_movie([4, 6, 8, 10]), voxel_size=VS, time_interval_s=60)
    steps = tr.table.sort_values("t")
    assert np.isnan(steps.step_um.iloc[0]) and steps.step_um.iloc[1:].tolist() == pytest.approx([1.0] * 3)
    assert steps.speed_um_per_min.iloc[1:].tolist() == pytest.approx([1.0] * 3)  # 2 px × 0.5 µm per minute
    row = tr.lineage.iloc[0]
    assert (row.duration_min, row.path_length_um, row.net_displacement_um) == pytest.approx((3.0, 3.0, 3.0))
    assert (row.mean_speed_um_per_min, row.max_speed_um_per_min, row.straightness) == pytest.approx((1, 1, 1))


def test_back_and_forth_a_gap_and_a_lone_object() -> None:
    # right 2 px, back 2 px, missed in frame 3, then 4 px right: the gap's step is over 2 minutes
    cfg = TrackConfig(max_speed_um_per_min=3.0)
    tr = track_timelapse(_movie([4, 6, 4, None, 8]), voxel_size=VS, time_interval_s=60, config=cfg)
    t = tr.table.sort_values("t")
    assert t.step_um.iloc[1:].tolist() == pytest.approx([1.0, 1.0, 2.0])
    assert t.speed_um_per_min.iloc[1:].tolist() == pytest.approx([1.0, 1.0, 1.0])  # 2 µm over the 2-minute gap
    row = tr.lineage.iloc[0]
    assert (row.path_length_um, row.net_displacement_um, row.straightness) == pytest.approx((4.0, 2.0, 0.5))
    assert row.duration_min == pytest.approx(4.0) and row.mean_speed_um_per_min == pytest.approx(1.0)
    alone = track_motion(pd.DataFrame({"track_id": [5], "t": [0], "time_min": [0.0], "z_um": 0.0, "y_um": 1.0,
                                       "x_um": 1.0}))  # fmt: skip
    assert alone.duration_min.item() == 0 and alone[MOTION_COLUMNS[1:]].isna().all(axis=None)


def test_daughters_start_their_own_path_and_rows_keep_their_order() -> None:
    table = pd.DataFrame({"track_id": [2, 1, 1, 3], "t": [2, 0, 1, 2], "time_min": [2.0, 0.0, 1.0, 2.0],
                          "z_um": 0.0, "y_um": [0.0, 5.0, 5.0, 10.0], "x_um": 0.0, "parent_track": [1, 0, 0, 1]})  # fmt: skip
    steps = step_motion(table)
    assert steps.index.tolist() == table.index.tolist()  # aligned with the table as given
    assert np.isnan(steps.step_um[0]) and np.isnan(steps.step_um[3])  # no step from the mother: a division
    assert steps.step_um[2] == 0.0 and steps.speed_um_per_min[2] == 0.0
    per = track_motion(table).set_index("track_id")
    assert per.loc[1, "path_length_um"] == 0.0 and np.isnan(per.loc[1, "straightness"])  # resting: no direction
    assert np.isnan(per.loc[2, "path_length_um"])  # one object: no step
