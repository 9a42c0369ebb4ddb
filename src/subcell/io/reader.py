"""``subcell.io.read``: any supported file → :class:`~subcell.image.Image`, lazily, with trusted physical units."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from subcell.errors import InputFileError
from subcell.image import Image, VoxelSize
from subcell.io._raw import RawImage, resolve
from subcell.io.cell_store import TABLE as CELL_TABLE

__all__ = ["detect_format", "is_label_image", "label_names", "pyramid_levels", "read", "read_labels"]

_TIFF_SUFFIXES = (".tif", ".tiff")


def detect_format(path: str | Path) -> str:
    """``"ome-zarr"``, ``"ome-tiff"``, ``"tiff"`` (also a folder of numbered TIFFs), ``"vendor"`` or ``"folder"``
    (none of them) from the name (and, for TIFF, the content)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".zarr", ".zarr/")) or (p.is_dir() and ((p / ".zattrs").exists() or (p / "zarr.json").exists())):
        return "ome-zarr"
    if name.endswith((".ome.tif", ".ome.tiff", ".ome.btf")):
        return "ome-tiff"
    if name.endswith((*_TIFF_SUFFIXES, ".btf")):
        return "tiff"
    if p.is_dir():  # a folder of numbered TIFFs (t000.tif …) is read as one plain TIFF stack
        from subcell.io._sequence import sequence_files

        try:
            return "tiff" if sequence_files(p) else "folder"
        except InputFileError:  # (several sequences: said when it is read)
            return "tiff"
    return "vendor"


