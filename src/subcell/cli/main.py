"""The ``subcell`` command: a thin typer layer over the Python API.

Conventions every command follows: ``--voxel-size Z Y X`` (µm) for inputs without metadata, the output format
from the output's extension (``.ome.zarr``, ``.ome.tif``), ``--overwrite`` to replace an output. A user mistake
prints one line (file, field, what was expected) and exits with status 2; ``--verbose`` shows the traceback.
Heavy libraries are imported inside the commands so ``subcell --help`` stays instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell._version import __version__
from subcell.cli.cells import cells_app
from subcell.cli.integrated import integrated_app
from subcell.cli.labelfree import labelfree_app

__all__ = ["app", "run"]

app = typer.Typer(
    name="subcell",
    help="Machine learning and classical analysis for 3D and 3D+time live-cell microscopy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
manifest_app = typer.Typer(help="Dataset manifests (CSV / Parquet).", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")
app.add_typer(labelfree_app, name="labelfree")
app.add_typer(cells_app, name="cells")
app.add_typer(integrated_app, name="integrated")

_STATE = {"verbose": False}

VoxelSizeOpt = Annotated[
    Optional[tuple[float, float, float]],  # noqa: UP045 - typer needs Optional here
    typer.Option("--voxel-size", metavar="Z Y X", help="Voxel size in µm, for files without (trustworthy) metadata."),
]
AxesOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--axes", help="Axes of a plain TIFF whose axes the file does not state, e.g. TZYX."),
]
SceneOpt = Annotated[Optional[str], typer.Option("--scene", help="Scene / series index or name.")]  # noqa: UP045


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"subcell {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks for errors.")] = False,
) -> None:
    """subcell: label-free prediction, integrated cell models, segmentation and dynamics for live-cell imaging."""
    _STATE["verbose"] = verbose


def _scene(scene: str | None) -> int | str | None:
    return int(scene) if scene is not None and scene.isdigit() else scene


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="Image file (OME-TIFF, OME-Zarr, TIFF, CZI, ND2, LIF).")],
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    scene: SceneOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show dims, dtype, voxel size, channels, scenes, chunks and size (reads metadata only)."""
    from subcell.io import describe

    d = describe(file, scene=_scene(scene), voxel_size=voxel_size, axes=axes)
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    vs = d["voxel_size_um"]
    rows = [
        ("file", d["path"]),
        ("format", d["format"]),
        ("dims", "  ".join(f"{k}={v}" for k, v in d["dims"].items())),
        ("dtype", d["dtype"]),
        (
            "voxel size",
            f"z={vs[0]:.6g} y={vs[1]:.6g} x={vs[2]:.6g} µm ({d['voxel_size_source']})"
            if vs
            else d["voxel_size_source"],
        ),
        ("channels", ", ".join(d["channels"])),
        ("time interval", f"{d['time_interval_s']:.6g} s" if d["time_interval_s"] else "—"),
        ("scenes", f"{len(d['scenes'])}: {', '.join(d['scenes'][:8])}{' …' if len(d['scenes']) > 8 else ''}"),
        ("chunks", " × ".join(str(c) for c in d["chunks"])),
        ("size", f"{_human(d['size_bytes'])} in memory, {_human(d['file_bytes'])} on disk"),
    ]
    if d["labels"]:
        rows.append(("labels", ", ".join(d["labels"])))
    for note in d["notes"]:
        rows.append(("note", note))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        typer.echo(f"{k:<{width}}  {v}")


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{n} B"


