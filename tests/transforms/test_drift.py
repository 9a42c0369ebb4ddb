"""Stage drift: measured between frames and taken out (``subcell.transforms.drift``, ``subcell drift``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from subcell.image import Image
from subcell.transforms.drift import DRIFT_COLUMNS, correct_drift, drift_canvas, estimate_drift
from tests.conftest import cli_user_error

VS = (0.5, 0.2, 0.25)


def blobs(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A field of bright Gaussian blobs of a few voxels on a dark background (nuclei-like, no periodicity)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    field = np.zeros(shape, np.float32)
    idx = tuple(rng.integers(0, n, 60) for n in shape)
    field[idx] = 1000.0
    return gaussian_filter(field, sigma=[min(2.0, n / 8) for n in shape]) + rng.normal(0, 0.5, shape).astype(np.float32)


def drifted(field: np.ndarray, drift_vox: np.ndarray, window: tuple[int, ...]) -> np.ndarray:
    """A window of ``field`` moving so its content moves by ``drift_vox`` (whole voxels) frame by frame; content
    enters and leaves at the faces as on a stage."""
    start = (np.array(field.shape) - np.array(window)) // 2
    out = []
    for d in drift_vox:
        lo = (start - d).astype(int)
        out.append(field[tuple(slice(a, a + n) for a, n in zip(lo, window, strict=True))])
    return np.stack(out)


@pytest.mark.parametrize("reference", ["previous", "first"])
def test_a_known_drift_is_measured_in_um_on_a_3d_field(reference: str) -> None:
    field = blobs((24, 160, 160))
    truth = np.array([[0, 0, 0], [1, 3, -2], [1, 7, -5], [2, 4, -9], [0, -3, -6]])
    movie = drifted(field, truth, (16, 112, 112))
    d = estimate_drift(movie, voxel_size=VS, reference=reference)
    assert d["t"].tolist() == [0, 1, 2, 3, 4] and np.isnan(d["error"][0]) and (d["error"][1:] < 0.7).all()
    np.testing.assert_allclose(d[DRIFT_COLUMNS].to_numpy(), truth * np.array(VS), atol=0.06)


def test_lateral_only_and_single_planes_measure_y_and_x() -> None:
    field = blobs((1, 200, 200))[0]
    truth = np.array([[0, 0], [4, 1], [9, -3]])
    movie = drifted(field, truth, (128, 128))  # (T, Y, X): a 2D time-lapse
    d = estimate_drift(movie, voxel_size=VS)
    np.testing.assert_allclose(d[DRIFT_COLUMNS[1:]].to_numpy(), truth * np.array(VS[1:]), atol=0.03)
    assert (d["drift_z_um"] == 0).all()
    vol = drifted(blobs((20, 160, 160)), np.array([[0, 0, 0], [2, 5, 3]]), (12, 112, 112))
    lat = estimate_drift(vol, voxel_size=VS, lateral_only=True)
    assert lat["drift_z_um"].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(lat[DRIFT_COLUMNS[1:]].to_numpy()[1], [5 * VS[1], 3 * VS[2]], atol=0.03)


def test_sub_voxel_drift_is_found_to_a_tenth_of_a_voxel() -> None:
    from scipy.ndimage import shift

    field = blobs((1, 128, 128), seed=3)[0]
    movie = np.stack([field, shift(field, (2.4, -1.7), order=3)])
    d = estimate_drift(movie, voxel_size=(1.0, 1.0, 1.0))
    np.testing.assert_allclose(d[["drift_y_um", "drift_x_um"]].to_numpy()[1], [2.4, -1.7], atol=0.15)


def test_a_blank_frame_takes_no_step_and_a_single_frame_is_refused() -> None:
    field = blobs((1, 128, 128))[0]
    movie = drifted(field[None], np.array([[0, 0, 0], [0, 3, 0], [0, 3, 0], [0, 6, 2]]), (1, 96, 96))[:, 0]
    movie[2] = 0.0  # a frame without signal (a shutter that did not open)
    movie[3, :5] = np.nan  # a float frame's missing rows
    d = estimate_drift(movie, voxel_size=VS)
    assert np.isnan(d["error"][2]) and d["drift_y_um"][2] == pytest.approx(d["drift_y_um"][1])
    np.testing.assert_allclose(d[["drift_y_um", "drift_x_um"]].to_numpy()[3], [6 * VS[1], 2 * VS[2]], atol=0.03)
    with pytest.raises(ValueError, match="1 frame has no drift"):
        estimate_drift(movie[:1], voxel_size=VS)


def test_correction_grows_the_canvas_so_every_frame_is_whole_and_lines_up() -> None:
    field = blobs((20, 140, 140)).astype(np.uint16)
    truth = np.array([[0, 0, 0], [1, 4, -3], [-1, 9, 2]])
    movie = drifted(field, truth, (12, 96, 96))
    img = Image(movie, voxel_size=VS, dims="TZYX", time_interval=60.0)
    out = correct_drift(img, truth * np.array(VS))
    _, size, origin = drift_canvas(truth * np.array(VS), shape=img.shape, voxel_size=VS)
    assert out.shape == (3, 1, 12 + 2, 96 + 9, 96 + 5) == (3, 1, *size) and origin == (1, 9, 2)
    assert out.dtype == np.uint16 and out.voxel_size == img.voxel_size and out.time_interval == 60.0
    arr = out.numpy()[:, 0]
    for t, d in enumerate(truth):  # each frame whole, where frame 0's content now lies
        z, y, x = np.array(origin) - d
        np.testing.assert_array_equal(arr[t, z : z + 12, y : y + 96, x : x + 96], movie[t])
    both = (arr[0] > 0) & (arr[2] > 0)  # the same field content, voxel for voxel, where two frames overlap
    np.testing.assert_array_equal(arr[0][both], arr[2][both])
    same = correct_drift(img, truth * np.array(VS), canvas="same").numpy()[:, 0]
    assert same.shape == movie.shape
    np.testing.assert_array_equal(same[1, :-1, :-4, 3:], movie[1, 1:, 4:, :-3])  # moved back by (1, 4, -3)


def test_labels_keep_ids_and_refuse_subpixel_moves() -> None:
    lab = np.zeros((2, 1, 32, 32), np.uint32)
    lab[:, 0, 10:14, 10:14] = 70000
    img = Image(lab, voxel_size=(1, 0.5, 0.5), dims="TZYX")
    out = correct_drift(img, [[0, 0, 0], [0, 1.1, -0.4]], labels=True).numpy()
    assert out.dtype == np.uint32 and set(np.unique(out)) == {0, 70000} and (out == 70000).sum() == 32
    with pytest.raises(ValueError, match="whole voxels"):
        correct_drift(img, [[0, 0, 0], [0, 1.1, -0.4]], labels=True, subpixel=True)
    with pytest.raises(ValueError, match="one \\(z, y, x\\) row per frame"):
        correct_drift(img, [[0, 0, 0]])


def test_subpixel_correction_moves_intensities_by_the_remainder() -> None:
    from scipy.ndimage import shift

    field = blobs((1, 96, 96), seed=5)[0]
    movie = np.stack([field, shift(field, (0.5, 0.0), order=1)])[:, None]
    img = Image(movie, voxel_size=(1, 1, 1), dims="TZYX")
    drift = [[0, 0, 0], [0, 0.5, 0]]
    whole = correct_drift(img, drift, canvas="same").numpy()[1, 0, 0]
    sub = correct_drift(img, drift, canvas="same", subpixel=True).numpy()[1, 0, 0]
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(sub - field)[inner].mean() < 0.5 * np.abs(whole - field)[inner].mean()


def _movie_store(tmp_path: Path) -> tuple[Path, np.ndarray]:
    from subcell.io import write

    field = blobs((16, 140, 140), seed=1)
    truth = np.array([[0, 0, 0], [0, 3, 1], [1, 6, -2], [1, 8, -4]])
    movie = drifted(field, truth, (10, 100, 100))
    lab = (movie > np.percentile(movie, 97)).astype(np.uint16) * 7
    img = Image(np.stack([movie.astype(np.float32), lab.astype(np.float32)], axis=1), voxel_size=VS, dims="TCZYX",
                channel_names=["dna", "mask"], time_interval=300.0)  # fmt: skip
    path = tmp_path / "movie.ome.zarr"
    write(img, path)
    write(Image(lab, voxel_size=VS, dims="TZYX", time_interval=300.0), tmp_path / "labels.ome.tif")
    return path, truth


def test_cli_measures_writes_the_table_and_applies_it_to_the_labels(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    from subcell.cli.main import run
    from subcell.io import read

    movie, truth = _movie_store(tmp_path)
    out = tmp_path / "fixed.ome.zarr"
    assert run(["drift", str(movie), str(out), "-c", "dna"]) == 0
    said = capsys.readouterr().out
    assert "drift over 4 frames" in said and "fixed_drift.csv" in said
    table = pd.read_csv(tmp_path / "fixed_drift.csv")
    np.testing.assert_allclose(table[DRIFT_COLUMNS].to_numpy(), truth * np.array(VS), atol=0.06)
    fixed = read(out)
    assert fixed.channel_names == ("dna", "mask") and fixed.time_interval == 300.0
    assert fixed.shape[2:] == (10 + 1, 100 + 8, 100 + 5)
    labs = tmp_path / "labels_fixed.ome.zarr"
    assert run(["drift", str(tmp_path / "labels.ome.tif"), str(labs), "--labels", "--apply",
                str(tmp_path / "fixed_drift.csv")]) == 0  # fmt: skip
    assert f"drift (from {tmp_path / 'fixed_drift.csv'}) over 4 frames" in capsys.readouterr().out
    moved = read(labs)
    assert moved.dtype == np.uint16 and not (tmp_path / "labels_fixed_drift.csv").exists()
    np.testing.assert_array_equal(moved.numpy()[:, 0], fixed.channel("mask").numpy()[:, 0].astype(np.uint16))
    m = moved.numpy()[:, 0] > 0  # the objects lie still now: frame 3's mask on frame 0's (where it saw them)
    raw = read(tmp_path / "labels.ome.tif").numpy()[:, 0] > 0
    assert (m[0] & m[3]).sum() > 0.7 * m[0].sum() and (raw[0] & raw[3]).sum() < 0.3 * raw[0].sum()


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell.io import write

    movie, _ = _movie_store(tmp_path)
    out = tmp_path / "out.ome.zarr"
    err = cli_user_error(capsys, "drift", str(movie), str(out))
    assert "has 2 channels" in err and "--channel" in err
    still = tmp_path / "still.ome.zarr"
    write(Image(blobs((4, 32, 32)), voxel_size=VS, dims="ZYX"), still)
    err = cli_user_error(capsys, "drift", str(still), str(out))
    assert "still.ome.zarr" in err and "T > 1" in err and "--axes" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("t,drift_y_um,drift_x_um\n0,0,0\n1,0,0\n2,0,0\n3,0,0\n")
    err = cli_user_error(capsys, "drift", str(movie), str(out), "--apply", str(bad))
    assert "bad.csv" in err and "drift_z_um" in err
    bad.write_text("t,drift_z_um,drift_y_um,drift_x_um\n0,0,0,0\n1,0,0,0\n")
    err = cli_user_error(capsys, "drift", str(movie), str(out), "--apply", str(bad))
    assert "bad.csv" in err and "frames 0..1" in err and "0..3" in err
    bad.write_text("t,drift_z_um,drift_y_um,drift_x_um\n0,0,0,0\n1,0,abc,0\n2,0,0,0\n3,0,0,0\n")
    err = cli_user_error(capsys, "drift", str(movie), str(out), "--apply", str(bad))
    assert "bad.csv" in err and "finite numbers" in err
    err = cli_user_error(capsys, "drift", str(movie), str(out), "--apply", str(bad), "--table", str(tmp_path / "t.csv"))
    assert "with --apply nothing is measured" in err
    err = cli_user_error(capsys, "drift", str(movie), str(out), "-c", "dna", "--region-um", "0", "500", "0", "10")
    assert "movie.ome.zarr" in err and "region" in err and "outside the field (20 × 25 µm)" in err
    err = cli_user_error(capsys, "drift", str(movie), str(out), "--labels", "--subpixel")
    assert "whole voxels" in err
    err = cli_user_error(capsys, "drift", str(movie), str(out), "-c", "dna", "--canvas", "large")
    assert "canvas" in err and "grow" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "labels.ome.tif", "movie.ome.zarr",
                                                          "still.ome.zarr"]  # fmt: skip
    (tmp_path / "out_drift.csv").write_text("kept\n")
    err = cli_user_error(capsys, "drift", str(movie), str(out), "-c", "dna")
    assert "out_drift.csv" in err and "exists" in err
    assert (tmp_path / "out_drift.csv").read_text() == "kept\n" and not out.exists()


def test_z_drift_of_objects_that_fill_the_stack_is_not_pulled_to_zero() -> None:
    """Nuclei as tall as the stack: the tapered correlation's peak lies a third of a plane short of a one-plane
    drift; the estimate is refined on what is left."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(2)
    field = np.zeros((22, 128, 128), np.float32)
    field[11, rng.integers(0, 128, 40), rng.integers(0, 128, 40)] = 1e5
    field = gaussian_filter(field, sigma=(4.0, 2.5, 2.5))
    truth = np.array([[0, 0, 0], [1, 2, 0], [2, 2, 1], [1, 0, 3]])
    d = estimate_drift(drifted(field, truth, (14, 96, 96)), voxel_size=VS)
    np.testing.assert_allclose(d["drift_z_um"], truth[:, 0] * VS[0], atol=0.05)


