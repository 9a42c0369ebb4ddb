"""The Cell Tracking Challenge exchange format: a folder of per-frame 16-bit masks and a ``L B E P`` text file.

Results are ``res_track.txt`` + ``mask000.tif`` …; truth is ``TRA/man_track.txt`` + ``TRA/man_track000.tif`` …
(and ``SEG/man_seg000.tif`` …). Written here with tifffile because no maintained library writes the format;
read back by the same rules, so CTC tools (and py-ctcmetrics, traccuracy) read what we write.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import InputFileError, ValueRangeError
from subcell.image import is_lazy
from subcell.io._sequence import read_sequence, sequence_files

__all__ = ["ctc_files", "ctc_frame_files", "ctc_track_file", "find_ctc", "read_ctc", "read_ctc_seg"]

_TRACK_FILES = ("res_track.txt", "man_track.txt", "TRA/man_track.txt")
_CTC_FRAME = re.compile(r"^(?:mask|man_track)(\d+)\.tiff?$")
_CTC_SEG = re.compile(r"^man_seg_?(\d+)(?:_(\d+))?\.tiff?$")  # man_seg012.tif (a frame), man_seg_012_030.tif (a plane)


def _tif_bytes(frame: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, frame, compression="zlib", photometric="minisblack")
    return buf.getvalue()


def ctc_frame_files(t: int, n_frames: int, mask: np.ndarray, *, truth: bool = False) -> dict[str, bytes]:
    """File name → content of frame ``t`` (of ``n_frames``) of a CTC folder: its mask (``(Z, Y, X)``; Z = 1 is
    written as a 2D frame) as a zlib 16-bit TIFF, named by the result or (``truth=True``) the ground-truth layout."""
    frame = np.asarray(mask)
    if frame.ndim == 3 and frame.shape[0] == 1:
        frame = frame[0]
    top = int(frame.max()) if frame.size else 0
    if top > np.iinfo(np.uint16).max:
        raise ValueRangeError(f"CTC masks are 16-bit: {top} track segments do not fit", field="masks")
    content = _tif_bytes(frame.astype(np.uint16))
    digits = max(3, len(str(n_frames - 1)))
    if truth:
        return {f"TRA/man_track{t:0{digits}d}.tif": content, f"SEG/man_seg{t:0{digits}d}.tif": content}
    return {f"mask{t:0{digits}d}.tif": content}


def ctc_track_file(rows: Any, *, truth: bool = False) -> dict[str, bytes]:
    """File name → content of a CTC folder's ``L B E P`` track file."""
    lines = "".join(f"{int(r.L)} {int(r.B)} {int(r.E)} {int(r.P)}\n" for r in rows.itertuples(index=False))
    return {"TRA/man_track.txt" if truth else "res_track.txt": lines.encode()}


def ctc_files(masks: np.ndarray, rows: Any, *, truth: bool = False) -> dict[str, bytes]:
    """File name → content of a CTC folder for (T, Z, Y, X) masks (Z = 1 is written as 2D frames) and the
    ``L B E P`` rows; ``truth=True`` writes the ground-truth layout (``TRA/`` and ``SEG/``)."""
    m = masks if is_lazy(masks) else np.asarray(masks)  # Dask: one frame read at a time
    out: dict[str, bytes] = {}
    for t in range(m.shape[0]):
        out.update(ctc_frame_files(t, m.shape[0], np.asarray(m[t]), truth=truth))
    out.update(ctc_track_file(rows, truth=truth))
    return out


def find_ctc(path: str | Path) -> Path | None:
    """The track file of a CTC folder (result or truth layout), or None when ``path`` is not one."""
    p = Path(path)
    if not p.is_dir():
        return None
    for name in _TRACK_FILES:
        if (p / name).is_file():
            return p / name
    return None


def read_ctc(path: str | Path) -> tuple[Any, Any]:
    """Masks (T, Z, Y, X; Z = 1 for 2D) and ``L B E P`` rows of a CTC folder; one-line errors naming the file.

    The masks are a Dask array read frame by frame when computed (a 3D+t movie need not fit in memory; ``track``
    works through it a frame at a time), each frame by the package's lazy TIFF reader: shapes and dtypes are checked
    from the files' metadata here, before any pixel is read; a frame whose pixels cannot be decoded fails when it is
    computed, naming its file (:func:`subcell.io._sequence.read_sequence`, as any folder of numbered TIFFs)."""
    import pandas as pd

    track_file = find_ctc(path)
    if track_file is None:
        raise InputFileError(f"not a CTC folder: none of {', '.join(_TRACK_FILES)} found", path=path)
    try:
        rows = pd.read_csv(track_file, sep=r"\s+", header=None, names=["L", "B", "E", "P"], dtype=np.int64)
    except (ValueError, pd.errors.ParserError) as e:
        raise InputFileError(f"expected 4 integers 'L B E P' per line ({e})", path=track_file) from None
    folder = track_file.parent
    files = sequence_files(folder) or []  # every numbered TIFF beside it, in order, with no number missing
    numbered = [_CTC_FRAME.match(f.name) for f in files]
    if not files or not all(numbered):
        raise InputFileError("no mask*.tif / man_track*.tif frames beside the track file", path=track_file)
    if int(numbered[0].group(1)) != 0:  # type: ignore[union-attr]
        raise InputFileError(f"frames are numbered from {files[0].name}, not from 0", path=folder)
    # lazy: each file checked from its metadata (damaged files refused here), its pixels read when computed
    masks = read_sequence(folder, files, axes=None).data
    if masks.dtype.kind not in "iu":
        raise InputFileError(f"masks must be integer labels, got {masks.dtype}", path=files[0], field="dtype")
    return (masks[:, None] if masks.ndim == 3 else masks), rows


def read_ctc_seg(path: str | Path) -> list[tuple[int, int | None, Path, Any]] | None:
    """The annotated frames of a CTC ``SEG`` folder (``path`` itself or its ``SEG/``), in order: ``(t, None, file,
    labels)`` for a whole frame ``man_seg012.tif``, ``(t, z, file, labels)`` for one plane of a 3D frame
    ``man_seg_012_030.tif``; the labels ``(Z, Y, X)`` (Z = 1 for a plane), lazy and checked as labels block by
    block. None when there is no ``man_seg`` file. The CTC annotates some frames (in 3D sometimes some planes) only."""
    from subcell.io._cast import as_labels
    from subcell.io._tiff import read_tiff

    p = Path(path)
    folder = p / "SEG" if (p / "SEG").is_dir() else p
    if not folder.is_dir():
        return None
    found = []
    for f in folder.iterdir():
        m = _CTC_SEG.match(f.name)
        if m:
            found.append((int(m.group(1)), None if m.group(2) is None else int(m.group(2)), f))
    out = []
    for t, z, f in sorted(found, key=lambda x: (x[0], -1 if x[1] is None else x[1])):
        data = read_tiff(f).data
        out.append((t, z, f, as_labels(data if data.ndim == 3 else data[None], path=f, lazy=True)))
    return out or None
