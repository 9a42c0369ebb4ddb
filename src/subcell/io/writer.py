"""``subcell.io.write``: the output format follows the output name (``.ome.zarr`` or ``.ome.tif``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import InputFileError
from subcell.image import Image
from subcell.io._atomic import check_output

__all__ = ["OUTPUT_SUFFIXES", "output_format", "write", "write_frames"]

OUTPUT_SUFFIXES = {".ome.zarr": "ome-zarr", ".zarr": "ome-zarr", ".ome.tif": "ome-tiff", ".ome.tiff": "ome-tiff"}


def output_format(path: str | Path) -> str:
    """``"ome-zarr"`` or ``"ome-tiff"`` from the output name (``IMAGE.ome.zarr/labels/NAME``, a label written into
    an OME-Zarr image, is OME-Zarr: :mod:`subcell.io.ngff_labels`); anything else is a one-line error."""
    from subcell.io.ngff_labels import image_of_label

    if image_of_label(path) is not None:
        return "ome-zarr"
    name = Path(path).name.lower()
    for suffix, fmt in OUTPUT_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise InputFileError(
        f"cannot tell the output format from the name; expected one of {sorted(OUTPUT_SUFFIXES)}, or "
        "IMAGE.ome.zarr/labels/NAME for a label of an OME-Zarr image",
        path=path,
    )


def write(
    image: Image,
    path: str | Path,
    *,
    overwrite: bool = False,
    labels: Mapping[str, Any] | None = None,
    chunks: Sequence[int] | None = None,
    levels: int | None = None,
    ngff_version: str = "0.4",
    compression: str | None = "zlib",
    is_label: bool = False,
) -> Path:
    """Write an :class:`Image` with its voxel size, channel names, dtype and provenance, atomically.

    Parameters
    ----------
    image : Image
        NumPy- or Dask-backed; Dask data is streamed chunk by chunk.
    path : str or Path
        ``*.ome.zarr`` (multiscale, chunked, compressed, NGFF labels) or ``*.ome.tif`` (single series).
    overwrite : bool
        Replace an existing output (only after the new one is complete).
    labels : mapping of name → integer array, optional
        NGFF label images (OME-Zarr only), same T/Z/Y/X extent as the image.
    chunks, levels, ngff_version
        OME-Zarr layout; see :class:`~subcell.io.OmeZarrWriter`.
    compression : str or None
        OME-TIFF compression (``"zlib"`` default, ``None`` for none).
    is_label : bool
        The image is a label image (OME-Zarr: ids kept in the pyramid, NGFF ``image-label`` metadata).

    Returns
    -------
    Path
        The written path.
    """
    fmt = output_format(path)
    check_output(path, overwrite=overwrite)
    if fmt == "ome-zarr":
        from subcell.io.ome_zarr_writer import write_ome_zarr

        return write_ome_zarr(
            image,
            path,
            labels=labels,
            chunks=chunks,
            levels=levels,
            ngff_version=ngff_version,
            overwrite=overwrite,
            is_label=is_label,
        )
    if labels:
        raise InputFileError("label images can only be stored in OME-Zarr (.ome.zarr)", path=path, field="labels")
    from subcell.io.ome_tiff_writer import write_ome_tiff

    return write_ome_tiff(image, path, overwrite=overwrite, compression=compression)


def write_frames(
    header: Image,
    path: str | Path,
    frames: Iterable[Any],
    *,
    overwrite: bool = False,
    described: Callable[[], Image] | None = None,
    is_label: bool = False,
) -> Path:
    """Write a time-lapse made a timepoint at a time, atomically, without holding it whole: ``frames`` yields each
    timepoint's ``(C, Z, Y, X)`` array as it is computed; ``header`` gives the shape, dtype and metadata (its data
    is never read: a lazy ``dask.array.zeros`` will do). ``described()``, asked after the last frame, gives the
    metadata known only then (a provenance naming what each frame found). OME-Zarr or OME-TIFF by the name."""
    from subcell.io.ome_tiff_writer import write_ome_tiff
    from subcell.io.ome_zarr_writer import OmeZarrWriter

    fmt = output_format(path)
    check_output(path, overwrite=overwrite)
    if fmt == "ome-tiff":
        return write_ome_tiff(header, path, overwrite=overwrite, frames=frames, described=described)
    writer = OmeZarrWriter(path, shape=header.shape, dtype=header.dtype, voxel_size=header.voxel_size,
                           channel_names=header.channel_names, time_interval=header.time_interval,
                           overwrite=overwrite, is_label=is_label)  # fmt: skip
    try:
        for t, frame in enumerate(frames):
            writer.write_region((slice(t, t + 1),), np.asarray(frame)[None])
        writer.provenance = (described() if described is not None else header).provenance
    except BaseException:
        writer.abort()
        raise
    return writer.close()