def test_against_the_first_frame_a_lattice_of_like_cells_is_not_aliased() -> None:
    """Cells of one size in a regular lattice (14 voxels apart): a drift of 10 voxels from the first frame has a
    side peak of the correlation at -4, with more overlap; the previous frame's drift leads to the true one."""
    from scipy.ndimage import gaussian_filter

    field = np.zeros((200, 200), np.float32)
    field[3::14, 3::14] = 100.0
    field = gaussian_filter(field, 2.0)[None]
    truth = np.array([[0, 0, 0], [0, 5, 0], [0, 10, 0], [0, 15, 0], [0, 20, 0]])
    movie = drifted(field, truth, (1, 128, 128))[:, 0]
    d = estimate_drift(movie, voxel_size=(1.0, 1.0, 1.0), reference="first")
    np.testing.assert_allclose(d["drift_y_um"], truth[:, 1], atol=0.2)


def test_batch_drift_equals_single_runs_and_applies_a_rows_table(tmp_path: Path) -> None:
    import pandas as pd

    from subcell.cli.main import run
    from subcell.io import read

    movie, _ = _movie_store(tmp_path)
    rows = [{"id": "m", "source": "movie.ome.zarr", "source_channel": "dna", "drift": None},
            {"id": "lab", "source": "labels.ome.tif", "source_channel": None, "drift": "single_drift.csv"}]  # fmt: skip
    assert run(["drift", str(movie), str(tmp_path / "single.ome.zarr"), "-c", "dna"]) == 0
    pd.DataFrame(rows).to_csv(tmp_path / "movies.csv", index=False)
    out = tmp_path / "fixed"
    assert run(["batch", "drift", str(tmp_path / "movies.csv"), str(out), "--workers", "1", "--quiet"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "m_drift.csv"), pd.read_csv(tmp_path / "single_drift.csv"))
    np.testing.assert_array_equal(read(out / "m.ome.zarr").numpy(), read(tmp_path / "single.ome.zarr").numpy())
    moved = read(out / "lab.ome.zarr").numpy()[:, 0]  # the labels moved by the movie's table, as its mask channel
    want = read(tmp_path / "single.ome.zarr").channel("mask").numpy()[:, 0]
    np.testing.assert_array_equal(moved, want.astype(moved.dtype))
    assert not (out / "lab_drift.csv").exists()