@app.command()
def convert(
    input: Annotated[Path, typer.Argument(help="Input image file.")],
    output: Annotated[Path, typer.Argument(help="Output: *.ome.zarr or *.ome.tif.")],
    voxel_size: VoxelSizeOpt = None,
    channel_names: Annotated[
        Optional[str], typer.Option("--channel-names", help="Comma-separated channel names, e.g. brightfield,dna.")  # noqa: UP045
    ] = None,
    axes: AxesOpt = None,
    scene: SceneOpt = None,
    force_voxel_size: Annotated[
        bool, typer.Option("--force-voxel-size", help="Let --voxel-size override a different value in the file.")
    ] = False,
    ngff_version: Annotated[str, typer.Option("--ngff-version", help="OME-Zarr version: 0.4 or 0.5.")] = "0.4",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Convert between formats, streaming chunk by chunk; metadata (µm, channels, provenance) is kept."""
    from subcell.io import read, write
    from subcell.io._atomic import check_output
    from subcell.io.writer import output_format

    output_format(output)
    check_output(output, overwrite=overwrite)  # fail before reading anything
    names = [c.strip() for c in channel_names.split(",")] if channel_names else None
    image = read(
        input, scene=_scene(scene), voxel_size=voxel_size, channel_names=names, axes=axes, force=force_voxel_size
    )
    image = image.with_metadata(provenance=image.provenance.then("convert", {"output": str(output)}))
    write(image, output, overwrite=overwrite, ngff_version=ngff_version)
    typer.echo(
        f"wrote {output} ({' '.join(f'{k}={v}' for k, v in image.sizes.items())}, {image.dtype}, {image.voxel_size})"
    )


@manifest_app.command("check")
def manifest_check(
    file: Annotated[Path, typer.Argument(help="Manifest (.csv or .parquet).")],
    no_files: Annotated[bool, typer.Option("--no-files", help="Skip opening the referenced images.")] = False,
) -> None:
    """Validate a manifest; print every problem (row, column, value, expected) or a summary."""
    from collections import Counter

    from subcell.io import read_manifest

    m = read_manifest(file, check_files=not no_files)
    splits = Counter(r.split or "-" for r in m)
    typer.echo(f"{file}: {len(m)} rows OK ({', '.join(f'{k}: {v}' for k, v in sorted(splits.items()))})")


@app.command()
def synth(
    output: Annotated[Path, typer.Argument(help="Output *.ome.zarr (labels and tables/*.parquet inside).")],
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML file of generator settings.")] = None,  # noqa: UP045
    shape: Annotated[Optional[tuple[int, int, int]], typer.Option("--shape", metavar="Z Y X")] = None,  # noqa: UP045
    voxel_size: Annotated[
        Optional[tuple[float, float, float]], typer.Option("--voxel-size", metavar="Z Y X", help="µm")  # noqa: UP045
    ] = None,
    n_cells: Annotated[Optional[int], typer.Option("--n-cells")] = None,  # noqa: UP045
    seed: Annotated[Optional[int], typer.Option("--seed")] = None,  # noqa: UP045
    frames: Annotated[Optional[int], typer.Option("--frames", help="Time-lapse frames.")] = None,  # noqa: UP045
    large: Annotated[
        Optional[bool], typer.Option("--large/--in-memory", help="Stream block by block (default: by size).")  # noqa: UP045
    ] = None,
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="Override any setting, e.g. --set noise.peak_photons=300")  # noqa: UP045
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Generate a synthetic hiPSC-like field with exact ground truth (bright-field + 7 structures + labels)."""
    from subcell.io._atomic import check_output
    from subcell.synth import load_config, write_synth

    check_output(output, overwrite=overwrite)
    cfg = load_config(
        config,
        overrides={"shape": shape, "voxel_size": voxel_size, "n_cells": n_cells, "seed": seed, "time.frames": frames},
        assignments=set_ or (),
    )
    path = write_synth(cfg, output, overwrite=overwrite, large=large)
    typer.echo(f"wrote {path} (shape {cfg.shape}, {cfg.time.frames} frame(s), seed {cfg.seed})")


workflows_app = typer.Typer(help="Built-in segmentation workflows.", no_args_is_help=True)
app.add_typer(workflows_app, name="workflows")


@workflows_app.command("list")
def workflows_list() -> None:
    """List the built-in workflows with their inputs."""
    from subcell.segment import builtin_workflows, load_workflow

    for name in builtin_workflows():
        w = load_workflow(name)
        typer.echo(f"{name:<24} {w.kind:<8} inputs: {', '.join(w.inputs)}")


@workflows_app.command("show")
def workflows_show(name: Annotated[str, typer.Argument(help="Built-in workflow name.")]) -> None:
    """Print a built-in workflow as editable YAML (save it, edit it, pass the file to --workflow)."""
    from subcell.segment import workflow_yaml

    typer.echo(workflow_yaml(name), nl=False)


def _channel_map(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or []:
        if "=" in v:
            k, c = v.split("=", 1)
            out[k.strip()] = c.strip()
        else:
            out["__single__"] = v.strip()
    return out


@app.command()
def segment(
    input: Annotated[Path, typer.Argument(help="Image file.")],
    output: Annotated[Path, typer.Argument(help="Labels: *.ome.zarr or *.ome.tif.")],
    workflow: Annotated[str, typer.Option("--workflow", "-w", help="Built-in workflow name or a YAML file.")],
    channel: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--channel", "-c", help="Channel for the input: NAME_OR_INDEX, or INPUT=NAME_OR_INDEX (repeat)."),
    ] = None,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    block_yx: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--block-yx", help="Process in y/x blocks of this many pixels (bounded memory; .ome.zarr output)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Segment an image with a workflow; writes labels (instance) or a mask with the image's voxel size."""
    import numpy as np

    from subcell.io import read, write
    from subcell.io._atomic import check_output
    from subcell.io.writer import output_format
    from subcell.segment import load_workflow, segment_image

    output_format(output)
    check_output(output, overwrite=overwrite)
    wf = load_workflow(workflow)
    chans: dict[str, str | int] = dict(_channel_map(channel))
    if "__single__" in chans:
        single = chans.pop("__single__")
        if len(wf.inputs) != 1:
            from subcell.errors import ChannelError

            raise ChannelError(
                f"workflow {wf.name!r} has inputs {wf.inputs}; give --channel INPUT=NAME for each", field="channel"
            )
        chans[wf.inputs[0]] = single
    image = read(input, voxel_size=voxel_size, axes=axes)
    if block_yx is not None:
        from subcell.errors import InputFileError
        from subcell.segment.chunked import segment_chunked

        if output_format(output) != "ome-zarr":
            raise InputFileError("block-wise segmentation streams to OME-Zarr; use a .ome.zarr output", path=output)
        segment_chunked(image, wf, output, channels=chans, block_yx=block_yx, overwrite=overwrite)
        typer.echo(f"wrote {output} block by block ({block_yx} px blocks, {wf.name}; same result as a whole-field run)")
        return
    labels = segment_image(image, wf, channels=chans)
    write(labels, output, overwrite=overwrite, is_label=wf.kind == "instance")
    data = labels.numpy()
    if wf.kind == "instance":  # objects per frame (ids are not the count: they need not be consecutive)
        counts = [int(np.unique(frame[frame > 0]).size) for frame in data[:, 0]]
        what = f"{counts[0]} objects" if len(counts) == 1 else f"{sum(counts)} objects in {len(counts)} frames"
    else:
        what = f"{int(data.sum())} foreground voxels"
    border = labels.provenance.parameters.get("border_ids")
    extra = f", {len(border[0])} touching the border" if border else ""
    typer.echo(f"wrote {output}: {what}{extra} ({wf.name})")


def _read_any_labels(path: Path, voxel_size: tuple[float, float, float] | None, axes: str | None = None) -> Any:
    """Labels for counting metrics: the voxel size does not matter there, so a file without one still opens."""
    from subcell.errors import MetadataError
    from subcell.io import read

    try:
        return read(path, voxel_size=voxel_size, axes=axes)
    except MetadataError as e:
        if e.field != "voxel_size" or voxel_size is not None:
            raise
        return read(path, voxel_size=(1.0, 1.0, 1.0), axes=axes)


@app.command("evaluate-seg")
def evaluate_seg(
    pred: Annotated[Path, typer.Argument(help="Predicted labels (or mask).")],
    truth: Annotated[Path, typer.Argument(help="Ground-truth labels (or mask).")],
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Write the per-threshold table (.csv or .parquet).")  # noqa: UP045
    ] = None,
    objects: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--objects", help="Write the per-object matches, or per-frame scores of a time-lapse."),
    ] = None,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
) -> None:
    """Dice/IoU of the foreground and instance matching (precision, recall, F1, AP at IoU 0.5–0.9).

    A time-lapse is scored frame by frame (objects are matched within each frame) and summarised over frames.
    """
    from subcell.errors import ValueRangeError
    from subcell.io import as_labels, write_table
    from subcell.metrics import dice, evaluate_frames, iou, match_instances

    p_img, t_img = _read_any_labels(pred, voxel_size, axes), _read_any_labels(truth, voxel_size, axes)
    for name, img in ((pred, p_img), (truth, t_img)):
        if img.shape[1] != 1:
            raise ValueRangeError(f"{name}: labels must have one channel, got {img.shape[1]}", field="labels")
    p = as_labels(p_img.numpy()[:, 0], path=pred)
    t = as_labels(t_img.numpy()[:, 0], path=truth)
    if p.shape != t.shape:
        raise ValueRangeError(
            f"prediction {pred} has T,Z,Y,X {p.shape} but ground truth {truth} has {t.shape}"
            " (for a plain TIFF time-lapse pass --axes, e.g. TYX)",
            field="shape",
        )
    if p.shape[0] > 1:
        per_frame, table = evaluate_frames(p, t)
        typer.echo(f"{p.shape[0]} frames, scored one by one; F1@0.5 per frame "
                   f"{per_frame['f1@0.5'].min():.3f}–{per_frame['f1@0.5'].max():.3f}")  # fmt: skip
        typer.echo(f"objects: {int(per_frame.n_true.sum())} true, {int(per_frame.n_pred.sum())} predicted (all frames)")
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        for path, frame in ((out, table), (objects, per_frame)):
            if path is not None:
                write_table(frame, path, overwrite=True)
        return
    typer.echo(f"foreground: Dice {dice(p, t):.4f}  IoU {iou(p, t):.4f}")
    m = match_instances(p[0], t[0])
    typer.echo(f"objects: {m.n_true} true, {m.n_pred} predicted, mean matched IoU {m.mean_matched_iou():.3f}")
    table = m.table()
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for path, frame in ((out, table), (objects, m.objects())):
        if path is not None:
            write_table(frame, path, overwrite=True)


