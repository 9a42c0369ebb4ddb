"""Dataset manifests (CSV or Parquet): one row per field of view or cell, validated up front.

Columns (only ``source`` is required; other columns are kept as free metadata):

=================  ===============================================================================
``source``         image path, relative to the manifest's folder (or absolute)
``source_channel`` channel name or index in ``source``
``target``         optional target image path; ``target_channel`` its channel
``split``          ``train``, ``val`` or ``test``
``structure``      structure name (e.g. ``dna``, ``mitochondria``)
``mask``/``mask_*`` optional mask / label image paths (e.g. ``mask_cell``, ``mask_nucleus``)
``voxel_size_z/y/x``  voxel-size override in µm (all three or none)
``scene``          scene index or name
``axes``           axes of a plain TIFF source whose file does not state them, e.g. ``TZYX``
``time_interval``  seconds between frames of a time-lapse whose file does not state them
``id``             unique row identifier
=================  ===============================================================================

:func:`read_manifest` reports *all* problems at once, each as ``row N, column C: value V: expected E``.
A CSV may be comma-, semicolon- (with decimal commas, as Excel saves it where the comma is the decimal mark) or
tab-separated (:func:`subcell.io.files.csv_format`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subcell.errors import InputFileError, ManifestError, SubcellError
from subcell.image import VoxelSize
from subcell.io.files import csv_format

__all__ = ["KNOWN_COLUMNS", "SPLITS", "Manifest", "ManifestRow", "manifest_from_records", "read_manifest"]

SPLITS = ("train", "val", "test")
_VS_COLUMNS = ("voxel_size_z", "voxel_size_y", "voxel_size_x")
_PATH_COLUMNS = ("source", "target")
KNOWN_COLUMNS = (
    "id", "source", "source_channel", "target", "target_channel", "split", "structure", "scene", "axes",
    "time_interval", *_VS_COLUMNS,
)  # fmt: skip


@dataclass(frozen=True)
class ManifestRow:
    """One validated manifest row with absolute paths."""

    row: int
    source: Path
    source_channel: str | None = None
    target: Path | None = None
    target_channel: str | None = None
    split: str | None = None
    structure: str | None = None
    masks: dict[str, Path] = field(default_factory=dict)
    voxel_size: VoxelSize | None = None
    scene: str | None = None
    id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    axes: str | None = None
    time_interval: float | None = None


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: its path and rows (iterate, ``len``, index; ``.split("train")``)."""

    path: Path
    rows: tuple[ManifestRow, ...]

    def __iter__(self) -> Iterator[ManifestRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> ManifestRow:
        return self.rows[i]

    def split(self, name: str) -> list[ManifestRow]:
        """Rows of one split."""
        return [r for r in self.rows if r.split == name]


_DECIMAL_COMMA = r"^\s*([-+]?\d+),(\d+(?:[eE][-+]?\d+)?)\s*$"


def _load_table(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            fmt = csv_format(path)
            df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, sep=fmt["sep"])
            if fmt["decimal"] == ",":  # read as text: the numbers' decimal commas made points here (the
                for col in {*_VS_COLUMNS, "time_interval"} & set(df.columns):  # numeric columns; ids, paths stay)
                    df[col] = df[col].str.replace(_DECIMAL_COMMA, r"\1.\2", regex=True)
        elif suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif path.is_dir():  # `subcell batch` also takes a batch's OUTDIR, recognised by its batch.parquet
            raise InputFileError("a folder: expected a .csv or .parquet manifest (or a batch OUTDIR, which holds "
                                 "batch.parquet)", path=path)  # fmt: skip
        else:
            raise InputFileError("manifest must be a .csv or .parquet file", path=path)
    except SubcellError:
        raise
    except Exception as e:
        raise InputFileError(
            f"manifest could not be parsed ({type(e).__name__}: {str(e).splitlines()[0]})", path=path
        ) from None
    df.columns = [str(c).strip() for c in df.columns]
    return [{str(k): _clean(v) for k, v in rec.items()} for rec in df.to_dict(orient="records")]


def _clean(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, str):
        v = v.strip()
        return v or None
    return v


def read_manifest(path: str | Path, *, check_files: bool = True, require_files: bool = True) -> Manifest:
    """Read and validate a manifest, reporting every problem at once.

    Parameters
    ----------
    path : str or Path
        ``.csv`` or ``.parquet``.
    check_files : bool
        Also open each referenced image's metadata (no pixels): channel selectors must exist and every
        image needs a voxel size (from the file or the override), which must not contradict the file's.
    require_files : bool
        A referenced file that does not exist is a manifest problem (default). ``subcell batch`` passes
        ``False``: there a missing file fails its own item and the rest of the collection still runs.

    Raises
    ------
    ManifestError
        With ``.issues``: one line per problem (row, column, value, what was expected).
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError("manifest not found", path=p)
    return manifest_from_records(_load_table(p), p, check_files=check_files, require_files=require_files)


def manifest_from_records(
    records: list[dict[str, Any]], path: Path, *, check_files: bool = True, require_files: bool = True
) -> Manifest:
    """Validate manifest rows given as records (column -> value; relative paths are relative to ``path``'s
    folder), as :func:`read_manifest` does for the rows of a file; ``path`` names them in the errors."""
    p = Path(path)
    base = p.parent
    issues: list[str] = []
    columns = list(records[0].keys()) if records else []
    if not records:
        raise ManifestError(p, ["the manifest has no rows"])
    if "source" not in columns:
        raise ManifestError(
            p, [f"column 'source': missing; expected a column of image paths (columns found: {columns})"]
        )
    mask_columns = [c for c in columns if c == "mask" or c.startswith("mask_")]
    present_vs = [c for c in _VS_COLUMNS if c in columns]
    if present_vs and len(present_vs) != 3:
        issues.append(f"columns {present_vs}: voxel-size override needs all of {list(_VS_COLUMNS)}")

    rows: list[ManifestRow] = []
    seen_ids: dict[str, int] = {}
    vs_by_file: dict[Path, tuple[int, VoxelSize]] = {}
    for i, rec in enumerate(records, start=1):
        where = f"row {i}"

        def bad(column: str, value: Any, expected: str, where: str = where) -> None:
            issues.append(f"{where}, column '{column}': value {value!r}: {expected}")

        paths: dict[str, Path | None] = {}
        for col in (*_PATH_COLUMNS, *mask_columns):
            value = rec.get(col)
            if value is None:
                if col == "source":
                    bad(col, value, "expected an image path (empty)")
                paths[col] = None
                continue
            resolved = (base / str(value)).resolve() if not Path(str(value)).is_absolute() else Path(str(value))
            if require_files and not resolved.exists():
                bad(col, value, f"file not found (looked for {resolved})")
            paths[col] = resolved
        split = rec.get("split")
        if split is not None and str(split) not in SPLITS:
            bad("split", split, f"expected one of {list(SPLITS)}")
        vs = None
        if len(present_vs) == 3:
            vals = [rec.get(c) for c in _VS_COLUMNS]
            if any(v is not None for v in vals):
                parsed = []
                for c, v in zip(_VS_COLUMNS, vals, strict=True):
                    try:
                        f = float(v)  # type: ignore[arg-type]
                        if not math.isfinite(f) or f <= 0:
                            raise ValueError
                        parsed.append(f)
                    except (TypeError, ValueError):
                        bad(c, v, "expected a positive number of µm (all three voxel_size columns or none)")
                if len(parsed) == 3:
                    vs = VoxelSize(*parsed)
        axes = _str_or_none(rec.get("axes"))
        if axes is not None and (not axes.isalpha() or len(set(axes.upper())) != len(axes)):
            bad("axes", axes, "expected distinct axis letters, e.g. TZYX")
        interval = _positive_or_none(rec.get("time_interval"))
        if interval is not None and math.isnan(interval):
            bad("time_interval", rec.get("time_interval"), "expected a positive number of seconds")
            interval = None
        rid = rec.get("id")
        if rid is not None:
            if str(rid) in seen_ids:
                bad("id", rid, f"expected unique ids (also used in row {seen_ids[str(rid)]})")
            seen_ids[str(rid)] = i
        for col in ("source", "target", *mask_columns):
            fp = paths.get(col)
            if vs is not None and fp is not None:
                if fp in vs_by_file and not vs_by_file[fp][1].isclose(vs):
                    other_row, other = vs_by_file[fp]
                    bad(
                        "voxel_size_z",
                        f"{vs.as_tuple()}",
                        f"conflicting voxel sizes for the same file: row {other_row} says {other.as_tuple()}",
                    )
                vs_by_file.setdefault(fp, (i, vs))
        meta = {k: v for k, v in rec.items() if k not in KNOWN_COLUMNS and k not in mask_columns}
        source = paths.get("source")
        if source is not None:
            rows.append(
                ManifestRow(
                    row=i,
                    source=source,
                    source_channel=_str_or_none(rec.get("source_channel")),
                    target=paths.get("target"),
                    target_channel=_str_or_none(rec.get("target_channel")),
                    split=_str_or_none(split),
                    structure=_str_or_none(rec.get("structure")),
                    masks={c: m for c in mask_columns if (m := paths.get(c)) is not None},
                    voxel_size=vs,
                    scene=_scene_or_none(rec.get("scene")),
                    id=_str_or_none(rid),
                    metadata=meta,
                    axes=axes,
                    time_interval=interval,
                )
            )
    if check_files and not issues:
        issues.extend(_check_files(rows))
    if issues:
        raise ManifestError(p, issues)
    return Manifest(path=p, rows=tuple(rows))


def _str_or_none(v: Any) -> str | None:
    return None if v is None else str(v)


def _scene_or_none(v: Any) -> str | None:
    """A scene index or name; an index written as a float (``1.0``: pandas writes a column of numbers with empty
    cells so) is its integer."""
    text = _str_or_none(v)
    if text is not None and re.fullmatch(r"\d+\.0*", text):
        return text.split(".")[0]
    return text


def _positive_or_none(v: Any) -> float | None:
    """A positive finite number, None for an empty cell, NaN for anything else (reported by the caller)."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) and f > 0 else math.nan


def _check_files(rows: list[ManifestRow]) -> list[str]:
    """Open each referenced image's metadata once; report channel and voxel-size problems per row."""
    from subcell.io.reader import axes_for, read

    issues: list[str] = []
    cache: dict[tuple[Any, ...], Any] = {}
    for r in rows:
        checks = [("source", r.source, r.source_channel), ("target", r.target, r.target_channel)]
        checks += [(c, m, None) for c, m in r.masks.items()]
        for col, fp, channel in checks:
            if fp is None:
                continue
            # the row's axes and time interval describe its source, and its other plain TIFFs' layout
            axes, interval = (r.axes, r.time_interval) if col == "source" else (axes_for(fp, r.axes), None)
            key = (fp, r.voxel_size, r.scene, axes, interval)
            if key not in cache:
                try:
                    cache[key] = read(fp, voxel_size=r.voxel_size, scene=r.scene, axes=axes, time_interval=interval)
                except SubcellError as e:
                    cache[key] = e
            got = cache[key]
            if isinstance(got, SubcellError):
                issues.append(f"row {r.row}, column '{col}': value {fp.name!r}: {got.message}")
                continue
            if channel is not None:
                try:
                    got.channel_index(channel)
                except SubcellError as e:
                    issues.append(f"row {r.row}, column '{col}_channel': value {channel!r}: {e.message}")
    return issues
