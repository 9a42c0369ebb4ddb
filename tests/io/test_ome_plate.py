"""Plates and positions stated in OME-XML: an OME-TIFF exported from an HCS acquisition (Bio-Formats writes the
plate's wells and fields into its OME-XML) gives a manifest row per field with its well, as an OME-Zarr plate does,
and becomes an NGFF plate with `manifest plate`; scene names give wells through --name-pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from subcell import io
from subcell.cli.main import run
from subcell.io.ome_xml import ome_collection
from tests.conftest import insert_plate_xml, ome_plate_xml, write_bioformats2raw, write_ome_tiff

NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def test_ome_xml_plate_wells_fields_and_problems() -> None:
    images = "".join(f'<Image ID="Image:{i}" Name="p{i}"/>' for i in range(4))
    plate = ome_plate_xml({(1, 2): [2, 0], (26, 0): [1]})  # image 3 is in no well (an overview)
    got = ome_collection(f'<OME xmlns="{NS}">{plate}{images}</OME>')
    assert got.names == ["p0", "p1", "p2", "p3"] and not got.problems
    assert got.wells == {
        2: {"plate": "screen1", "well": "B3", "row": "B", "column": "3", "field": "0"},
        0: {"plate": "screen1", "well": "B3", "row": "B", "column": "3", "field": "1"},
        1: {"plate": "screen1", "well": "AA1", "row": "AA", "column": "1", "field": "0"},
    }
    bad_row = plate.replace('Row="26"', 'Row="x"')
    assert "expected whole-number Row and Column" in ome_collection(f'<OME xmlns="{NS}">{bad_row}{images}</OME>'
                                                                   ).problems[0]  # fmt: skip
    missing = ome_plate_xml({(0, 0): [7]})
    assert "refers to image 'Image:7'" in ome_collection(f'<OME xmlns="{NS}">{missing}{images}</OME>').problems[0]
    assert ome_collection("not xml").names == []
    # a plate imaged twice: its PlateAcquisitions say which run each field is from
    runs = ('<PlateAcquisition ID="PlateAcquisition:0" Name="0h"><WellSampleRef ID="WellSample:0"/>'
            '<WellSampleRef ID="WellSample:2"/></PlateAcquisition><PlateAcquisition ID="PlateAcquisition:1" '
            'Name="24h"><WellSampleRef ID="WellSample:1"/></PlateAcquisition></Plate>')  # fmt: skip
    twice = ome_collection(f'<OME xmlns="{NS}">{plate.replace("</Plate>", runs)}{images}</OME>')
    assert {i: w["acquisition"] for i, w in twice.wells.items()} == {2: "0h", 0: "24h", 1: "0h"}
    assert "acquisition" not in got.wells[0]  # one run: no column
    # a multi-file set: each file carries every image; only those whose planes it holds are its own
    two = (
        '<Image ID="Image:0"><Pixels><TiffData><UUID FileName="a.ome.tif">u</UUID></TiffData></Pixels></Image>'
        '<Image ID="Image:1"><Pixels><TiffData><UUID FileName="b.ome.tif">v</UUID></TiffData></Pixels></Image>'
    )
    assert ome_collection(f'<OME xmlns="{NS}">{two}</OME>', "b.ome.tif").local == {1}
    # by the document's own UUID where it states one: a renamed file still holds its images
    assert ome_collection(f'<OME xmlns="{NS}" UUID="v">{two}</OME>', "renamed.ome.tif").local == {1}


def test_an_ome_tiff_plate_gives_a_row_per_field_and_becomes_an_ngff_plate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arrays = write_ome_tiff(tmp_path / "screen.ome.tif", ["pos0", "pos1", "pos2", "overview"],
                       ome_plate_xml({(1, 2): [0, 1], (2, 0): [2]}))  # fmt: skip
    assert run(["info", str(tmp_path / "screen.ome.tif")]) == 0
    out = capsys.readouterr().out
    assert "screen1: 2 wells in rows B–C" in out and "on disk (the whole file)" in out  # (its bytes: all scenes')
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path / "screen.ome.tif")]) == 0
    table = pd.read_csv(tmp_path / "m.csv", dtype=str)
    assert list(table.id) == ["screen_B_3_0", "screen_B_3_1", "screen_C_1_0"]  # the overview is in no well
    assert list(table.well) == ["B3", "B3", "C1"] and list(table.scene) == ["0", "1", "2"]
    assert list(table.scene_name) == ["pos0", "pos1", "pos2"] and set(table.plate) == {"screen1"}
    assert run(["manifest", "plate", str(tmp_path / "m.csv"), str(tmp_path / "screen.zarr")]) == 0
    plate = io.describe(tmp_path / "screen.zarr")
    assert plate["scenes"] == ["B/3/0", "B/3/1", "C/1/0"] and plate["plate"]["name"] == "screen1"
    for scene, a in (("B/3/0", arrays[0]), ("B/3/1", arrays[1]), ("C/1/0", arrays[2])):
        image = io.read(tmp_path / "screen.zarr", scene=scene)
        np.testing.assert_array_equal(image.numpy()[0, 0], a)
        assert image.voxel_size.as_tuple() == pytest.approx((0.5, 0.2, 0.2))


def test_a_broken_plate_in_ome_xml_is_a_one_line_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_ome_tiff(tmp_path / "screen.ome.tif", ["a", "b"], ome_plate_xml({(0, 0): [0, 5]}))
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path / "screen.ome.tif")]) == 2
    err = capsys.readouterr().err
    assert "screen.ome.tif" in err and "refers to image 'Image:5'" in err and not (tmp_path / "m.csv").exists()


def test_several_plates_are_written_one_at_a_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    xml = ome_plate_xml({(0, 0): [0]}, "day1", 0) + ome_plate_xml({(0, 0): [1]}, "day2", 1)
    arrays = write_ome_tiff(tmp_path / "two.ome.tif", ["a", "b"], xml)
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path / "two.ome.tif")]) == 0
    assert list(pd.read_csv(tmp_path / "m.csv", dtype=str).id) == ["two_day1_A_1_0", "two_day2_A_1_0"]
    capsys.readouterr()
    assert run(["manifest", "plate", str(tmp_path / "m.csv"), str(tmp_path / "p.zarr")]) == 2
    assert "the rows are of 2 plates (day1, day2); write one at a time (--plate NAME)" in capsys.readouterr().err
    assert not (tmp_path / "p.zarr").exists()
    assert run(["manifest", "plate", str(tmp_path / "m.csv"), str(tmp_path / "p.zarr"), "--plate", "day2"]) == 0
    assert io.describe(tmp_path / "p.zarr")["plate"]["name"] == "day2"
    np.testing.assert_array_equal(io.read(tmp_path / "p.zarr").numpy()[0, 0], arrays[1])


def test_scene_names_give_wells_through_the_name_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A multi-position acquisition whose positions are named for their wells (no plate in its metadata)."""
    write_ome_tiff(tmp_path / "run.ome.tif", ["Well B3, Field 1", "Well B3, Field 2", "Well C10, Field 1"])
    pattern = r"Well (?P<well>[A-P]\d+), Field (?P<field>\d+)"
    out = tmp_path / "m.csv"
    assert (
        run(["manifest", "make", str(out), str(tmp_path / "run.ome.tif"), "--scenes", "--name-pattern", pattern]) == 0
    )
    table = pd.read_csv(out, dtype=str)
    assert list(table.well) == ["B3", "B3", "C10"] and list(table.field) == ["1", "2", "1"]
    assert list(table.scene) == ["0", "1", "2"]
    second = io.read(tmp_path / "run.ome.tif", scene="Well B3, Field 2")  # a scene by its image's Name too
    assert second.numpy().min() >= 200 and io.read(tmp_path / "run.ome.tif", scene="Image:1").numpy().min() >= 200
    assert run(["manifest", "plate", str(out), str(tmp_path / "p.zarr")]) == 0
    assert io.describe(tmp_path / "p.zarr")["scenes"] == ["B/3/1", "B/3/2", "C/10/1"]
    capsys.readouterr()
    assert run(["manifest", "make", str(tmp_path / "n.csv"), str(tmp_path / "run.ome.tif"), "--scenes",
                "--name-pattern", r"Well (?P<well>B\d+)"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "scene 'Well C10, Field 1': its name does not match --name-pattern" in err
    assert "Field 2" not in err and not (tmp_path / "n.csv").exists()


def test_a_bioformats2raw_store_of_a_plate_gives_its_series_wells(tmp_path: Path) -> None:
    """bioformats2raw --no-hcs writes a plate's fields as series; its OME-XML still places each in a well."""
    from subcell.io.manifest_make import make_manifest

    arrays = [np.full((2, 8, 8), i, np.uint16) for i in range(3)]
    write_bioformats2raw(tmp_path / "s.zarr", arrays, ["f0", "f1", "f2"], True,
                         ome_plate_xml({(0, 1): [0, 2], (3, 0): [1]}))  # fmt: skip
    table = make_manifest([tmp_path / "s.zarr"], tmp_path / "m.csv")
    assert list(table.series) == ["0", "1", "2"] and list(table.well) == ["A2", "D1", "A2"]
    assert list(table.field) == ["0", "0", "1"]
    assert io.describe(tmp_path / "s.zarr")["plate"]["wells"] == 2


def test_a_screen_from_an_ome_tiff_plate_is_segmented_and_measured_per_field(tmp_path: Path) -> None:
    """The flow a screen takes: an HCS OME-TIFF → a row per field → `batch segment` → `batch measure` of its
    outputs: each field's nuclei measured in that field's own scene (the chain's intensity image and scene), as
    the single command with --intensity-scene measures them, and per well in the tables."""
    from subcell import synth

    fields = [synth.synth_field(shape=(10, 128, 128), n_cells=2, seed=40 + s) for s in range(2)]
    vs = fields[0].image.voxel_size.as_tuple()
    meta = {"axes": "CZYX", "PhysicalSizeZ": vs[0], "PhysicalSizeY": vs[1], "PhysicalSizeX": vs[2],
            "Channel": {"Name": ["dna", "membrane"]}}  # fmt: skip
    path = tmp_path / "screen.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        for s, f in enumerate(fields):  # the second field twice as bright: its intensities tell the scenes apart
            tw.write(f.image.sel(channel=["dna", "membrane"]).numpy()[0] * (s + 1), metadata={**meta, "Name": f"p{s}"})
    insert_plate_xml(path, ome_plate_xml({(0, 0): [0], (0, 1): [1]}))
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(path)]) == 0
    seg, tables = tmp_path / "seg", tmp_path / "tables"
    assert run(["batch", "segment", str(tmp_path / "m.csv"), str(seg), "-w", "nucleus", "--workers", "1",
                "--quiet"]) == 0  # fmt: skip
    assert run(["batch", "measure", str(seg), str(tables), "--workers", "1", "--quiet"]) == 0
    for s, item in enumerate(["screen_A_1_0", "screen_A_2_0"]):
        single = tmp_path / f"single{s}.parquet"
        assert run(["measure", str(seg / f"{item}.ome.zarr"), str(single), "--intensity", str(path),
                    "--intensity-scene", str(s)]) == 0  # fmt: skip
        got, want = pd.read_parquet(tables / f"{item}.parquet"), pd.read_parquet(single)
        pd.testing.assert_frame_equal(got, want)
        assert want.dna_mean.notna().all() and len(want) > 0
    measured = pd.read_parquet(tables / "measurements")
    per_well = measured.groupby("well").dna_mean.median()
    assert per_well["A2"] > 1.5 * per_well["A1"]  # each field measured in its own scene


