"""A folder of numbered TIFFs read as one image (a CTC ``01/t000.tif`` …, Fiji's image sequence)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from subcell import io
from subcell.errors import InputFileError, MetadataError
from subcell.io.info import array_nbytes


def _frames(folder: Path, n: int, shape: tuple[int, ...] = (3, 10, 12), name: str = "t{:d}.tif") -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    stack = np.random.default_rng(0).integers(0, 255, (n, *shape)).astype(np.uint8)
    for i, frame in enumerate(stack):
        tifffile.imwrite(folder / name.format(i), frame, photometric="minisblack")
    return stack


def test_numbered_tiffs_are_frames_in_the_order_of_their_numbers(tmp_path: Path) -> None:
    stack = _frames(tmp_path / "01", 12)  # t0 … t11, unpadded: t10 sorts after t9, not after t1
    (tmp_path / "01" / "man_track.txt").write_text("1 0 11 0\n")  # other files are ignored
    img = io.read(tmp_path / "01", voxel_size=(1.0, 0.2, 0.2), axes="TZYX")
    assert img.is_lazy and img.sizes == {"T": 12, "C": 1, "Z": 3, "Y": 10, "X": 12}
    assert np.array_equal(img.numpy()[:, 0], stack)
    assert "12 numbered TIFFs read as T (t0.tif … t11.tif)" in img.provenance.parameters["notes"]
    assert array_nbytes(tmp_path / "01") == stack.nbytes
    assert array_nbytes(tmp_path / "01", per_frame=True, axes="TZYX") == stack[0].nbytes
    planes = _frames(tmp_path / "planes", 4, (10, 12), "slice_{:03d}.tif")  # Fiji's image sequence of planes
    img = io.read(tmp_path / "planes", voxel_size=(0.5, 0.2, 0.2), axes="ZYX")
    assert img.sizes["Z"] == 4 and img.sizes["T"] == 1 and np.array_equal(img.numpy()[0, 0], planes)


def test_what_is_not_one_sequence_is_refused_naming_it(tmp_path: Path) -> None:
    _frames(tmp_path / "gap", 3)
    (tmp_path / "gap" / "t1.tif").unlink()
    with pytest.raises(InputFileError, match=r"jump from 0 to 2 after t0\.tif"):
        io.read(tmp_path / "gap", voxel_size=(1, 1, 1))
    _frames(tmp_path / "two", 2)
    _frames(tmp_path / "two", 2, name="mask{:d}.tif")
    with pytest.raises(InputFileError, match=r"several sequences of numbered TIFFs: maskN\.tif \(2 files\), tN\.tif"):
        io.read(tmp_path / "two", voxel_size=(1, 1, 1))
    _frames(tmp_path / "odd", 3)
    tifffile.imwrite(tmp_path / "odd" / "t3.tif", np.zeros((3, 10, 11), np.uint8), photometric="minisblack")
    with pytest.raises(InputFileError, match=r"t3\.tif: .*differs from t0\.tif's"):
        io.read(tmp_path / "odd", voxel_size=(1, 1, 1))
    with pytest.raises(MetadataError, match="must be T, C or Z"):
        io.read(tmp_path / "odd", axes="QZYX")
    with pytest.raises(MetadataError, match="already has a T axis"):
        io.read(tmp_path / "odd", axes="TTYX")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="nor a folder of numbered TIFFs"):
        io.read(tmp_path / "empty")


def test_convert_reads_a_ctc_folder(tmp_path: Path) -> None:
    from subcell.cli.main import run

    stack = _frames(tmp_path / "01", 3, name="t{:03d}.tif")
    out = tmp_path / "movie.ome.zarr"
    opts = ["--axes", "TZYX", "--voxel-size", "1", "0.2", "0.2", "--time-interval", "60"]
    assert run(["convert", str(tmp_path / "01"), str(out), *opts]) == 0
    movie = io.read(out)
    assert movie.time_interval == 60.0 and np.array_equal(movie.numpy()[:, 0], stack)
