"""Every command reads its input the same way: the same reader options (``--voxel-size``, ``--axes``,
``--force-voxel-size``, ``--scene``, ``--time-interval``), and in a batch the same manifest columns (``scene``,
``axes``, ``time_interval``, voxel size), none of them silently dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from subcell import synth
from subcell.cli.main import run
from subcell.io import read
from tests.conftest import cli_user_error

VS = (0.29, 0.108, 0.108)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-scene OME-TIFF of the DNA of two fields (and each scene alone), and a plain TIFF time-lapse whose
    file states neither its axes nor its voxel size nor its time interval."""
    root = tmp_path_factory.mktemp("reading")
    dna = [np.asarray(synth.synth_field(shape=(12, 128, 128), n_cells=2, seed=s).image.channel("dna").numpy())[0, 0]
           for s in (3, 4)]  # fmt: skip
    meta = {"axes": "ZYX", "PhysicalSizeZ": VS[0], "PhysicalSizeY": VS[1], "PhysicalSizeX": VS[2]}
    with tifffile.TiffWriter(root / "two.ome.tif", ome=True) as tw:
        for d in dna:
            tw.write(d, metadata=meta)
    for i, d in enumerate(dna):
        tifffile.imwrite(root / f"scene{i}.ome.tif", d, ome=True, metadata=meta)
    tifffile.imwrite(root / "movie.tif", np.stack([dna[0], np.roll(dna[0], 3, axis=2), np.roll(dna[0], 6, axis=2)]))
    return {"two": root / "two.ome.tif", "scene0": root / "scene0.ome.tif", "scene1": root / "scene1.ome.tif",
            "movie": root / "movie.tif", "root": root}  # fmt: skip


def _labels(path: Path) -> np.ndarray:
    return np.asarray(read(path).numpy())


def test_every_command_that_reads_an_image_takes_the_reader_options() -> None:
    from subcell.cli.batch import click_command

    reader = {"--voxel-size", "--axes", "--force-voxel-size", "--scene"}
    takes = {
        ("info",): reader | {"--time-interval"},
        ("convert",): reader | {"--time-interval"},
        ("segment",): reader | {"--time-interval"},
        ("labelfree", "predict"): reader | {"--time-interval"},
        ("labelfree", "nuclei"): reader | {"--time-interval"},
        ("cells", "extract"): reader,
        ("track",): {"--voxel-size", "--axes", "--force-voxel-size", "--time-interval"},
        ("labelfree", "evaluate"): {"--voxel-size", "--axes"},
    }
    for path, options in takes.items():
        names = {o for p in click_command(path).params for o in p.opts}
        assert options <= names, (path, options - names)
        assert "--force-metadata" in names or "--force-voxel-size" not in options


