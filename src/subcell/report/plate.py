"""A plate's readout: a collection's gathered table summarised per well (fields, objects per field, median size)
and drawn as plate maps, the view a screen is judged by (an edge effect, a dead well, a gradient across the plate).

The table is any gathered per-object table of a batch over an OME-Zarr plate (``subcell manifest make`` gives its
rows the ``well``, ``row``, ``column`` columns): one row per object and frame, ``id`` per field.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subcell.io.wells import column_sort_key, row_sort_key
from subcell.plotting import png_bytes, subplots

__all__ = ["PLATE_COLUMNS", "READOUTS", "plate_grid", "plate_map_png", "readout_columns", "readouts", "well_summary"]

PLATE_COLUMNS = ("id", "well", "row", "column")
# per-object columns summarised as a median per well, with their titles: an object's size as `measure` names it in
# 3D and in 2D, how fast a tracked object moved since its previous frame (`track`), and its neighbourhood
# (`measure --neighbours`: how crowded a well's cells are, how deep inside their colonies)
READOUTS = {"volume_um3": "median size (µm³)", "area_um2": "median size (µm²)",
            "speed_um_per_min": "median speed (µm/min)", "neighbours": "median neighbours",
            "colony_edge_distance_um": "median distance to the colony edge (µm)"}  # fmt: skip
ANNOTATE_WELLS = 96  # values are written in the wells up to a 96-well plate; larger plates are colour only


def readouts(columns: Any) -> dict[str, str]:
    """The columns of a per-object table summarised per well, with their titles: :data:`READOUTS`, each
    channel's mean intensity (``<channel>_mean``, as ``measure --intensity`` names it) and, where ``measure`` gave
    its local background too (``<channel>_background``), ``<channel>_above_background`` (mean − background: the
    object's own intensity, free of the background's differences between wells, which the raw mean carries), and
    the Pearson r, M1 and M2 of each pair of channels ``measure --colocalize`` compared and each channel's N/C
    ratio (``measure --nuclei``)."""
    present = set(columns)
    out = {c: title for c, title in READOUTS.items() if c in present}
    for c in sorted(present):
        if c.endswith("_radial_mean"):  # measure --radial: a position in the cell (0 nucleus … 1 edge)
            out[c] = f"median {c[: -len('_radial_mean')]} radial position"
        elif c.endswith("_mean"):
            channel = c[: -len("_mean")]
            out[c] = f"median {channel} intensity"
            if f"{channel}_background" in present:
                out[f"{channel}_above_background"] = f"median {channel} above background"
        elif c.endswith("_nc_ratio"):  # measure --nuclei: a translocation assay's readout
            out[c] = f"median {c[: -len('_nc_ratio')]} N/C ratio"
        elif c.startswith("coloc_") and c.endswith(("_pearson", "_m1", "_m2")):  # measure --colocalize A,B
            pair, _, coefficient = c[len("coloc_") :].rpartition("_")
            out[c] = f"median {'r' if coefficient == 'pearson' else coefficient.upper()} {pair}"
    return out


def readout_columns(columns: Any) -> list[str]:
    """The stored columns :func:`readouts` of a table with ``columns`` need (what to read of a large table)."""
    present = set(columns)
    need = [c for c in readouts(present) if c in present]
    return need + [f"{c[: -len('_mean')]}_background" for c in need if c.endswith("_mean")
                   and f"{c[: -len('_mean')]}_background" in present]  # fmt: skip


def well_summary(table: Any, fields: Any = None) -> Any:
    """One row per well: ``row``, ``column``, ``fields``, ``objects``, ``objects_per_field`` (per frame of a
    time-lapse: the objects of a field's frames over its frames) and the median of each of its :func:`readouts`
    (``median_volume_um3``, ``median_dna_mean``, …). Wells in plate order (A1, A2, …, B1, …).

    ``fields``: ``id``, ``well``, ``row``, ``column`` of every field that ran, where known: a field absent from the
    table (it has no object) then counts as 0 objects instead of being left out (a dead well reads 0, not blank)."""
    import pandas as pd

    t = table.copy()
    for c in ("row", "column", "well"):
        t[c] = t[c].astype(str)
    for c in readouts(t.columns):
        if c.endswith("_above_background") and c not in t.columns:
            channel = c[: -len("_above_background")]
            t[c] = t[f"{channel}_mean"] - t[f"{channel}_background"]
    counts = t.groupby("id").size()
    frames = t.groupby("id")["t"].nunique() if "t" in t.columns else pd.Series(1, index=counts.index)
    where = t.groupby("id")[["well", "row", "column"]].first()
    if fields is not None:
        known = fields.astype({c: str for c in ("row", "column", "well")}).drop_duplicates("id").set_index("id")
        empty = known.index.difference(counts.index)
        where = pd.concat([where, known.loc[empty, ["well", "row", "column"]]])
        counts = pd.concat([counts, pd.Series(0, index=empty)])
        frames = pd.concat([frames, pd.Series(1, index=empty)])
    per_field = pd.DataFrame({"objects": counts, "per_frame": counts / frames}).join(where)
    out = per_field.groupby("well").agg(row=("row", "first"), column=("column", "first"), fields=("objects", "size"),
                                        objects=("objects", "sum"), objects_per_field=("per_frame", "mean"))  # fmt: skip
    for column in readouts(t.columns):
        out[f"median_{column}"] = t.groupby("well")[column].median()
    order = sorted(
        out.index, key=lambda w: (row_sort_key(str(out.at[w, "row"])), column_sort_key(str(out.at[w, "column"])))
    )
    return out.loc[order].reset_index()


def plate_grid(summary: Any, value: str) -> tuple[list[str], list[str], np.ndarray]:
    """A :func:`well_summary` column laid out as the plate: its rows, its columns and the ``(rows, columns)``
    values (NaN where a well has none). Every row letter and column number between the first and last present is
    kept, so the map has the plate's geometry."""
    rows = sorted(set(summary["row"]), key=row_sort_key)
    columns = sorted(set(summary["column"]), key=column_sort_key)
    if all(c.isdigit() for c in columns) and all(len(r) == 1 and r.isalpha() for r in rows):
        columns = [str(c) for c in range(int(columns[0]), int(columns[-1]) + 1)]
        rows = [chr(c) for c in range(ord(rows[0]), ord(rows[-1]) + 1)]
    r_index, c_index = {r: i for i, r in enumerate(rows)}, {c: i for i, c in enumerate(columns)}
    grid = np.full((len(rows), len(columns)), np.nan)
    for row, column, v in zip(summary["row"], summary["column"], summary[value], strict=True):
        grid[r_index[row], c_index[column]] = v
    return rows, columns, grid


def plate_map_png(summary: Any, values: list[tuple[str, str]]) -> bytes:
    """Plate maps of a :func:`well_summary`, one panel per ``(column, title)`` (:func:`plate_grid`: rows top to
    bottom, columns left to right; a well without data blank), values written in the wells of plates up to
    :data:`ANNOTATE_WELLS` wells."""
    fig = None
    annotate = len(summary) <= ANNOTATE_WELLS
    for k, (name, title) in enumerate(values):
        rows, columns, grid = plate_grid(summary, name)
        if fig is None:
            width = max(3.2, 0.42 * len(columns) + 1.6)
            fig, axes = subplots(1, len(values), figsize=(width * len(values), max(2.4, 0.42 * len(rows) + 1.2)),
                                 squeeze=False, gridspec_kw={"wspace": 0.35})  # fmt: skip
        ax = axes[0, k]
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="equal")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(len(columns)), columns, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_title(title, fontsize=9)
        if annotate:
            finite = grid[np.isfinite(grid)]
            middle = float(np.mean([finite.min(), finite.max()])) if finite.size else 0.0
            for (i, j), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=6,
                            color="black" if v > middle else "white")  # fmt: skip
    return png_bytes(fig)
