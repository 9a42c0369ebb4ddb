"""How plates name their wells: rows by letters (A … Z, AA …), columns by number, as NGFF plates and the plate
readouts order them. Shared by the readers of plate metadata (:mod:`subcell.io.ome_xml`), the plate writer, ``info``
and the report's plate maps.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["column_sort_key", "parse_well", "row_letters", "row_sort_key"]

_WELL = re.compile(r"^([A-Za-z]+)[-_ ]?0*(\d+)$")


def parse_well(text: str) -> tuple[str, str]:
    """``"B3"``, ``"b03"``, ``"AA12"``, ``"B-3"`` → (row, column) as NGFF names them (``"B"``, ``"3"``)."""
    m = _WELL.match(str(text).strip())
    if m is None:
        raise ValueError(f"expected a well such as B3 or B03 (row letters, column number), got {text!r}")
    return m.group(1).upper(), str(int(m.group(2)))


def row_sort_key(row: str) -> tuple[int, str]:
    """Plate order of rows: A … Z, then AA … AF (a 1536-well plate)."""
    return len(row), row


def column_sort_key(column: str) -> tuple[int, Any]:
    """Plate order of columns: by number (2 before 10)."""
    return (0, int(column)) if column.isdigit() else (1, column)


def row_letters(n: int) -> str:
    """Row number → letters as plates name rows: 1 → A, 26 → Z, 27 → AA."""
    if n < 1:
        raise ValueError(f"expected a row number from 1, got {n}")
    letters = ""
    while n:
        n, r = divmod(n - 1, 26)
        letters = chr(65 + r) + letters
    return letters
