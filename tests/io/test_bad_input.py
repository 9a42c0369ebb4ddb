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
def test_truncated_tiff(tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture) -> None:
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
    # tifffile's own lines on what it found wrong (a page offset past the end) are not printed before the one line
    assert not [r for r in caplog.records if r.name.startswith("tifffile")], caplog.text


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


@pytest.mark.parametrize("ngff_version", ["0.4", "0.5"])
def test_damaged_zarr_chunk_fails_naming_the_store_and_the_chunk(tmp_path: Path, ngff_version: str) -> None:
    """A chunk of a partly copied store: its codec's error (no file, no chunk) becomes one naming both, from the
    dask array a command computes and from the box-by-box reader."""
    from subcell.image import materialize
    from subcell.io._ngff import level0_volume

    path = tmp_path / "copied.ome.zarr"
    data = np.arange(2 * 8 * 32 * 32, dtype=np.uint16).reshape(2, 8, 32, 32)
    io.write(Image(data, voxel_size=(1, 1, 1), dims="CZYX"), path, chunks=(1, 1, 4, 16, 16), ngff_version=ngff_version)
    sep = "c/" if ngff_version == "0.5" else ""
    chunk = path / "0" / f"{sep}0/1/1/0/1"  # t 0, channel 1, z 4-7, y 0-15, x 16-31
    assert chunk.is_file()
    chunk.write_bytes(b"\x02junk, not a compressed chunk")
    img = io.read(path)
    np.testing.assert_array_equal(materialize(img.data[0, 0]), data[0])  # the other chunks still read
    expected = rf"copied\.ome\.zarr: unreadable OME-Zarr pixel data in chunk 0/{sep}0/1/1/0/1 \("
    with pytest.raises(InputFileError, match=expected):
        materialize(img.data[0, 1])
    with pytest.raises(InputFileError, match=expected):
        level0_volume(path, 0, 1)[2:6, :, 10:20]
    import zarr

    from subcell.io._ngff import CheckedArray

    with pytest.raises(IndexError) as e:  # a wrong read (plane 9 of 8) is not called damage
        CheckedArray(zarr.open_array(str(path / "0"), mode="r"), path)[0, 0, 9]
    assert not isinstance(e.value, InputFileError)


def test_files_that_are_not_images_say_what_they_are(tmp_path: Path) -> None:
    """A table, a NumPy array or an unknown file given as an image: what it is and what images are, in one short
    line (bioio's message ran to five sentences, with a web address and advice to install plugins for a CSV)."""
    for name, said in (("cells.csv", "a table, not an image: images are OME-TIFF"),
                       ("stack.npy", "a NumPy array, not an image file .*subcell.io.write"),
                       ("field.xyz", "no installed reader knows this format; images are OME-TIFF")):  # fmt: skip
        (tmp_path / name).write_bytes(b"1,2,3\n")
        with pytest.raises(InputFileError, match=rf"{name}: {said}") as e:
            io.read(tmp_path / name)
        assert "http" not in str(e.value) and len(e.value.message) < 260


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


def test_types_ome_tiff_cannot_hold_are_refused_with_what_to_use(tmp_path: Path) -> None:
    """64-bit label ids: OME-XML has no 64-bit integer type; the advice is an integer type (it said float32)."""
    labels = Image(np.ones((2, 8, 8), np.uint64), voxel_size=(1, 1, 1), dims="ZYX")
    with pytest.raises(ValueRangeError, match=r"dtype uint64 cannot be stored in OME-TIFF; .*uint32 for label ids"):
        io.write(labels, tmp_path / "labels.ome.tif")
    with pytest.raises(ValueRangeError, match=r"dtype float16 .*\(e\.g\. float32\), or write OME-Zarr"):
        io.write(labels.with_data(labels.data.astype(np.float16), step="half"), tmp_path / "half.ome.tif")
    assert not list(tmp_path.iterdir())
    assert io.read(io.write(labels, tmp_path / "labels.ome.zarr")).dtype == np.uint64  # OME-Zarr holds them


def test_a_folder_of_subcell_outputs_given_as_an_image_says_what_it_is(tmp_path: Path) -> None:
    """A tracks folder, a batch OUTDIR, a cell store or a model folder where an image goes: what it is, its images
    and what shows it (it said "neither an OME-Zarr store nor a folder of numbered TIFFs"; a cell store, named
    .zarr, "has no NGFF 'multiscales'")."""
    tracks = tmp_path / "tracks"
    tracks.mkdir()
    (tracks / "tracks.parquet").write_bytes(b"")
    io.write(Image(np.zeros((2, 4, 8, 8), np.uint16), voxel_size=(1, 1, 1), dims="TZYX"), tracks / "labels.ome.zarr")
    cells = tmp_path / "cells.zarr"
    cells.mkdir()
    (cells / "cells.parquet").write_bytes(b"")
    (cells / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    for folder, said in ((tracks, r"is the tracks of `subcell track`, not an image \(`subcell report .*tracks page"
                                  r"\.html` shows it\); its images: labels\.ome\.zarr$"),
                         (cells, r"is a cell store of `subcell cells extract`, not an image")):  # fmt: skip
        with pytest.raises(InputFileError, match=said):
            io.read(folder)
    assert io.read(tracks / "labels.ome.zarr").shape == (2, 1, 4, 8, 8)  # the image inside reads as ever


def test_tifffile_lines_are_held_for_the_opening_thread_only(caplog: pytest.LogCaptureFixture) -> None:
    """Held while this thread opens a file: passed on when it opens; another thread's (a Dask worker reading
    chunks meanwhile) pass at once, and nothing stays held after (a shared switch on the logger, set and restored
    by two threads at once, could leave tifffile silent for good)."""
    import logging
    import threading

    from subcell.io._tiff import held_tifffile_warnings

    log = logging.getLogger("tifffile")
    with caplog.at_level(logging.WARNING, logger="tifffile"), held_tifffile_warnings():
        log.warning("held: this thread opens a file")
        other = threading.Thread(target=lambda: log.warning("another thread's, at once"))
        other.start()
        other.join()
        assert [r.getMessage() for r in caplog.records] == ["another thread's, at once"]
    assert [r.getMessage() for r in caplog.records][-1] == "held: this thread opens a file"  # passed on: it opened
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tifffile"):
        log.warning("after")
    assert [r.getMessage() for r in caplog.records] == ["after"]
