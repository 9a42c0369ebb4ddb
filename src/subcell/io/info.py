"""Metadata summary of a file (what ``subcell info`` prints), without loading pixel data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from subcell.errors import MetadataError
from subcell.io._raw import resolve, resolve_time_interval
from subcell.io.reader import _read_raw, label_names

__all__ = ["array_nbytes", "describe"]


def describe(
    path: str | Path,
    *,
    scene: int | str | None = None,
    voxel_size: Sequence[float] | None = None,
    axes: str | None = None,
    force: bool = False,
    time_interval: float | None = None,
) -> dict[str, Any]:
    """Dims, dtype, voxel size, channels, scenes, chunks and sizes of a file (metadata only).

    Unlike :func:`~subcell.io.read`, a missing voxel size is reported (as ``None`` with the reason) rather than
    raised, so users can inspect files before deciding on ``--voxel-size``.
    """
    p = Path(path)
    if not p.exists():
        from subcell.errors import InputFileError

        raise InputFileError("file not found", path=p)
    raw = _read_raw(p, scene=scene, axes=axes)
    info: dict[str, Any] = {"path": str(p), "format": raw.fmt}
    try:
        img = resolve(raw, p, voxel_size=voxel_size, force=force, time_interval=time_interval)
        info["voxel_size_um"] = list(img.voxel_size.as_tuple())
        info["voxel_size_source"] = img.provenance.parameters.get("voxel_size_source", "file")
        dims = dict(img.sizes)
        chunks = img.data.chunks
        names = list(img.channel_names)
        dtype = img.dtype
        nbytes = img.nbytes
        ti = img.time_interval
        ti_source = img.provenance.parameters.get("time_interval_source")
    except MetadataError as e:
        if e.field != "voxel_size":
            raise
        info["voxel_size_um"] = None
        info["voxel_size_source"] = f"unknown: {e.message}"
        dims = dict(zip(raw.dims, raw.data.shape, strict=True))
        chunks = raw.data.chunks
        names = raw.channel_names or [f"c{i}" for i in range(dims.get("C", 1))]
        dtype = raw.data.dtype
        nbytes = int(raw.data.nbytes)
        ti, ti_source = resolve_time_interval(raw.time_interval, time_interval, p, force=force)
    info.update(
        dims=dims,
        dtype=str(dtype),
        channels=names,
        time_interval_s=ti,
        time_interval_source=ti_source or ("file" if ti else None),
        scenes=list(raw.scenes),
        scene=raw.scene,
        chunks=[int(max(c)) if c else 0 for c in chunks],
        size_bytes=nbytes,
        file_bytes=_disk_size(_scene_group(p, raw.scene)),
        labels=label_names(_scene_group(p, raw.scene)),
        notes=list(raw.notes),
    )
    plate = _plate_summary(p)
    if plate is not None:
        info["plate"] = plate
    return info


def _plate_summary(p: Path) -> dict[str, Any] | None:
    """An HCS plate's layout: its name, rows and columns used, wells, and fields per well (fewest, most); of any
    collection that places its images in wells (:func:`~subcell.io.collection.collection_of`: an OME-Zarr plate, a
    bioformats2raw store or an OME-TIFF whose OME-XML states a plate); None for anything else or a plate that
    cannot be read (its images are still described)."""
    from subcell.errors import SubcellError
    from subcell.io.collection import collection_of

    try:
        wells = [im.columns for im in collection_of(p) if "well" in im.columns]
    except SubcellError:
        return None
    if not wells:
        return None
    from subcell.io.wells import column_sort_key, row_sort_key

    per_well: dict[tuple[str, str], int] = {}
    for w in wells:
        per_well[(w["plate"], w["well"])] = per_well.get((w["plate"], w["well"]), 0) + 1
    rows = sorted({w["row"] for w in wells}, key=row_sort_key)
    columns = sorted({w["column"] for w in wells}, key=column_sort_key)
    return {"name": ", ".join(dict.fromkeys(w["plate"] for w in wells)), "rows": rows, "columns": columns,
            "wells": len(per_well), "fields_per_well": [min(per_well.values()), max(per_well.values())],
            "acquisitions": len({w["acquisition"] for w in wells if "acquisition" in w}) or 1}  # fmt: skip


def _scene_group(p: Path, scene: str | None) -> Path:
    """The folder of the scene described: an image's own group in an OME-Zarr collection (a plate's field; the
    whole plate may hold millions of chunk files), else the path itself."""
    from subcell.io._ngff import collection_images

    if scene is None or not p.is_dir():
        return p
    return next((p / im.path for im in collection_images(p) if im.name == scene), p)


def _disk_size(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def array_nbytes(
    path: str | Path, *, per_frame: bool = False, axes: str | None = None, scene: int | str | None = None
) -> int:
    """Uncompressed bytes of an image's full-resolution array, from its header only (0 when unknown).

    ``per_frame``: of one timepoint (a command that holds a frame at a time is estimated by it), for an OME-Zarr
    (whose first axis is T) and a TIFF whose header names a T axis (OME-TIFF, ImageJ) or whose ``axes`` the user
    gives (as to :func:`~subcell.io.read`); a TIFF whose axes are not known counts whole. ``scene``: a TIFF
    series by index (else the first). A folder of numbered TIFFs counts its first file once per file (a frame's
    worth when the folder's axis is T).

    Cheap enough to call for every row of a large manifest (one small JSON or TIFF header per file): OME-Zarr
    reads the first multiscale level's array metadata, TIFF the first series' shape; anything else counts its
    size on disk. Used to estimate the memory of batch items, never to validate a file.
    """
    import json

    import numpy as np

    p = Path(path)
    try:
        if p.is_dir() and not ((p / "zarr.json").exists() or (p / ".zattrs").exists()):
            from subcell.io._sequence import sequence_files

            files = sequence_files(p) or []  # a folder of numbered TIFFs: a file per frame (or plane)
            one = array_nbytes(files[0], axes=axes[1:] if axes else None) if files else 0
            return one if per_frame and (axes or "T")[0].upper() == "T" else one * len(files)
        if p.is_dir():
            from subcell.io._ngff import json_attrs

            level = json_attrs(p)["multiscales"][0]["datasets"][0]["path"]
            arr = p / level
            if (arr / "zarr.json").exists():
                a = json.loads((arr / "zarr.json").read_text())
                dtype = np.dtype(a["data_type"]) if isinstance(a["data_type"], str) else np.dtype("float32")
            else:
                a = json.loads((arr / ".zarray").read_text())
                dtype = np.dtype(a["dtype"])
            frames = int(a["shape"][0]) if per_frame and len(a["shape"]) == 5 else 1
            return int(np.prod(a["shape"])) * dtype.itemsize // max(frames, 1)
        if p.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(p) as tf:
                index = int(scene) if scene is not None and str(scene).isdigit() else 0
                s = tf.series[index if index < len(tf.series) else 0]
                # a time axis the file names (OME-TIFF, ImageJ) or the user does: the reader keeps a frame's
                # pages apart
                named = axes.upper() if axes is not None and len(axes) == len(s.shape) else s.axes
                frames = int(s.shape[named.index("T")]) if per_frame and "T" in named else 1
                return int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize // max(frames, 1)
        return p.stat().st_size
    except (OSError, KeyError, IndexError, ValueError, TypeError):
        return 0
    except Exception:  # a corrupt header: unknown here, reported by the reader when the item runs
        return 0
