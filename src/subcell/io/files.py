"""Small files next to the images: YAML settings (configs, workflows) and result tables (CSV / Parquet)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from subcell.errors import InputFileError
from subcell.io._atomic import atomic_output

__all__ = [
    "TABLE_SUFFIXES",
    "csv_format",
    "read_napari_tracks",
    "read_yaml",
    "unify_parquet_folder",
    "write_bundle",
    "write_files",
    "write_table",
]

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
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputFileError(f"not valid YAML ({where}{problem})", path=p) from None


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


def write_files(folder: Path, files: Mapping[str, bytes]) -> None:
    """Raw bytes into a folder being made (sub-folders when a name has a ``/``): the files of :func:`write_bundle`,
    and of the streams it runs, inside its atomic write."""
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)


def write_bundle(
    path: str | Path,
    *,
    tables: dict[str, Any] | None = None,
    images: dict[str, Any] | None = None,
    files: dict[str, bytes] | None = None,
    labels: dict[str, Any] | None = None,
    streams: Sequence[Callable[[Path], None]] = (),
    overwrite: bool = False,
) -> Path:
    """Write a folder of results (tables by suffix, :class:`~subcell.image.Image` s, label images, raw bytes such
    as PNGs, in sub-folders when the name has a ``/``) that appears only once every file in it is complete.

    ``streams``: functions called last with the unfinished folder, each writing files into it as it computes them
    (outputs made together from one read of their input, too large to hand over as bytes)."""
    from subcell.io.writer import write

    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.mkdir()
        for name, frame in (tables or {}).items():
            write_table(frame, tmp / name)
        for name, image in (images or {}).items():
            write(image, tmp / name)
        for name, image in (labels or {}).items():
            write(image, tmp / name, is_label=True)
        write_files(tmp, files or {})
        for stream in streams:
            stream(tmp)
    return Path(path)


def read_napari_tracks(path: str | Path) -> Any:
    """A napari Tracks layer's data saved with ``numpy.save`` — (N, 4 or 5) ``track_id, t, [z,] y, x`` in data
    coordinates — as a DataFrame with those column names."""
    import numpy as np
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputFileError("point tracks not found", path=p)
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as e:
        raise InputFileError(f"unreadable .npy ({type(e).__name__}: {e})", path=p) from None
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise InputFileError(f"expected a napari Tracks array (N, 4 or 5) [track_id, t, (z,) y, x], got {arr.shape}",
                             path=p, field="points")  # fmt: skip
    return pd.DataFrame(
        arr, columns=["track_id", "t", "y", "x"] if arr.shape[1] == 4 else ["track_id", "t", "z", "y", "x"]
    )


def csv_format(path: str | Path) -> dict[str, str]:
    """``pandas.read_csv`` options for a CSV as spreadsheets write it: comma-separated, or semicolon-separated
    with decimal commas (Excel where the comma is the decimal mark: much of Europe), or tab-separated. Told
    apart by the header line (column names hold none of the three), not guessed from the values."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        header = next((line for line in f if line.strip()), "")
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    sep = max(counts, key=lambda k: counts[k]) if any(counts.values()) else ","
    return {"sep": sep, "decimal": "," if sep == ";" else "."}


def read_table(path: str | Path, *, what: str = "table") -> Any:
    """A ``.csv`` or ``.parquet`` table as a pandas DataFrame (a ``.json`` object, such as a command's
    ``metrics.json``, as one row); a one-line error naming the file otherwise."""
    import json

    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{what} not found", path=p)
    try:
        if p.suffix.lower() == ".json":
            record = json.loads(p.read_text())
            if not isinstance(record, dict):
                raise ValueError(f"expected a JSON object, got {type(record).__name__}")
            return pd.DataFrame([{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in record.items()}])
        if p.suffix.lower() == ".csv":
            fmt = csv_format(p)
            return pd.read_csv(p, sep=fmt["sep"], decimal=fmt["decimal"])
        return pd.read_parquet(p)
    except Exception as e:
        raise InputFileError(f"unreadable {what} ({type(e).__name__}: {e})", path=p) from None


def parquet_rows(path: str | Path) -> int:
    """The number of rows of a Parquet file, from its footer (no column is read)."""
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception as e:
        raise InputFileError(f"unreadable Parquet file ({type(e).__name__}: {e})", path=Path(path)) from None


def store_table(store: str | Path, name: str) -> Any:
    """The table ``tables/<name>.parquet`` stored inside an OME-Zarr (see ``OmeZarrWriter.add_table``), or None."""
    p = Path(store) / "tables" / f"{name}.parquet"
    return read_table(p, what=f"{name} table") if p.is_file() else None


def unify_parquet_folder(folder: str | Path) -> list[str]:
    """Give the Parquet files of ``folder`` (one dataset, e.g. a batch's gathered tables) one schema, the union of
    their columns: a folder is read with its first file's schema (pyarrow's default, so pandas'), so a column the
    first file lacks is dropped for every file, and an integer column meeting floats fails to read. A file lacking a
    column gets it empty; integers that meet floats become floats. Each file that changes is rewritten atomically;
    returns their names. Columns whose types cannot be reconciled (text in one file, numbers in another) raise a
    one-line error naming the folder, and no file is changed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from subcell.io._atomic import atomic_output

    files = sorted(Path(folder).glob("*.parquet"))
    schemas = [pq.read_schema(f).remove_metadata() for f in files]
    if len(set(map(str, schemas))) <= 1:
        return []
    try:
        union = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InputFileError(f"its tables disagree on a column's type: {err}", path=folder) from None
    rewritten = []
    for path, schema in zip(files, schemas, strict=True):
        if schema.equals(union):
            continue
        table = pq.read_table(path)
        columns = [
            table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in union
        ]
        with atomic_output(path, overwrite=True) as tmp:
            pq.write_table(pa.Table.from_arrays(columns, schema=union), tmp)
        rewritten.append(path.name)
    return rewritten
