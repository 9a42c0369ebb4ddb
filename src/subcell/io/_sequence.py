"""A folder of numbered TIFFs read as one image: the Cell Tracking Challenge's ``01/t000.tif`` …, Fiji's "image
sequence", microscopes that write a file per time point or plane.

Each file goes through :func:`subcell.io._tiff.read_tiff`, so it gets the checks and the trusted metadata a single
TIFF gets (truncation, pixel size, ImageJ metadata) and stays lazy; the files are stacked along one new axis in the
order of their numbers. (tifffile's ``TiffSequence`` stacks files too, but through one store of pixels only, with
axes parsed from letter prefixes in the names, which CTC's ``mask000.tif`` or ``img_0001.tif`` do not have.)
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np

from subcell.errors import InputFileError, MetadataError
from subcell.io._raw import RawImage

__all__ = ["read_sequence", "sequence_files"]

_TIFF = (".tif", ".tiff")
_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")  # the last run of digits in the name numbers the file


def sequence_files(folder: Path) -> list[Path] | None:
    """The numbered TIFFs of ``folder`` in the order of their numbers (``t2`` before ``t10``), or None when the
    folder holds no such sequence. Other files (``man_track.txt``, notes) are ignored; two sequences of TIFFs with
    different names in one folder are an error that names them."""
    if not folder.is_dir():
        return None
    groups: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for f in folder.iterdir():
        if f.name.startswith(".") or not f.is_file() or not f.name.lower().endswith(_TIFF):
            continue
        m = _NUMBERED.match(f.name[: -len(f.suffix)])
        if m is None:
            return None  # an unnumbered TIFF beside them: not a sequence
        groups.setdefault((m.group(1), m.group(3) + f.suffix.lower()), []).append((int(m.group(2)), f))
    if not groups:
        return None
    if len(groups) > 1:
        names = ", ".join(f"{p}N{s} ({len(v)} files)" for (p, s), v in sorted(groups.items()))
        raise InputFileError(f"holds several sequences of numbered TIFFs: {names}; put each in its own folder",
                             path=folder)  # fmt: skip
    numbered = sorted(next(iter(groups.values())))
    if len({n for n, _ in numbered}) != len(numbered):
        raise InputFileError("two TIFFs of the sequence carry the same number (e.g. t1.tif and t01.tif)", path=folder)
    for (a, fa), (b, _) in itertools.pairwise(numbered):
        if b != a + 1:  # e.g. a CTC SEG folder, annotated at some frames: stacked, the frames would shift
            raise InputFileError(f"the numbered TIFFs jump from {a} to {b} after {fa.name}: a sequence is read only "
                                 "when no file is missing", path=folder)  # fmt: skip
    return [f for _, f in numbered]


def read_sequence(folder: Path, files: list[Path], *, axes: str | None) -> RawImage:
    """The files stacked along a new leading axis: T, unless ``axes`` (the folder's axis first, then each file's,
    e.g. ``TZYX`` for files of ZYX, ``ZYX`` for a sequence of planes) says otherwise. Every file must share the
    first one's shape and axes (types are promoted as ``numpy.stack`` would); its pixel size and (ImageJ) metadata are the first file's."""
    import dask.array as da

    from subcell.io._tiff import read_tiff

    if axes is not None and len(axes) < 3:
        raise MetadataError(f"axes {axes!r}: a folder of numbered TIFFs takes the folder's axis first, then each "
                            "file's (e.g. TZYX for files of ZYX)", path=folder, field="axes")  # fmt: skip
    along = axes[0].upper() if axes else "T"
    if along not in "TCZ":
        raise MetadataError(f"axes {axes!r}: the folder's axis (the first letter) must be T, C or Z", path=folder,
                            field="axes")  # fmt: skip
    first = read_tiff(files[0], axes=axes[1:] if axes else None)
    if along in first.dims:
        raise MetadataError(f"each file already has a {along} axis ({files[0].name}: {first.dims}); give the folder's "
                            "axis and each file's with --axes, e.g. TZYX", path=folder, field="axes")  # fmt: skip
    parts = [first.data]
    for f in files[1:]:
        raw = read_tiff(f, axes=axes[1:] if axes else None)
        if raw.data.shape != first.data.shape:
            raise InputFileError(f"{raw.dims} {tuple(raw.data.shape)} differs from {files[0].name}'s {first.dims} "
                                 f"{tuple(first.data.shape)}: the files of a sequence share one shape", path=f)  # fmt: skip
        parts.append(raw.data)
    common = np.result_type(*(a.dtype for a in parts))  # files of mixed types (8- and 16-bit) stack as np.stack would
    notes = [*first.notes, f"{len(files)} numbered TIFFs read as {along} ({files[0].name} … {files[-1].name})"]
    return RawImage(
        data=da.stack([a.astype(common, copy=False) for a in parts], axis=0),
        dims=along + first.dims,
        voxel_size=first.voxel_size,
        voxel_size_note=first.voxel_size_note,
        time_interval=first.time_interval if along != "T" else None,
        channel_names=first.channel_names,
        scenes=(folder.name,),
        fmt=f"{first.fmt} sequence",
        notes=notes,
    )
