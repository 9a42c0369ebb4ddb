"""Tracking scores: a hand-worked AOGM case, and a cross-check against py-ctcmetrics on exported CTC folders."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from subcell.io.ctc import ctc_files, read_ctc
from subcell.track import ctc_segments, track_timelapse, tracks_from_lineage
from subcell.track.evaluate import evaluate_tracks, seg_score


def test_hand_worked_missed_object() -> None:
    """Truth: one object over 3 frames (3 vertices, 2 edges). Prediction: frame 1 missed, the object after it a
    new track. AOGM = 1 missed vertex × 10 + 2 missed edges × 1.5 = 13; AOGM0 = 3 × 10 + 2 × 1.5 = 33."""
    truth_lab = np.zeros((3, 1, 10, 10), np.uint8)
    truth_lab[:, 0, 2:6, 2:6] = 1
    pred_lab = truth_lab.copy()
    pred_lab[1] = 0
    pred_lab[2][pred_lab[2] == 1] = 2
    truth = tracks_from_lineage(truth_lab, {}, voxel_size=(1, 1, 1))
    pred = tracks_from_lineage(pred_lab, {}, voxel_size=(1, 1, 1))
    s, per_track = evaluate_tracks(pred, truth)
    assert s["AOGM"] == pytest.approx(13)
    assert s["TRA"] == pytest.approx(1 - 13 / 33)
    assert s["DET"] == pytest.approx(1 - 10 / 30)
    assert s["LNK"] == pytest.approx(0.0)
    assert s["SEG"] == pytest.approx(2 / 3)
    row = per_track.iloc[0]
    assert (row.frames, row.frames_detected, row.predicted_tracks) == (3, 2, 2)


def test_a_truth_without_lineage_leaves_divisions_unscored() -> None:
    """Ids alone (parents None) say nothing of divisions: a predicted division is neither right nor wrong there,
    while an empty lineage ({}) states that there are none."""
    lab = np.zeros((3, 1, 12, 12), np.uint8)
    lab[0, 0, 2:6, 2:6] = 1
    lab[1:, 0, 2:6, 2:5], lab[1:, 0, 7:11, 2:5] = 2, 3
    pred = tracks_from_lineage(lab, {2: 1, 3: 1}, voxel_size=(1, 1, 1))  # 1 divides into 2 and 3
    unknown, _ = evaluate_tracks(pred, tracks_from_lineage(lab, None, voxel_size=(1, 1, 1)))
    assert unknown["true_divisions"] is None and np.isnan(unknown["division_precision"])
    assert unknown["predicted_divisions"] == 1
    none, _ = evaluate_tracks(pred, tracks_from_lineage(lab, {}, voxel_size=(1, 1, 1)))
    assert none["true_divisions"] == 0 and none["division_precision"] == 0
    # per true track: whether its division was found (it read False for every track, found or not)
    _, found = evaluate_tracks(pred, pred)
    _, missed = evaluate_tracks(tracks_from_lineage(lab, {}, voxel_size=(1, 1, 1)), pred)
    assert found.set_index("track_id").division_found.to_dict() == {1: True, 2: None, 3: None}
    assert missed.set_index("track_id").division_found.to_dict() == {1: False, 2: None, 3: None}


def test_seg_needs_more_than_half_overlap() -> None:
    truth = np.zeros((1, 1, 1, 10), np.uint8)
    truth[..., 0:4] = 1
    pred = np.zeros_like(truth)
    pred[..., 0:2] = 5  # exactly half: not a match in the CTC rule
    assert seg_score(truth, pred)[0] == 0.0
    pred[..., 0:3] = 5  # 3 of 4, Jaccard 3/4
    assert seg_score(truth, pred)[0] == pytest.approx(0.75)


def _perturbed_case() -> tuple[np.ndarray, dict[int, int], np.ndarray]:
    from subcell.synth import synth_field

    f = synth_field(shape=(8, 200, 200), seed=5, **{"time.frames": 6, "time.division_probability": 0.15})
    truth = f.labels["nucleus"].copy()
    pred = truth.copy()
    ids = [i for i in np.unique(truth[3]) if i]
    pred[2][pred[2] == ids[0]] = 0  # a missed object
    a, b = ids[-2], ids[-1]  # an identity swap from frame 4 on
    sel_a, sel_b = pred[4:] == a, pred[4:] == b
    pred[4:][sel_a], pred[4:][sel_b] = b, a
    from scipy import ndimage as ndi

    obj = pred[1] == ids[1]
    pred[1][obj & ~ndi.binary_erosion(obj, iterations=2)] = 0  # an under-segmented object (SEG < 1)
    parents = dict(zip(f.lineage.track_id.tolist(), f.lineage.parent_id.tolist(), strict=True))
    return truth, parents, pred


def _score_both(truth: object, pred: object, folder: Path, metrics: list[str]) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """Both as CTC folders, read back (as a CTC tool would) and scored by us and by py-ctcmetrics."""
    from ctc_metrics.scripts.evaluate import evaluate_sequence

    for sub, tracks, is_truth in ((folder / "gt", truth, True), (folder / "res", pred, False)):
        masks, rows = ctc_segments(tracks.labels, tracks.table)  # type: ignore[attr-defined]
        for name, content in ctc_files(masks, rows, truth=is_truth).items():
            (sub / name).parent.mkdir(parents=True, exist_ok=True)
            (sub / name).write_bytes(content)
    vs = (0.29, 0.108, 0.108)
    ours_pred = tracks_from_lineage(*_lab_parents(folder / "res"), voxel_size=vs)
    ours_truth = tracks_from_lineage(*_lab_parents(folder / "gt"), voxel_size=vs)
    ours, _ = evaluate_tracks(ours_pred, ours_truth)
    return ours, evaluate_sequence(str(folder / "res"), str(folder / "gt"), threads=1, metrics=metrics)


def test_scores_agree_with_py_ctcmetrics(tmp_path: Path) -> None:
    """Our CTC export read back, scored by us and by the challenge's own Python port: same TRA, DET, LNK, SEG and
    the biological measures (here no true division: BC and CCA undefined, BIO the mean of CT and TF)."""
    pytest.importorskip("ctc_metrics")
    truth_lab, parents, pred_lab = _perturbed_case()
    vs = (0.29, 0.108, 0.108)
    truth = tracks_from_lineage(truth_lab, parents, voxel_size=vs)
    pred = track_timelapse(pred_lab, voxel_size=vs, time_interval_s=300)
    ours, ref = _score_both(truth, pred, tmp_path, ["TRA", "DET", "LNK", "SEG", "CT", "TF", "BC", "CCA"])
    assert ours["TRA"] < 1.0 and ours["SEG"] < 1.0  # the perturbations show
    for key in ("TRA", "DET", "LNK", "SEG", "CT", "TF", "OP_CTB", "OP_CSB"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-6), key
    assert ours["BC"] is None is ours["CCA"] is ref["BC(1)"] is ref["CCA"]
    assert ours["BIO"] == pytest.approx(ref["BIO(1)"], abs=1e-6) == (ours["CT"] + ours["TF"]) / 2
    assert ours["OP_CLB"] == pytest.approx((ours["LNK"] + ours["BIO"]) / 2)


def test_biological_measures_of_a_full_cell_cycle_agree_with_py_ctcmetrics(tmp_path: Path) -> None:
    """A full cycle (:func:`tests.conftest.full_cycle_tracks`): CCA is defined; the prediction misses the second
    division."""
    pytest.importorskip("ctc_metrics")
    from tests.conftest import full_cycle_tracks

    truth, pred, _ = full_cycle_tracks()
    ours, ref = _score_both(truth, pred, tmp_path, ["TRA", "LNK", "CT", "TF", "BC", "CCA"])
    assert ours["true_divisions"] == 2 and ours["CCA"] is not None and ours["BC"] is not None
    for key, theirs in (("CT", "CT"), ("TF", "TF"), ("BC", "BC(1)"), ("CCA", "CCA"), ("BIO", "BIO(1)")):
        assert ours[key] == pytest.approx(ref[theirs], abs=1e-6), key
    assert ours["BC"] == pytest.approx(2 / 3) and 0 < ours["BIO"] < 1  # one of two divisions found


def _lab_parents(folder: Path) -> tuple[np.ndarray, dict[int, int]]:
    masks, rows = read_ctc(folder)
    return masks, dict(zip(rows.L.tolist(), rows.P.tolist(), strict=True))


def test_stored_movies_are_scored_a_frame_at_a_time() -> None:
    """Prediction and truth on storage (as `evaluate-tracks` reads them): the scores of the movies in memory, and
    every read one frame (each pass of the matchers and of SEG reads frame by frame, none holds the movie)."""
    import dask.array as da
    import pandas as pd

    from subcell.image import is_lazy
    from subcell.track import Tracks
    from tests.conftest import StoredArray

    truth_lab, parents, pred_lab = _perturbed_case()
    vs = (0.29, 0.108, 0.108)
    pred = track_timelapse(pred_lab, voxel_size=vs, time_interval_s=300)
    truth = tracks_from_lineage(truth_lab, parents, voxel_size=vs)
    summary, per_track = evaluate_tracks(pred, truth)
    frame = truth_lab[0].shape
    stored = [StoredArray(np.asarray(t.labels), (1, *frame)) for t in (pred, truth)]
    lazy, lazy_per_track = evaluate_tracks(*(Tracks(labels=s, table=t.table, lineage=t.lineage)
                                             for s, t in zip(stored, (pred, truth), strict=True)))  # fmt: skip
    assert pd.Series(lazy).equals(pd.Series(summary)) and lazy_per_track.equals(per_track)
    assert summary["TRA"] < 1.0 and summary["SEG"] < 1.0
    for s in stored:
        assert s.reads and set(s.reads) == {int(np.prod(frame))}  # frame by frame, never the movie
    # read through Dask (as `evaluate-tracks` reads OME-Zarr): both matchings and SEG come from one read of each
    # frame (they were three passes, and handed to traccuracy as Dask frames, computed again and again)
    stored = [StoredArray(np.asarray(t.labels), (1, *frame)) for t in (pred, truth)]
    through = [Tracks(labels=da.from_array(s, chunks=(1, *frame)), table=t.table, lineage=t.lineage)
               for s, t in zip(stored, (pred, truth), strict=True)]  # fmt: skip
    assert pd.Series(evaluate_tracks(*through)[0]).equals(pd.Series(summary))
    for s in stored:
        assert len([n for n in s.reads if n]) == truth_lab.shape[0]  # (Dask's zero-size reads take its meta)
    # a lazy truth stays lazy (its objects found frame by frame), with the table of the movie in memory
    lazy_truth = tracks_from_lineage(da.from_array(truth_lab, chunks=(1, *frame)), parents, voxel_size=vs)
    assert is_lazy(lazy_truth.labels) and lazy_truth.table.equals(truth.table)


def test_labels_and_ctc_masks_are_written_from_one_read_of_each_frame(tmp_path: Path) -> None:
    """`write_frames` (what `subcell track` writes): the label image and the CTC folder equal those written apart
    (`io.write` of the labels, `ctc_files` of `ctc_segments`), from one read of each source frame. The perturbed
    case has a missed object, so its track pauses and is cut into CTC segments."""
    import dask.array as da

    from subcell import io
    from subcell.image import Image
    from subcell.track import write_frames
    from tests.conftest import StoredArray

    _, _, pred_lab = _perturbed_case()
    frame = pred_lab[0].shape
    stored = StoredArray(pred_lab, (1, *frame))
    vs = (0.29, 0.108, 0.108)
    tracks = track_timelapse(da.from_array(stored, chunks=(1, *frame)), voxel_size=vs, time_interval_s=300)
    stored.reads.clear()
    (tmp_path / "one").mkdir()  # the folder write_bundle makes
    write_frames(tmp_path / "one", tracks, image={"voxel_size": vs, "channel_names": ["tracks"]})
    assert stored.reads == [int(np.prod(frame))] * pred_lab.shape[0]  # each frame read once for both outputs
    masks, rows = ctc_segments(np.asarray(tracks.labels), tracks.table)
    assert len(rows) > tracks.table["track_id"].nunique()  # a track cut at its gap: the CTC segments are exercised
    for name, content in ctc_files(masks, rows).items():
        assert (tmp_path / "one" / "ctc" / name).read_bytes() == content, name
    assert sorted(p.name for p in (tmp_path / "one" / "ctc").iterdir()) == sorted(ctc_files(masks, rows))
    apart = io.write(Image(np.asarray(tracks.labels)[:, None], voxel_size=vs, channel_names=["tracks"]),
                     tmp_path / "apart.ome.zarr", is_label=True)  # fmt: skip
    one = io.read(tmp_path / "one" / "labels.ome.zarr")
    assert np.array_equal(one.numpy(), io.read(apart).numpy()) and one.dtype == tracks.labels.dtype


def test_too_many_ctc_segments_are_refused_before_any_frame_is_read(tmp_path: Path) -> None:
    import pandas as pd

    from subcell.errors import ValueRangeError
    from subcell.track import Tracks, write_frames
    from tests.conftest import StoredArray

    labels = StoredArray(np.zeros((2, 1, 8, 8), np.uint32), (1, 1, 8, 8))
    table = pd.DataFrame({"track_id": [70000, 70000], "t": [0, 1], "parent_track": [0, 0]})
    with pytest.raises(ValueRangeError, match="16-bit: 70000 track segments"):
        write_frames(
            tmp_path / "out", Tracks(labels=labels, table=table, lineage=None), image={"voxel_size": (1, 1, 1)}
        )
    assert labels.reads == [] and not (tmp_path / "out" / "labels.ome.zarr").exists()


def test_matchings_are_traccuracys() -> None:
    """The matchings found in one pass over the frames are the ones traccuracy's own matchers find (its CTC
    matcher, its one-to-one IoU >= 0.5 matcher), on a movie with a missed object, a swap, an eroded object, a merge
    of two objects, a split of one, and one found in part (IoU 0.4)."""
    from traccuracy import run_metrics
    from traccuracy.matchers import CTCMatcher, IOUMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    from subcell.track.evaluate import match_frames, tracking_graph

    truth_lab, parents, pred_lab = _perturbed_case()
    ids = [i for i in np.unique(truth_lab[5]) if i]
    pred_lab[5][pred_lab[5] == ids[1]] = ids[0]  # two true objects merged into one prediction
    obj = np.argwhere(pred_lab[3] == ids[0])
    half = obj[obj[:, 2] > np.median(obj[:, 2])]
    pred_lab[3][tuple(half.T)] = pred_lab.max() + 1  # one true object split in two
    obj = np.argwhere(pred_lab[0] == ids[1])
    pred_lab[0][tuple(obj[obj[:, 2] > np.quantile(obj[:, 2], 0.4)].T)] = 0  # 40 % of it found: IoU 0.4, no match
    vs = (0.29, 0.108, 0.108)
    pred = track_timelapse(pred_lab, voxel_size=vs, time_interval_s=300)
    truth = tracks_from_lineage(truth_lab, parents, voxel_size=vs)
    graphs = tracking_graph(truth), tracking_graph(pred)
    node_of = [{(int(a["t"]), int(a["segmentation_id"])): n for n, a in g.graph.nodes(data=True)} for g in graphs]
    found = match_frames(truth.labels, pred.labels, objects=(set(node_of[0]), set(node_of[1])))
    ours = {name: sorted((node_of[0][(t, a)], node_of[1][(t, b)]) for t, a, b in pairs)
            for name, pairs in (("ctc", found.ctc), ("iou", found.one_to_one))}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # traccuracy finds the boxes itself
        _, ctc = run_metrics(*graphs, CTCMatcher(), [CTCMetrics()])
        _, iou = run_metrics(tracking_graph(truth), tracking_graph(pred),
                             IOUMatcher(iou_threshold=0.5, one_to_one=True), [DivisionMetrics()])  # fmt: skip
    assert ours["ctc"] == sorted(ctc.mapping) and ours["iou"] == sorted((int(a), int(b)) for a, b in iou.mapping)
    assert len(ours["ctc"]) > len(ours["iou"]) > 0  # the merge matches two true objects by the CTC rule, one by IoU
