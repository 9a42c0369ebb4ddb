"""Linking: ids along tracks, gaps, divisions, costs in µm and minutes, the CTC and napari views."""

from __future__ import annotations

import numpy as np
import pytest

from subcell.track import (
    TrackConfig,
    ctc_segments,
    frame_objects,
    napari_tracks,
    track_timelapse,
    tracks_from_lineage,
)


def _box(lab: np.ndarray, t: int, y: int, x: int, value: int, r: int = 2) -> None:
    lab[t, 0, y - r : y + r + 1, x - r : x + r + 1] = value


def _movie() -> np.ndarray:
    """Object A drifts right and is missing in frame 2 (a gap); object B divides between frames 2 and 3.
    Input label values change every frame, so only linking can give consistent ids."""
    lab = np.zeros((5, 1, 64, 64), np.uint16)
    for t in range(5):
        if t != 2:
            _box(lab, t, 10, 10 + 2 * t, 7 + t)  # A, 1 µm per frame at 0.5 µm pixels
        if t <= 2:
            _box(lab, t, 40, 30, 20 + t)  # B
        else:
            _box(lab, t, 40, 26 - 2 * (t - 3), 30 + t)  # daughter 1
            _box(lab, t, 40, 34 + 2 * (t - 3), 40 + t)  # daughter 2
    return lab


def test_track_ids_follow_objects_across_gaps_and_divisions() -> None:
    tr = track_timelapse(_movie(), voxel_size=(1.0, 0.5, 0.5), time_interval_s=60,
                         config=TrackConfig(max_speed_um_per_min=3.0))  # fmt: skip
    lin = tr.lineage.set_index("track_id")
    assert len(lin) == 4  # A, B and two daughters
    a = int(tr.labels[0, 0, 10, 10])
    assert lin.loc[a, "start"] == 0 and lin.loc[a, "end"] == 4 and lin.loc[a, "n_frames"] == 4  # one id over the gap
    assert (tr.labels[2] == a).sum() == 0
    b = int(tr.labels[0, 0, 40, 30])
    d1, d2 = int(tr.labels[3, 0, 40, 26]), int(tr.labels[3, 0, 40, 34])
    assert len({b, d1, d2}) == 3
    assert lin.loc[d1, "parent_track"] == b and lin.loc[d2, "parent_track"] == b
    assert lin.loc[d1, "generation"] == 1 and lin.loc[b, "generation"] == 0
    # the table's positions are the NGFF convention: voxel index × voxel size
    row = tr.table[(tr.table.track_id == a) & (tr.table.t == 4)].iloc[0]
    assert (row.y_um, row.x_um) == (5.0, 9.0)


def test_no_divisions_option_keeps_daughters_unlinked_to_parent() -> None:
    tr = track_timelapse(_movie(), voxel_size=(1.0, 0.5, 0.5), time_interval_s=60,
                         config=TrackConfig(max_speed_um_per_min=3.0, divisions=False))  # fmt: skip
    assert (tr.lineage["parent_track"] == 0).all()


def test_reach_scales_with_time_interval() -> None:
    """3 µm per frame: out of reach at 1 µm/min with 1-minute frames, within reach with 5-minute frames."""
    lab = np.zeros((3, 1, 8, 64), np.uint16)
    for t in range(3):
        lab[t, 0, 2:5, 5 + 6 * t : 8 + 6 * t] = 1
    cfg = TrackConfig(max_speed_um_per_min=1.0, max_gap_frames=0)
    fast = track_timelapse(lab, voxel_size=(1, 0.5, 0.5), time_interval_s=60, config=cfg)
    slow = track_timelapse(lab, voxel_size=(1, 0.5, 0.5), time_interval_s=300, config=cfg)
    assert len(fast.lineage) == 3 and len(slow.lineage) == 1


