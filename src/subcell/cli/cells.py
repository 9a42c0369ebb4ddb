"""``subcell cells extract | shape-space`` (thin layer over :mod:`subcell.cells`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.options import AxesOpt, ForceOpt, SceneOpt, axes_among, read_input

__all__ = ["cells_app", "load_label_array"]

cells_app = typer.Typer(help="Single cells: extract aligned crops, shape space.", no_args_is_help=True)


def load_label_array(path: Path, name: str, fallback_index: int, image: Any, axes: str | None = None) -> Any:
    """(T, Z, Y, X) integer labels: an NGFF label image of an OME-Zarr, or a channel (name or index) of a file
    (a plain TIFF on ``axes``).

    Read lazily (a frame at a time when extracted), each block checked by the package's label rule as it is read."""
    from subcell.errors import ChannelError, ValueRangeError
    from subcell.io import as_labels, detect_format, label_names, read, read_labels

    if detect_format(path) == "ome-zarr" and name in label_names(path):
        data, what = read_labels(path, name).data[:, 0], f"labels {name!r}"
    else:
        lab = read(path, voxel_size=image.voxel_size, force=True, axes=axes)
        try:
            c = lab.channel_index(name)
        except ChannelError:
            if lab.shape[1] <= fallback_index:
                raise ChannelError(f"no label image or channel {name!r} (and no channel {fallback_index})",
                                   path=path) from None  # fmt: skip
            c = fallback_index
        data, what = lab.data[:, c], f"labels in channel {lab.channel_names[c]!r}"
    if tuple(data.shape[-3:]) != tuple(image.shape[2:]):
        raise ValueRangeError(f"{what} have (Z, Y, X) {tuple(data.shape[-3:])}, the field {tuple(image.shape[2:])}: "
                              "expected the field's labels", path=path)  # fmt: skip
    from subcell.segment.measure import interpolated_mask

    if (said := interpolated_mask(data[0])) is not None:  # (the middle of the first frame is read)
        raise ValueRangeError(f"{what}: {said}", path=path, field="labels")
    return as_labels(data, path=path, what=what, lazy=True)


