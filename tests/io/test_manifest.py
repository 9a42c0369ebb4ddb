from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from subcell import Image, io
from subcell.errors import ManifestError


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    img = Image(
        np.zeros((2, 4, 16, 16), np.uint16), voxel_size=(0.29, 0.1, 0.1), dims="CZYX", channel_names=["bf", "dna"]
    )
    io.write(img, tmp_path / "a.ome.tif")
    io.write(img, tmp_path / "b.ome.tif")
    tifffile.imwrite(
        tmp_path / "raw.tif", np.zeros((4, 16, 16), np.uint16), photometric="minisblack"
    )  # no voxel size in the file
    return tmp_path


def _csv(folder: Path, rows: list[dict[str, object]]) -> Path:
    path = folder / "m.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_valid_manifest_with_relative_paths_and_free_metadata(dataset: Path) -> None:
    path = _csv(dataset, [
        {"id": "a", "source": "a.ome.tif", "source_channel": "bf", "target": "a.ome.tif", "target_channel": "dna", "split": "train", "plate": "P1"},
        {"id": "b", "source": "b.ome.tif", "source_channel": "bf", "target": "b.ome.tif", "target_channel": "1", "split": "test", "plate": "P2"},
        {"id": "r", "source": "raw.tif", "split": "val", "voxel_size_z": 0.5, "voxel_size_y": 0.2, "voxel_size_x": 0.2, "plate": "P2"},
    ])  # fmt: skip
    m = io.read_manifest(path)
    assert len(m) == 3
    assert m[0].source == (dataset / "a.ome.tif").resolve()
    assert m[1].metadata == {"plate": "P2"}
    assert m[2].voxel_size is not None and m[2].voxel_size.z == 0.5
    assert [r.id for r in m.split("test")] == ["b"]


def test_spreadsheet_csv_dialects(dataset: Path) -> None:
    """A manifest saved by Excel where the comma is the decimal mark (semicolons, decimal commas, a BOM, CRLF)
    or as tab-separated text reads as the comma-separated one does; a path or name with a comma stays whole."""
    expected = [("a", (dataset / "a.ome.tif").resolve(), None), ("r, 2", (dataset / "raw.tif").resolve(), 0.25)]
    semicolons = ("\ufeffid;source;voxel_size_z;voxel_size_y;voxel_size_x;well\r\na;a.ome.tif;;;;1,2\r\n"
                  "r, 2;raw.tif;0,25;0,1;1e-1;3,4\r\n")  # fmt: skip
    tabs = "id\tsource\tvoxel_size_z\tvoxel_size_y\tvoxel_size_x\na\ta.ome.tif\t\t\t\nr, 2\traw.tif\t0.25\t0.1\t0.1\n"
    for name, text in (("semicolons.csv", semicolons), ("tabs.csv", tabs)):
        (dataset / name).write_text(text, encoding="utf-8")
        m = io.read_manifest(dataset / name)
        got = [(r.id, r.source, r.voxel_size.z if r.voxel_size else None) for r in m]
        assert got == expected, name
        assert m[1].voxel_size is not None and m[1].voxel_size.y == pytest.approx(0.1)
    assert io.read_manifest(dataset / "semicolons.csv")[0].metadata == {"well": "1,2"}  # not a number: kept as written


def test_parquet_manifest(dataset: Path) -> None:
    path = dataset / "m.parquet"
    pd.DataFrame([{"source": "a.ome.tif", "split": "train"}]).to_parquet(path)
    assert io.read_manifest(path)[0].split == "train"


def test_missing_source_column(dataset: Path) -> None:
    path = _csv(dataset, [{"image": "a.ome.tif"}])
    with pytest.raises(ManifestError, match=r"column 'source': missing"):
        io.read_manifest(path)