def test_costs_are_in_micrometres_with_anisotropic_z() -> None:
    """Two candidates 2 voxels from the object: one along z (2 × 2 µm), one along x (2 × 0.25 µm). In pixels they
    tie; in µm the lateral one is much closer and must be chosen."""
    lab = np.zeros((2, 6, 20, 20), np.uint16)
    lab[0, 1, 9:11, 5:7] = 1
    lab[1, 3, 9:11, 5:7] = 2  # 2 planes up = 4 µm
    lab[1, 1, 9:11, 7:9] = 3  # 2 columns right = 0.5 µm
    tr = track_timelapse(lab, voxel_size=(2.0, 0.25, 0.25), time_interval_s=60,
                         config=TrackConfig(max_speed_um_per_min=5.0, divisions=False, size_weight=0))  # fmt: skip
    first = int(tr.labels[0, 1, 9, 5])
    assert int(tr.labels[1, 1, 9, 7]) == first and int(tr.labels[1, 3, 9, 5]) != first


def test_empty_frames_pause_tracks() -> None:
    lab = np.zeros((4, 1, 16, 16), np.uint16)
    lab[0, 0, 4:8, 4:8] = 1
    lab[2, 0, 4:8, 5:9] = 1
    lab[3, 0, 4:8, 5:9] = 1  # frame 1 is empty
    tr = track_timelapse(lab, voxel_size=(1, 1, 1), time_interval_s=60)
    assert len(tr.lineage) == 1 and tr.lineage.iloc[0]["n_frames"] == 3


def test_frame_objects_match_scikit_image() -> None:
    from skimage.measure import regionprops

    rng = np.random.default_rng(0)
    lab = np.zeros((6, 30, 30), np.int32)
    for i in range(1, 8):
        z, y, x = rng.integers(0, 4), rng.integers(0, 25), rng.integers(0, 25)
        lab[z : z + 2, y : y + 5, x : x + 4] = i
    vs = (0.5, 0.2, 0.1)
    ours = frame_objects(lab, voxel_size=vs).set_index("label")
    for p in regionprops(lab):
        assert np.allclose(ours.loc[p.label, ["z_um", "y_um", "x_um"]].to_numpy(float), np.array(p.centroid) * vs)
        assert ours.loc[p.label, "volume_um3"] == pytest.approx(p.area * 0.5 * 0.2 * 0.1)


def test_ctc_segments_cut_gaps_and_point_daughters_to_last_segment() -> None:
    tr = track_timelapse(_movie(), voxel_size=(1.0, 0.5, 0.5), time_interval_s=60,
                         config=TrackConfig(max_speed_um_per_min=3.0))  # fmt: skip
    masks, rows = ctc_segments(tr.labels, tr.table)
    a = int(tr.labels[0, 0, 10, 10])
    first, later = rows[rows["L"] == a].iloc[0], rows[rows["P"] == a]
    assert (first.B, first.E) == (0, 1)
    assert len(later) == 1 and (later.iloc[0].B, later.iloc[0].E) == (3, 4)  # the segment after the gap
    assert int(masks[3, 0, 10, 16]) == later.iloc[0].L
    # every CTC segment is present in each of its frames, and nowhere else
    for r in rows.itertuples():
        present = [t for t in range(masks.shape[0]) if (masks[t] == r.L).any()]
        assert present == list(range(r.B, r.E + 1))


def test_napari_tracks_data_and_graph() -> None:
    tr = track_timelapse(_movie(), voxel_size=(1.0, 0.5, 0.5), time_interval_s=60,
                         config=TrackConfig(max_speed_um_per_min=3.0))  # fmt: skip
    data, graph = napari_tracks(tr.table)
    assert data.shape == (len(tr.table), 5)
    assert np.all(np.diff(data[:, 0]) >= 0)  # sorted by track id, then time
    parent = int(tr.labels[0, 0, 40, 30])
    assert sorted(graph) == sorted(tr.lineage.loc[tr.lineage.parent_track > 0, "track_id"].tolist())
    assert all(v == [parent] for v in graph.values())


def test_tracks_from_lineage_generations() -> None:
    lab = np.zeros((3, 1, 8, 8), np.uint8)
    lab[0, 0, 1, 1] = 1
    lab[1, 0, 1, 1], lab[1, 0, 5, 5] = 2, 3
    lab[2, 0, 5, 5] = 4
    tr = tracks_from_lineage(lab, {2: 1, 3: 1, 4: 3}, voxel_size=(1, 1, 1))
    gen = dict(zip(tr.lineage.track_id, tr.lineage.generation, strict=True))
    assert gen == {1: 0, 2: 1, 3: 1, 4: 2}


