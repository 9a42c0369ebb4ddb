"""Commands of classical segmentation: ``workflows``, ``segment``, ``evaluate-seg``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.options import (
    AxesOpt,
    ForceOpt,
    SceneOpt,
    TimeIntervalOpt,
    VoxelSizeOpt,
    WorkersOpt,
    axes_among,
    channel_of,
    cluster_executor,
    label_channel,
    read_assuming,
    read_input,
)

__all__ = ["evaluate_seg", "segment", "workflows_app"]

workflows_app = typer.Typer(help="Built-in segmentation workflows.", no_args_is_help=True)


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
    force_voxel_size: ForceOpt = False,
    scene: SceneOpt = None,
    time_interval: TimeIntervalOpt = None,
    block_yx: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--block-yx", help="Process in y/x blocks of this many pixels (bounded memory; .ome.zarr output)."
        ),
    ] = None,
    scheduler: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--scheduler", help="With --block-yx: run the blocks on Dask (local, tcp://HOST:PORT, queue .yaml)."
        ),
    ] = None,
    workers: WorkersOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Segment an image with a workflow; writes labels (instance) or a mask with the image's voxel size."""
    import numpy as np

    from subcell.io._atomic import check_output
    from subcell.io.writer import output_format
    from subcell.segment import load_workflow, segment_to_file

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
    if scheduler is not None and block_yx is None:
        from subcell.errors import ValueRangeError

        raise ValueRangeError("--scheduler spreads the blocks of one volume: give --block-yx too", field="scheduler")
    image = read_input(input, voxel_size=voxel_size, axes=axes, force=force_voxel_size, scene=scene,
                       time_interval=time_interval)  # fmt: skip
    if block_yx is not None:
        from subcell.errors import InputFileError
        from subcell.segment.chunked import segment_chunked

        if output_format(output) != "ome-zarr":
            raise InputFileError("block-wise segmentation streams to OME-Zarr; use a .ome.zarr output", path=output)
        with cluster_executor(scheduler, workers=workers, what="blocks") as (executor, where), channel_of(input):
            segment_chunked(
                image, wf, output, channels=chans, block_yx=block_yx, overwrite=overwrite, executor=executor
            )
        typer.echo(f"wrote {output} block by block ({block_yx} px blocks{where}, {wf.name}; "
                   "same result as a whole-field run)")  # fmt: skip
        return
    counts: list[int] = []  # objects per frame (ids are not the count: they need not be consecutive), or voxels
    border: list[int] = []  # objects touching their frame's border, per frame

    def count(t: int, frame: np.ndarray, border_ids: list[int]) -> None:
        counts.append(int(np.unique(frame[frame > 0]).size) if wf.kind == "instance" else int(frame.sum()))
        border.append(len(border_ids))

    # written a frame at a time, as each is segmented: a time-lapse's labels are never held whole
    with channel_of(input):
        segment_to_file(image, wf, output, channels=chans, overwrite=overwrite, on_frame=count)
    if wf.kind == "instance":
        what = f"{counts[0]} objects" if len(counts) == 1 else f"{sum(counts)} objects in {len(counts)} frames"
    else:
        what = f"{sum(counts)} foreground voxels"
    extra = f", {sum(border)} touching the border" if wf.kind == "instance" else ""  # (of a movie: over its frames)
    typer.echo(f"wrote {output}: {what}{extra} ({wf.name})")


def _read_any_labels(path: Path, voxel_size: Any, axes: str | None = None, force: bool = False) -> Any:
    """Labels for counting metrics: the voxel size does not matter there, so a file without one still opens."""
    return read_assuming(lambda vs: read_input(path, voxel_size=vs, axes=axes, force=force), voxel_size, (1.0,) * 3)


