from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from subcell import Image, io
from subcell.errors import OutputExistsError, ValueRangeError
from subcell.image import VoxelSize
from subcell.io import OmeZarrWriter
from subcell.io.pyramid import plan_pyramid


def test_block_by_block_fill_equals_whole_write(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.integers(0, 4000, (1, 1, 20, 300, 280), dtype=np.uint16)
    with OmeZarrWriter(
        tmp_path / "blocks.ome.zarr",
        shape=data.shape,
        dtype=data.dtype,
        voxel_size=(0.29, 0.108, 0.108),
        chunks=(1, 1, 10, 128, 128),
    ) as w:
        for z0 in range(0, 20, 10):
            for y0 in range(0, 300, 128):
                for x0 in range(0, 280, 128):
                    region = (slice(0, 1), slice(0, 1), slice(z0, z0 + 10), slice(y0, y0 + 128), slice(x0, x0 + 128))
                    w.write_region(region, data[region])
    back = io.read(tmp_path / "blocks.ome.zarr")
    np.testing.assert_array_equal(back.numpy(), data)


def test_pyramid_levels_are_local_means_with_exact_scales(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.normal(100, 10, (1, 1, 8, 1024, 1024)).astype(np.float32)
    img = io.read(io.write(_image(data), tmp_path / "p.ome.zarr"))
    group = zarr.open_group(str(tmp_path / "p.ome.zarr"), mode="r")
    ms = group.attrs["multiscales"][0]
    assert len(ms["datasets"]) >= 3
    level1 = group["1"][...]
    expected = data[0, 0].reshape(8, 512, 2, 512, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(level1[0, 0], expected, rtol=1e-5)
    scale1 = ms["datasets"][1]["coordinateTransformations"][0]["scale"]
    assert scale1[2:] == pytest.approx([0.29, 0.216, 0.216])
    assert img.voxel_size == VoxelSize(0.29, 0.108, 0.108)


def test_plan_pyramid_makes_anisotropic_stacks_more_isotropic() -> None:
    factors = plan_pyramid((64, 4096, 4096), VoxelSize(0.29, 0.108, 0.108))
    assert factors[0] == (1, 1, 1)
    assert factors[1] == (1, 2, 2)  # z is already coarser than 2 × 0.108 µm
    assert any(f[0] > 1 for f in factors)  # later levels also halve z
    assert 4096 // factors[-1][1] <= 256


def test_labels_are_stored_as_ngff_labels_and_downsampled_by_stride(tmp_path: Path) -> None:
    labels = np.zeros((4, 600, 600), np.int32)
    labels[:, 100:300, 100:300] = 7
    labels[:, 301:303, 301:303] = 9  # too small to survive a mean, must survive as an id or vanish (never blend)
    path = io.write(_image(np.zeros((1, 1, 4, 600, 600), np.uint8)), tmp_path / "l.ome.zarr", labels={"cell": labels})
    assert io.label_names(path) == ["cell"]
    lab = io.read_labels(path, "cell")
    np.testing.assert_array_equal(lab.numpy(squeeze=True), labels)
    assert lab.voxel_size == VoxelSize(0.29, 0.108, 0.108)
    level1 = zarr.open_group(str(path / "labels" / "cell"), mode="r")["1"][...]
    assert set(np.unique(level1)) <= {0, 7, 9}
    attrs = zarr.open_group(str(path / "labels" / "cell"), mode="r").attrs
    assert "image-label" in attrs


def test_an_error_inside_the_writer_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "crash.ome.zarr"
    with (
        pytest.raises(RuntimeError, match="boom"),
        OmeZarrWriter(out, shape=(1, 1, 2, 8, 8), dtype="uint8", voxel_size=(1, 1, 1)) as w,
    ):
        w.write_region((slice(None),) * 5, np.ones((1, 1, 2, 8, 8), np.uint8))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite_and_is_replaced_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "o.ome.zarr"
    io.write(_image(np.ones((1, 1, 2, 8, 8), np.uint8)), out)
    with pytest.raises(OutputExistsError, match="overwrite"):
        io.write(_image(np.ones((1, 1, 2, 8, 8), np.uint8) * 2), out)
    nan = _image(np.full((1, 1, 2, 8, 8), np.nan, np.float32))
    with pytest.raises(ValueRangeError, match="no finite values"):
        io.write(nan, out, overwrite=True)
    np.testing.assert_array_equal(io.read(out).numpy(), 1)  # the old output survived the failed replacement
    io.write(_image(np.ones((1, 1, 2, 8, 8), np.uint8) * 3), out, overwrite=True)
    np.testing.assert_array_equal(io.read(out).numpy(), 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.ome.zarr"]


def _image(data: np.ndarray) -> Image:
    return Image(data, voxel_size=(0.29, 0.108, 0.108))


@pytest.mark.parametrize(
    ("values", "dtype", "problem"),
    [
        (np.array([0.5, 1.0], np.float32), np.uint16, "fractional"),
        (np.array([-1, 3], np.int32), np.uint8, "outside 0..255"),
        (np.array([70000], np.int64), np.uint16, "outside"),
        (np.array([np.nan, 1.0], np.float32), np.int32, "NaN"),
    ],
)
def test_lossy_casts_are_refused_and_nothing_is_written(
    tmp_path: Path, values: np.ndarray, dtype: Any, problem: str
) -> None:
    from subcell.errors import ValueRangeError
    from subcell.io import OmeZarrWriter

    out = tmp_path / "x.ome.zarr"
    w = OmeZarrWriter(out, shape=(1, 1, 1, 1, values.size), dtype=dtype, voxel_size=(1, 1, 1))
    with pytest.raises(ValueRangeError, match=problem):
        w.write_region((slice(None),) * 5, values.reshape(1, 1, 1, 1, -1))
    w.abort()
    assert not out.exists()
    w = OmeZarrWriter(out, shape=(1, 1, 1, 1, 2), dtype=np.uint16, voxel_size=(1, 1, 1))
    w.write_region((slice(None),) * 5, np.array([[[[[3.0, 65535.0]]]]]))  # whole numbers in range are fine
    w.close()


def test_label_images_keep_ids_in_the_pyramid_and_say_they_are_labels(tmp_path: Path) -> None:
    lab = np.zeros((1, 1, 2, 600, 600), np.int32)
    lab[..., :300, :] = 3
    lab[..., 300:, :] = 10  # a local mean at the border would invent ids between 3 and 10
    out = io.write(Image(lab, voxel_size=(1, 0.5, 0.5), dims="TCZYX"), tmp_path / "l.ome.zarr", is_label=True)
    root = zarr.open_group(str(out), mode="r")
    assert "image-label" in root.attrs
    for level in ("1", "2"):
        if level in root:
            assert set(np.unique(root[level][...])) <= {0, 3, 10}
    with pytest.raises(ValueRangeError, match="integer"):
        OmeZarrWriter(
            tmp_path / "f.ome.zarr", shape=(1, 1, 1, 4, 4), dtype=np.float32, voxel_size=(1, 1, 1), is_label=True
        )


def test_channel_windows_are_streamed_per_channel(tmp_path: Path) -> None:
    data = np.zeros((3, 2, 2, 32, 32), np.float32)
    data[1, 0] = 5.0  # the brightest frame of channel 0 is frame 1
    data[2, 1] = -2.0
    data[0, 1, 0, 0, 0] = np.nan
    out = io.write(Image(data, voxel_size=(1, 1, 1), dims="TCZYX"), tmp_path / "w.ome.zarr")
    chans = zarr.open_group(str(out), mode="r").attrs["omero"]["channels"]
    assert chans[0]["window"]["end"] == 5.0 and chans[1]["window"]["start"] == -2.0


def test_channel_windows_read_chunk_layers_of_a_store_without_a_pyramid() -> None:
    """A store with one level has the whole image as its coarsest level: the window is read one chunk layer at a
    time, never a whole volume, and equals the whole volume's finite min and max (NaN, inf, integers)."""
    import subcell.io.ome_zarr_writer as w

    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, 2, 12, 16, 16)).astype(np.float32)
    data[1, 0, 11, 3, 3], data[0, 1, 0, 0, 0], data[0, 1, 5, 1, 1] = 9.0, np.nan, -np.inf
    data[1, 1] = np.nan  # a frame of channel 1 with nothing finite
    arr = zarr.create_array(store=zarr.storage.MemoryStore(), shape=data.shape, chunks=(1, 1, 4, 16, 16),
                            dtype=np.float32)  # fmt: skip
    arr[:] = data
    reads: list[int] = []

    class Counted:
        shape, dtype, chunks = arr.shape, arr.dtype, arr.chunks

        def __getitem__(self, box: object) -> np.ndarray:
            part = np.asarray(arr[box])  # type: ignore[index]
            reads.append(part.shape[2])  # planes
            return part

    windows = w.channel_windows(Counted())
    fin = np.where(np.isfinite(data), data, np.nan)
    assert windows == [(float(np.nanmin(fin[:, c])), float(np.nanmax(fin[:, c]))) for c in range(2)]
    assert windows[0][1] == 9.0 and reads == [4] * (2 * 2 * 3)  # chunk layers of 4 planes, never a volume
    ints = zarr.create_array(store=zarr.storage.MemoryStore(), shape=(1, 1, 3, 4, 4), dtype=np.uint16)
    ints[:] = np.arange(48, dtype=np.uint16).reshape(1, 1, 3, 4, 4) + 7
    assert w.channel_windows(ints) == [(7.0, 54.0)]
