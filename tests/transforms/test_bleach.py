"""Photobleaching made up for (``subcell.transforms.bleach``, ``subcell bleach``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from subcell.image import Image
from subcell.transforms.bleach import bleach_curve, bleach_factors, correct_bleach
from tests.conftest import cli_user_error

OFFSET = 100.0


def bleached_movie(rate: float = 0.08, n_t: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Nuclei (bright blobs) over a camera offset, their signal falling by ``exp(-rate·t)``: (movie, truth)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    field = np.zeros((6, 64, 64))
    field[rng.integers(0, 6, 30), rng.integers(0, 64, 30), rng.integers(0, 64, 30)] = 3e4
    truth = gaussian_filter(field, (1, 2, 2)) + OFFSET
    movie = np.stack([(truth - OFFSET) * np.exp(-rate * t) + OFFSET for t in range(n_t)])
    return movie, truth


@pytest.mark.parametrize("method", ["exponential", "ratio"])
def test_pure_bleaching_is_undone(method: str) -> None:
    movie, truth = bleached_movie()
    curve = bleach_curve(movie, background=OFFSET)
    factors, info = bleach_factors(curve, method)
    np.testing.assert_allclose(factors, np.exp(0.08 * np.arange(12)), rtol=1e-3)
    if method == "exponential":
        assert info["half_life_frames"] == pytest.approx(np.log(2) / 0.08, rel=1e-3)
    img = Image(movie[:, None], voxel_size=(1, 1, 1), dims="TCZYX")
    fixed = correct_bleach(img, factors[:, None], background=OFFSET, method=method).numpy()[:, 0]
    assert fixed.dtype == np.float32
    np.testing.assert_allclose(fixed, np.broadcast_to(truth, fixed.shape), rtol=2e-3)


def test_background_defaults_to_the_offset_and_histograms_match_frame_0() -> None:
    movie, _ = bleached_movie()
    curve = bleach_curve(movie)
    assert curve["background"].iloc[0] == pytest.approx(OFFSET, abs=1.0)  # most of the field is dark
    holed = movie.copy()
    holed[:, 0, :3] = np.nan  # a float movie's missing rows (a drift-corrected canvas, NaN-filled)
    np.testing.assert_allclose(bleach_curve(holed)["signal"] / curve["signal"], 1.0, rtol=0.05)
    img = Image(movie[:, None], voxel_size=(1, 1, 1), dims="TCZYX")
    matched = correct_bleach(img, method="histogram").numpy()[:, 0]
    np.testing.assert_allclose(np.sort(matched[-1].ravel()), np.sort(movie[0].ravel()), rtol=1e-3)
    np.testing.assert_array_equal(matched[0], movie[0].astype(np.float32))


def test_exponential_is_not_fooled_by_a_frame_whose_content_changes() -> None:
    """A bright mitotic cell in one frame (the field's mean up 10 %): the ratio takes it for un-bleaching and
    darkens that frame; the exponential fit keeps its smooth course."""
    movie, _ = bleached_movie(rate=0.05)
    movie[6, 2:4, 10:20, 10:20] += 0.1 * (movie[6] - OFFSET).sum() / 200  # +10 % of the frame's signal
    curve = bleach_curve(movie, background=OFFSET)
    want = np.exp(0.05 * np.arange(12))
    ratio, _ = bleach_factors(curve, "ratio")
    expo, _ = bleach_factors(curve, "exponential")
    assert abs(ratio[6] / want[6] - 1) > 0.08 and abs(expo[6] / want[6] - 1) < 0.03


def test_a_curve_without_signal_is_refused() -> None:
    movie, _ = bleached_movie()
    with pytest.raises(ValueError, match="frame 0 has no signal above the background"):
        bleach_factors(bleach_curve(movie, background=1e6), "exponential")
    movie[4] = OFFSET  # a frame without signal (the shutter did not open)
    with pytest.raises(ValueError, match=r"frames \[4\] have no signal"):
        bleach_factors(bleach_curve(movie, background=OFFSET), "ratio")


def test_cli_corrects_the_chosen_channels_and_writes_the_table(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    from subcell.cli.main import run
    from subcell.io import read, write

    movie, truth = bleached_movie()
    bf = np.full_like(movie, 500.0)  # bright-field does not bleach
    path = tmp_path / "movie.ome.zarr"
    write(Image(np.stack([bf, movie], axis=1).astype(np.uint16), voxel_size=(1, 0.5, 0.5), dims="TCZYX",
                channel_names=["brightfield", "dna"], time_interval=120.0), path)  # fmt: skip
    out = tmp_path / "fixed.ome.zarr"
    assert run(["bleach", str(path), str(out), "-c", "dna", "--background", "100"]) == 0
    said = capsys.readouterr().out
    assert "dna: signal at the last frame 41% of frame 0's, half-life 8.7 frames (17.3 min)" in said
    fixed = read(out)
    assert fixed.dtype == np.float32 and fixed.channel_names == ("brightfield", "dna")
    np.testing.assert_array_equal(fixed.channel("brightfield").numpy()[:, 0], bf.astype(np.float32))
    # (the stored uint16 rounding, times the last factor 2.4)
    np.testing.assert_allclose(fixed.channel("dna").numpy()[-1, 0], truth, rtol=0.01, atol=1.25 * np.exp(0.08 * 11))
    table = pd.read_csv(tmp_path / "fixed_bleach.csv")
    assert list(table.columns) == ["channel", "t", "mean", "background", "signal", "factor"]
    assert (table.channel == "dna").all() and table.factor.iloc[-1] == pytest.approx(np.exp(0.08 * 11), rel=0.01)


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell.io import write

    movie, _ = bleached_movie()
    path = tmp_path / "movie.ome.zarr"
    write(Image(movie.astype(np.uint16), voxel_size=(1, 0.5, 0.5), dims="TZYX", time_interval=60.0), path)
    out = tmp_path / "out.ome.zarr"
    err = cli_user_error(capsys, "bleach", str(path), str(out), "--background", "60000")
    assert "movie.ome.zarr" in err and "no signal above the background" in err and "c0" in err
    err = cli_user_error(capsys, "bleach", str(path), str(out), "-c", "gfp")
    assert "unknown channel 'gfp'" in err and "movie.ome.zarr" in err
    err = cli_user_error(capsys, "bleach", str(path), str(out), "--method", "fancy")
    assert "method" in err and "exponential" in err
    still = tmp_path / "still.ome.zarr"
    write(Image(movie[0], voxel_size=(1, 0.5, 0.5), dims="ZYX"), still)
    err = cli_user_error(capsys, "bleach", str(still), str(out))
    assert "T > 1" in err and "--axes" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.ome.zarr", "still.ome.zarr"]


def test_batch_bleach_equals_single_runs(tmp_path: Path) -> None:
    import pandas as pd

    from subcell.cli.main import run
    from subcell.io import read, write

    movie, _ = bleached_movie()
    for i in range(2):
        write(Image((movie * (1 + i)).astype(np.uint16), voxel_size=(1, 0.5, 0.5), dims="TZYX", channel_names=["dna"],
                    time_interval=60.0), tmp_path / f"m{i}.ome.zarr")  # fmt: skip
    rows = [{"id": f"m{i}", "source": f"m{i}.ome.zarr", "source_channel": "dna"} for i in range(2)]
    pd.DataFrame(rows).to_csv(tmp_path / "movies.csv", index=False)
    out = tmp_path / "fixed"
    assert run(["batch", "bleach", str(tmp_path / "movies.csv"), str(out), "--method", "ratio", "--workers", "1",
                "--quiet"]) == 0  # fmt: skip
    for i in range(2):
        assert run(["bleach", str(tmp_path / f"m{i}.ome.zarr"), str(tmp_path / f"s{i}.ome.zarr"), "-c", "dna",
                    "--method", "ratio"]) == 0  # fmt: skip
        np.testing.assert_array_equal(read(out / f"m{i}.ome.zarr").numpy(), read(tmp_path / f"s{i}.ome.zarr").numpy())
        pd.testing.assert_frame_equal(pd.read_csv(out / f"m{i}_bleach.csv"), pd.read_csv(tmp_path / f"s{i}_bleach.csv"))


def test_the_report_says_and_draws_the_drift_and_bleaching_tables(tmp_path: Path) -> None:
    from subcell.cli.main import run
    from subcell.io import write
    from subcell.report.collect import collect_sections
    from tests.transforms.test_drift import blobs, drifted

    movie, _ = bleached_movie()
    write(Image(movie.astype(np.uint16), voxel_size=(1, 0.5, 0.5), dims="TZYX", time_interval=60.0),
          tmp_path / "movie.ome.zarr")  # fmt: skip
    assert run(["bleach", str(tmp_path / "movie.ome.zarr"), str(tmp_path / "bright.ome.zarr"), "--background",
                "100"]) == 0  # fmt: skip
    moving = drifted(blobs((1, 120, 120)), np.array([[0, 0, 0], [0, 4, 0], [0, 4, -2]]), (1, 96, 96))
    write(Image(moving, voxel_size=(1, 0.5, 0.5), dims="TZYX", time_interval=60.0), tmp_path / "moving.ome.zarr")
    assert run(["drift", str(tmp_path / "moving.ome.zarr"), str(tmp_path / "still.ome.zarr")]) == 0
    dyn = {s.name: s for s in collect_sections(tmp_path)}["Dynamics"]
    said = "\n".join(dyn.lines)  # (the factor: exp(0.08 · 11) = 2.41, and the uint16 rounding of the dim last frame)
    assert (
        "bright_bleach.csv: c0 bleached to 41% of frame 0's signal by the last frame; largest factor applied 2.4"
        in said
    )
    assert "still_drift.csv: stage drift over 3 frames, at most 0.00 µm in z, 2.00 in y, 1.00 in x; largest step " \
           "2.00 µm (frame 1)" in dyn.lines  # fmt: skip
    assert [title for title, _ in dyn.figures] == ["bright bleach", "still drift"]
    assert all(png.startswith(b"\x89PNG") for _, png in dyn.figures)