def read(
    path: str | Path,
    *,
    scene: int | str | None = None,
    voxel_size: VoxelSize | Sequence[float] | None = None,
    channel_names: Sequence[str] | None = None,
    axes: str | None = None,
    force: bool = False,
    time_interval: float | None = None,
) -> Image:
    """Open a microscopy file as a lazy :class:`~subcell.image.Image` (``TCZYX``, µm).

    Parameters
    ----------
    path : str or Path
        OME-TIFF, OME-Zarr (NGFF 0.4/0.5; an HCS plate or a bioformats2raw store: its fields or series are the
        scenes, ``scene="B/3/0"``), plain TIFF / ImageJ hyperstack, a folder of numbered TIFFs (one file
        per frame, e.g. a Cell Tracking Challenge ``01/``: stacked along T, or along the first of ``axes``), or
        CZI/ND2/LIF with their bioio plugin.
    scene : int or str, optional
        Scene (series) index or name; default the first.
    voxel_size : (z, y, x) in µm, optional
        Required when the file does not state a trustworthy voxel size. If the file does state one, a different
        value is an error unless ``force=True``.
    channel_names : sequence of str, optional
        Names replacing the file's (one per channel).
    axes : str, optional
        Axis letters of a plain TIFF whose axes the file does not state, e.g. ``"TZYX"``.
    force : bool
        Let ``voxel_size`` and ``time_interval`` override contradicting values in the file.
    time_interval : float, optional
        Seconds between frames, for a time-lapse whose file does not state them (ImageJ and plain TIFFs often
        do not). If the file does state them, a different value is an error unless ``force=True``.

    Returns
    -------
    Image
        Lazy (Dask-backed); nothing is loaded until ``.numpy()`` / ``.compute()``.

    Raises
    ------
    InputFileError
        Missing, truncated or unreadable file; unsupported format or missing reader plugin.
    MetadataError
        Voxel size unknown or contradicted, time interval contradicted, wrong number of channel names, axes that cannot be told apart.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError("file not found", path=p)
    raw = _read_raw(p, scene=scene, axes=axes)
    if scene is None and len(raw.scenes) > 1:  # a collection (plate, series, multi-position file) read as one image
        raw.notes.append(f"read {raw.scene}, the first of its {len(raw.scenes)} images (--scene NAME for another; "
                         "`subcell manifest make --scenes` gives a row per image)")  # fmt: skip
    return resolve(raw, p, voxel_size=voxel_size, channel_names=channel_names, force=force, time_interval=time_interval)


def axes_for(path: str | Path, axes: str | None) -> str | None:
    """``axes`` given for one input, for another of the same layout (its labels, its target): a plain TIFF's only,
    as other formats state their axes (and refuse ``axes=``)."""
    return axes if axes is not None and detect_format(path) == "tiff" else None


def _read_raw(p: Path, *, scene: int | str | None, axes: str | None) -> RawImage:
    from subcell.io._tiff import held_tifffile_warnings

    with held_tifffile_warnings():
        return _dispatch(p, scene=scene, axes=axes)


# what marks a folder of subcell's outputs (none of them an image), and what it is
_OUTPUT_FOLDERS = (
    ("tracks.parquet", "the tracks of `subcell track`"),
    ("batch.parquet", "a `subcell batch` OUTDIR"),
    (".batch", "a `subcell batch` OUTDIR"),
    (CELL_TABLE, "a cell store of `subcell cells extract`"),
    ("model.json", "a model folder"),
)


def _not_an_image_folder(p: Path) -> None:
    """Refuse a folder of subcell's outputs given as an image, saying what it is, the images inside it, and what
    shows it (`report`); nothing for other folders."""
    kind = next((what for marker, what in _OUTPUT_FOLDERS if (p / marker).exists()), None)
    if kind is None:
        return
    images = sorted(f.name for f in p.iterdir() if f.name.lower().endswith((".ome.zarr", ".ome.tif", ".ome.tiff")))
    shown = ", ".join(images[:3]) + (f", … ({len(images)} in all)" if len(images) > 3 else "")
    inside = f"; its images: {shown}" if images else ""
    raise InputFileError(f"is {kind}, not an image (`subcell report {p} page.html` shows it){inside}", path=p)


def _dispatch(p: Path, *, scene: int | str | None, axes: str | None) -> RawImage:
    from subcell.io import _bioio, _ngff, _tiff

    if p.is_dir():
        _not_an_image_folder(p)
    fmt = detect_format(p)
    if p.is_dir() and fmt != "ome-zarr":
        from subcell.io._sequence import read_sequence, sequence_files

        files = sequence_files(p)
        if not files:
            raise InputFileError("is a folder but neither an OME-Zarr store (a name ending in .ome.zarr) nor a folder "
                                 "of numbered TIFFs (t000.tif, t001.tif, …)", path=p)  # fmt: skip
        return read_sequence(p, files, axes=axes)
    if axes is not None and fmt != "tiff":
        from subcell.errors import MetadataError

        raise MetadataError(
            f"axes come from the {fmt} metadata; axes= applies to plain TIFF files only", path=p, field="axes"
        )
    if fmt == "ome-zarr":
        return _ngff.read_ome_zarr(p, scene=scene)
    if fmt == "ome-tiff":
        return _bioio.read_ome_tiff(p, scene=scene)
    if fmt == "tiff":
        with _tiff.open_tiff(p) as tf:
            is_ome = tf.is_ome
        if is_ome and axes is None:
            return _bioio.read_ome_tiff(p, scene=scene)
        return _tiff.read_tiff(p, scene=scene, axes=axes)
    return _bioio.read_vendor(p, scene=scene)


def label_names(path: str | Path) -> list[str]:
    """Names of the NGFF label images stored in an OME-Zarr (``labels/`` group); empty when none."""
    import zarr

    from subcell.io._ngff import group_attrs

    p = Path(path)
    if detect_format(p) != "ome-zarr":
        return []
    try:
        group = zarr.open_group(str(p / "labels"), mode="r")
    except Exception:
        return []
    return [str(n) for n in group_attrs(group).get("labels", [])]


def read_labels(path: str | Path, name: str) -> Image:
    """One NGFF label image of an OME-Zarr, as a lazy integer :class:`Image` with the parent's voxel size."""
    p = Path(path)
    if not p.exists():
        raise InputFileError("file not found", path=p)
    names = label_names(p)
    if name not in names:
        raise InputFileError(f"no label image {name!r}; the store has {names or 'none'}", path=p, field="labels")
    from subcell.io._ngff import read_ome_zarr

    raw = read_ome_zarr(p / "labels" / name)
    raw.voxel_size = read(p).voxel_size.as_tuple()
    raw.channel_names = [name] if raw.data.shape[raw.dims.index("C")] == 1 else None
    return resolve(raw, p / "labels" / name)


def pyramid_levels(path: str | Path, label: str | None = None) -> list[Any] | None:
    """Every level of an OME-Zarr image's (or its NGFF label ``label``'s) multiscale pyramid, lazily (dask), in
    the store's own axes; None when ``path`` is not such a store (viewers show the level a zoom needs)."""
    import zarr

    from subcell.io._ngff import checked_dask_array, group_attrs

    p = Path(path) / "labels" / label if label else Path(path)
    try:
        group = zarr.open_group(str(p), mode="r")
    except Exception:
        return None
    ms = group_attrs(group).get("multiscales")
    if not ms:
        return None
    return [checked_dask_array(group[d["path"]], p) for d in ms[0]["datasets"]]


def is_label_image(path: str | Path) -> bool:
    """Whether an OME-Zarr store is marked an NGFF label image (``image-label``, as ``subcell segment`` writes)."""
    import zarr

    from subcell.io._ngff import group_attrs

    if not Path(path).is_dir():
        return False
    try:
        return "image-label" in group_attrs(zarr.open_group(str(path), mode="r"))
    except Exception:
        return False