@cells_app.command("extract")
def extract(
    fov: Annotated[Path, typer.Argument(help="Field of view (any readable image).")],
    labels: Annotated[Path, typer.Argument(help="Labels: OME-Zarr with NGFF labels, or an image with label channels.")],
    output: Annotated[Path, typer.Argument(help="Cell store to write (.zarr).")],
    channels: Annotated[Optional[list[str]], typer.Option("--channel", "-c", help="Image channel to keep (repeat); default all.")] = None,  # noqa: UP045
    nuclei: Annotated[Optional[Path], typer.Option("--nuclei", help="A separate file of nucleus labels (else LABELS holds both).")] = None,  # noqa: UP045
    cell_labels: Annotated[str, typer.Option("--cell-labels", help="Label image / channel of cells (else channel 0).")] = "cell",
    nucleus_labels: Annotated[str, typer.Option("--nucleus-labels", help="Label image / channel of nuclei (else channel 1).")] = "nucleus",
    voxel_size: Annotated[Optional[tuple[float, float, float]], typer.Option("--voxel-size", metavar="Z Y X", help="µm, if the file lacks it")] = None,  # noqa: UP045
    axes: AxesOpt = None,
    force_voxel_size: ForceOpt = False,
    scene: SceneOpt = None,
    box: Annotated[tuple[int, int, int], typer.Option("--box", metavar="Z Y X", help="Crop size in voxels.")] = (32, 48, 48),
    voxel_um: Annotated[float, typer.Option("--voxel-um", help="Isotropic voxel of the crops (µm).")] = 0.5,
    margin_um: Annotated[float, typer.Option("--margin-um", help="Space around the cell inside the box (µm).")] = 0.5,
    border: Annotated[str, typer.Option("--border", help="Cells touching the field border: skip | flag.")] = "skip",
    oversize: Annotated[str, typer.Option("--oversize", help="Cells that do not fit: reject | rescale.")] = "reject",
    no_align: Annotated[bool, typer.Option("--no-align", help="Keep the field's orientation.")] = False,
    skip_no_nucleus: Annotated[bool, typer.Option("--skip-cells-without-nucleus", help="Record and skip them instead of failing.")] = False,
    structure: Annotated[Optional[str], typer.Option("--structure", help="Structure in the image (table column).")] = None,  # noqa: UP045
    state: Annotated[Optional[str], typer.Option("--state", help="Cell state, e.g. a mitotic stage (table column).")] = None,  # noqa: UP045
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
) -> None:  # fmt: skip
    """Crop, mask, align and resample every cell of a segmented field into one cell store + table."""
    from subcell.cells import ExtractConfig, extract_to_store
    from subcell.cells.extract import rejection_reasons
    from subcell.config import load_validated
    from subcell.io._atomic import check_output

    check_output(output, overwrite=overwrite)
    cfg = load_validated(ExtractConfig, overrides={
        "channels": channels or None, "box": box, "voxel_um": voxel_um, "margin_um": margin_um, "border": border,
        "oversize": oversize, "align": not no_align, "missing_nucleus": "skip" if skip_no_nucleus else "error",
    })  # fmt: skip
    axes_of = axes_among(axes, [fov, labels, *([nuclei] if nuclei else [])])  # the plain TIFFs among them
    image = read_input(fov, voxel_size=voxel_size, axes=axes_of(fov), force=force_voxel_size, scene=scene)
    cells = load_label_array(labels, cell_labels, 0, image, axes_of(labels))
    nuclei_arr = (
        load_label_array(nuclei, nucleus_labels, 0, image, axes_of(nuclei))
        if nuclei
        else load_label_array(labels, nucleus_labels, 1, image, axes_of(labels))
    )
    meta = {"source": str(fov)}
    if structure:
        meta["structure"] = structure
    if state:
        meta["state"] = state
    table = extract_to_store([(image, cells, nuclei_arr, meta)], output, cfg, overwrite=overwrite)
    ok = int((table.crop_index >= 0).sum())
    rejected = table[table.crop_index < 0]
    why = f"; not extracted: {rejection_reasons(rejected.to_dict('records'))}" if len(rejected) else ""
    typer.echo(f"wrote {output}: {ok} of {len(table)} cells{why}")


@cells_app.command("shape-space")
def shape_space(
    cells: Annotated[Path, typer.Argument(help="Cell store (or its cells.parquet) from `cells extract`.")],
    output: Annotated[Path, typer.Argument(help="Output folder (table, modes, walks, figure).")],
    lmax: Annotated[int, typer.Option("--lmax", help="Spherical-harmonic degree.", min=1, max=32)] = 8,
    modes: Annotated[int, typer.Option("--modes", help="PCA modes kept.", min=1)] = 8,
    walk_modes: Annotated[int, typer.Option("--walk-modes", help="Modes rendered as walks.", min=1)] = 3,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
) -> None:
    """Spherical-harmonic shape features of cell and nucleus, PCA shape modes, walks rendered as images."""
    from subcell.cells import shape_space_of_store
    from subcell.image import Image
    from subcell.io import read_cell_store, write_bundle
    from subcell.io._atomic import check_output

    check_output(output, overwrite=overwrite)
    store = read_cell_store(cells)
    result = shape_space_of_store(store, lmax=lmax, n_modes=modes, walk_modes=walk_modes)
    images = {
        f"walk_mode{m + 1}.ome.tif": Image(vol, voxel_size=(store.voxel_um,) * 3, channel_names=["cell", "nucleus"])
        for m, vol in result.walks.items()
    }
    write_bundle(output, tables={"shape_space.parquet": result.table, "modes.csv": result.modes}, images=images,
                 files={"shape_modes.png": result.figure_png}, overwrite=overwrite)  # fmt: skip
    err_c, err_n = result.table.cell_sh_error_um.mean(), result.table.nucleus_sh_error_um.mean()
    ev = ", ".join(f"{v:.0%}" for v in result.modes.explained_variance_ratio[:3])
    typer.echo(f"wrote {output}: {len(result.table)} cells; SH reconstruction error cell {err_c:.3f} µm, "
               f"nucleus {err_n:.3f} µm; first modes explain {ev}")  # fmt: skip