def test_scene_and_time_interval_reach_the_output(files: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    for scene in ("0", "1"):
        assert run(["segment", str(files["two"]), str(tmp_path / f"s{scene}.ome.zarr"), "-w", "nucleus",
                    "--scene", scene]) == 0  # fmt: skip
        assert run(["segment", str(files[f"scene{scene}"]), str(tmp_path / f"alone{scene}.ome.zarr"), "-w",
                    "nucleus"]) == 0  # fmt: skip
        np.testing.assert_array_equal(
            _labels(tmp_path / f"s{scene}.ome.zarr"), _labels(tmp_path / f"alone{scene}.ome.zarr")
        )
    assert not np.array_equal(_labels(tmp_path / "s0.ome.zarr"), _labels(tmp_path / "s1.ome.zarr"))

    # a plain TIFF movie: its axes, voxel size and time interval stated once, at the first step, and carried on
    seg = tmp_path / "movie.ome.zarr"
    assert run(["segment", str(files["movie"]), str(seg), "-w", "nucleus", "--axes", "TZYX", "--voxel-size",
                *map(str, VS), "--time-interval", "120"]) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert read(seg).time_interval == 120.0
    assert run(["track", str(seg), str(tmp_path / "tracks")]) == 0  # no --time-interval needed any more
    assert yaml.safe_load((tmp_path / "tracks" / "config.yaml").read_text())["time_interval_s"] == 120.0
    tracks = pd.read_parquet(tmp_path / "tracks" / "tracks.parquet")
    np.testing.assert_allclose(tracks.time_min, tracks.t * 2.0)  # 120 s a frame
    assert f"{len(tracks)} objects in 3 frames, {tracks.touches_border.sum()} touching the border" in said  # all frames
    # --axes reach the plain TIFF among the inputs; the OME-Zarr labels state their own
    axes = ["--axes", "TZYX"]
    assert run(["measure", str(seg), str(tmp_path / "m.parquet"), "--intensity", str(files["movie"]), *axes]) == 0
    table = pd.read_parquet(tmp_path / "m.parquet")
    assert list(table.columns[:2]) == ["t", "time_min"] and set(table.t) == {0, 1, 2}
    np.testing.assert_allclose(table.time_min, table.t * 2.0)
    assert (table.c0_mean > 0).all()  # the movie's intensity inside each nucleus
    assert run(["track", str(seg), str(tmp_path / "tr_i"), "--image", str(files["movie"]), *axes]) == 0
    assert pd.read_parquet(tmp_path / "tr_i" / "tracks.parquet").mean_intensity.notna().all()
    err = cli_user_error(capsys, "measure", str(seg), str(tmp_path / "m2.parquet"), *axes)  # no plain TIFF at all
    assert "axes= applies to plain TIFF files only" in err
    # a value that contradicts the file is refused (nothing written), and taken when forced
    err = cli_user_error(capsys, "track", str(seg), str(tmp_path / "t60"), "--time-interval", "60")
    assert "file 120 s vs given 60 s" in err and "--force-metadata" in err and not (tmp_path / "t60").exists()
    assert run(["track", str(seg), str(tmp_path / "t60"), "--time-interval", "60", "--force-metadata"]) == 0
    assert yaml.safe_load((tmp_path / "t60" / "config.yaml").read_text())["time_interval_s"] == 60.0


def test_labelfree_predict_reads_a_scene_and_a_plain_tiff_movie(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The prediction reads its input as every command does: a scene of a multi-scene file, a plain TIFF's axes."""
    common = ["-m", "dna", "--quiet", "--device", "cpu", "--precision", "fp32"]
    assert run(["labelfree", "predict", str(files["two"]), str(tmp_path / "p1.ome.zarr"), "--scene", "1",
                *common]) == 0  # fmt: skip
    assert run(["labelfree", "predict", str(files["scene1"]), str(tmp_path / "alone1.ome.zarr"), *common]) == 0
    one = read(tmp_path / "p1.ome.zarr").numpy()
    np.testing.assert_array_equal(one, read(tmp_path / "alone1.ome.zarr").numpy())
    assert run(["labelfree", "predict", str(files["movie"]), str(tmp_path / "movie.ome.zarr"), "--axes", "TZYX",
                "--voxel-size", *map(str, VS), "--time-interval", "120", *common]) == 0  # fmt: skip
    movie = read(tmp_path / "movie.ome.zarr")
    assert movie.shape[0] == 3 and movie.time_interval == 120.0
    # scored against the plain TIFF movie itself: --axes reach the target, not the OME-Zarr prediction
    score = ["labelfree", "evaluate", str(tmp_path / "movie.ome.zarr"), str(files["movie"]), "--voxel-size",
             *map(str, VS), "--channel", "dna=c0", "--out", str(tmp_path / "score.csv")]  # fmt: skip
    assert run(score) == 2  # the movie's axes are not in its file
    assert run([*score, "--axes", "TZYX"]) == 0
    assert len(pd.read_csv(tmp_path / "score.csv")) == 1
    # a bright-field channel not named as the model's input: chosen by --input-channel (a row's source_channel)
    from subcell import Image
    from subcell.io import write

    dna1 = read(files["scene1"]).numpy()[0, 0]
    write(Image(np.stack([dna1[::-1], dna1]), voxel_size=VS, dims="CZYX", channel_names=["other", "TL"]),
          tmp_path / "two_channels.ome.tif")  # fmt: skip
    two = ["labelfree", "predict", str(tmp_path / "two_channels.ome.tif")]
    assert run([*two, str(tmp_path / "tl.ome.zarr"), *common]) == 2  # which channel is the bright-field?
    assert run([*two, str(tmp_path / "tl.ome.zarr"), "--input-channel", "TL", *common]) == 0
    np.testing.assert_array_equal(read(tmp_path / "tl.ome.zarr").numpy(), one)
    err = cli_user_error(capsys, *two, str(tmp_path / "x.ome.zarr"), "--input-channel", "BF", *common)
    assert "two_channels.ome.tif: input_channel: unknown channel 'BF'" in err and not (tmp_path / "x.ome.zarr").exists()
    # a manifest given to the command itself: each row's scene
    rows = [{"id": "a", "source": str(files["two"]), "scene": 0}, {"id": "b", "source": str(files["two"]), "scene": 1}]
    pd.DataFrame(rows).to_csv(tmp_path / "two.csv", index=False)
    assert run(["labelfree", "predict", str(tmp_path / "two.csv"), str(tmp_path / "rows"), *common]) == 0
    np.testing.assert_array_equal(read(tmp_path / "rows" / "b_prediction.ome.zarr").numpy(), one)
    assert not np.array_equal(read(tmp_path / "rows" / "a_prediction.ome.zarr").numpy(), one)
    pd.DataFrame([{"id": "c", "source": str(tmp_path / "two_channels.ome.tif"), "source_channel": "1"}]).to_csv(
        tmp_path / "channels.csv", index=False
    )
    assert run(["batch", "labelfree-predict", str(tmp_path / "channels.csv"), str(tmp_path / "batch"), "-m", "dna",
                "--device", "cpu", "--precision", "fp32", "--workers", "1", "--quiet"]) == 0  # fmt: skip
    np.testing.assert_array_equal(read(tmp_path / "batch" / "c.ome.zarr").numpy(), one)


def test_batch_takes_each_rows_scene_axes_and_time_interval(files: dict[str, Path], tmp_path: Path) -> None:
    root = files["root"]
    rows = [
        {"id": "a", "source": "two.ome.tif", "scene": 0},
        {"id": "b", "source": "two.ome.tif", "scene": 1},
        {"id": "m", "source": "movie.tif", "axes": "TZYX", "time_interval": 120,
         **dict(zip(("voxel_size_z", "voxel_size_y", "voxel_size_x"), VS, strict=True))},
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "scenes.csv", index=False)
    out = tmp_path / "seg"
    assert run(["batch", "segment", str(root / "scenes.csv"), str(out), "-w", "nucleus", "--workers", "1",
                "--quiet"]) == 0  # fmt: skip
    for item, scene in (("a", 0), ("b", 1)):
        single = tmp_path / f"single_{item}.ome.zarr"
        assert run(["segment", str(files["two"]), str(single), "-w", "nucleus", "--scene", str(scene)]) == 0
        np.testing.assert_array_equal(_labels(out / f"{item}.ome.zarr"), _labels(single))
    assert not np.array_equal(_labels(out / "a.ome.zarr"), _labels(out / "b.ome.zarr"))
    movie = read(out / "m.ome.zarr")
    assert movie.shape[0] == 3 and movie.time_interval == 120.0 and movie.voxel_size.isclose(VS)
    # the movie's memory is estimated by one frame on the row's axes (segmented a frame at a time)
    from subcell.cli.batch import COMMANDS, WORKER_BASE

    frame = 12 * 128 * 128 * 2
    status = pd.read_parquet(out / "batch.parquet").set_index("id")
    want_mb = (WORKER_BASE + COMMANDS["segment"].memory_factor * frame) / 2**20
    assert status.loc["m", "memory_estimate_mb"] == pytest.approx(want_mb, abs=1)


def test_a_rows_scene_is_refused_by_a_command_that_cannot_take_it(files: dict[str, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    root = files["root"]
    pd.DataFrame([{"id": "b", "source": "two.ome.tif", "scene": 1}]).to_csv(root / "measure.csv", index=False)
    capsys.readouterr()
    assert run(["batch", "measure", str(root / "measure.csv"), str(tmp_path / "m"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "row 1, column 'scene': value '1'" in err and "first scene only" in err
    assert not (tmp_path / "m" / "b.parquet").exists()
