"""``subcell labelfree train | predict | nuclei | evaluate`` (thin layer over :mod:`subcell.labelfree`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.batch_commands import row_reading
from subcell.cli.labelfree_evaluate import evaluate, export, read_cells
from subcell.cli.options import (
    AxesOpt,
    CellsVoxelSizeOpt,
    ForceOpt,
    Reading,
    SceneOpt,
    TimeIntervalOpt,
    VoxelSizeOpt,
    WorkersOpt,
    axes_among,
    channel_of,
    cluster_executor,
)

__all__ = ["labelfree_app"]

InputChannelOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--input-channel", help="The bright-field channel of the image (name or index), when it is not "
                                         "named as the model's input; for a manifest, each row's source_channel."),
]  # fmt: skip

labelfree_app = typer.Typer(
    help="Label-free prediction: bright-field → fluorescence (train, predict, evaluate).", no_args_is_help=True
)


def _progress_bar(description: str) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=False,
    )


@labelfree_app.command("train")
def train(
    config: Annotated[Path, typer.Argument(help="Training config (YAML); see docs/labelfree.md.")],
    overrides: Annotated[
        Optional[list[str]], typer.Argument(help="Overrides as key=value, e.g. iterations=500 network.depth=4")  # noqa: UP045
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train a model from a manifest of bright-field / fluorescence pairs; writes a model folder."""
    from subcell.config import load_validated
    from subcell.labelfree import TrainConfig, train_labelfree

    cfg = load_validated(TrainConfig, config, assignments=overrides or ())
    _run_training(train_labelfree, cfg, quiet=quiet)


@labelfree_app.command("models")
def models() -> None:
    """List the shipped pretrained models (use a name with `predict --model NAME` or `train ... init=NAME`)."""
    from rich.console import Console
    from rich.table import Table

    from subcell.labelfree.pretrained import HERE, list_models

    rows = list_models()
    if not rows:
        typer.echo("no shipped models are installed")
        return
    # several names are views of one multi-output network: the weights column names the file they share
    table = Table("name", "targets", "dims", "voxel size (µm)", "parameters", "weights (MB)", "what for")
    for r in rows:
        vs = " × ".join(f"{v:g}" for v in r["voxel_size_um"])
        table.add_row(r["name"], r["targets"], r["dims"], vs, f"{(r['parameters'] or 0) / 1e6:.2f} M",
                      f"{r['folder']} ({r['size_mb']})", r["description"])  # fmt: skip
    Console(width=170).print(table)
    files = {r["folder"]: r["size_mb"] or 0 for r in rows}
    typer.echo(f"{len(rows)} names, {len(files)} weight files, {sum(files.values()):.1f} MB in all")
    typer.echo(f"model cards and recipes: {HERE}")


