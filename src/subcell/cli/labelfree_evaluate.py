"""`subcell labelfree export` and `evaluate`: a model shared as a bioimage.io package, a prediction scored against
the measured fluorescence (registered on ``labelfree_app`` in :mod:`subcell.cli.labelfree`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.options import (
    AuthorOpt,
    AxesOpt,
    CellsVoxelSizeOpt,
    LicenseOpt,
    NoTestOpt,
    ZooNameOpt,
    axes_among,
    echo_export,
)

__all__ = ["evaluate", "export", "read_cells"]


def read_cells(path: Path, cells_voxel_size: Any, voxel_size: Any, axes: str | None) -> Any:
    """Cell labels at ``--cells-voxel-size`` when given; else at the voxel size their file states, and at
    ``--voxel-size`` (the image's) only when it states none: cells on their own grid need not be on the image's."""
    from subcell.errors import MetadataError
    from subcell.io import read

    if cells_voxel_size is not None:
        return read(path, voxel_size=cells_voxel_size, axes=axes)
    try:
        return read(path, axes=axes)
    except MetadataError as e:
        if e.field != "voxel_size" or voxel_size is None:
            raise
        return read(path, voxel_size=voxel_size, axes=axes)


def export(
    model: Annotated[str, typer.Argument(help="Model folder from `labelfree train`, or a shipped model's name.")],
    output: Annotated[Path, typer.Argument(help="bioimage.io package to write (.zip).")],
    sample: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--sample", help="Bright-field stack the test input is cut from (e.g. from `subcell synth`)."),
    ] = None,
    name: ZooNameOpt = None,
    author: AuthorOpt = None,
    license: LicenseOpt = "BSD-3-Clause",
    voxel_size: Annotated[
        Optional[tuple[float, float, float]], typer.Option("--voxel-size", metavar="Z Y X", help="µm for the sample")  # noqa: UP045
    ] = None,
    no_test: NoTestOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing package.")] = False,
) -> None:
    """Write a bioimage.io model package (spec 0.5: TorchScript + state dict, tests, cover, README)."""
    from subcell.errors import InputFileError
    from subcell.io import read
    from subcell.labelfree.pretrained import load_model
    from subcell.zoo.export import export_labelfree

    if sample is None:
        raise InputFileError(
            "a package needs test data: pass --sample IMAGE (a bright-field stack at the model's voxel size)",
            path=output,
        )
    lf = load_model(model)
    result = export_labelfree(
        lf, read(sample, voxel_size=voxel_size), output, name=name, authors=author, license=license,
        overwrite=overwrite, test=not no_test,
    )  # fmt: skip
    echo_export(result)


def evaluate(
    prediction: Annotated[Path, typer.Argument(help="Prediction from `labelfree predict`.")],
    target: Annotated[Path, typer.Argument(help="Measured fluorescence (channels named like the targets).")],
    cells: Annotated[Optional[Path], typer.Option("--cells", help="Instance labels: Pearson r per cell.")] = None,  # noqa: UP045
    mask_target: Annotated[
        bool,
        typer.Option(
            "--mask-target",
            help="The target is a mask or labels: add Dice and IoU (Otsu and 0.5 thresholds; inside --cells when "
            "given).",
        ),
    ] = False,
    channel: Annotated[
        Optional[list[str]], typer.Option("--channel", help="PRED=TARGET channel pairs (default: same names).")  # noqa: UP045
    ] = None,
    noise_control: Annotated[
        Optional[Path], typer.Option("--noise-control", help="No-label control image (noise ceiling).")  # noqa: UP045
    ] = None,
    second_acquisition: Annotated[
        Optional[Path], typer.Option("--second-acquisition", help="Second acquisition of the target (noise ceiling).")  # noqa: UP045
    ] = None,
    input_image: Annotated[
        Optional[Path], typer.Option("--input", help="Bright-field input, shown in the figure.")  # noqa: UP045
    ] = None,
    voxel_size: Annotated[
        Optional[tuple[float, float, float]], typer.Option("--voxel-size", metavar="Z Y X", help="µm for the target")  # noqa: UP045
    ] = None,
    axes: AxesOpt = None,
    cells_voxel_size: CellsVoxelSizeOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Metrics table (.csv / .parquet).")] = None,  # noqa: UP045
    figure: Annotated[Optional[Path], typer.Option("--figure", help="Figure (.png).")] = None,  # noqa: UP045
) -> None:
    """Pearson r (global, per cell) against the noise ceiling, SSIM, PSNR, NRMSE per structure; Dice and IoU for
    mask targets."""
    import pandas as pd

    from subcell.io import read, write_table
    from subcell.labelfree.evaluate import evaluate_prediction

    # --axes: of the plain TIFFs among the measured images (the prediction is an OME-Zarr or OME-TIFF)
    measured = [p for p in (target, cells, noise_control, second_acquisition, input_image) if p is not None]
    axes_of = axes_among(axes, [prediction, *measured])
    pred = read(prediction, axes=axes_of(prediction))
    tgt = read(target, voxel_size=voxel_size, axes=axes_of(target))
    pairs = [c.split("=", 1) if "=" in c else [c, c] for c in (channel or [])]
    rows = evaluate_prediction(
        pred,
        tgt,
        channels=[p[0] for p in pairs] or None,
        target_channels=[p[1] for p in pairs] or None,
        cells=read_cells(cells, cells_voxel_size, voxel_size, axes_of(cells)) if cells else None,
        noise_control=read(noise_control, voxel_size=voxel_size, axes=axes_of(noise_control)) if noise_control else None,
        second_acquisition=read(second_acquisition, voxel_size=voxel_size, axes=axes_of(second_acquisition))
        if second_acquisition else None,
        mask_target=mask_target,
    )  # fmt: skip
    table = pd.DataFrame(rows)
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if out is not None:
        write_table(table, out, overwrite=True)
        typer.echo(f"wrote {out}")
    if figure is not None:
        _write_figure(figure, pred, tgt, rows, input_image, voxel_size, axes_of(input_image) if input_image else None)
        typer.echo(f"wrote {figure}")


def _write_figure(
    figure: Path, pred: Any, tgt: Any, rows: list[dict[str, Any]], input_image: Path | None, vs: Any,
    axes: str | None = None,
) -> None:  # fmt: skip
    from subcell.io import read
    from subcell.io._atomic import atomic_output
    from subcell.labelfree.figures import evaluation_figure_png
    from subcell.transforms.align import aligned_lazily

    # the first timepoint of the channels shown, on the prediction's grid, each read once in blocks (lazily): the
    # figure holds their middle planes and a sample for the contrast limits, never a whole field
    panels = {}
    if input_image is not None:
        panels["input"] = aligned_lazily(read(input_image, voxel_size=vs, axes=axes).sel(channel=0), 0, pred)[0]
    shown = rows[:3]
    names = list(dict.fromkeys(r["target_channel"] for r in shown))
    tdata = aligned_lazily(tgt.sel(channel=names), 0, pred)
    for r in shown:
        panels[f"target {r['target_channel']}"] = tdata[names.index(r["target_channel"])]
        panels[f"prediction {r['structure']}"] = pred.data[0, pred.channel_index(r["structure"])]
    metrics = {r["structure"]: {k: v for k, v in r.items() if isinstance(v, float)} for r in rows}
    png = evaluation_figure_png(panels, pred.voxel_size.as_tuple(), metrics)
    with atomic_output(figure, overwrite=True) as tmp:
        tmp.write_bytes(png)
