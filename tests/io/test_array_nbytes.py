"""`array_nbytes`: uncompressed size from headers only (what batch memory estimates are built on)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from subcell import Image
from subcell.io import write
from subcell.io.info import array_nbytes


def test_sizes_from_headers_match_the_arrays(tmp_path: Path) -> None:
    data = np.zeros((2, 3, 5, 40, 30), np.uint16)
    img = Image(data, voxel_size=(0.5, 0.2, 0.2), dims="TCZYX")
    for version in ("0.4", "0.5"):
        out = tmp_path / f"v{version}.ome.zarr"
        write(img, out, ngff_version=version)
        assert array_nbytes(out) == data.nbytes
        assert array_nbytes(out, per_frame=True) == data[0].nbytes  # one of the T = 2 timepoints
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((7, 16, 16), np.float32))
    assert array_nbytes(tmp_path / "plain.tif") == 7 * 16 * 16 * 4
    assert array_nbytes(tmp_path / "plain.tif", per_frame=True) == 7 * 16 * 16 * 4  # axes unknown: counted whole
    assert array_nbytes(tmp_path / "plain.tif", per_frame=True, axes="TYX") == 16 * 16 * 4  # the user's axes
    with tifffile.TiffWriter(tmp_path / "two.tif") as tw:  # two series: a scene is sized by its own
        tw.write(np.zeros((4, 8, 8), np.uint8), photometric="minisblack")
        tw.write(np.zeros((2, 32, 32), np.uint8), photometric="minisblack")
    assert array_nbytes(tmp_path / "two.tif", scene=1) == 2 * 32 * 32 and array_nbytes(tmp_path / "two.tif") == 256
    lapse = np.zeros((6, 3, 16, 16), np.uint16)
    tifffile.imwrite(tmp_path / "lapse.tif", lapse, imagej=True, metadata={"axes": "TZYX"})
    assert array_nbytes(tmp_path / "lapse.tif", per_frame=True) == lapse[0].nbytes  # ImageJ names its T axis
    write(img, tmp_path / "lapse.ome.tif")
    assert array_nbytes(tmp_path / "lapse.ome.tif", per_frame=True) == data[0].nbytes  # and so does OME-XML
    assert array_nbytes(tmp_path / "lapse.ome.tif") == data.nbytes
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    assert array_nbytes(tmp_path / "broken.tif") == 0  # unknown: the reader reports it when the item runs
    assert array_nbytes(tmp_path / "absent.ome.zarr") == 0
