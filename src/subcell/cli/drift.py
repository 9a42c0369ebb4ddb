"""``subcell drift``: measure a time-lapse's stage drift and write the movie with it taken out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.options import (
    AxesOpt,
    ConfigOpt,
    ForceOpt,
    OverwriteOpt,
    SceneOpt,
    SetOpt,
    TimeIntervalOpt,
    VoxelSizeOpt,
    movie_outputs,
    one_channel,
    read_movie,
)

__all__ = ["drift", "read_drift_table"]


def read_drift_table(path: Path, n_frames: int) -> Any:
    """The ``(T, 3)`` drift in µm of a table written by ``subcell drift`` (CSV or Parquet): one row per frame
    ``t = 0 … T−1`` with finite ``drift_z_um, drift_y_um, drift_x_um``; anything else is a one-line error naming
    the file and the field."""
    import numpy as np
    import pandas as pd

    from subcell.errors import InputFileError
    from subcell.io import read_table
    from subcell.transforms.drift import DRIFT_COLUMNS

    table = read_table(path, what="drift table")
    missing = [c for c in ("t", *DRIFT_COLUMNS) if c not in table.columns]
    if missing:
        raise InputFileError(f"a drift table has columns t, {', '.join(DRIFT_COLUMNS)}; missing {', '.join(missing)}",
                             path=path, field=missing[0])  # fmt: skip
    table = table.sort_values("t")
    t = table["t"].to_numpy()
    if len(t) != n_frames or not np.array_equal(t, np.arange(n_frames)):
        raise InputFileError(f"has frames {t.min()}..{t.max()} ({len(t)} rows); the movie has frames 0..{n_frames - 1}",
                             path=path, field="t")  # fmt: skip
    values = table[DRIFT_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)  # (text: NaN)
    if not np.isfinite(values).all():
        raise InputFileError("drift values must be finite numbers (µm) in every row", path=path, field="drift")
    return values


def drift(
    movie: Annotated[Path, typer.Argument(help="Time-lapse (any readable image; labels with --labels).")],
    output: Annotated[Path, typer.Argument(help="The movie without its drift: *.ome.zarr or *.ome.tif.")],
    channel: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--channel", "-c", help="Channel the drift is measured on (every channel is moved)."),
    ] = None,
    apply: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--apply",
            help="Take out the drift of this table (an earlier run's) instead of measuring it: "
            "the same correction for the labels or another channel of the same movie.",
        ),
    ] = None,
    table: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--table", help="Where the drift table goes (.csv/.parquet; default: OUTPUT's name + _drift.csv)."
        ),
    ] = None,
    labels: Annotated[
        bool, typer.Option("--labels", help="The movie holds labels: moved by whole voxels, ids and dtype kept.")
    ] = False,
    reference: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--reference", help="previous (each frame against the one before, summed; default) or first."),
    ] = None,
    lateral_only: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option("--lateral-only/--with-z", help="Measure y and x only (on maximum projections); default: z too."),
    ] = None,
    region: Annotated[
        Optional[tuple[float, float, float, float]],  # noqa: UP045
        typer.Option(
            "--region-um",
            metavar="Y0 Y1 X0 X1",
            help="Measure on this part of each frame only (µm from "
            "the field's corner, every plane): fiducials, a region without migrating cells.",
        ),
    ] = None,
    canvas: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--canvas", help="grow (every frame whole on a larger grid; default) or same (the field's grid)."),
    ] = None,
    subpixel: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--subpixel/--whole-voxels",
            help="Move by the sub-voxel remainder too (linear interpolation; "
            "default: whole voxels, values kept as they are).",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    scene: SceneOpt = None,
    force_voxel_size: ForceOpt = False,
    time_interval: TimeIntervalOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Measure a time-lapse's stage drift (cross-correlation of frames, sub-voxel, µm) and write the movie with it
    taken out, and the drift per frame as a table."""

    from subcell.config import load_validated
    from subcell.errors import InputFileError, ValueRangeError
    from subcell.io import write, write_table
    from subcell.io._atomic import check_output
    from subcell.io.writer import output_format
    from subcell.transforms.drift import (
        DRIFT_COLUMNS,
        DriftConfig,
        correct_drift,
        drift_canvas,
        drift_extent,
        estimate_drift,
    )

    cfg = load_validated(DriftConfig, config, assignments=set_ or (), overrides={
        "reference": reference, "lateral_only": lateral_only, "canvas": canvas, "subpixel": subpixel,
        "region_um": region})  # fmt: skip
    if labels and cfg.subpixel:
        raise ValueRangeError("labels move by whole voxels only (--subpixel would interpolate their ids)",
                              field="subpixel")  # fmt: skip
    if apply is not None and table is not None:
        raise InputFileError("--table names where a measured drift goes; with --apply nothing is measured",
                             path=table, field="table")  # fmt: skip
    tab_path = None
    if apply is None:  # the movie and its drift table, checked before anything is read
        tab_path = movie_outputs(output, table, kind="drift", overwrite=overwrite)
    else:  # (nothing measured, no table)
        output_format(output)
        check_output(output, overwrite=overwrite)
    image = read_movie(movie, voxel_size=voxel_size, axes=axes, force=force_voxel_size, scene=scene,
                       time_interval=time_interval)  # fmt: skip
    if labels:
        from subcell.io._cast import as_labels

        image = image.with_data(as_labels(image.data, path=movie, lazy=True), step="as_labels")
    if apply is not None:
        values = read_drift_table(apply, image.shape[0])
        measured = None
    else:
        frames = one_channel(image, channel, movie).data[:, 0]
        try:
            measured = estimate_drift(frames, voxel_size=image.voxel_size, reference=cfg.reference,
                                      lateral_only=cfg.lateral_only, upsample=cfg.upsample_factor,
                                      region_um=cfg.region_um)  # fmt: skip
        except ValueRangeError as e:  # (a region outside this movie's field: said naming it)
            raise ValueRangeError(e.message, path=movie, field=e.field) from None
        values = measured[DRIFT_COLUMNS].to_numpy()
    moved = correct_drift(image, values, canvas=cfg.canvas, subpixel=cfg.subpixel, labels=labels)
    moved = moved.with_metadata(provenance=moved.provenance.then(
        "drift", {"config": cfg.model_dump(mode="json"), "applied": str(apply) if apply else None}))  # fmt: skip
    write(moved, output, overwrite=overwrite)
    if measured is not None and tab_path is not None:
        write_table(measured, tab_path, overwrite=overwrite)
    origin = drift_canvas(values, shape=image.shape, voxel_size=image.voxel_size, canvas=cfg.canvas)[2]
    source = f" (from {apply})" if apply is not None else ""
    typer.echo(f"drift{source} over {image.shape[0]} frames: {drift_extent(values, steps=True)}")
    typer.echo(f"wrote {output} ({' '.join(f'{k}={v}' for k, v in moved.sizes.items())}, canvas {cfg.canvas}"
               + (f", frame 0 at voxel {origin}" if any(origin) else "") + ")"
               + (f" and {tab_path}" if measured is not None else ""))  # fmt: skip
