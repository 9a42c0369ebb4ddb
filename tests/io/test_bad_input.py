"""Bad input: one-line message naming the file and field; nothing partial left behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from subcell import Image, io
from subcell.errors import ChannelError, InputFileError, ValueRangeError


def _no_leftovers(folder: Path, keep: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == keep


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.ome\.tif: file not found"):
        io.read(tmp_path / "nope.ome.tif")


def test_text_file_named_tif(tmp_path: Path) -> None:
    path = tmp_path / "notes.tif"
    path.write_text("these are my notes, not an image\n")
    with pytest.raises(InputFileError, match=r"notes\.tif: not a readable TIFF file"):
        io.read(path, voxel_size=(1, 1, 1))


@pytest.mark.parametrize("name", ["cut.tif", "cut.ome.tif"])
def test_truncated_tiff(tmp_path: Path, name: str) -> None:
    full = tmp_path / ("full_" + name)
    io.write(
        Image(np.arange(20 * 64 * 64, dtype=np.uint16).reshape(20, 64, 64), voxel_size=(1, 1, 1), dims="ZYX"),
        full.with_name("full.ome.tif"),
        compression=None,
    )
    raw = full.with_name("full.ome.tif").read_bytes()
    path = tmp_path / name
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputFileError, match=r"cut\.(ome\.)?tif: .*truncated"):
        io.read(path, voxel_size=(1, 1, 1))


def test_undecodable_tiff_pixels_fail_naming_the_file_when_read(tmp_path: Path) -> None:
    """The metadata is intact, so the file opens lazily; the damaged block fails when it is read, and says where."""
    import tifffile

    from subcell.image import materialize
    from tests.conftest import garble_tiff_pixels

    path = tmp_path / "damaged.tif"
    tifffile.imwrite(path, np.ones((4, 32, 32), np.uint16), photometric="minisblack", compression="zlib")
    garble_tiff_pixels(path)
    img = io.read(path, voxel_size=(1, 1, 1))
    assert img.shape[2:] == (4, 32, 32)
    with pytest.raises(InputFileError, match=r"damaged\.tif: unreadable TIFF pixel data"):
        materialize(img.data)


def test_unknown_channel_name_on_read(tmp_path: Path) -> None:
    img = Image(np.zeros((2, 3, 8, 8), np.uint8), voxel_size=(1, 1, 1), dims="CZYX", channel_names=["bf", "dna"])
    back = io.read(io.write(img, tmp_path / "c.ome.zarr"))
    with pytest.raises(ChannelError, match=r"unknown channel 'mito'; expected one of \['bf', 'dna'\]"):
        back.channel("mito")


def test_wrong_number_of_channel_names(tmp_path: Path) -> None:
    path = io.write(Image(np.zeros((2, 8, 8), np.uint8), voxel_size=(1, 1, 1), dims="CYX"), tmp_path / "c.ome.tif")
    with pytest.raises(Exception, match=r"channel_names: 3 channel name\(s\) given \(a,b,c\) but the image has 2"):
        io.read(path, channel_names=["a", "b", "c"])


def test_all_nan_image_is_rejected_and_nothing_is_written(tmp_path: Path) -> None:
    nan = Image(np.full((3, 8, 8), np.nan, np.float32), voxel_size=(1, 1, 1), dims="ZYX")
    for name in ("nan.ome.zarr", "nan.ome.tif"):
        with pytest.raises(ValueRangeError, match="no finite values"):
            io.write(nan, tmp_path / name)
    _no_leftovers(tmp_path, set())


def test_unknown_output_extension(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"out\.png: cannot tell the output format.*\.ome\.zarr"):
        io.write(Image(np.zeros((4, 4), np.uint8), voxel_size=(1, 1, 1), dims="YX"), tmp_path / "out.png")


def test_vendor_format_without_plugin_names_the_plugin(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("bioio_czi") is not None:
        pytest.skip("bioio-czi is installed here")
    path = tmp_path / "scan.czi"
    path.write_bytes(b"ZISRAWFILE" + b"\0" * 100)
    with pytest.raises(InputFileError, match=r"scan\.czi: reading \.czi files needs the bioio plugin 'bioio-czi'"):
        io.read(path)


def test_folder_that_is_not_ome_zarr(tmp_path: Path) -> None:
    (tmp_path / "plain.ome.zarr").mkdir()
    with pytest.raises(
        InputFileError, match=r"plain\.ome\.zarr: (not a readable OME-Zarr|folder has no NGFF 'multiscales')"
    ):
        io.read(tmp_path / "plain.ome.zarr")


def test_tiff_page_reader_failure_leaves_no_output(tmp_path: Path) -> None:
    """A read error in the middle of a streamed conversion leaves no partial output."""
    src = tmp_path / "src.tif"
    tifffile.imwrite(
        src, np.zeros((6, 16, 16), np.uint8), imagej=True, resolution=(5, 5), metadata={"unit": "um", "spacing": 1}
    )
    img = io.read(src)
    src.write_bytes(b"gone")  # the file changes under the lazy reader
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(Exception):  # noqa: B017 - any read error; what matters is what is left behind
        io.write(img, out_dir / "x.ome.zarr")
    _no_leftovers(out_dir, set())
