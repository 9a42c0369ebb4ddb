"""Small files next to the images: YAML settings (configs, workflows) and result tables (CSV / Parquet)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from subcell.errors import InputFileError
from subcell.io._atomic import atomic_output

__all__ = ["TABLE_SUFFIXES", "read_yaml", "write_table"]

TABLE_SUFFIXES = (".csv", ".parquet")


def read_yaml(path: str | Path, *, what: str = "settings file") -> Any:
    """Parse a YAML file; a missing file or invalid YAML is a one-line :class:`InputFileError`."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{what} not found", path=p)
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise InputFileError(f"not valid YAML ({str(e).splitlines()[0]})", path=p) from None


def write_table(frame: Any, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a pandas DataFrame as ``.csv`` or ``.parquet`` (chosen by the suffix), atomically."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputFileError(f"tables are written as {' or '.join(TABLE_SUFFIXES)}", path=p)
    with atomic_output(p, overwrite=overwrite) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return p
