"""A folder of Parquet files (a batch's gathered tables) read as one table: the union of their columns, whatever the
first file held."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from subcell.errors import InputFileError
from subcell.io.files import unify_parquet_folder


def test_every_items_columns_survive_reading_the_folder(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a"], "x": [1]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"id": ["b"], "x": [2.5], "dna_mean": [7.0]}).to_parquet(tmp_path / "b.parquet")
    pd.DataFrame({"id": ["c"], "x": [3], "note": ["points"]}).to_parquet(tmp_path / "c.parquet")
    with pytest.raises(Exception, match="truncated"):  # the first file's schema decides, by default: x is int64
        pd.read_parquet(tmp_path)
    assert sorted(unify_parquet_folder(tmp_path)) == ["a.parquet", "b.parquet", "c.parquet"]
    table = pd.read_parquet(tmp_path).set_index("id")
    assert table.loc["b", "dna_mean"] == 7.0 and pd.isna(table.loc["a", "dna_mean"])
    assert table.loc["c", "note"] == "points" and table.x.tolist() == [1.0, 2.5, 3.0]  # ints met floats
    assert unify_parquet_folder(tmp_path) == []  # one schema now: nothing to rewrite
    pd.DataFrame({"id": ["d"], "x": [4.0], "extra": [1.0]}).to_parquet(tmp_path / "0.parquet")  # sorts first
    assert "extra" in pd.read_parquet(tmp_path).columns  # read by the new first file's schema…
    (tmp_path / "0.parquet").rename(tmp_path / "z.parquet")
    assert "extra" not in pd.read_parquet(tmp_path).columns  # …or dropped for every item when it comes last
    unify_parquet_folder(tmp_path)
    assert pd.read_parquet(tmp_path).set_index("id").loc["d", "extra"] == 1.0


def test_columns_of_irreconcilable_types_leave_the_files_alone(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a"], "x": [1.0]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"id": ["b"], "x": ["one"]}).to_parquet(tmp_path / "b.parquet")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(InputFileError, match="disagree on a column's type"):
        unify_parquet_folder(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
