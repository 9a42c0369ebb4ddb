"""Commands about files: ``info``, ``convert``, ``manifest check``, ``synth``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.options import (
    AxesOpt,
    ForceOpt,
    SceneOpt,
    TimeIntervalOpt,
    VoxelSizeOpt,
    error_line,
    read_input,
    scene_arg,
)

__all__ = ["convert", "info", "manifest_app", "synth"]

manifest_app = typer.Typer(help="Dataset manifests (CSV / Parquet).", no_args_is_help=True)


def info(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Image files (OME-TIFF, OME-Zarr, TIFF, CZI, ND2, LIF) or track graphs (geff, TrackMate "
            "XML); several at once."
        ),
    ],
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    scene: SceneOpt = None,
    force_voxel_size: ForceOpt = False,
    time_interval: TimeIntervalOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON (a list for several files).")
    ] = False,
) -> None:
    """Show dims, dtype, voxel size, channels, scenes, chunks and size (reads metadata only)."""
    from subcell.errors import SubcellError
    from subcell.io import describe

    def one(file: Path) -> dict[str, Any]:
        from subcell.io.geff import is_geff, is_trackmate_xml
        from subcell.track.graph import describe_graph

        if is_geff(file) or is_trackmate_xml(file):  # tracks as a graph
            return describe_graph(file)
        return describe(file, scene=scene_arg(scene), voxel_size=voxel_size, axes=axes, force=force_voxel_size,
                        time_interval=time_interval)  # fmt: skip

    if len(files) == 1:  # one file: its error is the command's (one line, status 2)
        d = one(files[0])
        typer.echo(json.dumps(d, indent=2) if as_json else _info_text(d))
        return
    # several (a folder's worth): each file described or its error said on stderr, the rest still described
    found: list[dict[str, Any]] = []
    failed = 0
    for file in files:
        try:
            found.append(one(file))
        except SubcellError as e:
            failed += 1
            typer.echo(error_line(e), err=True)
            found.append({"path": str(file), "error": e.message})
    if as_json:
        typer.echo(json.dumps(found, indent=2))
    else:
        typer.echo("\n\n".join(_info_text(d) for d in found if "error" not in d))
    if failed:
        raise typer.Exit(2)


def _info_text(d: dict[str, Any]) -> str:
    if "nodes" in d:
        return _graph_text(d)
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
        (
            "time interval",
            f"{d['time_interval_s']:.6g} s ({d['time_interval_source']})" if d["time_interval_s"] else "—",
        ),
        ("scenes", _scenes_text(d)),
        ("chunks", " × ".join(str(c) for c in d["chunks"])),
        (
            "size",
            f"{_human(d['size_bytes'])} in memory, {_human(d['file_bytes'])} on disk"
            + (" (the whole file)" if len(d["scenes"]) > 1 and Path(d["path"]).is_file() else ""),
        ),
    ]
    if "plate" in d:
        pl = d["plate"]
        few, most = pl["fields_per_well"]

        def span(what: str, ends: list[str]) -> str:  # "rows A–H", "row A"
            return f"{what} {ends[0]}" if ends[0] == ends[-1] else f"{what}s {ends[0]}–{ends[-1]}"

        wells = f"{pl['wells']} well{'s' if pl['wells'] != 1 else ''}"
        rows.append(("plate", f"{pl['name']}: {wells} in {span('row', pl['rows'])}, {span('column', pl['columns'])}; "
                              f"{few if few == most else f'{few}–{most}'} field{'s' if most != 1 else ''} per well"
                              + (f" over {pl['acquisitions']} acquisitions" if pl.get("acquisitions", 1) > 1
                                 else "")))  # fmt: skip
    if d["labels"]:
        rows.append(("labels", ", ".join(d["labels"])))
    for note in d["notes"]:
        rows.append(("note", note))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _scenes_text(d: dict[str, Any]) -> str:
    """``5: A/1/0, A/1/1, … (this is B/3/1)``: how many scenes, the first names, and which one is described."""
    names = d["scenes"]
    text = f"{len(names)}: {', '.join(names[:8])}{' …' if len(names) > 8 else ''}"
    return text + (f" (this is {d['scene']})" if len(names) > 1 and d["scene"] else "")


def _graph_text(d: dict[str, Any]) -> str:
    """A track graph's :func:`~subcell.track.graph.describe_graph` as rows."""

    def axis(a: dict[str, Any]) -> str:
        unit = a["unit"] or ("frames" if a["type"] == "time" else "pixels")
        scaled = f" (× {a['scale']:g} {a['scaled_unit'] or ''})".rstrip() if a["scale"] is not None else ""
        return f"{a['name']} in {unit}{scaled}"

    rows = [("file", d["path"]), ("format", d["format"]),
            ("graph", f"{d['nodes']} nodes, {d['tracklets']} tracklets, {d['divisions']} divisions"),
            ("frames", f"{d['frames'][0]}–{d['frames'][1]}")]  # fmt: skip
    if d["axes"]:
        rows.append(("axes", ", ".join(axis(a) for a in d["axes"])))
    if d["related_labels"]:
        exists = "" if d["related_labels"]["exists"] else " (missing)"
        rows.append(("labels", d["related_labels"]["path"] + exists))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{n} B"


