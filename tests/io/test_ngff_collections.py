"""OME-Zarr collections: an HCS plate's fields and a bioformats2raw layout's series are the scenes of the store,
each also an image at its own path; ``manifest make`` gives a row per image with the plate's columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from subcell import io
from subcell.cli.main import run
from subcell.errors import InputFileError, MetadataError
from tests.conftest import cli_user_error, write_bioformats2raw, write_plate


def _fields(seed: int = 0) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {w: [rng.integers(0, 4000, (3, 8, 10)).astype(np.uint16) for _ in range(n)]
            for w, n in (("A/1", 2), ("B/3", 3))}  # fmt: skip


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_plate_reads_field_by_field_in_micrometres(tmp_path: Path, version: str) -> None:
    fields = _fields()
    plate = tmp_path / "plate.zarr"
    write_plate(plate, fields, version=version, voxel_size=(0.4, 0.25, 0.25))
    names = ["A/1/0", "A/1/1", "B/3/0", "B/3/1", "B/3/2"]
    assert io.describe(plate)["scenes"] == names
    first = io.read(plate)
    np.testing.assert_array_equal(first.numpy()[0, 0], fields["A/1"][0])
    assert first.voxel_size.as_tuple() == pytest.approx((0.4, 0.25, 0.25))
    by_name, by_index = io.read(plate, scene="B/3/1"), io.read(plate, scene=3)
    np.testing.assert_array_equal(by_name.numpy()[0, 0], fields["B/3"][1])
    np.testing.assert_array_equal(by_index.numpy()[0, 0], fields["B/3"][1])
    np.testing.assert_array_equal(io.read(plate / "B" / "3" / "2").numpy()[0, 0], fields["B/3"][2])  # a field alone
    with pytest.raises(MetadataError, match=r"unknown scene 'C/1/0'; the file has 5: A/1/0, A/1/1, B/3/0"):
        io.read(plate, scene="C/1/0")


def test_a_plate_missing_a_listed_well_is_refused(tmp_path: Path) -> None:
    plate = tmp_path / "plate.zarr"
    write_plate(plate, _fields())
    group = zarr.open_group(str(plate), mode="r+")
    del group["B/3"]
    with pytest.raises(InputFileError, match="plate lists well 'B/3', which the store lacks"):
        io.read(plate)


@pytest.mark.parametrize(("names", "listed", "scenes"), [
    (["well A", "well B", "well C"], True, ["well A", "well B", "well C"]),  # named by the OME-XML
    (None, False, ["0", "1", "2"]),  # consecutive groups, no companion XML
    (["x", "x", "y"], True, ["0", "1", "2"]),  # clashing names: the series paths
])  # fmt: skip
def test_bioformats2raw_series_are_scenes(tmp_path: Path, names: list[str] | None, listed: bool,
                                          scenes: list[str]) -> None:  # fmt: skip
    arrays = [np.full((2, 4, 4), i + 1, np.uint16) for i in range(3)]
    store = tmp_path / "converted.zarr"
    write_bioformats2raw(store, arrays, names, listed)
    assert io.describe(store)["scenes"] == scenes
    image = io.read(store, scene=scenes[1])
    assert int(image.numpy().max()) == 2 and image.voxel_size.as_tuple() == pytest.approx((1.0, 0.5, 0.5))


def test_manifest_make_gives_a_row_per_field_with_the_plate_columns(tmp_path: Path) -> None:
    (tmp_path / "screen").mkdir()
    write_plate(tmp_path / "screen" / "p1.zarr", _fields())
    write_bioformats2raw(tmp_path / "screen" / "czi.zarr", [np.ones((2, 4, 4), np.uint16)] * 2, None, False)
    store = zarr.open_group(str(tmp_path / "screen" / "cells.zarr"), mode="w")  # a plain zarr group: no image
    store.create_array("crops", shape=(2, 2), dtype="f4")
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path / "screen")]) == 0
    table = pd.read_csv(tmp_path / "m.csv", dtype=str)
    assert list(table.id) == ["czi_0", "czi_1", "p1_A_1_0", "p1_A_1_1", "p1_B_3_0", "p1_B_3_1", "p1_B_3_2"]
    assert list(table.source[2:4]) == ["screen/p1.zarr/A/1/0", "screen/p1.zarr/A/1/1"]
    plate = table[table.plate.notna()]
    assert list(plate.well) == ["A1", "A1", "B3", "B3", "B3"] and list(plate.field) == ["0", "1", "0", "1", "2"]
    assert list(plate.row) == ["A", "A", "B", "B", "B"] and list(plate.column) == ["1", "1", "3", "3", "3"]
    assert list(table.series[:2]) == ["0", "1"]
    manifest = io.read_manifest(tmp_path / "m.csv")  # every source opens as an image
    np.testing.assert_array_equal(io.read(manifest[6].source).numpy()[0, 0], _fields()["B/3"][2])


def test_info_of_an_unknown_field_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_plate(tmp_path / "p.zarr", _fields())
    err = cli_user_error(capsys, "info", str(tmp_path / "p.zarr"), "--scene", "Z/9/9")
    assert "unknown scene 'Z/9/9'" in err and "A/1/0" in err


def test_info_of_a_plate_describes_the_field_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from subcell import Image

    plate = tmp_path / "p.zarr"
    write_plate(plate, _fields())
    nuclei = Image(np.ones((1, 1, 3, 8, 10), np.int32), voxel_size=(0.5, 0.2, 0.2), channel_names=["nuclei"])
    io.write(nuclei, plate / "B" / "3" / "1" / "labels" / "nuclei", is_label=True)
    shown, other = io.describe(plate, scene="B/3/1"), io.describe(plate)
    assert shown["labels"] == ["nuclei"] and other["labels"] == []  # the field's own labels
    whole = sum(f.stat().st_size for f in plate.rglob("*") if f.is_file())
    assert 0 < other["file_bytes"] < shown["file_bytes"] < whole / 3  # the field's bytes, not the plate's
    assert run(["info", str(plate), "--scene", "B/3/1"]) == 0
    out = capsys.readouterr().out
    assert "5: A/1/0, A/1/1, B/3/0, B/3/1, B/3/2 (this is B/3/1)" in out and "nuclei" in out
    assert "plate          p: 2 wells in rows A–B, columns 1–3; 2–3 fields per well" in out
    assert shown["plate"] == {"name": "p", "rows": ["A", "B"], "columns": ["1", "3"], "wells": 2,
                              "fields_per_well": [2, 3], "acquisitions": 1}  # fmt: skip


def test_a_plate_read_as_one_image_says_which_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_plate(tmp_path / "p.zarr", _fields())
    assert run(["convert", str(tmp_path / "p.zarr"), str(tmp_path / "first.ome.tif")]) == 0
    assert "read A/1/0, the first of its 5 images (--scene NAME for another" in capsys.readouterr().err
    assert run(["convert", str(tmp_path / "p.zarr"), str(tmp_path / "b.ome.tif"), "--scene", "B/3/2"]) == 0
    assert "note" not in capsys.readouterr().err  # a field chosen: nothing to say
    np.testing.assert_array_equal(io.read(tmp_path / "b.ome.tif").numpy()[0, 0], _fields()["B/3"][2])