def test_the_scenes_of_one_plate_file_are_read_without_parsing_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing an HCS OME-TIFF reads each field's scene: the file's OME-XML is parsed once per process and file
    version, not once per field (384 fields took 119 s), and a rewritten file is parsed anew."""
    import ome_types

    from subcell.io import _tiff

    path = tmp_path / "screen.ome.tif"
    write_ome_tiff(path, [f"p{i}" for i in range(6)], ome_plate_xml({(0, i): [i] for i in range(6)}))
    calls = []
    real = ome_types.from_xml
    monkeypatch.setattr(ome_types, "from_xml", lambda *a, **k: calls.append(1) or real(*a, **k))
    _tiff.close_kept()
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(path)]) == 0
    assert len(pd.read_csv(tmp_path / "m.csv")) == 6 and len(calls) == 1
    arrays = write_ome_tiff(path, [f"q{i}" for i in range(7)], ome_plate_xml({(1, i): [i] for i in range(7)}))
    later = io.read(path, scene="q6")  # the new version of the file, not the kept handle of the old one
    np.testing.assert_array_equal(later.numpy()[0, 0], arrays[6])
    assert len(calls) == 2


def test_a_plate_imaged_twice_keeps_its_runs_apart_in_the_ngff_plate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """OME-XML PlateAcquisitions → the manifest's `acquisition` column → the NGFF plate's `acquisitions` and each
    well image's: read back, every field is of its run (they were written as one pooled run)."""
    import json

    runs = ('<PlateAcquisition ID="PlateAcquisition:0" Name="0h"><WellSampleRef ID="WellSample:0"/>'
            '<WellSampleRef ID="WellSample:2"/></PlateAcquisition><PlateAcquisition ID="PlateAcquisition:1" '
            'Name="24h"><WellSampleRef ID="WellSample:1"/></PlateAcquisition></Plate>')  # fmt: skip
    xml = ome_plate_xml({(0, 0): [0, 1], (0, 1): [2]}).replace("</Plate>", runs)
    arrays = write_ome_tiff(tmp_path / "screen.ome.tif", ["a", "b", "c"], xml)
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path / "screen.ome.tif")]) == 0
    assert run(["manifest", "plate", str(tmp_path / "m.csv"), str(tmp_path / "p.zarr")]) == 0
    plate = json.loads((tmp_path / "p.zarr" / ".zattrs").read_text())["plate"]
    assert plate["acquisitions"] == [{"id": 0, "name": "0h", "maximumfieldcount": 1},
                                     {"id": 1, "name": "24h", "maximumfieldcount": 1}]  # fmt: skip
    assert run(["manifest", "make", str(tmp_path / "back.csv"), str(tmp_path / "p.zarr")]) == 0
    back = pd.read_csv(tmp_path / "back.csv", dtype=str)
    assert list(zip(back.well, back.field, back.acquisition, strict=True)) == [("A1", "0", "0h"), ("A1", "1", "24h"),
                                                                              ("A2", "0", "0h")]  # fmt: skip
    np.testing.assert_array_equal(io.read(tmp_path / "p.zarr", scene="A/1/1").numpy()[0, 0], arrays[1])
    capsys.readouterr()
    assert run(["info", str(tmp_path / "p.zarr")]) == 0
    assert "screen1: 2 wells in row A, columns 1–2; 1–2 fields per well over 2 acquisitions" in capsys.readouterr().out
    # some rows of a run and some of none: which run the others belong to is unknown, so nothing is written
    table = pd.read_csv(tmp_path / "m.csv", dtype=str)
    table.loc[1, "acquisition"] = None
    table.to_csv(tmp_path / "mixed.csv", index=False)
    assert run(["manifest", "plate", str(tmp_path / "mixed.csv"), str(tmp_path / "mixed.zarr")]) == 2
    err = capsys.readouterr().err
    assert "field 1 (well A1, field 1) has no acquisition; the others are of 0h" in err
    assert not (tmp_path / "mixed.zarr").exists()