def convert(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Input image file; several (one file per channel, same grid) are stacked as channels in order."
        ),
    ],
    output: Annotated[Path, typer.Argument(help="Output: *.ome.zarr or *.ome.tif.")],
    voxel_size: VoxelSizeOpt = None,
    channel_names: Annotated[
        Optional[str], typer.Option("--channel-names", help="Comma-separated channel names, e.g. brightfield,dna.")  # noqa: UP045
    ] = None,
    axes: AxesOpt = None,
    scene: SceneOpt = None,
    force_voxel_size: ForceOpt = False,
    time_interval: TimeIntervalOpt = None,
    ngff_version: Annotated[str, typer.Option("--ngff-version", help="OME-Zarr version: 0.4 or 0.5.")] = "0.4",
    resample: Annotated[
        Optional[tuple[float, float, float]],  # noqa: UP045
        typer.Option(
            "--resample",
            metavar="Z Y X",
            help="Resample to this voxel size in µm (linear, anti-aliased, "
            "a few planes at a time; integer images keep their dtype); with --labels, nearest neighbour.",
        ),
    ] = None,
    labels: Annotated[
        bool,
        typer.Option(
            "--labels",
            help="The image holds labels (instance ids or a mask): checked by the label rule (non-negative whole "
            "numbers) as it streams, and resampled by nearest neighbour.",
        ),
    ] = False,
    channel: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--channel", "-c", help="Keep this channel (name or index; repeat, in the order wanted)."),
    ] = None,
    threshold: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            "--threshold",
            help="Write a mask: 1 where the image is at least this, else 0 (uint8), e.g. a "
            "0/255 mask resampled with interpolation, its edges any value between (--threshold 128).",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Convert between formats, streaming chunk by chunk; metadata (µm, channels, provenance) is kept. Several
    inputs (e.g. one file per channel) are stacked as the channels of one image."""
    from subcell.io import write
    from subcell.io._atomic import check_output
    from subcell.io.writer import output_format

    output_format(output)
    check_output(output, overwrite=overwrite)  # fail before reading anything
    names = [c.strip() for c in channel_names.split(",")] if channel_names else None
    read = [
        read_input(path, scene=scene, voxel_size=voxel_size, channel_names=None if len(inputs) > 1 else names,
                   axes=axes, force=force_voxel_size, time_interval=time_interval)
        for path in inputs
    ]  # fmt: skip
    if channel:  # (several inputs: picked from the stacked channels, below)
        from subcell.cli.options import channel_of

        if len(read) == 1:
            with channel_of(inputs[0]):
                read = [read[0].sel(channel=channel)]
    if threshold is not None:  # a mask, block by block as it streams
        import numpy as np

        read = [im.with_data((im.data >= threshold).astype(np.uint8), step="threshold",
                             parameters={"threshold": threshold}) for im in read]  # fmt: skip
    if labels:  # each block checked as it is read: a bad id fails the write, which leaves nothing behind
        from subcell.io._cast import as_labels

        for i, (path, image) in enumerate(zip(inputs, read, strict=True)):
            data = as_labels(image.data, path=path, lazy=True)
            read[i] = image.with_data(data, step="as_labels") if data is not image.data else image
    if len(read) > 1:
        from subcell.transforms.channels import stack_channels

        image = stack_channels(read, channel_names=names)
    else:
        image = read[0]
    if channel and len(read) > 1:
        image = image.sel(channel=channel)
    if resample is not None:  # (a voxel size that is not positive is refused by VoxelSize, as everywhere)
        from subcell.transforms.resample import resample_image_lazy

        image = resample_image_lazy(image, resample, labels=labels or threshold is not None)  # (a mask stays one)
    image = image.with_metadata(provenance=image.provenance.then("convert", {"output": str(output)}))
    write(image, output, overwrite=overwrite, ngff_version=ngff_version)
    typer.echo(
        f"wrote {output} ({' '.join(f'{k}={v}' for k, v in image.sizes.items())}, {image.dtype}, {image.voxel_size})"
    )


@manifest_app.command("make")
def manifest_make(
    output: Annotated[Path, typer.Argument(help="Manifest to write (.csv or .parquet).")],
    inputs: Annotated[list[Path], typer.Argument(help="Image files and folders (searched at any depth).")],
    scenes: Annotated[
        bool, typer.Option("--scenes", help="A row per scene of multi-scene files (CZI, LIF, ...).")
    ] = False,
    sequences: Annotated[
        bool,
        typer.Option(
            "--sequences",
            help="A folder of numbered TIFFs (a file per frame, e.g. a CTC 01/) is one image, not one per file.",
        ),
    ] = False,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    time_interval: TimeIntervalOpt = None,
    no_files: Annotated[bool, typer.Option("--no-files", help="Skip opening each image's metadata.")] = False,
    name_pattern: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--name-pattern",
            help="Regular expression whose named groups become columns, searched in each "
            "file name (with --scenes, each scene's name first), e.g. '(?P<well>[A-P]\\d+)_s(?P<field>\\d+)'.",
        ),
    ] = None,
    companion: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--companion",
            metavar="COLUMN=SUFFIX",
            help="Files named as an image of their folder plus SUFFIX (its labels, mask, target) go in that "
            "image's row as COLUMN, e.g. labels=_labelled puts t01_labelled.tif beside t01.tif (repeat).",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing manifest.")] = False,
) -> None:
    """Make a manifest of every image in files and folders (a row per image or scene; a row per field of an
    OME-Zarr plate, with its well), checked as `check` does."""
    from subcell.io import write_table
    from subcell.io._atomic import check_output
    from subcell.io.files import TABLE_SUFFIXES
    from subcell.io.manifest_make import make_manifest

    if output.suffix.lower() not in TABLE_SUFFIXES:
        from subcell.errors import InputFileError

        raise InputFileError(f"manifests are written as {' or '.join(TABLE_SUFFIXES)}", path=output)
    check_output(output, overwrite=overwrite)
    table = make_manifest(inputs, output, scenes=scenes, sequences=sequences, voxel_size=voxel_size, axes=axes,
                          time_interval=time_interval, check_files=not no_files, name_pattern=name_pattern,
                          companions=companion or ())  # fmt: skip
    write_table(table, output, overwrite=overwrite)
    files = table["source"].nunique()
    typer.echo(f"wrote {output}: {len(table)} rows from {files} file{'s' if files != 1 else ''}"
               + (" (checked)" if not no_files else ""))  # fmt: skip


@manifest_app.command("plate")
def manifest_plate(
    file: Annotated[Path, typer.Argument(help="Manifest (.csv or .parquet) with a column 'well' (B3) or 'row' and 'column', and optionally 'field'.")],
    output: Annotated[Path, typer.Argument(help="The plate to write (.zarr).")],
    name: Annotated[Optional[str], typer.Option("--name", help="Plate name (default: the manifest's column 'plate', else the output's).")] = None,  # noqa: UP045
    plate: Annotated[Optional[str], typer.Option("--plate", help="Only the rows of this plate (column 'plate'), for a manifest of several.")] = None,  # noqa: UP045
    ngff_version: Annotated[str, typer.Option("--ngff-version", help="OME-Zarr version: 0.4 or 0.5.")] = "0.4",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:  # fmt: skip
    """Write a manifest's images as the fields of an OME-Zarr HCS plate (one field at a time; the plate appears
    only when complete)."""
    from subcell.io import read_manifest
    from subcell.io._atomic import check_output
    from subcell.io.plate_writer import manifest_fields, manifest_plates, write_plate

    check_output(output, overwrite=overwrite)
    manifest = read_manifest(file)  # every row's image opened and checked first
    fields = manifest_fields(manifest, plate)
    name = name or plate or next(iter(manifest_plates(manifest)), None)
    write_plate(fields, output, name=name, ngff_version=ngff_version, overwrite=overwrite)
    wells = len({(f.row, f.column) for f in fields})
    typer.echo(f"wrote {output}: {len(fields)} fields in {wells} wells")


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
