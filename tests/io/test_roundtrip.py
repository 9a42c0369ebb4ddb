"""Round trips OME-TIFF <-> OME-Zarr <-> Image over dtypes, dimensionalities, channels and numpy/dask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from subcell import io
from tests.conftest import make_image

CASES = [
    ("YX", (33, 47)),
    ("ZYX", (5, 33, 47)),
    ("TZYX", (3, 4, 20, 21)),
    ("CZYX", (2, 4, 20, 21)),
    ("TCZYX", (2, 3, 4, 16, 18)),
]
OUTPUTS = ["x.ome.zarr", "x.ome.tif"]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize(("dims", "shape"), CASES)
@pytest.mark.parametrize("dask", [False, True])
@pytest.mark.parametrize("name", OUTPUTS)
def test_round_trip_is_exact(
    tmp_path: Path, dtype: str, dims: str, shape: tuple[int, ...], dask: bool, name: str
) -> None:
    img = make_image(dims, shape, dtype, dask=dask)
    out = io.write(img, tmp_path / name)
    back = io.read(out)
    assert back.is_lazy
    assert back.shape == img.shape
    assert back.dtype == img.dtype
    assert back.voxel_size == img.voxel_size
    assert back.channel_names == img.channel_names
    assert back.time_interval == pytest.approx(img.time_interval) if img.time_interval else back.time_interval is None
    np.testing.assert_array_equal(back.numpy(), img.numpy())
    # provenance of the written image comes back, with the read recorded after it
    assert back.provenance.history[-1]["step"] == img.provenance.step
    assert back.provenance.step == "read"


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_ome_tiff_to_ome_zarr_to_image(tmp_path: Path, ngff: str) -> None:
    img = make_image("TCZYX", (2, 2, 6, 40, 50), "uint16")
    tif = io.write(img, tmp_path / "a.ome.tif")
    zarr_path = io.write(io.read(tif), tmp_path / "b.ome.zarr", ngff_version=ngff)
    back = io.read(zarr_path)
    assert io.describe(zarr_path)["format"] == f"ome-zarr (NGFF {ngff})"
    np.testing.assert_array_equal(back.numpy(), img.numpy())
    assert back.voxel_size == img.voxel_size and back.channel_names == img.channel_names
    tif2 = io.write(back, tmp_path / "c.ome.tiff")
    np.testing.assert_array_equal(io.read(tif2).numpy(), img.numpy())
    steps = [h["step"] for h in io.read(tif2).provenance.history]
    assert steps.count("read") == 2  # the chain tif → zarr → tif is recorded


def test_written_ome_zarr_is_readable_by_ome_zarr_py(tmp_path: Path) -> None:
    """napari-ome-zarr reads through ome-zarr-py: check it sees the pyramid and physical scale."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    img = make_image("CZYX", (2, 8, 600, 520), "uint16")
    path = io.write(img, tmp_path / "p.ome.zarr", labels={"cell": np.ones((8, 600, 520), np.uint16)})
    nodes = list(Reader(parse_url(str(path)))())
    image_node = nodes[0]
    assert len(image_node.data) >= 2  # a pyramid
    scale0 = image_node.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale0[2:] == pytest.approx([0.29, 0.108, 0.0975])
    assert image_node.metadata["channel_names"] == ["ch-0", "ch-1"]
    assert any("cell" in str(n.zarr) for n in nodes[1:])


def test_written_ome_tiff_has_ome_units_for_fiji(tmp_path: Path) -> None:
    import tifffile
    from ome_types import from_xml

    img = make_image("CZYX", (2, 3, 10, 12), "uint16")
    path = io.write(img, tmp_path / "f.ome.tif")
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome
        ome = from_xml(tf.ome_metadata)
    px = ome.images[0].pixels
    assert (px.physical_size_z, px.physical_size_y, px.physical_size_x) == (0.29, 0.108, 0.0975)
    assert px.physical_size_x_unit.value == "µm"
    assert [c.name for c in px.channels] == ["ch-0", "ch-1"]


def test_ome_tiff_from_frames_made_while_written(tmp_path: Path) -> None:
    """`write_ome_tiff(frames=...)`: timepoints made as they are written give the file of the whole image; the
    metadata asked at the end (`described`) is the one read back; a wrong number or shape of frames is refused
    with nothing left under the name."""
    from subcell.errors import ValueRangeError
    from subcell.io.ome_tiff_writer import write_ome_tiff

    img = make_image("TCZYX", (3, 2, 4, 16, 18), "uint16")
    later = img.with_data(img.data, step="made later", parameters={"known": "at the end, " * 300})
    write_ome_tiff(img, tmp_path / "x.ome.tif", frames=iter(img.numpy()), described=lambda: later)
    back = io.read(tmp_path / "x.ome.tif")
    assert np.array_equal(back.numpy(), img.numpy()) and back.provenance.history[-1]["step"] == "made later"
    assert back.voxel_size == img.voxel_size and back.channel_names == img.channel_names
    for frames in (img.numpy()[:2], list(img.numpy()) * 2, img.numpy()[:, :1]):
        with pytest.raises(ValueRangeError, match="frame"):
            write_ome_tiff(img, tmp_path / "bad.ome.tif", frames=iter(frames))
        assert not list(tmp_path.glob("*bad*"))