@labelfree_app.command("pretrain")
def pretrain(
    config: Annotated[Path, typer.Argument(help="Pretraining config (YAML), e.g. a recipe from `labelfree models`.")],
    overrides: Annotated[
        Optional[list[str]], typer.Argument(help="Overrides as key=value, e.g. max_minutes=30 output=models/x")  # noqa: UP045
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Pretrain on a stream of new, domain-randomized synthetic fields (license-free weights); writes a model folder."""
    from subcell.config import load_validated
    from subcell.labelfree.config import PretrainConfig
    from subcell.labelfree.pretrain import pretrain_labelfree

    cfg = load_validated(PretrainConfig, config, assignments=overrides or ())
    _run_training(pretrain_labelfree, cfg, quiet=quiet)


def _run_training(fn: Any, cfg: Any, *, quiet: bool) -> None:
    """Run a training function with a progress bar (or messages only) and print where the model went."""
    if quiet:
        result = fn(cfg, on_message=typer.echo)
    else:
        with _progress_bar("training") as bar:
            task = bar.add_task("train", total=cfg.iterations, status="")

            def on_step(info: Any) -> None:
                status = f"loss {info.loss:.4f}"
                if info.validation:
                    rs = " ".join(f"{k[6:]} r={v:.3f}" for k, v in info.validation.items() if k.startswith("val_r_"))
                    bar.console.print(f"step {info.step}: val loss {info.validation['val_loss']:.4f} {rs}")
                bar.update(task, completed=info.step, status=status)

            result = fn(cfg, on_step=on_step, on_message=bar.console.print)
    if result.folder is not None:
        v = result.summary.get("validation") or {}
        rs = ", ".join(f"{k[6:]} r={val:.3f}" for k, val in v.items() if k.startswith("val_r_"))
        typer.echo(
            f"wrote {result.folder} ({result.summary['steps']} steps in {result.summary['seconds']:.0f} s; "
            f"final loss {result.summary['final_loss']:.4f}{'; validation ' + rs if rs else ''})"
        )


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Every warning inside as one ``warning: ...`` line on stderr (no source line, each one shown)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, *a, **k: typer.echo(f"warning: {msg}", err=True)
        yield


def _read_inputs(src: Path, cells: Path | None, cells_voxel_size: Any, reading: Reading,
                 input_channel: Callable[[], str]) -> tuple[Any, Any]:  # fmt: skip
    """The bright-field image (the channel ``--input-channel`` names, as the model's ``input_channel()``) and the
    cell labels beside it (or None), ``--axes`` reaching the plain TIFFs among them."""
    axes_of = axes_among(reading.axes, [src, *([cells] if cells is not None else [])])
    image = replace(reading, axes=axes_of(src)).read(src)
    if reading.channel is not None:
        with channel_of(src, "input_channel"):
            image = image.channel(reading.channel).with_metadata(channel_names=[input_channel()])
    cell_labels = None if cells is None else read_cells(cells, cells_voxel_size, reading.voxel_size, axes_of(cells))
    return image, cell_labels


def _predict_one(model: Any, src: Path, out: Path, cfg: Any, *, reading: Reading, overwrite: bool, quiet: bool,
                 cells: Path | None = None, cells_voxel_size: Any = None) -> None:  # fmt: skip
    from subcell.io import output_format, write
    from subcell.io._atomic import check_output
    from subcell.labelfree import predict_image, predict_to_zarr
    from subcell.labelfree.predict_input import check_planes
    from subcell.train.precision import autocast_dtype, precision_name, resolve_device

    check_output(out, overwrite=overwrite)
    image, cell_labels = _read_inputs(src, cells, cells_voxel_size, reading, lambda: model.input_channel)
    check_planes(model, image)
    fmt = output_format(out)
    device = resolve_device(cfg.device)
    chosen = precision_name(autocast_dtype(device, cfg.precision))
    note = " (auto: what this device supports)" if cfg.precision == "auto" else ""
    typer.echo(f"predicting {src.name} on {device}, precision {chosen}{note}")

    def go(progress: Any) -> None:
        if fmt == "ome-zarr":
            predict_to_zarr(model, image, out, cfg, overwrite=overwrite, progress=progress, cells=cell_labels)
        else:
            write(predict_image(model, image, cfg, progress=progress, cells=cell_labels), out, overwrite=overwrite)

    if quiet:
        go(None)
    else:
        with _progress_bar(f"predicting {src.name}") as bar:
            task = bar.add_task("tiles", total=None, status="")
            go(lambda done, total: bar.update(task, completed=done, total=total, status="tiles"))
    typer.echo(f"wrote {out}")


def _predict_regions(model: str, src: Path, out: Path, cfg: Any, *, reading: Reading, region_yx: int | None,
                     scheduler: str | None, workers: int | None, overwrite: bool,
                     cells: Path | None = None, cells_voxel_size: Any = None) -> None:  # fmt: skip
    """One large volume by regions, serially or on a Dask cluster (the same result as a whole-volume run)."""
    from subcell.errors import InputFileError, ValueRangeError
    from subcell.io import output_format
    from subcell.io._atomic import check_output
    from subcell.labelfree.predict_regions import predict_regions_to_zarr

    if region_yx is None:
        raise ValueRangeError("--scheduler spreads the regions of one volume: give --region-yx too", field="scheduler")
    if output_format(out) != "ome-zarr":
        raise InputFileError("prediction by regions streams to OME-Zarr; use a .ome.zarr output", path=out)
    check_output(out, overwrite=overwrite)

    def input_channel() -> str:  # the model's input channel name (its weights stay for the workers to load)
        from subcell.labelfree.cache import MODEL_CACHE
        from subcell.train import resolve_device

        return str(MODEL_CACHE.load(model, resolve_device(cfg.device)).input_channel)

    image, cell_labels = _read_inputs(src, cells, cells_voxel_size, reading, input_channel)
    with cluster_executor(scheduler, workers=workers, what="regions") as (executor, where):
        predict_regions_to_zarr(model, image, out, cfg, region_yx=region_yx, executor=executor, overwrite=overwrite,
                                cells=cell_labels)  # fmt: skip
    typer.echo(f"wrote {out} region by region ({region_yx} px regions{where}; same tiles as a whole-volume run)")


def _manifest_cells(manifest: Any, rows: list[Any]) -> list[Path]:
    """Each row's cell labels (column ``mask_cell``, or ``labels``) for a model that takes the cell outlines, by the
    rule ``subcell batch labelfree-predict`` gives them; rows without them are reported together, before any
    prediction."""
    from subcell.cli.batch_commands import row_cells_required
    from subcell.errors import ManifestError

    base = manifest.path.resolve().parent
    found, missing = [], []
    for r in rows:
        try:
            found.append(row_cells_required(r, base, "the model takes the cell outlines as a second input"))
        except ValueError as e:
            missing.append(f"row {r.row}, {e}")
    if missing:
        raise ManifestError(manifest.path, missing)
    return found


@labelfree_app.command("predict")
def predict(
    input: Annotated[Path, typer.Argument(help="Bright-field image, or a manifest (.csv/.parquet) of images.")],
    output: Annotated[Path, typer.Argument(help="Output .ome.zarr (streamed) or .ome.tif; a folder for manifests.")],
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="Model folder from `labelfree train`, a shipped model's name, or a bioimage.io .zip."
        ),
    ],
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    force_voxel_size: ForceOpt = False,
    scene: SceneOpt = None,
    time_interval: TimeIntervalOpt = None,
    input_channel: InputChannelOpt = None,
    memory_limit: Annotated[
        float,
        typer.Option(
            "--memory-limit",
            help="GB for tiles + buffers (more is faster: larger tiles recompute less of their edges).",
        ),
    ] = 2.0,
    tile: Annotated[
        Optional[tuple[int, int, int]], typer.Option("--tile", metavar="Z Y X", help="Tile size (default: from memory)")  # noqa: UP045
    ] = None,
    overlap: Annotated[float, typer.Option("--overlap", help="Tile overlap fraction (>= 0.25).")] = 0.25,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Tiles per forward pass.")] = None,  # noqa: UP045
    tta: Annotated[bool, typer.Option("--tta", help="Average over y/x flips (4× compute).")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, mps or auto.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto, fp32, bf16 or fp16.")] = "auto",
    no_resample: Annotated[
        bool, typer.Option("--no-resample", help="Fail instead of resampling to the model's voxel size.")
    ] = False,
    output_grid: Annotated[
        str,
        typer.Option(
            "--output-grid",
            help="model: the model's voxel size; input: the input's voxel size and shape (resampled back).",
        ),
    ] = "model",
    split: Annotated[Optional[str], typer.Option("--split", help="Manifest rows of this split only.")] = None,  # noqa: UP045
    region_yx: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--region-yx", help="Predict one large volume in y/x regions of this many px (.ome.zarr output)."),
    ] = None,
    scheduler: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--scheduler", help="With --region-yx: regions on Dask (local, tcp://HOST:PORT, queue .yaml)."),
    ] = None,
    workers: WorkersOpt = None,
    cells: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--cells",
            help="Cell instance labels of the same field (any grid covering it): the second input of a model "
            "conditioned on the cell outlines (nucleus-in-cells or one fine-tuned from it); for a manifest, "
            "each row's column mask_cell (or labels).",
        ),
    ] = None,
    cells_voxel_size: CellsVoxelSizeOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Predict fluorescence from bright-field at any size (tiled, blended, streamed to OME-Zarr)."""
    from subcell.config import load_validated
    from subcell.labelfree import PredictConfig
    from subcell.train import resolve_device

    # validated like every config: a bad value is one line naming the option's field, not a traceback
    cfg = load_validated(PredictConfig, overrides={
        "memory_limit_gb": memory_limit, "tile": tile, "overlap": overlap, "batch_size": batch_size, "tta": tta,
        "device": device, "precision": precision, "allow_resample": not no_resample, "output_grid": output_grid,
    })  # fmt: skip
    reading = Reading(voxel_size=voxel_size, axes=axes, force=force_voxel_size, scene=scene,
                      time_interval=time_interval, channel=input_channel)  # fmt: skip
    if region_yx is not None or scheduler is not None:
        _predict_regions(model, input, output, cfg, reading=reading, region_yx=region_yx,
                         scheduler=scheduler, workers=workers, overwrite=overwrite, cells=cells,
                         cells_voxel_size=cells_voxel_size)  # fmt: skip
        return
    from subcell.labelfree.cache import MODEL_CACHE

    lf = MODEL_CACHE.load(model, resolve_device(device))
    with _warnings_to_stderr():
        from subcell.io.files import TABLE_SUFFIXES

        if input.suffix.lower() in TABLE_SUFFIXES:
            from subcell.errors import ValueRangeError
            from subcell.io import read_manifest

            if cells is not None:
                raise ValueRangeError("--cells names the labels of one image; in a manifest each row gives its own "
                                      "(column mask_cell, or labels)", field="cells")  # fmt: skip
            manifest = read_manifest(input)
            rows = [r for r in manifest if split is None or r.split == split]
            row_cells = _manifest_cells(manifest, rows) if lf.cell_conditioned else [None] * len(rows)
            output.mkdir(parents=True, exist_ok=True)
            for r, row_cell in zip(rows, row_cells, strict=True):
                name = r.id or r.source.name.split(".")[0]
                _predict_one(lf, r.source, output / f"{name}_prediction.ome.zarr", cfg,
                             reading=row_reading(r, reading), overwrite=overwrite, quiet=quiet,
                             cells=row_cell, cells_voxel_size=cells_voxel_size)  # fmt: skip
        else:
            _predict_one(lf, input, output, cfg, reading=reading, overwrite=overwrite, quiet=quiet, cells=cells,
                         cells_voxel_size=cells_voxel_size)  # fmt: skip


@labelfree_app.command("nuclei")
def nuclei(
    input: Annotated[Path, typer.Argument(help="Bright-field image.")],
    cells: Annotated[Path, typer.Argument(help="Cell instance labels of the same field (any grid covering it).")],
    output: Annotated[Path, typer.Argument(help="Nucleus labels, ids of their cells: .ome.zarr or .ome.tif.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="A model with a nucleus (or --channel) output: shipped name or folder.")
    ] = "nucleus",
    channel: Annotated[str, typer.Option("--channel", help="The model output to use.")] = "nucleus",
    prior_weight: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            "--prior-weight",
            help="Weight of the cell depth against the prediction, in [0, 1] (default "
            "0.5; 0 with a model that takes the cells as input, e.g. a fine-tuned nucleus-in-cells).",
        ),
    ] = None,
    share: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--share", help="Nucleus share of each cell's volume (default: Otsu's threshold)."),
    ] = None,
    voxel_size: Annotated[
        Optional[tuple[float, float, float]],  # noqa: UP045
        typer.Option("--voxel-size", metavar="Z Y X", help="µm of both files, if they lack it"),
    ] = None,
    axes: AxesOpt = None,
    force_voxel_size: ForceOpt = False,
    scene: SceneOpt = None,
    time_interval: TimeIntervalOpt = None,
    input_channel: InputChannelOpt = None,
    cells_voxel_size: CellsVoxelSizeOpt = None,
    memory_limit: Annotated[
        float,
        typer.Option(
            "--memory-limit",
            help="GB for the prediction's tiles, then for what the first pass over the cells keeps (more is faster).",
        ),
    ] = 2.0,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, mps or auto.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto, fp32, bf16 or fp16.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Nuclei from bright-field inside segmented cells: the prediction and each cell's depth, one nucleus per cell."""
    from subcell.config import load_validated
    from subcell.io import output_format
    from subcell.io._atomic import check_output
    from subcell.labelfree import PredictConfig
    from subcell.labelfree.cache import MODEL_CACHE
    from subcell.labelfree.nuclei import NucleiConfig, write_nuclei
    from subcell.train import resolve_device

    cfg = load_validated(NucleiConfig, overrides={"channel": channel, "prior_weight": prior_weight, "share": share})
    pcfg = load_validated(PredictConfig, overrides={"memory_limit_gb": memory_limit, "device": device,
                                                    "precision": precision})  # fmt: skip
    output_format(output)
    check_output(output, overwrite=overwrite)
    lf = MODEL_CACHE.load(model, resolve_device(device))
    reading = Reading(voxel_size=voxel_size, axes=axes, force=force_voxel_size, scene=scene,
                      time_interval=time_interval, channel=input_channel)  # fmt: skip
    image, cell_labels = _read_inputs(input, cells, cells_voxel_size, reading, lambda: lf.input_channel)
    typer.echo(f"predicting {cfg.channel} in {input.name} with {model}")
    with _warnings_to_stderr():
        if quiet:
            n = write_nuclei(lf, image, cell_labels, output, cfg, pcfg, overwrite=overwrite)
        else:
            with _progress_bar(f"nuclei of {input.name}") as bar:
                task = bar.add_task("nuclei", total=None, status="")
                n = write_nuclei(lf, image, cell_labels, output, cfg, pcfg, overwrite=overwrite,
                                 progress=lambda stage, done, total: bar.update(task, completed=done, total=total,
                                                                                status=stage))  # fmt: skip
    typer.echo(f"wrote {output}: {n} nuclei (ids of their cells)")


labelfree_app.command("export")(export)
labelfree_app.command("evaluate")(evaluate)
