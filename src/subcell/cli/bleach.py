"""``subcell bleach``: make up for the photobleaching of a fluorescence time-lapse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

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
    read_movie,
)

__all__ = ["bleach"]


def bleach(
    movie: Annotated[Path, typer.Argument(help="Fluorescence time-lapse (any readable image).")],
    output: Annotated[Path, typer.Argument(help="The movie brought back to frame 0's level: *.ome.zarr or *.ome.tif.")],
    channel: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--channel",
            "-c",
            help="Channel to correct (repeat; default: every channel). The others are "
            "kept as they are: bright-field does not bleach.",
        ),
    ] = None,
    method: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--method",
            help="exponential (a fit of the mean; default), ratio (each frame's mean), or "
            "histogram (matched to frame 0: for display and segmentation, not for measuring).",
        ),
    ] = None,
    background: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            "--background",
            help="Intensity that does not bleach, the camera's offset (default: frame 0's "
            "1st percentile, per channel).",
        ),
    ] = None,
    table: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--table", help="Where the bleaching table goes (.csv/.parquet; default: OUTPUT's name + _bleach.csv)."
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
    """Make up for photobleaching: each frame of a fluorescence time-lapse brought back to frame 0's level (float32);
    the bleaching curve and factors as a table, the half-life said."""
    import numpy as np
    import pandas as pd

    from subcell.cli.options import channel_of
    from subcell.config import load_validated
    from subcell.errors import ValueRangeError
    from subcell.io import write, write_table
    from subcell.transforms.bleach import BleachConfig, bleach_curve, bleach_factors, correct_bleach

    cfg = load_validated(BleachConfig, config, assignments=set_ or (),
                         overrides={"method": method, "background": background})  # fmt: skip
    tab_path = movie_outputs(output, table, kind="bleach", overwrite=overwrite)  # before anything is read
    image = read_movie(movie, voxel_size=voxel_size, axes=axes, force=force_voxel_size, scene=scene,
                       time_interval=time_interval)  # fmt: skip
    with channel_of(movie):
        chosen = sorted({image.channel_index(c) for c in channel}) if channel else None
    indices = chosen if chosen is not None else list(range(image.shape[1]))
    factors = np.ones(image.shape[:2])
    backgrounds = np.zeros(image.shape[1])
    rows, lines = [], []
    minutes = (image.time_interval or 0) / 60.0
    for c in indices:
        curve = bleach_curve(image.data[:, c], background=cfg.background)
        backgrounds[c] = curve["background"].iloc[0]
        info: dict[str, float] = {}
        if cfg.method != "histogram":
            try:
                factors[:, c], info = bleach_factors(curve, cfg.method)
            except ValueRangeError as e:
                raise ValueRangeError(f"channel {image.channel_names[c]!r}: {e.message}", path=movie,
                                      field=e.field) from None  # fmt: skip
        rows.append(curve.assign(channel=image.channel_names[c], factor=factors[:, c]))
        half = info.get("half_life_frames", float("nan"))
        if half > 10 * image.shape[0]:  # a movie says nothing of a half-life ten times its length: no bleaching
            half = float("nan")
        said = f"half-life {half:.1f} frames" + (f" ({half * minutes:.1f} min)" if minutes else "")
        lines.append(f"{image.channel_names[c]}: signal at the last frame {curve.signal.iloc[-1] / curve.signal.iloc[0]:.0%} "
                     f"of frame 0's" + (f", {said}" if np.isfinite(half) else "")
                     + (f"; largest factor {factors[:, c].max():.3f}" if cfg.method != "histogram" else ""))  # fmt: skip
    moved = correct_bleach(image, factors, background=backgrounds, method=cfg.method, channels=indices)
    moved = moved.with_metadata(provenance=moved.provenance.then("bleach", {"config": cfg.model_dump(mode="json")}))
    write(moved, output, overwrite=overwrite)
    columns = ["channel", "t", "mean", "background", "signal", "factor"]
    write_table(pd.concat(rows, ignore_index=True)[columns], tab_path, overwrite=overwrite)
    for line in lines:
        typer.echo(line)
    typer.echo(f"wrote {output} ({cfg.method}; float32) and {tab_path}")