def test_a_region_of_fiducials_measures_the_drift_where_the_cells_all_slide() -> None:
    """Beads fixed to the dish in the left quarter, a sheet of cells sliding 3 voxels a frame in y on the rest:
    the whole field's correlation follows the sheet; measured on the beads' region it is the stage's drift."""
    beads, cells = blobs((1, 160, 160), seed=7)[0], 3 * blobs((1, 160, 160), seed=8)[0]
    stage = np.array([[0, 0], [2, 1], [4, -1], [3, -3]])
    frames = []
    for t, (dy, dx) in enumerate(stage):
        f = np.roll(cells, 3 * t, axis=0)  # the sheet's own motion
        f[:, :40] = beads[:, :40]
        frames.append(np.roll(f, (dy, dx), axis=(0, 1))[16:144, 16:144])  # the stage moves everything
    movie = np.stack(frames)
    vs = (1.0, 0.5, 0.5)
    whole = estimate_drift(movie, voxel_size=vs)
    assert np.abs(whole["drift_y_um"].to_numpy() - stage[:, 0] * 0.5).max() > 2.0  # the sheet's 3 voxels a frame
    beads_only = estimate_drift(movie, voxel_size=vs, region_um=(0, 64, 0, 10))  # x 0–20 voxels: beads only
    np.testing.assert_allclose(beads_only[["drift_y_um", "drift_x_um"]].to_numpy(), stage * 0.5, atol=0.06)
    with pytest.raises(ValueError, match="outside the field"):
        estimate_drift(movie, voxel_size=vs, region_um=(0, 80, 0, 10))  # the field is 64 µm tall
