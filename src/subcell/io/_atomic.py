"""Atomic outputs: write under a temporary name beside the target, rename into place only when complete."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from subcell.errors import InputFileError, OutputExistsError, ValueRangeError

__all__ = [
    "atomic_output",
    "check_output",
    "commit",
    "discard",
    "remove_temporaries",
    "scratch_array",
    "scratch_beside",
    "scratch_temporary",
    "temporary_sibling",
]


def check_output(path: str | Path, *, overwrite: bool) -> Path:
    """Fail early (before any work) when ``path`` exists and ``overwrite`` is false, or its folder is missing."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(
            "output already exists; pass overwrite=True (CLI: --overwrite) to replace it", path=path
        )
    if not path.parent.exists():
        from subcell.io.ngff_labels import image_of_label

        if image_of_label(path) is None:  # an image's labels/ group is made when its first label is written
            raise InputFileError(f"output folder {str(path.parent)!r} does not exist", path=path)
    return path


def temporary_sibling(path: Path) -> Path:
    """A hidden, unique name in the same folder (same filesystem, so the final rename is atomic)."""
    return path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:12]}"


def remove_temporaries(folder: Path, name: str = "*", *, scratch: bool = True) -> int:
    """Remove the unfinished temporaries (:func:`temporary_sibling`) and, with ``scratch``, the scratch folders
    (:func:`scratch_beside`) a killed writer left in ``folder`` (of the output ``name`` only, if given).

    Only for a folder (an output) no other writer is using at the moment. Returns how many were removed.
    """
    kinds = ("partial", "scratch") if scratch else ("partial",)
    found = [p for kind in kinds for p in Path(folder).glob(f".{name}.{kind}-*")]
    for p in found:
        _remove(p)
    return len(found)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def commit(tmp: Path, path: Path) -> None:
    """Move a finished temporary output into place, replacing an existing one only after success.

    A file is replaced in one atomic rename. A folder cannot be renamed over a non-empty folder, so the old one
    is first renamed aside (a unique hidden name) and removed once the new one is in place; between those two
    renames the path is briefly absent, and a crash there leaves the old output beside it, never a partial one.
    Concurrent writers of the same path each get their own temporary and backup names; the last one wins.
    """
    for _ in range(1000):
        try:
            os.replace(tmp, path)  # files: atomic overwrite; folders: only when nothing is there
            return
        except OSError:
            try:  # one lstat: another writer may move the path aside at any moment
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue  # it just did: retry
            if not stat.S_ISDIR(mode):
                raise
        backup = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:12]}"
        try:
            os.replace(path, backup)
        except FileNotFoundError:  # another writer moved it aside first: try again
            continue
        try:
            os.replace(tmp, path)
        except OSError:  # another writer's output got there in between: it stays, ours goes on the next round
            _remove(backup)
            continue
        _remove(backup)
        return
    raise OSError(f"could not move {tmp} into place at {path}: it kept changing")


def discard(tmp: Path) -> None:
    """Remove an unfinished temporary output."""
    _remove(tmp)


@contextmanager
def scratch_beside(path: str | Path) -> Iterator[Path]:
    """A hidden folder beside the output ``path`` for a writer's intermediate files (e.g. a prediction it reads
    back), removed when the block ends, on error too. Named apart from the output's own temporary (its writer may
    clear stale ones of that output while this is in use); :func:`remove_temporaries` clears one a killed process
    left."""
    path = Path(path)
    folder = path.parent / f".{path.name}.scratch-{uuid.uuid4().hex[:12]}"
    folder.mkdir(parents=True)  # (check_output refused a missing folder but an image's labels/, made here or later)
    try:
        yield folder
    finally:
        discard(folder)


@contextmanager
def scratch_temporary() -> Iterator[Path]:
    """A folder in the system's temporary folder (``TMPDIR``) for intermediate files of a command that writes no
    output beside which :func:`scratch_beside` could put them (e.g. an evaluation), removed when the block ends."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="subcell-scratch-") as folder:
        yield Path(folder)


def scratch_array(folder: Path, name: str, *, shape: Sequence[int], dtype: Any, chunks: Sequence[int]) -> Any:
    """A new Zarr array of zeros, ``folder/name.zarr``, for intermediate results read and written in pieces (e.g.
    inside :func:`scratch_beside`, or an unfinished store's scratch folder); chunks larger than the shape are
    clipped to it. The caller removes ``folder``."""
    import zarr
    from zarr.codecs import BloscCodec

    if not name or "/" in name or name.startswith("."):
        raise ValueRangeError(f"scratch names must be plain names, got {name!r}", field="name")
    shape = tuple(int(s) for s in shape)
    chunks = tuple(min(int(c), s) for c, s in zip(chunks, shape, strict=True))
    # Blosc-LZ4: 200 box reads of float32 (8 x 128 x 128 chunks) 0.95 s against 1.23 s with the default Zstd, the
    # same size on disk; uncompressed reads faster still (0.63 s) but a label array takes 60x the disk
    compressor = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    return zarr.create_array(store=str(folder / f"{name}.zarr"), shape=shape, dtype=dtype, chunks=chunks,
                             fill_value=0, overwrite=True, compressors=[compressor])  # fmt: skip


@contextmanager
def atomic_output(path: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path``, on error it is removed.

    Examples
    --------
    >>> with atomic_output("out.ome.tif", overwrite=True) as tmp:  # doctest: +SKIP
    ...     write_somehow(tmp)
    """
    target = check_output(path, overwrite=overwrite)
    tmp = temporary_sibling(target)
    try:
        yield tmp
    except BaseException:
        discard(tmp)
        raise
    try:
        commit(tmp, target)
    except BaseException:
        discard(tmp)
        raise
