"""`subcell manifest plate`: a manifest's images written as the fields of an OME-Zarr HCS plate, read back as the
plate they were written as; bad rows refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from subcell import io
from subcell.cli.main import run
from subcell.io.wells import parse_well
from tests.conftest import cli_user_error

META = {"axes": "ZYX", "PhysicalSizeZ": 0.5, "PhysicalSizeY": 0.2, "PhysicalSizeX": 0.2}


def _positions(folder: Path, n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 4000, (3, 8, 10)).astype(np.uint16) for _ in range(n)]
    for i, a in enumerate(arrays):
        tifffile.imwrite(folder / f"pos{i}.ome.tif", a, ome=True, metadata=META)
    return arrays


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_manifest_becomes_a_plate_read_back_field_by_field(tmp_path: Path, version: str) -> None:
    arrays = _positions(tmp_path)
    pd.DataFrame({"source": [f"pos{i}.ome.tif" for i in range(3)], "well": ["B03", "b3", "A1"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    plate = tmp_path / "screen.zarr"
    assert run(["manifest", "plate", str(tmp_path / "m.csv"), str(plate), "--ngff-version", version]) == 0
    assert io.describe(plate)["scenes"] == ["A/1/0", "B/3/0", "B/3/1"]  # plate order; a well's fields as listed
    for scene, a in (("A/1/0", arrays[2]), ("B/3/0", arrays[0]), ("B/3/1", arrays[1])):
        image = io.read(plate, scene=scene)
        np.testing.assert_array_equal(image.numpy()[0, 0], a)
        assert image.voxel_size.as_tuple() == pytest.approx((0.5, 0.2, 0.2))
    assert (plate / "zarr.json").is_file() == (version == "0.5")
    import warnings

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    with warnings.catch_warnings():  # (ome-zarr-py notes it read 0.4 where it defaults to 0.5)
        warnings.simplefilter("ignore")
        (node, *_) = list(Reader(parse_url(str(plate)))())  # another NGFF reader sees a plate
    assert [type(s).__name__ for s in node.specs] == ["Plate"]
    assert run(["manifest", "make", str(tmp_path / "back.csv"), str(plate)]) == 0  # and it is a plate to us
    assert list(pd.read_csv(tmp_path / "back.csv", dtype=str).well) == ["A1", "B3", "B3"]


def test_bad_rows_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _positions(tmp_path)
    rows = {"source": [f"pos{i}.ome.tif" for i in range(3)]}
    plate = tmp_path / "screen.zarr"
    pd.DataFrame({**rows, "well": ["B3", "nine", None]}).to_csv(tmp_path / "bad.csv", index=False)
    assert run(["manifest", "plate", str(tmp_path / "bad.csv"), str(plate)]) == 2  # every row's problem at once
    err = capsys.readouterr().err
    assert "row 2, column 'well': value 'nine': expected a well such as B3" in err
    assert "row 3, column 'well': value None: expected a column 'well'" in err
    pd.DataFrame({**rows, "well": ["B3", "B3", "A1"], "field": ["0", "0", "0"]}).to_csv(tmp_path / "twice.csv",
                                                                                       index=False)  # fmt: skip
    err = cli_user_error(capsys, "manifest", "plate", str(tmp_path / "twice.csv"), str(plate))
    assert "fields 0 and 1 are both well B3, field 0" in err
    tifffile.imwrite(tmp_path / "two.ome.tif", np.zeros((3, 2, 8, 10), np.uint16), ome=True,
                     metadata={**META, "axes": "ZCYX"})  # fmt: skip
    pd.DataFrame({"source": ["pos0.ome.tif", "two.ome.tif"], "well": ["B3", "B4"]}).to_csv(tmp_path / "mixed.csv",
                                                                                          index=False)  # fmt: skip
    err = cli_user_error(capsys, "manifest", "plate", str(tmp_path / "mixed.csv"), str(plate))
    assert "well B4 field 0: channels ['c0', 'c1'], the plate's are ['c0']" in err
    assert not plate.exists() and not list(tmp_path.glob(".screen.zarr*"))  # nothing half-written


def test_well_names() -> None:
    assert [parse_well(w) for w in ("B3", "b03", "AA12", "C-7")] == [("B", "3"), ("B", "3"), ("AA", "12"), ("C", "7")]
    with pytest.raises(ValueError, match="expected a well"):
        parse_well("3B")


@pytest.mark.parametrize(("names", "pattern", "scenes"), [
    (["B03_s1", "B03_s2", "A01_s1"], r"(?P<well>[A-P]\d+)_s(?P<field>\d+)", ["A/1/1", "B/3/1", "B/3/2"]),
    (["r02c03f01", "r02c03f02", "r01c01f01"], r"r(?P<row>\d+)c(?P<column>\d+)f(?P<field>\d+)",
     ["A/1/01", "B/3/01", "B/3/02"]),  # an Opera / Phenix name: row 2 is B
])  # fmt: skip
def test_wells_and_fields_from_file_names_make_a_plate(tmp_path: Path, names: list[str], pattern: str,
                                                       scenes: list[str]) -> None:  # fmt: skip
    (tmp_path / "run").mkdir()
    rng = np.random.default_rng(1)
    arrays = {n: rng.integers(0, 4000, (3, 8, 10)).astype(np.uint16) for n in names}
    for n, a in arrays.items():
        tifffile.imwrite(tmp_path / "run" / f"{n}.ome.tif", a, ome=True, metadata=META)
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path / "run"), "--name-pattern", pattern]) == 0
    assert run(["manifest", "plate", str(tmp_path / "m.csv"), str(tmp_path / "p.zarr")]) == 0
    assert io.describe(tmp_path / "p.zarr")["scenes"] == scenes
    np.testing.assert_array_equal(io.read(tmp_path / "p.zarr", scene=scenes[-1]).numpy()[0, 0], arrays[names[1]])


def test_a_file_name_the_pattern_misses_is_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _positions(tmp_path, n=1)
    assert (
        run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path), "--name-pattern", r"(?P<well>[A-P]\d+)_s"])
        == 2
    )
    assert "file 'pos0.ome.tif': its name does not match --name-pattern" in capsys.readouterr().err
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path), "--name-pattern", r"pos\d"]) == 2
    assert "expected named groups such as (?P<well>...)" in capsys.readouterr().err
    assert not (tmp_path / "m.csv").exists()
