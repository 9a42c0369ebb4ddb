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
