"""Plain TIFF and ImageJ hyperstacks, read lazily with tifffile.

bioio's TIFF reader reports a pixel size for every file, even when the file only states a print resolution or
no unit at all. Microscopists' folders are full of such files, so this reader decides which metadata it can
trust (micrometre units in ImageJ metadata, centimetre resolution units) and reports the rest as unknown, so the
user is asked instead of being given a made-up scale.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import InputFileError, MetadataError
from subcell.io._raw import RawImage, map_axes
from subcell.io.ome_xml import OmeCollection, ome_collection

__all__ = [
    "check_tiff_complete",
    "held_tifffile_warnings",
    "ome_tiff_collection",
    "open_kept",
    "open_tiff",
    "read_tiff",
    "scene_index",
]

# µm per unit for the length units ImageJ writes
_UNITS_UM = {
    "micron": 1.0,
    "microns": 1.0,
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "\\u00b5m": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
}
_PLAUSIBLE_UM = (1e-3, 1e3)  # a voxel edge outside this range is not a microscope's
_CHUNK_BYTES = 64 << 20
_FRAME_CHUNK_BYTES = 4 << 20  # frames in one chunk of a time-lapse, at most (:func:`_page_chunks`)


class _HeldInThread(logging.Filter):
    """On tifffile's logger: the records of a thread inside :func:`held_tifffile_warnings` are kept aside (and go
    no further), every other thread's pass as ever. Per thread, so that readers in other threads (a Dask worker's)
    neither lose their lines nor see them held."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        held: list[logging.LogRecord] | None = getattr(self.local, "records", None)
        if held is None:
            return True
        held.append(record)
        return False


_HELD = _HeldInThread()
logging.getLogger("tifffile").addFilter(_HELD)


@contextlib.contextmanager
def held_tifffile_warnings() -> Iterator[None]:
    """What tifffile logs while this thread opens a file (a tag's value or a page past the end of a cut file), held
    back: dropped when the file is refused — the one-line error says what is wrong, and tifffile's lines on stderr
    before it broke the one line —, passed on as tifffile would have when the file opens."""
    outer = getattr(_HELD.local, "records", None)
    held: list[logging.LogRecord] = []
    _HELD.local.records = held
    try:
        yield
    except InputFileError:
        held.clear()
        raise
    finally:
        _HELD.local.records = outer
        for record in held:
            logging.getLogger("tifffile").handle(record)


def open_tiff(path: Path) -> Any:
    """Open with tifffile, turning format errors into one-line input errors."""
    import tifffile

    try:
        return tifffile.TiffFile(path)
    except tifffile.TiffFileError as e:
        raise InputFileError(f"not a readable TIFF file ({e})", path=path) from None
    except (OSError, ValueError, struct.error) as e:
        raise InputFileError(f"not a readable TIFF file ({type(e).__name__}: {e})", path=path) from None


