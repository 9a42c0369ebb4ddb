from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from subcell import io
from subcell.errors import InputFileError, OutputExistsError


def test_read_yaml_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"cfg\.yaml: config file not found"):
        io.read_yaml(tmp_path / "cfg.yaml", what="config file")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(InputFileError, match=r"bad\.yaml: not valid YAML"):
        io.read_yaml(bad)
    good = tmp_path / "good.yaml"
    good.write_text("a: {b: 2}\n")
    assert io.read_yaml(good) == {"a": {"b": 2}}


@pytest.mark.parametrize("name", ["t.csv", "t.parquet"])
def test_write_table_round_trips_and_respects_overwrite(tmp_path: Path, name: str) -> None:
    frame = pd.DataFrame({"label": [1, 2], "volume_um3": [1.5, 2.5]})
    path = io.write_table(frame, tmp_path / name)
    back = pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, frame)
    with pytest.raises(OutputExistsError):
        io.write_table(frame, path)
    with pytest.raises(InputFileError, match=r"t\.xlsx: tables are written as \.csv or \.parquet"):
        io.write_table(frame, tmp_path / "t.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_read_table_reads_semicolon_and_tab_separated_csv(tmp_path: Path) -> None:
    """Tables a user gives (labels for a classifier, a track table) saved by a spreadsheet in another locale."""
    (tmp_path / "semi.csv").write_text("cell;stage;volume_um3\n1;M1;512,5\n2;M2;64\n")
    (tmp_path / "tabs.csv").write_text("cell\tstage\tvolume_um3\n1\tM1\t512.5\n2\tM2\t64\n")
    for name in ("semi.csv", "tabs.csv"):
        t = io.read_table(tmp_path / name)
        assert list(t.columns) == ["cell", "stage", "volume_um3"], name
        assert t.volume_um3.tolist() == [512.5, 64.0] and t.stage.tolist() == ["M1", "M2"], name
