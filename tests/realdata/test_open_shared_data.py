"""Every real dataset opens with the shape and voxel size its README / PROVENANCE states.

Files whose metadata is missing or wrong must refuse to invent a voxel size, and open once the user states it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from subcell import io
from subcell.errors import MetadataError

pytestmark = pytest.mark.realdata

# (relative path, expected sizes, expected voxel size from the file or None when the file has none trustworthy)
TRUSTED = [
    (
        "yeast_mitochondria_3dt/yeast_3d_mitochondria.ome.tif",
        {"T": 30, "Z": 17, "Y": 192, "X": 279},
        (0.25, 0.0655, 0.0655),
    ),
    (
        "aics_fov_12-881_brightfield_labels/AICS-12_881_c3_Bright_100.tif",
        {"Z": 57, "Y": 204, "X": 341},
        (0.29, 0.331, 0.294),
    ),
    (
        "aics_fov_11-409_brightfield_labels/AICS-11_409_c3_Bright_100X.tif",
        {"Z": 65, "Y": 204, "X": 292},
        (0.29, 0.331, 0.343),
    ),
    (
        "aics_cell_10-5-5_brightfield_labels/AICS-10_5_5_c3_TL_Brightfield.tif",
        {"Z": 65, "Y": 292, "X": 204},
        (0.29, 0.110, 0.0975),
    ),
    (
        "aics_cell06_2016_fluorescence/cell06_20160913_C04_004_ZCYX.tif",
        {"Z": 35, "C": 5, "Y": 333, "X": 360},
        (0.29, 0.065, 0.065),
    ),
    ("aics_bbbc034_2d_slice/AICS_12_134_C=0.tif", {"Z": 1, "Y": 1024, "X": 1024}, (None, 0.065, 0.065)),
]
# files without trustworthy metadata: (path, axes to state or None, voxel size to state, expected sizes)
UNTRUSTED = [
    ("cells3d_nuclei/nuclei.tif", None, (0.29, 0.26, 0.26), {"Z": 60, "Y": 256, "X": 256}),
    ("cells3d_membrane_2d_slices/cells3d_membrane_z30.tif", None, (1.0, 0.26, 0.26), {"Z": 1, "Y": 256, "X": 256}),
    (
        "aics_fov_cell_nucleus_labels/input_1_cellWholeIndex.tiff",
        None,
        (0.29, 0.108, 0.108),
        {"Z": 76, "Y": 1024, "X": 1024},
    ),
    (
        "aics_fov_cell_nucleus_labels/20160708_I01_001_1.ome.tif_cell.tif",
        None,
        (0.29, 0.108, 0.108),
        {"Z": 297, "Y": 753, "X": 753},
    ),
    ("aics_mitotic_composites/COMP_M0_ZCYX.tif", None, (0.29, 0.30, 0.33), {"C": 34, "Z": 43}),
    (
        "ctc_fluo-n3dh-cho_3dt/Fluo-N3DH-CHO_02_img.tif",
        "TZYX",
        (1.0, 0.202, 0.202),
        {"T": 20, "Z": 5, "Y": 443, "X": 512},
    ),
    ("ctc_2d_timelapse_tracks/2D_timelapse.tif", "TYX", (1.0, 1.0, 1.0), {"T": 30, "Z": 1, "Y": 511, "X": 511}),
    ("tgmm_tracks_3dt/tgmm-mini.tif", None, (5.0, 1.0, 1.0), {"T": 31, "Z": 29, "Y": 101, "X": 151}),
]


@pytest.mark.parametrize(("rel", "sizes", "voxel"), TRUSTED, ids=[t[0].split("/")[0] for t in TRUSTED])
def test_files_with_metadata_open_at_their_stated_scale(
    real_data: Path, rel: str, sizes: dict[str, int], voxel: tuple
) -> None:
    img = io.read(real_data / rel)
    assert img.is_lazy
    for axis, n in sizes.items():
        assert img.sizes[axis] == n
    for got, want in zip(img.voxel_size.as_tuple(), voxel, strict=True):
        if want is not None:
            assert got == pytest.approx(want, rel=2e-3)


def test_yeast_time_interval(real_data: Path) -> None:
    img = io.read(real_data / "yeast_mitochondria_3dt/yeast_3d_mitochondria.ome.tif")
    assert img.time_interval == pytest.approx(4.5356, rel=1e-4)


@pytest.mark.parametrize(("rel", "axes", "voxel", "sizes"), UNTRUSTED, ids=[t[0].split("/")[0] for t in UNTRUSTED])
def test_files_without_metadata_refuse_to_guess_then_open(
    real_data: Path, rel: str, axes: str | None, voxel: tuple, sizes: dict[str, int]
) -> None:
    with pytest.raises(MetadataError):
        io.read(real_data / rel)
    img = io.read(real_data / rel, axes=axes, voxel_size=voxel)
    for axis, n in sizes.items():
        assert img.sizes[axis] == n
    assert img.voxel_size.as_tuple() == voxel


def test_all_mitotic_cells_open_with_six_channels(real_data: Path) -> None:
    files = sorted((real_data / "aics_mitotic_cells" / "cells").glob("*.tif"))
    assert len(files) == 84
    for f in files:
        img = io.read(f, voxel_size=(0.29, 0.30, 0.33))
        assert img.sizes["C"] == 6 and 29 <= img.sizes["Z"] <= 62


def test_all_mcf7_tiles_open_as_2d_multichannel(real_data: Path) -> None:
    tiles = [
        p
        for p in sorted((real_data / "mcf7_brightfield_hoechst_2d" / "tiles").glob("*.tif"))
        if "_labelled" not in p.name
    ]
    assert len(tiles) == 24
    for t in tiles:
        img = io.read(t, voxel_size=(1.0, 0.3112, 0.3112))
        assert img.sizes["C"] in (3, 4) and img.sizes["Z"] == 1 and (img.sizes["Y"], img.sizes["X"]) == (512, 512)


def test_real_file_converts_and_round_trips(real_data: Path, tmp_path: Path) -> None:
    src = real_data / "aics_cell06_2016_fluorescence/cell06_20160913_C04_004_ZCYX.tif"
    img = io.read(src)
    back = io.read(io.write(img, tmp_path / "c.ome.zarr"))
    assert back.voxel_size == img.voxel_size
    assert (back.numpy() == img.numpy()).all()