def ome_tiff_collection(path: Path) -> OmeCollection:
    """The images of an OME-TIFF as its OME-XML lists them (names; wells and fields where it states a plate, as an
    HCS acquisition exported by Bio-Formats does); no images for a TIFF without OME-XML. Parsed once per file
    version (``manifest make`` asks for a file's plate, then for its scenes' names)."""
    st = os.stat(path)
    return _ome_tiff_collection(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _ome_tiff_collection(path: str, mtime_ns: int, size: int) -> OmeCollection:
    with open_tiff(Path(path)) as tf:
        xml = tf.ome_metadata if tf.is_ome else None
    return ome_collection(xml, Path(path).name) if xml else OmeCollection([])


def check_tiff_complete(tf: Any, path: Path) -> None:
    """Detect a truncated file up front (metadata only): every page a series needs exists and lies in the file."""
    size = os.path.getsize(path)
    try:
        pages = list(tf.pages)  # parses the whole IFD chain; a cut chain ends early
        series = list(tf.series)
    except Exception as e:  # tifffile raises various errors on a damaged IFD chain
        raise InputFileError(f"TIFF is truncated or corrupt ({e})", path=path) from None
    if not pages or not series:
        raise InputFileError("TIFF has no image pages", path=path)
    for page in pages:
        offsets = getattr(page, "dataoffsets", ()) or ()
        counts = getattr(page, "databytecounts", ()) or ()
        if offsets and counts:
            end = max(o + c for o, c in zip(offsets, counts, strict=False))
            if end > size:
                raise InputFileError(
                    f"TIFF is truncated: page {page.index} needs {end} bytes, the file has {size}", path=path
                )
    for s in series:
        if s.dataoffset is not None:  # contiguous data (e.g. large ImageJ files): one offset for everything
            end = s.dataoffset + int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize
            if end > size:
                raise InputFileError(f"TIFF is truncated: pixel data needs {end} bytes, the file has {size}", path=path)
            continue
        series_pages = list(s.pages)
        first = next((p for p in series_pages if p is not None), None)
        expected = int(np.prod(s.shape)) // max(1, int(np.prod(first.shape))) if first is not None else 1
        present = sum(p is not None for p in series_pages)
        if present < expected:
            raise InputFileError(
                f"TIFF is truncated: its metadata describes {expected} image planes but only {present} are in the file",
                path=path,
            )


_HANDLES: OrderedDict[tuple[int, str, int, int], tuple[Any, threading.Lock]] = OrderedDict()
_HANDLES_LOCK = threading.Lock()
_HANDLES_KEPT = 4


def close_kept() -> None:
    """Close every kept handle (at exit: a handle left open warns ``ResourceWarning: unclosed file`` on stderr, a
    line the user did not ask for; also for a caller that must release the files, e.g. to delete them on Windows)."""
    with _HANDLES_LOCK:
        _keep_newest(0)


atexit.register(close_kept)


def _keep_newest(n: int) -> None:
    """Close all but the ``n`` most recently used kept handles (the caller holds ``_HANDLES_LOCK``)."""
    while len(_HANDLES) > n:
        _, (old, old_lock) = _HANDLES.popitem(last=False)
        with old_lock:  # (a reader of it finishes first)
            old.close()


def _open_cached(path: str) -> tuple[Any, threading.Lock]:
    """An open ``TiffFile`` of ``path`` kept by this process (the last few files), with the lock its readers take.

    Opening a TIFF and finding its series parses its page headers: 42 ms for an ImageJ movie of 1000 compressed
    pages, paid again by every chunk read through a new handle (that movie read whole a frame per chunk took 36 s;
    1.3 s through one handle). Kept per process (a forked worker gets its own; an inherited handle would
    share the parent's file position) and per version of the file (modification time and size).
    """

    st = os.stat(path)
    key = (os.getpid(), path, st.st_mtime_ns, st.st_size)
    with _HANDLES_LOCK:
        hit = _HANDLES.pop(key, None)
        if hit is None or hit[0].filehandle.closed:
            hit = (open_tiff(Path(path)), threading.Lock())
        _HANDLES[key] = hit  # the most recently used last
        _keep_newest(_HANDLES_KEPT)
    return hit


def open_kept(path: Path) -> tuple[Any, threading.Lock]:
    """The kept open ``TiffFile`` of ``path`` (:func:`_open_cached`), checked complete once per file version: the
    reader of one scene of a many-scene file (an HCS OME-TIFF of 384 fields) then parses and checks the file's
    headers once, not once per scene (384 scenes of one file took 119 s to list, each read parsing all). Format
    errors are one-line input errors (:func:`open_tiff`)."""
    for _ in range(3):  # (another thread may evict and close the handle between its lookup and our lock)
        tf, lock = _open_cached(str(path))
        with lock:
            if tf.filehandle.closed:
                continue
            if not getattr(tf, "_subcell_complete", False):
                check_tiff_complete(tf, path)
                tf._subcell_complete = True
        return tf, lock
    raise InputFileError("TIFF handle closed by other readers three times over; too many files read at once",
                         path=path)  # fmt: skip


class _TiffPages:
    """Array-like view of one TIFF series that reads only the pages a slice needs (picklable, no open handle)."""

    def __init__(self, path: Path, series: int, shape: tuple[int, ...], dtype: np.dtype[Any], n_page_dims: int):
        self.path = str(path)
        self.series = series
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(shape)
        self.n_page_dims = n_page_dims  # leading axes that index pages

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        lead = self.shape[: self.n_page_dims]
        ranges = [range(*k.indices(n)) for k, n in zip(key[: self.n_page_dims], lead, strict=True)]
        grid = np.meshgrid(*[np.asarray(r, dtype=np.int64) for r in ranges], indexing="ij")
        pages = np.ravel_multi_index([g.ravel() for g in grid], lead) if lead else np.array([0])
        out_lead = tuple(len(r) for r in ranges)
        if pages.size == 0:
            return np.empty(out_lead + self.shape[self.n_page_dims :], self.dtype)[(Ellipsis, *key[self.n_page_dims :])]
        try:
            for _ in range(3):
                handle, lock = _open_cached(self.path)
                with lock:  # one reader of a handle at a time (a file position is shared)
                    if not handle.filehandle.closed:  # (else dropped from the kept ones meanwhile: open anew)
                        arr = handle.asarray(series=self.series, key=[int(p) for p in pages], maxworkers=1)
                        break
            else:
                raise OSError("its handle was closed by other readers three times in a row")
        except MemoryError:
            raise
        except Exception as e:  # a damaged block (the metadata was checked when the file was opened): decoders
            # raise many kinds of error, none naming the file, and this runs inside a Dask compute far from the read
            raise InputFileError(f"unreadable TIFF pixel data ({type(e).__name__}: {e})", path=self.path) from None
        arr = np.asarray(arr).reshape(out_lead + self.shape[self.n_page_dims :])
        return arr[(slice(None),) * self.n_page_dims + tuple(key[self.n_page_dims :])]


def _imagej_voxel_size(
    tf: Any, page: Any, ij: dict[str, Any]
) -> tuple[tuple[float | None, float | None, float | None], str | None]:
    unit = str(ij.get("unit", "")).strip().lower()
    factor = _UNITS_UM.get(unit)
    if factor is None:
        return (None, None, None), f"its ImageJ length unit is {unit or 'missing'!r}, not a micrometre unit"
    yx = _resolution_um(page, factor)
    spacing = ij.get("spacing")
    z = float(spacing) * factor if spacing is not None else None
    return (z, *yx), None


def _resolution_um(page: Any, um_per_unit: float) -> tuple[float | None, float | None]:
    out: list[float | None] = []
    for tag in ("YResolution", "XResolution"):
        t = page.tags.get(tag)
        if t is None:
            out.append(None)
            continue
        num, den = t.value if isinstance(t.value, tuple) else (t.value, 1)
        if not num or not den:
            out.append(None)
            continue
        out.append(um_per_unit * den / num)  # resolution is pixels per unit
    return out[0], out[1]


def _plain_voxel_size(page: Any) -> tuple[tuple[float | None, float | None, float | None], str | None]:
    if page.tags.get("XResolution") is None:
        return (None, None, None), "it stores no resolution"
    unit_tag = page.tags.get("ResolutionUnit")
    unit = int(unit_tag.value) if unit_tag is not None else 2  # TIFF default is inch
    if unit == 3:  # centimetre
        y, x = _resolution_um(page, 1e4)
        return (None, y, x), None
    if unit == 2:
        return (None, None, None), "its TIFF resolution is per inch, a print resolution, not a pixel size"
    return (None, None, None), "its TIFF resolution has no unit"


def read_tiff(path: Path, *, scene: int | str | None = None, axes: str | None = None, tf: Any = None) -> RawImage:
    """Read a plain TIFF / ImageJ hyperstack lazily, reporting only metadata that can be trusted. ``tf``: the kept
    handle the caller (the OME-TIFF reader) holds the lock of."""
    import contextlib

    import dask.array as da

    lock: Any = contextlib.nullcontext()  # (a caller that passes ``tf`` holds its lock)
    if tf is None:  # the process's kept handle, checked once per file version (a multi-series file's series each)
        tf, lock = open_kept(path)
    with lock:
        n_series = len(tf.series)
        if n_series == 0:
            raise InputFileError("TIFF has no image series", path=path)
        scenes = tuple(s.name or f"series{i}" for i, s in enumerate(tf.series))
        idx = scene_index(path, scene, scenes)
        series = tf.series[idx]
        shape = tuple(int(s) for s in series.shape)
        file_axes = series.axes
        dtype = np.dtype(series.dtype)
        page = series.pages[0] if series.pages else tf.pages[0]
        page_shape = tuple(int(s) for s in page.shape)
        if shape[len(shape) - len(page_shape) :] != page_shape:  # pages squeezed differently than the series
            page_shape = shape[-2:]
        ij = tf.imagej_metadata if tf.is_imagej else None
        shaped = (
            tf.shaped_metadata[idx] if tf.is_shaped and tf.shaped_metadata and len(tf.shaped_metadata) > idx else None
        )
        if ij is not None:
            vs, note = _imagej_voxel_size(tf, page, ij)
            finterval = ij.get("finterval")
            time_interval = float(finterval) if finterval else None
        else:
            vs, note = _plain_voxel_size(page)
            time_interval = None

    vs = _plausible(vs)
    if note is None and any(v is None for v in vs[1:]):
        note = "its pixel size is missing or implausible"
    # pages hold the trailing axes (YX, YXS, or SYX for planar multi-sample pages); the rest indexes pages
    n_trailing = len(page_shape)
    n_page_dims = len(shape) - n_trailing
    dims = map_axes(path, file_axes, shape, axes)
    notes = []
    if axes is None and dims != file_axes and any(a in "QI" for a in file_axes):
        notes.append(f"file axes {file_axes} read as {dims} (plain stack: first axis taken as Z)")
    n_channels = shape[dims.index("C")] if "C" in dims else 1
    names = _stored_channel_names(ij, shaped, n_channels)
    pages = _TiffPages(path, idx, shape, dtype, n_page_dims)
    time_axis, channel_axis = (dims.index(a) if a in dims and dims.index(a) < n_page_dims else None for a in "TC")
    chunks = _page_chunks(shape, n_page_dims, dtype, time_axis, channel_axis)
    data = da.from_array(
        pages, chunks=chunks, asarray=False, lock=False, fancy=False, meta=np.empty((0,) * len(shape), dtype)
    )
    return RawImage(
        data=data,
        dims=dims,
        voxel_size=vs,
        voxel_size_note=note,
        time_interval=time_interval,
        scenes=scenes,
        scene=scenes[idx] if n_series > 1 else None,
        fmt="imagej-tiff" if ij is not None else "tiff",
        notes=notes,
        channel_names=names,
    )


def _stored_channel_names(ij: dict[str, Any] | None, shaped: dict[str, Any] | None, n: int) -> list[str] | None:
    """Channel names a TIFF states: ImageJ ``Labels`` (one per plane, channels varying fastest, used only when
    they repeat the same names for every z/t) or a ``channel_names`` list in tifffile's JSON description."""
    if shaped is not None:
        names = shaped.get("channel_names")
        if isinstance(names, list) and len(names) == n and all(isinstance(x, str) and x for x in names):
            return [str(x) for x in names]
    labels = (ij or {}).get("Labels")
    if isinstance(labels, list) and labels and len(labels) % n == 0:
        first = [str(x) for x in labels[:n]]
        if (
            all(x for x in first)
            and len(set(first)) == n
            and all([str(x) for x in labels[k : k + n]] == first for k in range(0, len(labels), n))
        ):
            return first
    return None


def _plausible(vs: tuple[float | None, ...]) -> tuple[float | None, float | None, float | None]:
    lo, hi = _PLAUSIBLE_UM
    out = tuple(v if v is not None and lo <= v <= hi else None for v in vs)
    return out  # type: ignore[return-value]


def _page_chunks(shape: tuple[int, ...], n_page_dims: int, dtype: np.dtype[Any], time_axis: int | None = None,
                 channel_axis: int | None = None) -> tuple[int, ...]:  # fmt: skip
    """One chunk = up to ~64 MiB of whole pages, filling the innermost page axis first, then the next.

    Every chunk opens the file (and parses its header) once, so a small multi-page file is one chunk: with one
    chunk per z plane, a 3 MB ZCYX stack of 330 pages took 1 s to read instead of 30 ms (benchmarks/cells).
    Along the time axis (``time_axis``, a page axis) a chunk holds at most :data:`_FRAME_CHUNK_BYTES` of frames (at
    least one): code that walks a time-lapse a frame at a time (tracking, measuring, segmenting, scoring) reads a
    chunk per frame, and Dask does not narrow a chunk's read to the frame asked for. With 64 MiB chunks, reading 20
    frames of a 1000-frame 256×256 ImageJ movie took 5.0 s (512 frames decoded for each) and tracking a 48-frame
    16×320×320 movie twice as long; with a chunk per frame, reading the 1000 frames whole took 1.3 s instead of
    0.6 s (a Dask task each). At 4 MiB: 0.4 s and 0.6 s (``benchmarks/io/bench_tiff_frames.py``).
    A chunk holds one channel (``channel_axis``, a page axis): commands read a channel at a time (the bright-field
    of a multichannel field, each intensity channel in turn), and a chunk of all channels was decoded for each.
    The axes outside it still fill, so a chunk's pages need not be consecutive in the file (one read either way).
    """
    page_bytes = int(np.prod(shape[n_page_dims:])) * dtype.itemsize
    budget = max(1, _CHUNK_BYTES // max(page_bytes, 1))  # pages per chunk
    chunks = [1] * n_page_dims + list(shape[n_page_dims:])
    for axis in range(n_page_dims - 1, -1, -1):
        if axis == channel_axis:
            continue  # one channel a chunk
        take = min(shape[axis], budget)
        if axis == time_axis:  # frames of the pages gathered so far (all of a frame's, when it fits the budget)
            frame_bytes = page_bytes * int(np.prod(chunks[axis + 1 : n_page_dims]))
            take = min(take, max(1, _FRAME_CHUNK_BYTES // max(frame_bytes, 1)))
        chunks[axis] = max(1, take)
        if take < shape[axis]:
            break  # this axis is split: the outer ones stay 1 so chunks remain rectangular blocks of pages
        budget //= max(shape[axis], 1)
    return tuple(chunks)


def scene_index(path: Path, scene: int | str | None, scenes: tuple[str, ...]) -> int:
    """Index of ``scene`` (an index or a name) among ``scenes``."""
    if scene is None:
        return 0
    if isinstance(scene, int) or (isinstance(scene, str) and scene.isdigit()):
        i = int(scene)
        if 0 <= i < len(scenes):
            return i
    elif scene in scenes:
        return scenes.index(scene)
    shown = ", ".join(scenes[:10]) + (", …" if len(scenes) > 10 else "")  # a plate has thousands of fields
    raise MetadataError(f"unknown scene {scene!r}; the file has {len(scenes)}: {shown}", path=path, field="scene")