def test_all_bad_rows_are_reported_at_once(dataset: Path) -> None:
    path = _csv(dataset, [
        {"source": "a.ome.tif", "split": "train", "voxel_size_z": 0.29, "voxel_size_y": 0.1, "voxel_size_x": 0.1},
        {"source": "missing.tif", "split": "train", "voxel_size_z": "", "voxel_size_y": "", "voxel_size_x": ""},
        {"source": "b.ome.tif", "split": "training", "voxel_size_z": "", "voxel_size_y": "", "voxel_size_x": ""},
        {"source": "a.ome.tif", "split": "test", "voxel_size_z": 1.0, "voxel_size_y": 0.1, "voxel_size_x": 0.1},
        {"source": "b.ome.tif", "split": "val", "voxel_size_z": -1, "voxel_size_y": 0.1, "voxel_size_x": 0.1},
    ])  # fmt: skip
    with pytest.raises(ManifestError) as err:
        io.read_manifest(path)
    issues = err.value.issues
    assert len(issues) == 4, issues
    assert any(i.startswith("row 2, column 'source': value 'missing.tif': file not found") for i in issues)
    assert any(
        i.startswith("row 3, column 'split': value 'training': expected one of ['train', 'val', 'test']")
        for i in issues
    )
    assert any(
        i.startswith("row 4, column 'voxel_size_z'") and "conflicting voxel sizes" in i and "row 1" in i for i in issues
    )
    assert any(i.startswith("row 5, column 'voxel_size_z': value '-1'") for i in issues)


def test_file_checks_find_channels_and_voxel_sizes(dataset: Path) -> None:
    path = _csv(dataset, [
        {"source": "a.ome.tif", "source_channel": "membrane"},
        {"source": "raw.tif"},
        {"source": "b.ome.tif", "voxel_size_z": 2.0, "voxel_size_y": 0.1, "voxel_size_x": 0.1},
    ])  # fmt: skip
    with pytest.raises(ManifestError) as err:
        io.read_manifest(path)
    issues = err.value.issues
    assert len(issues) == 3, issues
    assert "row 1, column 'source_channel': value 'membrane': unknown channel" in issues[0]
    assert issues[1].startswith("row 2, column 'source': value 'raw.tif': voxel size unknown")
    assert issues[2].startswith(
        "row 3, column 'source': value 'b.ome.tif': the given voxel size contradicts the file's"
    )
    assert len(io.read_manifest(path, check_files=False)) == 3


def test_partial_voxel_size_columns(dataset: Path) -> None:
    path = _csv(dataset, [{"source": "a.ome.tif", "voxel_size_z": 1.0}])
    with pytest.raises(ManifestError, match=r"voxel-size override needs all of"):
        io.read_manifest(path)


def test_reading_columns_axes_time_interval_and_scene(dataset: Path) -> None:
    """A plain TIFF movie opens on the row's axes and time interval (its mask too, a plain TIFF of the same
    layout), a scene index written as a float is its integer, and bad values are reported with the others."""
    from subcell.labelfree.data import load_volumes

    movie = np.zeros((3, 2, 4, 16, 16), np.uint16)  # T C Z Y X, which the file does not say
    movie[:, 1, :, 4:12, 4:12] = 100
    tifffile.imwrite(dataset / "movie.tif", movie, photometric="minisblack")
    tifffile.imwrite(dataset / "mask.tif", np.ones((3, 1, 4, 16, 16), np.uint8), photometric="minisblack")
    vs = {"voxel_size_z": 0.5, "voxel_size_y": 0.2, "voxel_size_x": 0.2}
    row = {"id": "m", "source": "movie.tif", "target": "movie.tif", "source_channel": 0, "target_channel": 1,
           "mask": "mask.tif", **vs}  # fmt: skip
    with pytest.raises(ManifestError, match="cannot tell which of the axes"):
        io.read_manifest(_csv(dataset, [row]))
    m = io.read_manifest(_csv(dataset, [row | {"axes": "TCZYX", "time_interval": 30, "scene": 0.0}]))
    assert (m[0].axes, m[0].time_interval, m[0].scene) == ("TCZYX", 30.0, "0")
    volumes, *_ = load_volumes(m, input_channel=None, targets=None, voxel_size=None, mask_column="mask")
    assert len(volumes) == 3 and all(v.weight is not None and v.weight.all() for v in volumes)  # one per timepoint
    bad = [row | {"axes": "TTZYX", "time_interval": -1}, row | {"id": "n", "axes": "T C", "time_interval": "soon"}]
    with pytest.raises(ManifestError) as err:
        io.read_manifest(_csv(dataset, bad), check_files=False)
    issues = err.value.issues
    assert len(issues) == 4, issues
    assert "row 1, column 'axes': value 'TTZYX'" in issues[0] and "row 1, column 'time_interval'" in issues[1]
    assert "row 2, column 'axes': value 'T C'" in issues[2] and "value 'soon'" in issues[3]