@app.command()
def measure(
    labels: Annotated[Path, typer.Argument(help="Instance labels (cells, nuclei, ...).")],
    output: Annotated[Path, typer.Argument(help="Table: .parquet or .csv.")],
    intensity: Annotated[
        Optional[Path], typer.Option("--intensity", help="Image whose channels are measured in each object.")  # noqa: UP045
    ] = None,
    structure: Annotated[
        Optional[list[str]], typer.Option("--structure", help="NAME=FILE of a structure mask/labels (repeat).")  # noqa: UP045
    ] = None,
    voxel_size: VoxelSizeOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Per object: volume µm³, surface µm², sphericity, centroid µm, bbox, axes, intensities, structures inside."""
    from subcell.errors import InputFileError, ValueRangeError
    from subcell.io import read, write_table
    from subcell.io._atomic import check_output
    from subcell.io.files import TABLE_SUFFIXES
    from subcell.segment import measure_objects, structures_per_cell

    if output.suffix.lower() not in TABLE_SUFFIXES:
        raise InputFileError(f"tables are written as {' or '.join(TABLE_SUFFIXES)}", path=output)
    check_output(output, overwrite=overwrite)
    from subcell.io import as_labels

    lab_img = read(labels, voxel_size=voxel_size)
    if lab_img.shape[1] != 1:
        raise ValueRangeError(f"labels must have one channel, got {lab_img.shape[1]}", field="labels")
    lab = as_labels(lab_img.numpy(), path=labels)
    chans = {}
    if intensity is not None:
        img = read(intensity, voxel_size=lab_img.voxel_size.as_tuple())
        if img.shape[0] != lab.shape[0] or img.shape[2:] != lab.shape[2:]:
            raise ValueRangeError(
                f"intensity image {intensity} has T,Z,Y,X {img.shape[:1] + img.shape[2:]} but labels have {lab.shape[:1] + lab.shape[2:]}",
                field="intensity",
            )
        arr = img.numpy()
        chans = {n: arr[:, i] for i, n in enumerate(img.channel_names)}
    structs = {}
    for item in structure or []:
        if "=" not in item:
            raise ValueRangeError(f"expected NAME=FILE, got {item!r}", field="structure")
        name, path = item.split("=", 1)
        s = read(Path(path), voxel_size=lab_img.voxel_size.as_tuple()).numpy()
        if s.shape != lab.shape:
            raise ValueRangeError(
                f"structure {name!r} ({path}) has shape {s.shape} but labels have {lab.shape}", field="structure"
            )
        structs[name] = s
    import pandas as pd

    frames = []
    for t in range(lab.shape[0]):
        table = measure_objects(lab[t, 0], voxel_size=lab_img.voxel_size, intensity={k: v[t] for k, v in chans.items()})
        if structs and len(table):
            per_cell = structures_per_cell(
                lab[t, 0], {k: v[t, 0] for k, v in structs.items()}, voxel_size=lab_img.voxel_size
            )
            table = table.merge(per_cell.drop(columns=["cell_volume_um3"]), on="label", how="left")
        table.insert(0, "t", t)
        frames.append(table)
    result = pd.concat(frames, ignore_index=True)
    write_table(result, output, overwrite=overwrite)
    typer.echo(f"wrote {output}: {len(result)} objects, {len(result.columns)} columns")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo_output"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs from an earlier run.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the synthetic data.")] = 0,
    labelfree_minutes: Annotated[
        float, typer.Option("--labelfree-minutes", help="CPU training budget of the label-free step.", min=0.01)
    ] = 3.0,
    integrated_minutes: Annotated[
        float, typer.Option("--integrated-minutes", help="CPU training budget of the integrated-cell step.", min=0.01)
    ] = 2.0,
) -> None:
    """Run the end-to-end pipeline on built-in synthetic data."""
    from subcell.cli.demo import run_demo

    for line in run_demo(out, overwrite=overwrite, seed=seed, labelfree_minutes=labelfree_minutes,
                         integrated_minutes=integrated_minutes):  # fmt: skip
        typer.echo(line)


def run(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line on stderr and exit status 2.

    Usage errors are handled by click (usage message, status 2); :class:`~subcell.errors.SubcellError` from the
    Python API becomes ``error: <file>: <field>: <what was expected>``.
    """
    from subcell.errors import ManifestError, SubcellError

    args = list(sys.argv[1:] if argv is None else argv)
    _STATE["verbose"] = False  # nothing carries over from an earlier in-process run
    try:
        app(args=args, prog_name="subcell", standalone_mode=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except SubcellError as e:
        if _STATE["verbose"] or "--verbose" in args or "-v" in args:
            import traceback

            traceback.print_exc()
        message = str(e) if isinstance(e, ManifestError) else " ".join(str(e).split())
        typer.echo(f"error: {message}", err=True)
        return 2
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(run())
