"""Write images as the fields of an OME-Zarr HCS plate (NGFF ``plate`` / ``well``), e.g. a folder of per-position
files whose wells the manifest names: ``subcell manifest plate fields.csv screen.zarr``.

Each field is streamed into ``ROW/COLUMN/FIELD`` by the package's OME-Zarr writer (pyramid, µm, channel names,
provenance), then the plate and well metadata are written; the whole plate is built under a temporary name and
renamed into place only when every field is written, so a plate that exists is complete. ome-zarr-py writes plate
metadata too, but not our fields (their pyramids, units and provenance) nor atomically; the metadata itself is a
few JSON keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subcell.errors import ValueRangeError
from subcell.io.wells import column_sort_key, parse_well, row_letters, row_sort_key

__all__ = ["PlateField", "manifest_fields", "manifest_plates", "write_plate"]


@dataclass(frozen=True)
class PlateField:
    """One field: its well's row and column, its name in the well (``"0"``, ``"1"``, …), how to read its image
    (called when the field is written, so one image at a time is open) and, of a plate imaged more than once, the
    name of the acquisition (run) it is from."""

    row: str
    column: str
    field: str
    read: Callable[[], Any]
    acquisition: str | None = None


def manifest_plates(manifest: Any) -> list[str]:
    """The plates a manifest's column ``plate`` names, in order of first appearance (none without the column)."""
    return list(dict.fromkeys(str(r.metadata["plate"]) for r in manifest if r.metadata.get("plate") is not None))


def manifest_fields(manifest: Any, plate: str | None = None) -> list[PlateField]:
    """The fields of a manifest's rows (:class:`~subcell.io.Manifest`): the well from column ``well`` (``B3``) or
    ``row`` + ``column``; the field from ``field``, else the row's place among its well's rows (``0``, ``1``, …);
    its run from ``acquisition``; each read with the row's voxel size, scene, axes and time interval. ``plate``: only the rows of that plate
    (column ``plate``), which a manifest of several plates needs (their wells share names). Every row's problem is
    reported at once (:class:`~subcell.errors.ManifestError`)."""
    from subcell.errors import ManifestError
    from subcell.io.reader import read

    plates = manifest_plates(manifest)
    if plate is None and len(plates) > 1:
        shown = ", ".join(plates[:10]) + (", …" if len(plates) > 10 else "")
        raise ManifestError(manifest.path, [f"column 'plate': the rows are of {len(plates)} plates ({shown}); "
                                            "write one at a time (--plate NAME)"])  # fmt: skip
    if plate is not None and plate not in plates:
        raise ManifestError(manifest.path, [f"column 'plate': no row of plate {plate!r}; the manifest has "
                                            f"{', '.join(plates[:10]) or 'no plate column'}"])  # fmt: skip
    issues: list[str] = []
    fields: list[PlateField] = []
    counts: dict[tuple[str, str], int] = {}
    for r in manifest:
        meta = r.metadata
        if plate is not None and str(meta.get("plate")) != plate:
            continue
        try:
            if meta.get("well") is not None:
                row, column = parse_well(str(meta["well"]))
            elif meta.get("row") is not None and meta.get("column") is not None:
                row = str(meta["row"]).strip()
                row = row_letters(int(row)) if row.isdigit() else row  # r02c03 (Opera, Phenix): row 2 is B
                row, column = parse_well(f"{row}{str(meta['column']).strip()}")
            else:
                raise ValueError("expected a column 'well' (e.g. B3), or 'row' and 'column'")
        except ValueError as e:
            issues.append(f"row {r.row}, column 'well': value {meta.get('well')!r}: {e}")
            continue
        index = counts.get((row, column), 0)
        counts[(row, column)] = index + 1
        field = str(meta["field"]) if meta.get("field") is not None else str(index)

        def read_row(r: Any = r) -> Any:
            return read(r.source, voxel_size=r.voxel_size, scene=r.scene, axes=r.axes, time_interval=r.time_interval)

        run = str(meta["acquisition"]) if meta.get("acquisition") is not None else None
        fields.append(PlateField(row, column, field.removesuffix(".0"), read_row, run))
    if issues:
        raise ManifestError(manifest.path, issues)
    return fields


