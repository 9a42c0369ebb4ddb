"""Channels from several images stacked into one: the common case of a microscope or an export that writes one
file per channel (Allen's ``..._C=0.tif``, ``C=1`` …, one TIFF per wavelength). Lazy: nothing is read here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from subcell.errors import ChannelError, MetadataError, ValueRangeError
from subcell.image import Image

__all__ = ["stack_channels"]


def stack_channels(images: Sequence[Image], *, channel_names: Sequence[str] | None = None) -> Image:
    """One image whose channels are those of ``images`` in order.

    The images must share T, Z, Y, X and voxel size (a different grid is an error naming both: resample first) and
    their time intervals where stated. Different dtypes are promoted losslessly (``numpy.result_type``: 8- and
    16-bit give 16-bit). Channel names are each image's unless ``channel_names`` (one per channel of the result)
    is given. Files of one channel each whose names repeat (every file's only channel ``c0``, as files that name
    none read) are named after their files, less the start all share up to a separator: ``AICS_12_134_C=0.tif``,
    ``C=1`` … give ``C=0``, ``C=1`` …, ``DAPI.tif`` and ``GFP.tif`` give ``DAPI`` and ``GFP``. Other repeated
    names are an error that asks for them.
    """
    import dask.array as da

    if not images:
        raise ValueRangeError("no image to stack", field="inputs")
    first = images[0]

    def where(img: Image) -> str | None:
        return img.provenance.source

    for img in images[1:]:
        if img.shape[:1] + img.shape[2:] != first.shape[:1] + first.shape[2:]:
            raise ValueRangeError(
                f"T, Z, Y, X {img.shape[:1] + img.shape[2:]} differ from {where(first)}'s "
                f"{first.shape[:1] + first.shape[2:]}; channels are stacked on one grid", path=where(img), field="shape",
            )  # fmt: skip
        if not img.voxel_size.isclose(first.voxel_size, rtol=5e-3):
            raise MetadataError(f"voxel size {img.voxel_size} differs from {where(first)}'s {first.voxel_size}; "
                                "resample first (subcell convert --resample)", path=where(img), field="voxel_size")  # fmt: skip
    intervals = {img.time_interval for img in images if img.time_interval is not None}
    if len(intervals) > 1:
        raise MetadataError(f"the inputs state different time intervals {sorted(intervals)} s", field="time_interval")
    names = [n for img in images for n in img.channel_names]
    if channel_names is not None:  # (their number is checked by Image, as for any image)
        names = [str(n) for n in channel_names]
    elif len(set(names)) < len(names) and (by_file := _names_of_files(images)) is not None:
        names = by_file
    else:
        seen: dict[str, str | None] = {}
        for img in images:
            for n in img.channel_names:
                if n in seen:
                    raise ChannelError(f"channel {n!r} is also in {seen[n]}; name the stacked channels with "
                                       "--channel-names A,B,…", path=where(img), field="channel_names")  # fmt: skip
                seen[n] = where(img)
    dtype = np.result_type(*(img.dtype for img in images))
    parts = [da.asarray(img.data).astype(dtype, copy=False) for img in images]
    stacked = da.concatenate(parts, axis=1)
    sources = [where(img) for img in images]
    return first.with_data(stacked, step="stack_channels", channel_names=names,
                           parameters={"sources": sources, "dtype": str(dtype)}).with_metadata(
        time_interval=next(iter(intervals), None)
    )  # fmt: skip


def _names_of_files(images: Sequence[Image]) -> list[str] | None:
    """Channel names from the files of single-channel images (their names without suffix, less the start all of
    them share up to its last separator), or None when an image has several channels, no file, or two would
    share a name."""
    import os
    import re

    from subcell.io.manifest_make import image_stem

    sources = [img.provenance.source for img in images]
    if any(img.shape[1] != 1 for img in images) or not all(sources):
        return None
    stems = [image_stem(Path(str(src))) for src in sources]
    shared = os.path.commonprefix(stems)  # noqa: RUF071 - by character: the separator is looked for next
    cut = max((m.end() for m in re.finditer(r"[_\-. ]", shared)), default=0)
    names = [stem[cut:] for stem in stems]
    return names if all(names) and len(set(names)) == len(names) else None
