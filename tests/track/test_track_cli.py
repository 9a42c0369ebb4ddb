"""``subcell track`` and ``subcell evaluate-tracks`` as a user runs them, and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from subcell.cli.main import run
from tests.conftest import cli_user_error


@pytest.fixture(scope="module")
def timelapse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from subcell.synth import synth_field, write_field

    f = synth_field(shape=(8, 200, 200), seed=4, **{"time.frames": 6, "time.division_probability": 0.15})
    return write_field(f, tmp_path_factory.mktemp("tl") / "tl.ome.zarr")


def test_track_writes_every_view_and_scores_perfectly_on_truth(timelapse: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    from subcell.io import read
    from subcell.io.ctc import read_ctc

    out = tmp_path / "tracks"
    assert run(["track", str(timelapse), str(out), "--label", "nucleus"]) == 0
    table = pd.read_parquet(out / "tracks.parquet")
    assert {"track_id", "t", "z_um", "y_um", "x_um", "label", "parent_track", "generation"} <= set(table.columns)
    labels = read(out / "labels.ome.zarr")
    assert labels.voxel_size.as_tuple() == (0.29, 0.108, 0.108) and labels.time_interval == 300.0
    lab = labels.numpy()[:, 0]
    for row in table.sample(5, random_state=0).itertuples():  # every table row is an object of the label image
        assert (lab[row.t] == row.track_id).any()
    masks, rows = read_ctc(out / "ctc")
    assert masks.shape == lab.shape and len(rows) >= table.track_id.nunique()
    napari = pd.read_csv(out / "napari_tracks.csv")
    assert list(napari.columns) == ["track_id", "t", "z_um", "y_um", "x_um"] and len(napari) == len(table)
    assert "max_speed_um_per_min" in (out / "config.yaml").read_text()
    capsys.readouterr()
    assert (
        run(["evaluate-tracks", str(out), str(timelapse), "--truth-label", "nucleus", "-o", str(tmp_path / "ev")]) == 0
    )
    scored = capsys.readouterr().out
    assert "TRA 1.0000" in scored
    # the store's label image by its path: the store's lineage with it (it said the truth "has no lineage")
    assert run(["evaluate-tracks", str(out), str(timelapse / "labels" / "nucleus")]) == 0
    assert scored.startswith(capsys.readouterr().out)  # the same scores
    # the store itself: the label image is chosen with this command's option (it named track's --label)
    err = cli_user_error(capsys, "evaluate-tracks", str(out), str(timelapse))
    assert "choose one with --truth-label NAME" in err
    per_track = pd.read_csv(tmp_path / "ev" / "per_track.csv")
    assert (per_track.id_switches == 0).all() and len(per_track) == table.track_id.nunique()
    from subcell.track.points import read_point_tracks

    # its own napari table read back as point tracks: in µm (the columns say so), not scaled as pixels
    points = read_point_tracks(out / "napari_tracks.csv", voxel_size=(0.29, 0.108, 0.108))
    ordered = table.sort_values(["track_id", "t"])
    np.testing.assert_allclose(points[["z_um", "y_um", "x_um"]], ordered[["z_um", "y_um", "x_um"]])


def test_ctc_folder_as_input_and_as_truth(timelapse: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "a"
    assert run(["track", str(timelapse), str(out), "--label", "nucleus"]) == 0
    again = tmp_path / "b"
    assert run(["track", str(out / "ctc"), str(again), "--time-interval", "300", "--voxel-size", "0.29", "0.108",
                "0.108"]) == 0  # fmt: skip
    capsys.readouterr()
    assert run(["evaluate-tracks", str(again), str(out / "ctc")]) == 0
    assert "TRA 1.0000" in capsys.readouterr().out


def test_label_movie_whose_ids_are_tracks_as_truth_and_prediction(timelapse: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A track-consistent label movie without a lineage (CTC reference masks without man_track.txt, a TrackMate or
    Mastodon label export) is scored with --ids-are-tracks: each id one track, divisions not scored."""
    import json

    from subcell.io import read_labels

    truth = read_labels(timelapse, "nucleus").numpy()[:, 0]  # the synthetic lineage: ids persist over frames
    plain = tmp_path / "truth.tif"  # no voxel size, no axes: the prediction's grid is taken
    tifffile.imwrite(plain, truth.astype(np.uint16), photometric="minisblack")
    out = tmp_path / "tracks"
    assert run(["track", str(timelapse), str(out), "--label", "nucleus"]) == 0
    assert "--ids-are-tracks" in cli_user_error(capsys, "evaluate-tracks", str(out), str(plain), "--axes", "TZYX")
    assert run(["evaluate-tracks", str(out), str(plain), "--axes", "TZYX", "--ids-are-tracks", "-o",
                str(tmp_path / "ev")]) == 0  # fmt: skip
    printed = capsys.readouterr()
    n_tracks = len(np.unique(truth[truth > 0]))
    assert "TRA 1.0000" in printed.out and "divisions: not scored" in printed.out
    assert f"({n_tracks} tracks;" in printed.err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["true_tracks"] == n_tracks and metrics["true_divisions"] is None
    # the same movie as the prediction, against the truth with its lineage: its divisions are missed
    vs = ["--voxel-size", "0.29", "0.108", "0.108"]
    assert run(["evaluate-tracks", str(plain), str(timelapse), "--truth-label", "nucleus", "--axes", "TZYX", *vs,
                "--ids-are-tracks"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "DET 1.0000" in printed and "0 predicted)" in printed


def test_bad_inputs_fail_in_one_line_and_write_nothing(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    lab = np.zeros((4, 3, 16, 16), np.uint16)
    lab[:, 1, 4:8, 4:8] = 1
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, lab, photometric="minisblack")
    out = tmp_path / "out"
    vs = ["--voxel-size", "1", "0.5", "0.5"]
    # no T axis
    assert "expected a time-lapse (T > 1)" in cli_user_error(
        capsys, "track", str(good), str(out), *vs, "--axes", "CZYX"
    )
    # the time interval is not in a plain TIFF
    assert "--time-interval" in cli_user_error(capsys, "track", str(good), str(out), *vs, "--axes", "TZYX")
    # fractional labels
    frac = tmp_path / "frac.tif"
    tifffile.imwrite(frac, lab.astype(np.float32) * 0.5, photometric="minisblack")
    assert "frac.tif" in cli_user_error(
        capsys, "track", str(frac), str(out), *vs, "--axes", "TZYX", "--time-interval", "60"
    )
    # frames of different shapes in a CTC folder
    ctc = tmp_path / "ctc"
    ctc.mkdir()
    (ctc / "res_track.txt").write_text("1 0 1 0\n")
    tifffile.imwrite(ctc / "mask000.tif", lab[0, 1])
    tifffile.imwrite(ctc / "mask001.tif", lab[1, 1, :8])
    assert "--voxel-size" in cli_user_error(
        capsys, "track", str(ctc), str(out), "--time-interval", "60"
    )  # a CTC folder states none: never invented
    assert "mask001.tif" in cli_user_error(capsys, "track", str(ctc), str(out), "--time-interval", "60", *vs)
    # a bad config value names the field
    bad_speed = ["--axes", "TZYX", "--time-interval", "60", "--set", "max_speed_um_per_min=-1"]
    assert "max_speed_um_per_min" in cli_user_error(capsys, "track", str(good), str(out), *vs, *bad_speed)
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    # an empty frame is allowed: the track pauses
    lab[2] = 0
    tifffile.imwrite(good, lab, photometric="minisblack")
    assert run(["track", str(good), str(out), *vs, "--axes", "TZYX", "--time-interval", "60"]) == 0
    assert "1 tracks" in capsys.readouterr().out
    # truth without lineage
    assert "no lineage" in cli_user_error(capsys, "evaluate-tracks", str(out), str(good))
    # an existing output is kept
    assert "already exists" in cli_user_error(
        capsys, "track", str(good), str(out), *vs, "--axes", "TZYX", "--time-interval", "60"
    )


def _two_blobs_as_a_mask(value: int) -> np.ndarray:
    """A 2D movie of two separate blobs drifting right, saved as a binary mask (0 and ``value``), not as ids."""
    m = np.zeros((4, 1, 30, 40), np.uint8)
    for t in range(4):
        m[t, 0, 5:10, 5 + t : 10 + t] = value
        m[t, 0, 18:24, 20 + t : 26 + t] = value
    return m


def test_mask_frames_are_read_as_their_components() -> None:
    from subcell.image import materialize
    from subcell.track.objects import mask_frames_as_objects

    mask = _two_blobs_as_a_mask(255)
    movie, state = mask_frames_as_objects(mask)
    frames = materialize(movie)
    assert state["split"] and frames.dtype == np.int32 and [len(np.unique(f)) - 1 for f in frames] == [2, 2, 2, 2]
    assert (frames[0, 0, 7, 7], frames[0, 0, 20, 22]) == (1, 2)  # numbered in each frame, 26-connected
    ids = _two_blobs_as_a_mask(1).astype(np.uint16)
    ids[2, 0, 18:24] *= 7  # a frame holding instance ids (0, 1, 7): kept as it is
    kept = materialize(mask_frames_as_objects(ids)[0])
    assert set(np.unique(kept[2])) == {0, 1, 7} and set(np.unique(kept[0])) == {0, 1, 2}
    assert mask_frames_as_objects(mask, components=False)[0] is mask  # one object per frame, as asked
    one = np.zeros((2, 1, 10, 10), np.uint8)
    one[:, 0, 2:5, 2:5] = 1  # one object of id 1 per frame: read the same, and nothing to note
    movie, state = mask_frames_as_objects(one)
    assert np.array_equal(materialize(movie), one) and not state["split"]
    labels = np.zeros((2, 1, 10, 10), np.uint16)
    labels[:, 0, 2:5, 2:5], labels[:, 0, 6:9, 6:9] = 4, 9
    assert mask_frames_as_objects(labels)[0] is labels  # instance labels pass untouched


def test_a_mask_movie_is_tracked_per_component(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    tifffile.imwrite(tmp_path / "mask.tif", _two_blobs_as_a_mask(255), imagej=True, metadata={"axes": "TZYX"})
    args = ["track", str(tmp_path / "mask.tif"), "--voxel-size", "1", "0.5", "0.5", "--time-interval", "60",
            "--max-speed-um-per-min", "2"]  # fmt: skip
    assert run([*args[:2], str(tmp_path / "tr"), *args[2:]]) == 0
    assert "holds masks: each connected component tracked" in capsys.readouterr().err
    table = pd.read_parquet(tmp_path / "tr" / "tracks.parquet")
    assert table.track_id.nunique() == 2 and len(table) == 8  # two blobs, four frames
    assert run([*args[:2], str(tmp_path / "one"), *args[2:], "--no-components"]) == 0
    assert pd.read_parquet(tmp_path / "one" / "tracks.parquet").track_id.nunique() == 1  # the mask as one object