def write_plate(fields: Sequence[PlateField], path: str | Path, *, name: str | None = None,
                ngff_version: str = "0.4", overwrite: bool = False) -> Path:  # fmt: skip
    """Write ``fields`` as an HCS plate at ``path`` (rows and columns in plate order, the fields of a well in the
    order given); returns the path. Every field must have the first one's channels. Fields that name their
    acquisition give the plate its NGFF ``acquisitions`` (ids in order of first appearance) and each well image its
    ``acquisition``, so the runs of a plate imaged more than once stay apart. Raises before anything is written for
    a repeated (row, column, field), a bad name or some fields without an acquisition where others have one; a field
    that cannot be read leaves nothing."""
    import zarr

    from subcell.io._atomic import atomic_output
    from subcell.io._ngff import ngff_attrs
    from subcell.io.ome_zarr_writer import NGFF_VERSIONS, write_ome_zarr

    out = Path(path)
    if ngff_version not in NGFF_VERSIONS:
        raise ValueRangeError(f"expected one of {NGFF_VERSIONS}, got {ngff_version!r}", field="ngff_version")
    if not fields:
        raise ValueRangeError("no fields to write", field="fields")
    seen: dict[tuple[str, str, str], int] = {}
    for i, f in enumerate(fields):
        key = (f.row, f.column, f.field)
        if not (f.row.isalnum() and f.column.isalnum() and f.field.isalnum()):
            raise ValueRangeError(f"field {i}: row {f.row!r}, column {f.column!r} and field {f.field!r} must be "
                                  "letters and digits (they are folder names)", field="well")  # fmt: skip
        if key in seen:
            raise ValueRangeError(f"fields {seen[key]} and {i} are both well {f.row}{f.column}, field {f.field}",
                                  field="field")  # fmt: skip
        seen[key] = i
    runs = list(dict.fromkeys(f.acquisition for f in fields if f.acquisition is not None))
    without = [i for i, f in enumerate(fields) if f.acquisition is None]
    if runs and without:
        f = fields[without[0]]
        raise ValueRangeError(f"field {without[0]} (well {f.row}{f.column}, field {f.field}) has no acquisition; the "
                              f"others are of {', '.join(runs[:5])}", field="acquisition")  # fmt: skip
    fmt = 2 if ngff_version == "0.4" else 3
    with atomic_output(out, overwrite=overwrite) as tmp:  # the whole plate, or nothing
        root = zarr.open_group(str(tmp), mode="w", zarr_format=fmt)  # type: ignore[arg-type]
        wells: dict[tuple[str, str], list[dict[str, Any]]] = {}
        channels: list[str] | None = None
        for f in fields:
            image = f.read()
            if channels is None:
                channels = list(image.channel_names)
            elif list(image.channel_names) != channels:
                raise ValueRangeError(f"well {f.row}{f.column} field {f.field}: channels {list(image.channel_names)}"
                                      f", the plate's are {channels}", field="channels")  # fmt: skip
            root.require_group(f.row).require_group(f.column)
            write_ome_zarr(image, tmp / f.row / f.column / f.field, ngff_version=ngff_version)
            run = {"acquisition": runs.index(f.acquisition)} if f.acquisition is not None else {}
            wells.setdefault((f.row, f.column), []).append({"path": f.field, **run})
        rows = sorted({r for r, _ in wells}, key=row_sort_key)
        columns = sorted({c for _, c in wells}, key=column_sort_key)
        ordered = sorted(wells, key=lambda w: (row_sort_key(w[0]), column_sort_key(w[1])))
        plate = {
            "name": name or out.name.split(".")[0],
            "rows": [{"name": r} for r in rows],
            "columns": [{"name": c} for c in columns],
            "wells": [
                {"path": f"{r}/{c}", "rowIndex": rows.index(r), "columnIndex": columns.index(c)} for r, c in ordered
            ],
            "field_count": max(len(v) for v in wells.values()),
        }
        if runs:
            plate["acquisitions"] = [
                {"id": i, "name": run, "maximumfieldcount": max(sum(im.get("acquisition") == i for im in v)
                                                                for v in wells.values())}
                for i, run in enumerate(runs)
            ]  # fmt: skip
        # (0.4 states the version inside the plate and well blocks; 0.5 in the ome block, ngff_attrs)
        v04 = {"version": ngff_version} if ngff_version == "0.4" else {}
        root.attrs.update(ngff_attrs({"plate": {**plate, **v04}}, ngff_version))
        for (r, c), images in wells.items():
            well = {"images": images, **v04}
            root[f"{r}/{c}"].attrs.update(ngff_attrs({"well": well}, ngff_version))
    return out
