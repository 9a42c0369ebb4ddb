"""The ``measure`` command: per-object sizes, shapes, intensities, compartments, neighbours and colocalization."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.options import (
    AxesOpt,
    ForceOpt,
    VoxelSizeOpt,
    axes_among,
    label_channel,
    read_beside,
    read_input,
)

__all__ = ["channel_values", "colocalization_spec", "measure"]


def colocalization_spec(
    pairs: list[str],
    channels: list[str],
    thresholds: str,
    randomizations: int,
    block_um: tuple[float, float, float] | None,
) -> Any:
    """The ``--colocalize`` options as a :class:`~subcell.metrics.colocalization.ColocalizationSpec`: each pair's
    channels by name or index, the thresholds as a method or two numbers."""
    from dataclasses import replace

    from subcell.errors import ValueRangeError
    from subcell.metrics.colocalization import THRESHOLDS, ColocalizationSpec

    def channel(token: str) -> str:
        if token in channels:
            return token
        if token.lstrip("-").isdigit() and -len(channels) <= int(token) < len(channels):
            return channels[int(token)]
        raise ValueRangeError(f"no channel {token!r} in --intensity; it has {channels}", field="colocalize")

    chosen = []
    for pair in pairs:
        names = [p.strip() for p in pair.split(",")]
        if len(names) != 2 or not all(names):
            raise ValueRangeError(f"expected two channels A,B, got {pair!r}", field="colocalize")
        chosen.append((channel(names[0]), channel(names[1])))
    method: str | tuple[float, float] = thresholds
    if thresholds not in THRESHOLDS:
        try:
            ta, tb = (float(v) for v in thresholds.split(","))
        except ValueError:
            raise ValueRangeError(
                f"expected {' or '.join(THRESHOLDS)} or two numbers TA,TB, got {thresholds!r}", field="coloc-thresholds"
            ) from None
        method = (ta, tb)
    if block_um is not None and not all(v > 0 for v in block_um):
        raise ValueRangeError(f"block sizes must be positive µm, got {block_um}", field="coloc-block-um")
    spec = ColocalizationSpec(tuple(chosen), method, randomizations)
    return spec if block_um is None else replace(spec, block_um=block_um)


def channel_values(items: list[str] | None, channels: list[str], field: str) -> dict[str, float] | None:
    """``VALUE`` (every channel) or ``NAME=VALUE`` options as ``{channel: value}``; None when there are none."""
    from subcell.errors import ValueRangeError

    if not items:
        return None
    out: dict[str, float] = {}
    for item in items:
        name, _, text = item.rpartition("=")
        try:
            value = float(text)
        except ValueError:
            raise ValueRangeError(f"expected VALUE or NAME=VALUE, got {item!r}", field=field) from None
        if name and name not in channels:
            raise ValueRangeError(f"no channel {name!r} in --intensity; it has {channels}", field=field)
        out.update({name: value} if name else dict.fromkeys(channels, value))
    return out


def measure(
    labels: Annotated[
        Path, typer.Argument(help="Instance labels (cells, nuclei, ...), or a mask: measured per connected component.")
    ],
    output: Annotated[Path, typer.Argument(help="Table: .parquet or .csv.")],
    intensity: Annotated[
        Optional[Path], typer.Option("--intensity", help="Image whose channels are measured in each object.")  # noqa: UP045
    ] = None,
    intensity_scene: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--intensity-scene", help="Scene of --intensity in a multi-scene file (index or name)."),
    ] = None,
    structure: Annotated[
        Optional[list[str]], typer.Option("--structure", help="NAME=FILE of a structure mask/labels (repeat).")  # noqa: UP045
    ] = None,
    components: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--components/--no-components",
            help="Measure each connected component as an object (default: for a mask, e.g. an organelle "
            "segmentation: only 0 and 1, or 0 and 255); --no-components measures a mask as one object.",
        ),
    ] = None,
    skeleton: Annotated[
        bool,
        typer.Option(
            "--skeleton",
            help="Add each object's skeleton length (µm), branch and end points: the network measures of tubular "
            "organelles (mitochondria, ER).",
        ),
    ] = False,
    exclude: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--exclude",
            help="Labels or a mask whose voxels are left out of every object (and of their local background): "
            "cells without their nuclei are measured as their cytoplasm.",
        ),
    ] = None,
    colocalize: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--colocalize",
            help="A,B: two channels of --intensity (names or indices) compared in each object: Pearson, Spearman, "
            "Manders' M1/M2 above thresholds, overlap, ICQ (repeat for more pairs).",
        ),
    ] = None,
    coloc_thresholds: Annotated[
        str,
        typer.Option(
            "--coloc-thresholds",
            help="Where each channel's signal starts, per object: costes (automatic, from the pair's regression), "
            "otsu (each channel's own), or TA,TB (e.g. the backgrounds).",
        ),
    ] = "costes",
    coloc_randomizations: Annotated[
        int,
        typer.Option(
            "--coloc-randomizations",
            min=0,
            help="Costes' significance test: shuffles of blocks of the first channel (adds _p_value; 0: none).",
        ),
    ] = 0,
    coloc_block_um: Annotated[
        Optional[tuple[float, float, float]],  # noqa: UP045
        typer.Option(
            "--coloc-block-um",
            help="Z Y X µm of the shuffled blocks (default: as long as the pair's texture in each object; Costes "
            "used the PSF's size).",
        ),
    ] = None,
    nuclei: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--nuclei",
            help="Nucleus labels or mask: adds each cell's nucleus and cytoplasm (sizes, nuclei count) and, per "
            "--intensity channel, their means and N/C ratio above the local background.",
        ),
    ] = None,
    nc_margin_um: Annotated[
        float,
        typer.Option(
            "--nc-margin-um", help="Band each side of the nuclear boundary left out of both compartments (µm)."
        ),
    ] = 0.3,
    nc_background: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--nc-background",
            help="Background under the N/C ratios: VALUE for every channel or NAME=VALUE (repeat; default: each "
            "cell's local background, wrong where the labels leave parts of cells out).",
        ),
    ] = None,
    radial: Annotated[
        int,
        typer.Option(
            "--radial",
            help="Shells from each cell's centre (with --nuclei: its nucleus) out to its edge: the share of each "
            "--intensity channel's signal in each, and its mean position (0: off).",
        ),
    ] = 0,
    neighbours: Annotated[
        bool,
        typer.Option(
            "--neighbours",
            help="Add each object's neighbours (count, ids), the share of its surface in contact, the distance to "
            "the nearest one, and its colony: size, whether the cell is at its edge, its distance to the edge (µm).",
        ),
    ] = False,
    neighbour_um: Annotated[
        float,
        typer.Option("--neighbour-um", help="Background two neighbours may have between them (µm; 0: touching)."),
    ] = 1.0,
    colony_gap_um: Annotated[
        float,
        typer.Option(
            "--colony-gap-um",
            help="Gaps a colony closes between its cells (µm; wider ones part colonies; from nuclei alone ~15).",
        ),
    ] = 1.0,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    force_voxel_size: ForceOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Per object and frame: volume µm³ (area µm² in 2D), surface, shape, centroid µm, bbox, axes, intensities."""
    from subcell.errors import InputFileError, ValueRangeError
    from subcell.io import as_labels, write_table
    from subcell.io._atomic import check_output
    from subcell.io.files import TABLE_SUFFIXES
    from subcell.metrics.neighbours import NeighbourSpec
    from subcell.segment import measure_frames

    if output.suffix.lower() not in TABLE_SUFFIXES:
        raise InputFileError(f"tables are written as {' or '.join(TABLE_SUFFIXES)}", path=output)
    check_output(output, overwrite=overwrite)
    # e.g. labels written by `segment` (OME-Zarr) and the plain TIFF movie they came from
    axes_of = axes_among(axes, [labels, *([intensity] if intensity else [])])
    lab_img = read_input(labels, voxel_size=voxel_size, axes=axes_of(labels), force=force_voxel_size)
    label_channel(lab_img, labels)
    # every input stays lazy: measured a frame at a time, so a time-lapse is never held whole (label blocks are
    # checked as they are read)
    lab = as_labels(lab_img.data[:, 0], path=labels, lazy=True)
    chans = {}
    if intensity is not None:
        img = read_beside(intensity, lab_img, axes=axes_of(intensity), what="the intensity image",
                          scene=intensity_scene)  # fmt: skip
        chans = {n: img.data[:, i] for i, n in enumerate(img.channel_names)}
    if radial and intensity is None:
        raise ValueRangeError("--radial splits the channels of --intensity: give --intensity IMAGE", field="radial")
    if radial < 0:
        raise ValueRangeError(f"--radial must be 0 (off) or a number of shells, got {radial}", field="radial")
    if nc_background and nuclei is None:
        raise ValueRangeError("--nc-background is the background of the N/C ratios: give --nuclei NUCLEI too",
                              field="nc_background")  # fmt: skip
    coloc = None
    if colocalize:
        if intensity is None:
            raise ValueRangeError("--colocalize compares channels of --intensity: give --intensity IMAGE",
                                  field="colocalize")  # fmt: skip
        coloc = colocalization_spec(colocalize, img.channel_names, coloc_thresholds, coloc_randomizations,
                                    coloc_block_um)  # fmt: skip

    def labels_beside(path: Path, what: str) -> Any:  # a structure, --exclude, --nuclei: on the labels' grid, lazy
        return as_labels(read_beside(path, lab_img, axes=axes_of(path), what=what).data[:, 0], path=path, lazy=True)

    structs = {}
    for item in structure or []:
        if "=" not in item:
            raise ValueRangeError(f"expected NAME=FILE, got {item!r}", field="structure")
        name, path = item.split("=", 1)
        structs[name] = labels_beside(Path(path), f"structure {name!r}")
    left_out = None if exclude is None else labels_beside(exclude, "--exclude")
    nuc = None if nuclei is None else labels_beside(nuclei, "--nuclei")
    result = measure_frames(lab, voxel_size=lab_img.voxel_size, intensity=chans, structures=structs, exclude=left_out,
                            time_interval_s=lab_img.time_interval if lab_img.shape[0] > 1 else None,
                            components=components, skeleton=skeleton, colocalize=coloc,
                            neighbours=NeighbourSpec(neighbour_um, colony_gap_um) if neighbours else None,
                            nuclei=nuc, nc_margin_um=nc_margin_um,
                            nc_background=channel_values(nc_background, list(chans), "nc_background"),
                            radial=radial)  # fmt: skip
    if result.attrs["components"] and components is None:
        typer.echo(f"note: {labels} is a mask: each connected component measured as an object (numbered in each "
                   "frame; --no-components for the mask as one object)", err=True)  # fmt: skip
    write_table(result, output, overwrite=overwrite)
    if nuclei is not None and not nc_background:
        for name in chans:  # the local background reached the cytoplasm: the labels leave parts of cells out
            undefined = int((result[f"{name}_cytoplasm_mean"] <= result[f"{name}_background"]).sum())
            if undefined:
                typer.echo(f"note: {undefined} of {len(result)} cells have no {name} N/C ratio: their local "
                           "background is as bright as their cytoplasm (labels tighter than the cells, or cells "
                           "left unlabelled); give the background with --nc-background", err=True)  # fmt: skip
    typer.echo(f"wrote {output}: {len(result)} objects, {len(result.columns)} columns")
