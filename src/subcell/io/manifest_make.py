"""A manifest made from files and folders: one row per image (or per scene), checked as ``manifest check`` does.

What a collection starts with: ``subcell manifest make fields.csv plate1/ plate2/ --scenes`` instead of a
hand-written table. Sources are written relative to the manifest's folder, so the folder and its manifest move
together.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from subcell.errors import ManifestError, SubcellError
from subcell.image import VoxelSize

__all__ = ["IMAGE_SUFFIXES", "image_files", "image_stem", "make_manifest"]

# what a folder is searched for (a vendor format opens through its bioio plugin, as everywhere)
IMAGE_SUFFIXES = (".ome.zarr", ".ome.tif", ".ome.tiff", ".tif", ".tiff", ".btf", ".czi", ".nd2", ".lif")


def _is_image(path: Path) -> bool:
    """A file with an image suffix, or an OME-Zarr store (an image, a plate, a bioformats2raw layout: named
    ``.ome.zarr``, or any folder whose zarr metadata is NGFF's)."""
    from subcell.io._ngff import ngff_kind

    name = path.name.lower()
    if path.is_dir():
        return name.endswith(".ome.zarr") or ngff_kind(path) is not None
    return name.endswith(IMAGE_SUFFIXES)


def _is_zarr(path: Path) -> bool:
    """A zarr group or array of any kind (a cell store too): never searched inside for images."""
    return path.name.lower().endswith(".zarr") or any((path / m).is_file() for m in (".zgroup", ".zarray", "zarr.json"))


def image_files(inputs: Sequence[str | Path], *, sequences: bool = False) -> Iterator[tuple[Path, tuple[str, ...]]]:
    """The image files named by ``inputs``, each with its name parts below the input: a file as it is (its stem),
    a folder's images at any depth (in name order; an OME-Zarr store is one image, never searched inside). With
    ``sequences``, a folder of numbered TIFFs (a CTC ``01/``: a file per frame) is one image, not one per file. A
    path that does not exist is an error."""
    from subcell.errors import InputFileError
    from subcell.io._sequence import sequence_files

    def one_image(p: Path) -> bool:
        return _is_image(p) or (sequences and p.is_dir() and bool(sequence_files(p)))  # (two sequences: said)

    for item in map(Path, inputs):
        if not item.exists():
            raise InputFileError("file not found", path=item)
        if one_image(item) or not item.is_dir():
            yield item, (image_stem(item),)
            continue
        stack = [item]
        while stack:  # depth first, in name order, without entering OME-Zarr stores (nor, with sequences, them)
            folder = stack.pop()
            entries = sorted(folder.iterdir(), key=lambda p: p.name)
            images = [p for p in entries if one_image(p)]
            yield from ((p, (*p.relative_to(item).parts[:-1], image_stem(p))) for p in images)
            stack.extend(reversed([p for p in entries if p.is_dir() and p not in images
                                   and not _is_zarr(p)]))  # fmt: skip


def image_stem(path: Path) -> str:
    """A file's name without its image suffix, the double ones whole (``a.ome.tif`` → ``a``)."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def make_manifest(
    inputs: Sequence[str | Path],
    manifest: str | Path,
    *,
    scenes: bool = False,
    sequences: bool = False,
    voxel_size: Sequence[float] | None = None,
    axes: str | None = None,
    time_interval: float | None = None,
    check_files: bool = True,
    name_pattern: str | None = None,
    companions: Sequence[str] = (),
) -> Any:
    r"""The rows of a manifest of every image in ``inputs`` (files and folders, :func:`image_files`), as a
    DataFrame, validated by :func:`~subcell.io.manifest_from_records` (with ``check_files``, every image's
    metadata opened, as ``manifest check`` does). Nothing is written here.

    ``scenes``: a row per scene of a multi-scene file (CZI, LIF, multi-image OME-TIFF: column ``scene``), read
    from the headers. An OME-Zarr collection always gives a row per image, its source the image's own group
    inside the store (which every command opens as an image): an HCS plate a row per field (columns ``plate``,
    ``well``, ``row``, ``column``, ``field``; ids ``plate_A_1_0``), a bioformats2raw layout a row per series
    (column ``series``). ``sequences``: a folder of numbered TIFFs is one image (:func:`image_files`). ``voxel_size``, ``time_interval``: what the files that state none get (columns of their rows;
    a file that states its own keeps it, so one call can span folders of both kinds). ``axes``: of every plain
    TIFF whose file does not state them. Ids are the paths below the input folder without suffix (``plate1/A01`` →
    ``plate1_A01``, a scene's with ``_s<index>``), after the input's own name when there are several inputs
    (``run2_plate1_A01``). ``name_pattern``: a regular expression whose named groups become columns, searched in each
    file's name (``(?P<well>[A-P]\d+)_s(?P<field>\d+)`` on ``B03_s2.tif`` gives ``well`` B03, ``field`` 2), and
    with ``scenes`` in each scene's name first (column ``scene_name``; an OME-TIFF's images by their ``Name``); a
    name that does not match is a problem. An OME-TIFF whose OME-XML states a plate gives a row per field like an
    OME-Zarr plate (its ``scene`` and well columns; images in no well left out). ``companions``: ``COLUMN=SUFFIX``
    each, files that belong to another image of their folder by name — its labels, mask or target saved beside it
    (``t01_labelled.tif`` beside ``t01.tif`` with ``labels=_labelled``) — go in that image's row as column
    ``COLUMN`` instead of rows of their own; one without its image is a problem. Raises :class:`ManifestError`
    listing every file that cannot be read, or none found.
    """
    import pandas as pd

    from subcell.io.info import describe
    from subcell.io.manifest import manifest_from_records
    from subcell.io.reader import axes_for, detect_format

    out = Path(manifest)
    base = out.resolve().parent
    several = len(inputs) > 1
    files = [(f.resolve(), (image_stem(Path(i)), *parts) if several and Path(i).is_dir() and not _is_image(Path(i))
              else parts) for i in inputs for f, parts in image_files([i], sequences=sequences)]  # fmt: skip
    if not files:
        raise ManifestError(out, [f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}"])
    given_vs = (
        {}
        if voxel_size is None
        else dict(
            zip(("voxel_size_z", "voxel_size_y", "voxel_size_x"), VoxelSize.of(voxel_size).as_tuple(), strict=True)
        )
    )
    records: list[dict[str, Any]] = []
    issues: list[str] = []
    pattern = _name_pattern(name_pattern, out)
    files, attached = _attach_companions(files, _companion_suffixes(companions, out), base, issues)
    images: list[tuple[Path, tuple[str, ...], dict[str, str]]] = []
    for f, parts in files:
        try:
            images += _collection_members(f, parts)
        except SubcellError as e:
            issues.append(f"file {os.path.relpath(f, base)!r}: {e.message}")
    for f, parts, layout in images:
        row_id = "_".join(parts)
        source = os.path.relpath(f, base)
        names: list[str] = []
        extra: dict[str, Any] = {"axes": axes_for(f, axes), **layout, **attached.get(f, {})}
        if scenes or given_vs or time_interval is not None:
            try:  # the header says what the file states (a missing voxel size is reported, not raised)
                head = describe(f, axes=extra["axes"], scene=layout.get("scene"))
            except SubcellError as e:
                issues.append(f"file {source!r}: {e.message}")
                continue
            names = _scene_names(f, head["scenes"]) if scenes and "scene" not in layout else []
            if head["voxel_size_um"] is None:
                extra.update(given_vs)
            if head["time_interval_s"] is None and time_interval is not None:
                extra["time_interval"] = float(time_interval)
        rows = ([{"id": f"{row_id}_s{i}", "source": source, "scene": str(i), "scene_name": name, **extra}
                 for i, name in enumerate(names)] if len(names) > 1
                else [{"id": row_id, "source": source, **extra}])  # fmt: skip
        if pattern is not None and "plate" not in layout:  # (a plate's images have their wells)
            for r in rows:  # a scene's name first (a position named for its well), then the file's
                found = next((m for text in (r.get("scene_name"), f.name) if text and (m := pattern.search(text))),
                             None)  # fmt: skip
                if found is None:
                    what = f"file {source!r}" + (f" scene {r['scene_name']!r}" if "scene_name" in r else "")
                    issues.append(f"{what}: its name does not match --name-pattern {pattern.pattern!r}")
                    continue
                r.update({k: v for k, v in found.groupdict().items() if v is not None})
        records += rows
    if issues:
        if not sequences and any(detect_format(f.parent) == "tiff" for f, _ in files):  # (a folder: a sequence)
            issues.append("(a folder of numbered TIFFs, one file per frame, is one image with --sequences)")
        raise ManifestError(out, issues)
    columns = list(dict.fromkeys(k for r in records for k, v in r.items() if v is not None))  # every row has them
    rows = [{c: r.get(c) for c in columns} for r in records]
    manifest_from_records(rows, out, check_files=check_files)  # every problem at once, as `manifest check`
    return pd.DataFrame(rows, columns=columns)


def _companion_suffixes(companions: Sequence[str], out: Path) -> dict[str, str]:
    """``COLUMN=SUFFIX`` items as {column: suffix}; a column that is what the manifest says of a row itself
    (``source``, ``id``, …) or an empty part is refused."""
    reserved = {"id", "source", "scene", "scene_name", "axes", "time_interval", "split", "voxel_size_z",
                "voxel_size_y", "voxel_size_x"}  # fmt: skip
    found: dict[str, str] = {}
    for item in companions:
        column, _, suffix = item.partition("=")
        column, suffix = column.strip(), suffix.strip()
        if not column or not suffix or column in reserved or column in found:
            raise ManifestError(out, [f"--companion {item!r}: expected COLUMN=SUFFIX, e.g. labels=_labelled (a new "
                                      f"column, once; not one of {sorted(reserved)})"])  # fmt: skip
        found[column] = suffix
    return found


def _attach_companions(files: list[tuple[Path, tuple[str, ...]]], suffixes: dict[str, str], base: Path,
                       issues: list[str]) -> tuple[list[tuple[Path, tuple[str, ...]]], dict[Path, dict[str, str]]]:  # fmt: skip
    """The files that are images of their own, and the companions of each ({image: {column: path relative to the
    manifest's folder}}): a file whose name (without its suffix) is another image's of the same folder plus a
    companion's suffix (the longest that fits). One whose image is missing is an issue."""
    if not suffixes:
        return files, {}
    by_name = {(f.parent, image_stem(f)): f for f, _ in files}
    kept: list[tuple[Path, tuple[str, ...]]] = []
    attached: dict[Path, dict[str, str]] = {}
    for f, parts in files:
        stem = image_stem(f)
        column = max((c for c, sfx in suffixes.items() if stem.endswith(sfx) and len(stem) > len(sfx)),
                     key=lambda c: len(suffixes[c]), default=None)  # fmt: skip
        if column is None:
            kept.append((f, parts))
            continue
        image = by_name.get((f.parent, stem[: -len(suffixes[column])]))
        if image is None:
            issues.append(f"file {os.path.relpath(f, base)!r}: --companion {column}={suffixes[column]}: no image "
                          f"{stem[: -len(suffixes[column])]!r} beside it")  # fmt: skip
            continue
        attached.setdefault(image, {})[column] = os.path.relpath(f, base)
    return kept, attached


def _collection_members(path: Path, parts: tuple[str, ...]) -> list[tuple[Path, tuple[str, ...], dict[str, str]]]:
    """(image, id parts, manifest columns) of each image of the collection at ``path`` (:func:`collection_of`: an
    OME-Zarr collection's images are their groups, an OME-TIFF plate's its ``scene``s); the path itself, without
    columns, for anything else."""
    from subcell.io.collection import collection_of, image_source

    images = collection_of(path)
    several = len({im.columns.get("plate") for im in images}) > 1

    def id_parts(im: Any) -> tuple[str, ...]:
        if im.path:
            return tuple(im.path.split("/"))
        c = im.columns
        return (*([c["plate"]] if several else []), c["row"], c["column"], c["field"])

    members = []
    for im in images:
        source, scene = image_source(path, im)
        named = {"scene": scene, "scene_name": im.name} if scene is not None else {}
        members.append((source, (*parts, *id_parts(im)), {**im.columns, **named}))
    return members or [(path, parts, {})]


def _scene_names(path: Path, scenes: list[str]) -> list[str]:
    """The scenes' names as people read them: an OME-TIFF's images by their ``Name`` (its scenes are ``Image:0``,
    ``Image:1`` …), where every image has one; else the reader's scene names."""
    from subcell.io._tiff import ome_tiff_collection
    from subcell.io.reader import detect_format

    if detect_format(path) in ("ome-tiff", "tiff") and path.is_file():
        names = ome_tiff_collection(path).names
        if len(names) == len(scenes) and all(names):
            return names
    return scenes


def _name_pattern(pattern: str | None, out: Path) -> Any:
    """``pattern`` compiled; it must name at least one group (the columns it gives), and not ``source`` or ``axes``
    (what the file is and how it is read)."""
    import re

    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise ManifestError(out, [f"--name-pattern {pattern!r}: not a regular expression ({e})"]) from None
    if not compiled.groupindex or set(compiled.groupindex) & {"source", "axes"}:
        raise ManifestError(out, [f"--name-pattern {pattern!r}: expected named groups such as (?P<well>...), not "
                                  "'source' or 'axes'"])  # fmt: skip
    return compiled
