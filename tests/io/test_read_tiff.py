"""Plain TIFF / ImageJ metadata: trusted when it states micrometres, never invented otherwise."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile

from subcell import io
from subcell.errors import MetadataError


def _imagej(
    path: Path, data: np.ndarray, axes: str, *, unit: str = "um", spacing: float = 0.5, px: float = 0.2, **meta: object
) -> Path:
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / px, 1 / px),
        metadata={"axes": axes, "unit": unit, "spacing": spacing, **meta},
    )
    return path


def test_imagej_hyperstack_axes_spacing_and_interval(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.integers(0, 255, (3, 4, 2, 10, 12), dtype=np.uint8)  # TZCYX, ImageJ's order
    path = _imagej(tmp_path / "h.tif", data, "TZCYX", finterval=2.5)
    img = io.read(path)
    assert img.sizes == {"T": 3, "C": 2, "Z": 4, "Y": 10, "X": 12}
    assert img.voxel_size.as_tuple() == pytest.approx((0.5, 0.2, 0.2))
    assert img.time_interval == 2.5
    np.testing.assert_array_equal(img.numpy(), data.transpose(0, 2, 1, 3, 4))


def test_imagej_without_micron_unit_is_not_trusted(tmp_path: Path) -> None:
    path = _imagej(tmp_path / "p.tif", np.zeros((4, 8, 8), np.uint16), "ZYX", unit="pixel")
    with pytest.raises(MetadataError, match=r"p\.tif: voxel_size: voxel size unknown .*'pixel'.*--voxel-size Z Y X"):
        io.read(path)
    img = io.read(path, voxel_size=(1.0, 0.3, 0.3))
    assert img.voxel_size.as_tuple() == (1.0, 0.3, 0.3)
    assert img.provenance.parameters["voxel_size_source"] == "user"


def test_print_resolution_in_inches_is_not_a_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(
        path, np.zeros((3, 8, 8), np.uint8), resolution=(300, 300), resolutionunit="INCH", photometric="minisblack"
    )
    with pytest.raises(MetadataError, match="print resolution"):
        io.read(path)


def test_centimetre_resolution_is_converted(tmp_path: Path) -> None:
    path = tmp_path / "cm.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit="CENTIMETER")
    img = io.read(path)
    assert (img.voxel_size.y, img.voxel_size.x) == pytest.approx((0.25, 0.25))


def test_contradicting_voxel_size_is_an_error_unless_forced(tmp_path: Path) -> None:
    path = _imagej(tmp_path / "v.tif", np.zeros((4, 8, 8), np.uint8), "ZYX")
    with pytest.raises(MetadataError, match=r"contradicts the file's \(z: file 0.5 vs given 1"):
        io.read(path, voxel_size=(1.0, 0.2, 0.2))
    assert io.read(path, voxel_size=(0.5, 0.2, 0.2)).voxel_size.z == 0.5  # agreeing is fine
    forced = io.read(path, voxel_size=(1.0, 0.2, 0.2), force=True)
    assert forced.voxel_size.z == 1.0 and "forced" in forced.provenance.parameters["voxel_size_source"]


def test_unknown_axes_are_never_guessed_beyond_a_single_stack_axis(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.integers(0, 255, (6, 5, 16, 16), dtype=np.uint8)
    path = tmp_path / "tz.tif"
    tifffile.imwrite(path, data, photometric="minisblack")  # shape stored, axes not → tifffile reports QQYX
    with pytest.raises(MetadataError, match=r"cannot tell which of the axes.*--axes TZYX"):
        io.read(path, voxel_size=(1, 0.2, 0.2))
    img = io.read(path, axes="TZYX", voxel_size=(1, 0.2, 0.2))
    assert img.sizes["T"] == 6 and img.sizes["Z"] == 5
    np.testing.assert_array_equal(img.numpy()[:, 0], data)
    with pytest.raises(MetadataError, match="axes 'ZYX' has 3 letters but the data has 4 axes"):
        io.read(path, axes="ZYX", voxel_size=(1, 0.2, 0.2))


def test_tiff_reading_is_lazy_and_picklable(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.integers(0, 60000, (40, 64, 64), dtype=np.uint16)
    path = _imagej(tmp_path / "lazy.tif", data, "ZYX")
    img = io.read(path)
    assert img.is_lazy
    restored = pickle.loads(pickle.dumps(img.data))  # Dask workers receive the graph
    np.testing.assert_array_equal(np.asarray(restored[0, 0, 7:9, 10:20]), data[7:9, 10:20])


def _page_reads(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The pages of every read of TIFF pixel data from now on, one list per read."""
    seen: list[list[int]] = []
    real = tifffile.TiffFile.asarray

    def spy(self: tifffile.TiffFile, *args: object, **kwargs: object) -> np.ndarray:
        seen.append(list(kwargs["key"]))  # type: ignore[call-overload]
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tifffile.TiffFile, "asarray", spy)
    return seen


