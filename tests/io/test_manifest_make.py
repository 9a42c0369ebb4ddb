"""`subcell manifest make`: a manifest of every image in folders (a row per image or scene), checked before it is
written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from subcell import Image, io
from subcell.cli.main import run

META = {"axes": "ZYX", "PhysicalSizeZ": 0.5, "PhysicalSizeY": 0.2, "PhysicalSizeX": 0.2}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """run/plate1: two OME-TIFFs and a plain TIFF that states no voxel size; run/plate2: a three-scene OME-TIFF, an
    OME-Zarr store (one image, not searched inside) and a file that is not an image."""
    for plate in ("plate1", "plate2"):
        (tmp_path / "run" / plate).mkdir(parents=True)
    for well in ("A01", "A02"):
        tifffile.imwrite(tmp_path / "run" / "plate1" / f"{well}.ome.tif", np.zeros((3, 16, 16), np.uint8), ome=True,
                         metadata=META)  # fmt: skip
    tifffile.imwrite(tmp_path / "run" / "plate1" / "raw.tif", np.zeros((3, 16, 16), np.uint8), photometric="minisblack")
    with tifffile.TiffWriter(tmp_path / "run" / "plate2" / "multi.ome.tif", ome=True) as tw:
        for s in range(3):
            tw.write(np.full((3, 16, 16), s, np.uint8), metadata=META)
    io.write(Image(np.zeros((2, 8, 8), np.uint16), voxel_size=(1, 0.5, 0.5), dims="ZYX"),
             tmp_path / "run" / "plate2" / "B01.ome.zarr")  # fmt: skip
    (tmp_path / "run" / "plate2" / "notes.txt").write_text("not an image")
    return tmp_path


def test_a_manifest_of_folders_with_scenes_and_a_voxel_size_for_files_without_one(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tree / "fields.csv"
    assert run(["manifest", "make", str(out), str(tree / "run"), "--scenes", "--voxel-size", "1", "0.3", "0.3"]) == 0
    assert f"wrote {out}: 7 rows from 5 files (checked)" in capsys.readouterr().out
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(table.id) == ["plate1_A01", "plate1_A02", "plate1_raw", "plate2_B01", "plate2_multi_s0",
                              "plate2_multi_s1", "plate2_multi_s2"]  # fmt: skip
    assert list(table.source)[:3] == ["run/plate1/A01.ome.tif", "run/plate1/A02.ome.tif", "run/plate1/raw.tif"]
    assert list(table.scene) == ["", "", "", "", "0", "1", "2"]
    # the given voxel size goes to the file that states none; the others keep their own
    assert list(table.voxel_size_x) == ["", "", "0.3", "", "", "", ""]
    m = io.read_manifest(out)  # a valid manifest, every image opened
    second = next(r for r in m if r.id == "plate2_multi_s1")
    assert io.read(second.source, scene=second.scene).numpy().max() == 1
    assert io.read(m[2].source, voxel_size=m[2].voxel_size).voxel_size.x == 0.3


def test_every_unreadable_file_is_reported_and_nothing_is_written(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tree / "run" / "plate2" / "broken.tif").write_bytes(b"II*\x00 not a TIFF")
    out = tree / "fields.parquet"
    capsys.readouterr()
    assert run(["manifest", "make", str(out), str(tree / "run")]) == 2
    err = capsys.readouterr().err
    assert "raw.tif" in err and "voxel size unknown" in err and "broken.tif" in err
    assert not out.exists() and not list(tree.glob(".*fields*"))
    assert run(["manifest", "make", str(out), str(tree / "nowhere")]) == 2
    assert "nowhere: file not found" in capsys.readouterr().err


def test_several_inputs_name_their_rows_by_the_input(tree: Path) -> None:
    from subcell.io.manifest_make import make_manifest

    table = make_manifest([tree / "run" / "plate1", tree / "run" / "plate2" / "B01.ome.zarr"], tree / "m.csv",
                          voxel_size=(1, 0.3, 0.3))  # fmt: skip
    assert list(table.id) == ["plate1_A01", "plate1_A02", "plate1_raw", "B01"]


def test_folders_of_numbered_tiffs_are_one_image_each_with_sequences(tmp_path: Path) -> None:
    """A CTC dataset (01/t000.tif …, 02/…): a row per movie with --sequences, a row per file without."""
    from subcell.io import make_manifest

    for movie in ("01", "02"):
        (tmp_path / "ctc" / movie).mkdir(parents=True)
        for t in range(3):
            tifffile.imwrite(tmp_path / "ctc" / movie / f"t{t:03d}.tif", np.zeros((2, 8, 8), np.uint8),
                             photometric="minisblack")  # fmt: skip
    opts = {"axes": "TZYX", "voxel_size": (1.0, 0.2, 0.2), "time_interval": 60.0}
    rows = make_manifest([tmp_path / "ctc"], tmp_path / "m.csv", sequences=True, **opts)
    assert rows.id.tolist() == ["01", "02"] and rows["axes"].tolist() == ["TZYX"] * 2
    assert io.read(tmp_path / rows.source[0], axes="TZYX", voxel_size=(1.0, 0.2, 0.2)).sizes["T"] == 3
    per_file = make_manifest([tmp_path / "ctc"], tmp_path / "m.csv", axes="ZYX", voxel_size=(1.0, 0.2, 0.2))
    assert len(per_file) == 6 and per_file.id[0] == "01_t000"
    from subcell.errors import ManifestError

    with pytest.raises(ManifestError, match="one image with --sequences"):  # the movie's axes on each frame file
        make_manifest([tmp_path / "ctc"], tmp_path / "m.csv", **opts)


def test_companion_files_go_in_their_images_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Images with their labels (and targets) saved beside them under the image's name plus a suffix, as
    annotation tools and pipelines save them: one row per image, the companions in its columns."""
    from subcell.errors import ManifestError
    from subcell.io.manifest_make import make_manifest

    tiles = tmp_path / "tiles"
    (tiles / "day2").mkdir(parents=True)
    for name in ("t01", "t01_labelled", "t01_dna", "t02", "t02_labelled", "day2/t01", "day2/t01_labelled"):
        tifffile.imwrite(tiles / f"{name}.ome.tif", np.zeros((2, 8, 8), np.uint8), ome=True, metadata=META)
    table = make_manifest([tiles], tmp_path / "m.csv", companions=["labels=_labelled", "target=_dna"])
    assert list(table.id) == ["t01", "t02", "day2_t01"]  # a companion is not a row of its own
    # each its own folder's (day2/t01's labels are not t01's)
    assert list(table.labels) == ["tiles/t01_labelled.ome.tif", "tiles/t02_labelled.ome.tif",
                                  "tiles/day2/t01_labelled.ome.tif"]  # fmt: skip
    assert list(table.target.fillna("")) == ["tiles/t01_dna.ome.tif", "", ""]
    tifffile.imwrite(tiles / "t03_labelled.ome.tif", np.zeros((2, 8, 8), np.uint8), ome=True, metadata=META)
    with pytest.raises(ManifestError, match=r"t03_labelled.ome.tif'?: --companion labels=_labelled: no image 't03'"):
        make_manifest([tiles], tmp_path / "m.csv", companions=["labels=_labelled"])
    for bad in ("source=_x", "labels", "=_x"):
        with pytest.raises(ManifestError, match="expected COLUMN=SUFFIX"):
            make_manifest([tiles], tmp_path / "m.csv", companions=[bad])
    (tiles / "t03_labelled.ome.tif").unlink()
    out = tmp_path / "cli.csv"
    assert run(["manifest", "make", str(out), str(tiles), "--companion", "labels=_labelled"]) == 0
    assert f"wrote {out}: 4 rows from 4 files (checked)" in capsys.readouterr().out  # t01_dna is an image here