def _truth_tracked(shape: tuple[int, int, int], frames: int, division_probability: float, daughters: int) -> None:
    from subcell.synth import synth_field
    from subcell.track.evaluate import evaluate_tracks

    f = synth_field(shape=shape, voxel_size=(0.5, 0.25, 0.25), seed=3,
                    **{"time.frames": frames, "time.division_probability": division_probability})  # fmt: skip
    truth = tracks_from_lineage(f.labels["nucleus"], dict(zip(f.lineage.track_id, f.lineage.parent_id, strict=True)),
                                voxel_size=f.image.voxel_size)  # fmt: skip
    assert (truth.lineage.parent_track > 0).sum() >= daughters  # the case has divisions
    tr = track_timelapse(f.labels["nucleus"], voxel_size=f.image.voxel_size, time_interval_s=f.image.time_interval)
    summary, per_track = evaluate_tracks(tr, truth)
    assert summary["TRA"] == 1.0 and summary["division_f1"] == 1.0
    assert (per_track["id_switches"] == 0).all()
    found = per_track.division_found.dropna()
    assert len(found) == summary["true_divisions"] and found.all()  # every true division, each found


def test_synthetic_truth_is_tracked_perfectly() -> None:
    """Synthetic time-lapse with divisions, truth labels as input: every link and division recovered (a small
    case: 6 frames, 5 divisions; the 10-frame, 9-division case is `slow`)."""
    _truth_tracked((16, 160, 160), 6, 0.2, daughters=10)


@pytest.mark.slow  # ~40 s
def test_synthetic_truth_is_tracked_perfectly_longer() -> None:
    _truth_tracked((10, 256, 256), 10, 0.08, daughters=18)


def test_lineage_order_puts_daughters_under_parents_and_figure_renders() -> None:
    from subcell.track.figures import lineage_order, lineage_png

    tr = track_timelapse(_movie(), voxel_size=(1.0, 0.5, 0.5), time_interval_s=60,
                         config=TrackConfig(max_speed_um_per_min=3.0))  # fmt: skip
    order = lineage_order(tr.lineage)
    parent = int(tr.labels[0, 0, 40, 30])
    daughters = tr.lineage.loc[tr.lineage.parent_track == parent, "track_id"].tolist()
    i = order.index(parent)
    assert sorted(order[i + 1 : i + 3]) == sorted(daughters) and sorted(order) == sorted(tr.lineage.track_id)
    table = tr.table.assign(state=np.where(tr.table.t >= 3, "G1", "M"))
    assert lineage_png(tr.table, tr.lineage, time_interval_s=60)[:4] == b"\x89PNG"
    assert lineage_png(table, tr.lineage, state="state")[:4] == b"\x89PNG"


def _merge_movie() -> np.ndarray:
    """Two nuclei move down side by side (columns 20 and 28); in frames 3-4 the segmentation joins them into one
    object, in frame 5 they are two again. A third nucleus far away really divides in frame 4."""
    lab = np.zeros((8, 1, 64, 64), np.uint16)
    for t in range(8):
        y = 10 + 2 * t
        if t in (3, 4):
            lab[t, 0, y - 2 : y + 3, 18:31] = 50 + t  # one merged object spanning both
        else:
            _box(lab, t, y, 20, 10 + t)
            _box(lab, t, y, 28, 30 + t)
        if t < 4:
            _box(lab, t, 50, 50, 60 + t)
        else:
            _box(lab, t, 50, 46, 70 + t)
            _box(lab, t, 50, 54, 80 + t)
    return lab