def test_a_multi_scene_file_read_as_one_image_says_which_scene(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command given a plate or multi-position OME-TIFF without --scene reads its first image and says so (three
    of four fields were dropped without a word)."""
    arrays = write_ome_tiff(tmp_path / "run.ome.tif", ["a", "b", "c", "d"])
    assert run(["convert", str(tmp_path / "run.ome.tif"), str(tmp_path / "first.ome.zarr")]) == 0
    assert "read Image:0, the first of its 4 images (--scene NAME for another" in capsys.readouterr().err
    assert run(["convert", str(tmp_path / "run.ome.tif"), str(tmp_path / "c.ome.zarr"), "--scene", "c"]) == 0
    assert "note" not in capsys.readouterr().err
    np.testing.assert_array_equal(io.read(tmp_path / "c.ome.zarr").numpy()[0, 0], arrays[2])


def test_a_files_ome_xml_is_parsed_once_for_its_plate_and_its_scene_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`manifest make --scenes` asks an OME-TIFF for its plate (none here), then for its scenes' names: one parse."""
    from subcell.io import _tiff

    write_ome_tiff(tmp_path / "run.ome.tif", ["a", "b", "c"])
    calls = []
    real = _tiff.ome_collection
    monkeypatch.setattr(_tiff, "ome_collection", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path / "run.ome.tif"), "--scenes"]) == 0
    assert list(pd.read_csv(tmp_path / "m.csv").scene_name) == ["a", "b", "c"] and len(calls) == 1