def evaluate_seg(
    pred: Annotated[Path, typer.Argument(help="Predicted labels (or mask).")],
    truth: Annotated[
        Path,
        typer.Argument(
            help="Ground-truth labels (or mask), or a CTC SEG folder (man_seg012.tif …: the annotated frames only)."
        ),
    ],
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Write the per-threshold table (.csv or .parquet).")  # noqa: UP045
    ] = None,
    objects: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--objects", help="Write the per-object matches, or per-frame scores of a time-lapse."),
    ] = None,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    force_voxel_size: ForceOpt = False,
) -> None:
    """Dice/IoU of the foreground, instance matching (precision, recall, F1, AP at IoU 0.5–0.9) and the Cell
    Tracking Challenge's SEG.

    A time-lapse is scored frame by frame (objects are matched within each frame) and summarised over frames.
    """
    from subcell.errors import ValueRangeError
    from subcell.io import as_labels
    from subcell.io.ctc import read_ctc_seg
    from subcell.metrics import evaluate_frames, match_instances

    annotated = read_ctc_seg(truth) if truth.is_dir() else None
    if annotated:  # the CTC annotates some frames (or planes) only: those are scored
        p_img = _read_any_labels(pred, voxel_size, axes, force_voxel_size)
        per_frame, table = _score_annotated(as_labels(p_img.data[:, 0], path=pred, lazy=True), annotated)
        what = "planes" if "z" in per_frame else "frames"
        typer.echo(f"{len(per_frame)} annotated {what} of {p_img.shape[0]} scored; objects: "
                   f"{int(per_frame.n_true.sum())} true, {int(per_frame.n_pred.sum())} predicted")  # fmt: skip
        _print_scores(table, out, objects, per_frame)
        return
    axes_of = axes_among(axes, [pred, truth])  # e.g. an OME-Zarr prediction against plain TIFF truth
    p_img = _read_any_labels(pred, voxel_size, axes_of(pred), force_voxel_size)
    t_img = _read_any_labels(truth, voxel_size, axes_of(truth), force_voxel_size)
    for name, img in ((pred, p_img), (truth, t_img)):
        label_channel(img, name)
    # read lazily and scored a piece at a time (each label block checked as it is read): never held whole
    p = as_labels(p_img.data[:, 0], path=pred, lazy=True)
    t = as_labels(t_img.data[:, 0], path=truth, lazy=True)
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
        _print_scores(table, out, objects, per_frame)
        return
    m = match_instances(p[0], t[0])
    typer.echo(f"foreground: Dice {m.dice():.4f}  IoU {m.iou():.4f}")
    typer.echo(f"objects: {m.n_true} true, {m.n_pred} predicted, mean matched IoU {m.mean_matched_iou():.3f}")
    table = m.table()
    table.attrs["seg"] = m.seg()
    _print_scores(table, out, objects, m.objects())


def _print_scores(table: Any, out: Path | None, objects: Path | None, per_object: Any) -> None:
    """The summary (SEG, the per-threshold table) printed, and the tables written where asked."""
    from subcell.io import write_table

    typer.echo(f"SEG {table.attrs['seg']:.4f} (CTC: mean Jaccard of the true objects with the predicted object "
               "covering more than half of each, 0 where none does)")  # fmt: skip
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for path, frame in ((out, table), (objects, per_object)):
        if path is not None:
            write_table(frame, path, overwrite=True)


def _score_annotated(pred: Any, annotated: list[tuple[int, int | None, Path, Any]]) -> tuple[Any, Any]:
    """Per annotated frame (or plane) and summed scores of a (T, Z, Y, X) prediction against a CTC SEG folder's
    frames (:func:`subcell.io.ctc.read_ctc_seg`), each against the frame (or plane) it names."""
    import dask.array as da

    from subcell.errors import InputFileError
    from subcell.metrics import evaluate_frames

    if len({z is None for _, z, _, _ in annotated}) > 1:
        raise InputFileError("the SEG folder mixes whole frames and planes (man_seg_TTT_ZZZ.tif); score each apart",
                             path=annotated[0][2].parent)  # fmt: skip
    preds = []
    for t, z, f, have in annotated:
        if t >= pred.shape[0] or (z is not None and z >= pred.shape[1]):
            raise InputFileError(f"annotates frame {t}{'' if z is None else f' plane {z}'} but the prediction has "
                                 f"T, Z {tuple(pred.shape[:2])}", path=f)  # fmt: skip
        want = pred[t] if z is None else pred[t, z][None]
        if have.shape != want.shape:
            raise InputFileError(f"Z, Y, X {tuple(have.shape)} but the prediction's frame is {tuple(want.shape)}",
                                 path=f)  # fmt: skip
        preds.append(want)
    per_frame, table = evaluate_frames(da.stack(preds), da.stack([a[3] for a in annotated]))
    per_frame["t"] = [t for t, _, _, _ in annotated]
    if annotated[0][1] is not None:
        per_frame.insert(1, "z", [z for _, z, _, _ in annotated])
    return per_frame, table