def test_page_reader_reads_only_requested_pages(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = rng.integers(0, 255, (30, 16, 16), dtype=np.uint8)
    path = _imagej(tmp_path / "pages.tif", data, "ZYX")
    seen = _page_reads(monkeypatch)
    monkeypatch.setattr("subcell.io._tiff._CHUNK_BYTES", 5 * 16 * 16)  # 5 pages per chunk
    img = io.read(path)
    np.testing.assert_array_equal(img.data[0, 0, 12].compute(), data[12])
    assert seen == [[10, 11, 12, 13, 14]]  # only the chunk holding plane 12


def test_a_time_lapse_is_read_a_frame_at_a_time(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk holds one channel and at most `_FRAME_CHUNK_BYTES` of frames: reading one frame of a TZCYX
    hyperstack (one chunk by size alone before) decodes that frame's pages, not the movie's, and one channel of it
    only that channel's z-planes (one read). Frames smaller than the cap share chunks (a long movie of small frames
    is not opened once per frame)."""
    data = rng.integers(0, 255, (6, 3, 2, 16, 16), dtype=np.uint8)  # T, Z, C: page t·6 + z·2 + c
    path = _imagej(tmp_path / "lapse.tif", data, "TZCYX")
    assert io.read(path).data.chunks[:2] == ((6,), (1, 1))  # 4.6 kB of frames per channel: one chunk each
    monkeypatch.setattr("subcell.io._tiff._FRAME_CHUNK_BYTES", 3 * 16 * 16 * 3 // 2)  # a frame and a half
    seen = _page_reads(monkeypatch)
    img = io.read(path)
    assert img.data.chunks[:2] == ((1,) * 6, (1, 1))
    np.testing.assert_array_equal(img.data[4, 1].compute(), data[4, :, 1])
    assert seen == [[4 * 6 + 1, 4 * 6 + 3, 4 * 6 + 5]]  # frame 4, channel 1: its three z-planes, read in one go
    seen.clear()
    np.testing.assert_array_equal(img.data[4].compute(), data[4].transpose(1, 0, 2, 3))
    assert sorted(p for key in seen for p in key) == list(range(4 * 6, 5 * 6))  # frame 4's six pages
    seen.clear()
    np.testing.assert_array_equal(img.numpy(), data.transpose(0, 2, 1, 3, 4))
    assert sorted(p for key in seen for p in key) == list(range(36))  # whole: every page once


def test_a_file_read_again_after_it_changed_gives_its_new_pixels(tmp_path: Path, rng: np.random.Generator) -> None:
    """Chunks are read through a kept handle per file; a file replaced at the same path (as an atomic writer does)
    is read anew, never through the handle of the one it replaced. Parallel reads through the kept handle agree."""
    import dask

    old = rng.integers(0, 255, (12, 32, 32), dtype=np.uint8)
    path = _imagej(tmp_path / "stack.tif", old, "TYX")
    np.testing.assert_array_equal(io.read(path).numpy()[:, 0, 0], old)
    new = rng.integers(0, 255, (12, 32, 32), dtype=np.uint8)
    _imagej(tmp_path / "next.tif", new, "TYX").replace(path)  # same size, another file
    img = io.read(path)
    np.testing.assert_array_equal(img.numpy()[:, 0, 0], new)
    with dask.config.set(scheduler="threads", num_workers=4):
        np.testing.assert_array_equal(img.data.compute()[:, 0, 0], new)
    from subcell.io._tiff import _open_cached

    handle, lock = _open_cached(str(path))
    with lock:
        handle.close()  # as when another thread drops it from the kept handles between taking and using it
    np.testing.assert_array_equal(img.numpy()[:, 0, 0], new)  # opened anew


@pytest.mark.parametrize(
    ("axes", "shape", "extra"),
    [
        ("TCZYX", (4, 2, 5, 24, 20), {"compression": "zlib"}),
        ("CTZYX", (2, 3, 5, 24, 20), {}),
        ("ZCYX", (5, 3, 24, 20), {}),
        ("ZYXS", (4, 24, 20, 3), {"photometric": "rgb"}),
    ],
)
def test_ome_tiff_pixels_are_read_page_by_page_as_bioio_reads_them(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, axes: str, shape: tuple[int, ...],
    extra: dict[str, str],
) -> None:  # fmt: skip
    """OME-TIFF pixels come through tifffile's OME series and the page reader: the array bioio-ome-tiff gives (its
    axes in TCZYX order, RGB samples as channels), and one timepoint decodes only its own pages."""
    from bioio_ome_tiff import Reader

    data = rng.integers(0, 255, shape, dtype=np.uint8)
    path = tmp_path / "x.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": axes, "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2, "PhysicalSizeZ": 0.5},
                     **extra)  # fmt: skip
    ref = Reader(str(path)).get_image_dask_data("TCZYXS").compute()
    ref = ref[..., 0] if ref.shape[-1] == 1 else np.moveaxis(ref[:, 0], -1, 1)  # samples as channels
    seen = _page_reads(monkeypatch)
    monkeypatch.setattr("subcell.io._tiff._FRAME_CHUNK_BYTES", 1)  # a chunk per frame, however small
    img = io.read(path)
    np.testing.assert_array_equal(img.numpy(), ref)
    if "T" in axes:
        seen.clear()
        np.testing.assert_array_equal(np.asarray(img.data[2].compute()), ref[2])
        assert sum(len(k) for k in seen) == int(np.prod(shape)) // (shape[axes.index("T")] * 24 * 20)


def test_ome_tiff_scenes_are_selectable(tmp_path: Path) -> None:
    path = tmp_path / "multi.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(
            np.zeros((4, 8, 8), np.uint8),
            metadata={"axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 0.5},
        )
        tw.write(
            np.ones((2, 6, 6), np.uint8),
            metadata={"axes": "ZYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2, "PhysicalSizeZ": 1.0},
        )
    second = io.read(path, scene=1)
    assert second.sizes["Z"] == 2 and second.voxel_size.x == pytest.approx(0.2)
    np.testing.assert_array_equal(second.numpy(), 1)
    with pytest.raises(MetadataError, match="unknown scene 5"):
        io.read(path, scene=5)


def test_planar_multisample_page_reads_as_channels(tmp_path: Path, rng: np.random.Generator) -> None:
    """A 4-channel CYX image stored as one page with separate sample planes (as some acquisition software does)."""
    data = rng.integers(0, 60000, (4, 32, 40), dtype=np.uint16)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig="separate", extrasamples=[0, 0, 0])
    with tifffile.TiffFile(path) as tf:
        assert len(tf.pages) == 1  # one page holds all four planes
    img = io.read(path, voxel_size=(1.0, 0.3, 0.3))
    assert img.sizes["C"] == 4 and img.sizes["Z"] == 1
    np.testing.assert_array_equal(img.numpy()[0, :, 0], data)


def test_channel_names_stored_in_tiffs_are_read(tmp_path: Path) -> None:
    import tifffile

    a = np.zeros((2, 3, 16, 16), np.uint16)
    tifffile.imwrite(tmp_path / "ij.tif", a, imagej=True, metadata={"axes": "ZCYX", "Labels": ["dna", "mem", "bf"] * 2})
    tifffile.imwrite(
        tmp_path / "js.tif",
        a[0],
        photometric="minisblack",
        metadata={"axes": "CYX", "channel_names": ["dna", "mem", "bf"]},
    )
    plane_labels = [f"slice{i}" for i in range(6)]  # per-plane labels that are not channel names
    tifffile.imwrite(tmp_path / "planes.tif", a, imagej=True, metadata={"axes": "ZCYX", "Labels": plane_labels})
    assert io.read(tmp_path / "ij.tif", voxel_size=(1, 1, 1)).channel_names == ("dna", "mem", "bf")
    assert io.read(tmp_path / "js.tif", voxel_size=(1, 1, 1)).channel_names == ("dna", "mem", "bf")
    assert io.read(tmp_path / "planes.tif", voxel_size=(1, 1, 1)).channel_names == ("c0", "c1", "c2")


def test_a_given_time_interval_fills_a_gap_and_never_silently_contradicts_the_file(tmp_path: Path) -> None:
    data = np.zeros((3, 2, 8, 8), np.uint8)
    stated = _imagej(tmp_path / "stated.tif", data, "TZYX", finterval=60.0)
    silent = _imagej(tmp_path / "silent.tif", data, "TZYX")
    assert io.read(silent).time_interval is None
    given = io.read(silent, time_interval=90)
    assert given.time_interval == 90.0 and given.provenance.parameters["time_interval_source"] == "user"
    assert io.read(stated, time_interval=60.1).time_interval == pytest.approx(60.1)  # the file's, quoted
    with pytest.raises(MetadataError, match=r"file 60 s vs given 90 s.*--force-metadata") as e:
        io.read(stated, time_interval=90)
    assert e.value.field == "time_interval" and e.value.path == str(stated)
    forced = io.read(stated, time_interval=90, force=True)
    assert forced.time_interval == 90.0
    assert forced.provenance.parameters["time_interval_source"] == "user (forced over file)"
    for bad in (0, -5, float("nan"), "soon"):
        with pytest.raises(MetadataError, match="positive number of seconds"):
            io.read(silent, time_interval=bad)  # type: ignore[arg-type]
    # info shows what a read would use, and where it came from
    assert io.describe(silent, time_interval=90)["time_interval_source"] == "user"
    assert io.describe(stated)["time_interval_source"] == "file"


def test_kept_handles_are_closed_at_exit(tmp_path: Path) -> None:
    """A kept handle left open at exit prints ``ResourceWarning: unclosed file`` to the user's terminal."""
    import subprocess
    import sys

    path = _imagej(tmp_path / "m.tif", np.zeros((3, 2, 8, 8), np.uint8), "TZYX")
    code = f"from subcell import io; print(io.read({str(path)!r}).numpy().shape)"
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "(3, 1, 2, 8, 8)" in done.stdout, done.stderr
    assert "ResourceWarning" not in done.stderr and "unclosed" not in done.stderr, done.stderr
