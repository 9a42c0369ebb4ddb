"""Label images written into the OME-Zarr image they segment (``field.ome.zarr/labels/nucleus``), as NGFF keeps them.

An output path ``IMAGE/labels/NAME`` whose ``IMAGE`` is an OME-Zarr image (a field of a plate included) is written
there as an NGFF label image (instance labels, or a mask: any integer image): on the image's grid (checked: the same T, Z, Y, X and voxel size), in the image's
NGFF version and zarr format, atomically under a temporary name inside ``labels/`` (the same writer as every
output), then listed in the ``labels`` group's metadata (written anew and renamed into place). Viewers that follow
NGFF (napari, ome-zarr-py, vizarr) show it with the image, and every command reads it with ``--label NAME``.
Nothing of the image itself is touched; an existing label of that name needs ``overwrite``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from subcell.errors import InputFileError, ValueRangeError

__all__ = ["image_of_label", "prepare_label", "register_label"]


def image_of_label(path: str | Path) -> Path | None:
    """The OME-Zarr image ``path`` is a label of (``IMAGE/labels/NAME``), else None."""
    from subcell.io._ngff import ngff_kind

    p = Path(path)
    if p.parent.name != "labels" or ngff_kind(p.parent.parent) != "image":
        return None
    return p.parent.parent


def _zarr_format(image: Path) -> int:
    return 3 if (image / "zarr.json").is_file() else 2


def prepare_label(path: Path, *, shape: tuple[int, ...], voxel_size: tuple[float, float, float]) -> str:
    """Check a label image of ``shape`` (T, C, Z, Y, X) and ``voxel_size`` against the image it goes into (``path``
    is ``IMAGE/labels/NAME``), create the image's ``labels`` group if it has none, and return the NGFF version the
    label must be written in (the image's)."""
    import zarr

    from subcell.io._atomic import remove_temporaries
    from subcell.io._ngff import group_attrs, ngff_attrs, read_ome_zarr

    image = image_of_label(path)
    assert image is not None
    raw = read_ome_zarr(image)
    want = dict(zip(raw.dims, raw.data.shape, strict=True))
    got = dict(zip("TCZYX", shape, strict=True))
    mismatch = [f"{a} {got[a]} vs {want.get(a, 1)}" for a in "TZYX" if got[a] != want.get(a, 1)]
    if mismatch:
        raise ValueRangeError(f"a label of {image.name} must have its grid; sizes differ ({', '.join(mismatch)})",
                              path=path, field="labels")  # fmt: skip
    differ = [(a, g, w) for a, g, w in zip("zyx", voxel_size, raw.voxel_size, strict=True)
              if w is not None and abs(g - w) > 1e-6 * max(abs(w), 1e-9)]  # fmt: skip
    if differ:
        diff = ", ".join(f"{a}: {g:g} vs {w:g}" for a, g, w in differ)
        raise ValueRangeError(f"a label of {image.name} must have its voxel size (µm {diff})", path=path,
                              field="voxel_size")  # fmt: skip
    version = str(group_attrs(zarr.open_group(str(image), mode="r"))["ngff_version"])
    labels = image / "labels"
    # what a killed earlier write of this label left (a batch's outputs live here, not in its OUTDIR, whose own
    # temporaries the batch removes): one writer per label at a time, as for any output
    remove_temporaries(labels, path.name, scratch=False)  # (this writer's own scratch folder may be in use)
    if not any((labels / m).is_file() for m in ("zarr.json", ".zgroup")):  # no group yet (perhaps a scratch folder)
        group = zarr.open_group(str(labels), mode="a", zarr_format=_zarr_format(image))  # type: ignore[arg-type]
        block: dict[str, Any] = {"labels": []}
        group.attrs.update(ngff_attrs(block, version))
    return version


def register_label(path: Path) -> None:
    """List ``NAME`` (``path`` = ``IMAGE/labels/NAME``, just written) in the ``labels`` group's metadata: the file
    is written under a temporary name and renamed over the old one, so a reader sees the old list or the new. The
    list is read, extended and replaced under a lock on the labels group (``labels/.subcell.lock``, an OS file lock
    that a killed process releases), so writers of different labels into one image at the same time (two batches
    over one plate) each add theirs instead of replacing the other's."""
    from filelock import FileLock, Timeout

    image = image_of_label(path)
    assert image is not None
    meta = image / "labels" / ("zarr.json" if _zarr_format(image) == 3 else ".zattrs")
    lock = meta.parent / ".subcell.lock"
    try:
        with FileLock(str(lock), timeout=LOCK_WAIT_S):
            _add_label(meta, path.name)
    except Timeout:
        raise InputFileError(f"another writer has held {lock.name} for {LOCK_WAIT_S:g} s; label {path.name!r} is "
                             "written but not listed: rerun when it is done", path=meta.parent) from None  # fmt: skip


LOCK_WAIT_S = 600.0  # how long a writer waits for the labels list (another's read-extend-replace takes ms)


def _add_label(meta: Path, name: str) -> None:
    """Add ``name`` to the labels list in ``meta`` (under the lock)."""
    from subcell.io._atomic import atomic_output

    doc = json.loads(meta.read_text()) if meta.exists() else {}
    attrs = doc.setdefault("attributes", {}).setdefault("ome", {}) if meta.name == "zarr.json" else doc
    names = [str(n) for n in attrs.get("labels", [])]
    if name in names:
        return
    attrs["labels"] = [*names, name]
    with atomic_output(meta, overwrite=True) as tmp:
        tmp.write_text(json.dumps(doc, indent=2))