@pytest.mark.parametrize("resolve", [True, False])
def test_a_merge_of_two_tracks_is_not_read_as_a_division(resolve: bool) -> None:
    tr = track_timelapse(_merge_movie(), voxel_size=(1.0, 0.5, 0.5), time_interval_s=60,
                         config=TrackConfig(max_speed_um_per_min=4.0, resolve_merges=resolve))  # fmt: skip
    lin = tr.lineage.set_index("track_id")
    left, right = int(tr.labels[0, 0, 10, 20]), int(tr.labels[0, 0, 10, 28])
    after_left, after_right = int(tr.labels[5, 0, 20, 20]), int(tr.labels[5, 0, 20, 28])
    divided = lin[lin.parent_track > 0].parent_track.unique().tolist()
    if resolve:
        # both identities survive the merge: the same ids before and after, no division but the real one
        assert (after_left, after_right) == (left, right)
        assert divided == [int(tr.labels[0, 0, 50, 50])]
        merged = int(tr.labels[3, 0, 16, 24])
        assert merged in (left, right) and lin.loc[left, "end"] == 7 and lin.loc[right, "end"] == 7
    else:
        # without it the split of the merged object is read as a second division
        assert len(divided) == 2 and {after_left, after_right}.isdisjoint({left, right})


def test_a_lazy_time_lapse_is_tracked_frame_by_frame_with_the_same_result() -> None:
    import dask.array as da
    import pandas as pd
    from dask.callbacks import Callback

    from subcell.io.ctc import ctc_files

    movie = _movie()
    lazy = da.from_array(movie, chunks=(1, *movie.shape[1:]))  # one frame per block, as an OME-Zarr is read
    want = track_timelapse(movie, voxel_size=(1.0, 0.5, 0.5), time_interval_s=60)
    largest: list[int] = []  # the largest array any step computes: the movie is never assembled
    with Callback(posttask=lambda key, result, dsk, state, worker: largest.append(getattr(result, "nbytes", 0))):
        got = track_timelapse(lazy, voxel_size=(1.0, 0.5, 0.5), time_interval_s=60)
        masks, rows = ctc_segments(got.labels, got.table)
        files = ctc_files(masks, rows)
    frame = movie[0].size * 4  # one frame of uint32 track ids
    assert largest and max(largest) <= frame < movie.nbytes
    assert isinstance(got.labels, da.Array)  # relabelled when written, block by block
    pd.testing.assert_frame_equal(got.table, want.table)
    np.testing.assert_array_equal(got.labels.compute(), want.labels)
    assert files == ctc_files(*ctc_segments(want.labels, want.table))


@pytest.mark.parametrize("rule", [True, False])
def test_a_cell_entering_the_field_beside_another_is_not_its_daughter(rule: bool) -> None:
    """A sits clear of the left border; from frame 3 B drifts in through that border right beside it (A keeps its
    volume). C, at the right, divides in frame 3 into two halves, one of them cut by the right border. With
    ``border_entries`` B starts its own track and C's division stays; without it B was A's "daughter"."""
    lab = np.zeros((6, 1, 40, 60), np.uint16)
    for t in range(6):
        lab[t, 0, 16:24, 2:10] = 1  # A
        if t >= 3:
            lab[t, 0, 25:30, 0 : 2 * t - 3] = 2  # B: 3, 5, 7 columns in view
        if t < 3:
            lab[t, 0, 5:13, 44:52] = 3  # C
        else:
            lab[t, 0, 5:13, 55:60] = 4  # a daughter, at the border
            lab[t, 0, 5:13, 38:42] = 5  # the other
    tr = track_timelapse(lab, voxel_size=(1.0, 0.5, 0.5), time_interval_s=300, config=TrackConfig(border_entries=rule))
    lin = tr.lineage.set_index("track_id")
    a, b, c = int(tr.labels[0, 0, 20, 5]), int(tr.labels[5, 0, 27, 2]), int(tr.labels[0, 0, 8, 48])
    daughters = set(lin[lin.parent_track == c].index)
    assert daughters == {int(tr.labels[5, 0, 8, 57]), int(tr.labels[5, 0, 8, 40])}  # C's division either way
    if rule:
        assert int(tr.labels[5, 0, 20, 5]) == a and lin.loc[a, "ends"] == "movie_end"
        assert lin.loc[b, "parent_track"] == 0 and lin.loc[b, "begins"] == "border"
    else:
        assert lin.loc[b, "parent_track"] == a  # the false division this rule undoes
