"""What a path holds as a collection of images, whatever the format: an OME-Zarr HCS plate's fields, a
bioformats2raw store's series (each a group of the store) or the fields an OME-TIFF's OME-XML places in a plate
(each a scene of the file). One entry point for every caller that treats a collection per image: the manifest
maker (a row each), ``info`` (the plate's layout) and the napari reader (the plate mosaic).
"""

from __future__ import annotations

from pathlib import Path

from subcell.errors import MetadataError
from subcell.io._ngff import CollectionImage, collection_images, ngff_kind

__all__ = ["collection_of", "image_source", "is_one_plate"]


def collection_of(path: str | Path) -> list[CollectionImage]:
    """The images of the collection at ``path`` in its order; empty for a single image (or not an image). Of an
    OME-TIFF, the images its plate places that the file itself holds (each file of a multi-file set carries the
    whole set's OME-XML); a plate that refers to an image the file lacks is a one-line :class:`MetadataError`."""
    from subcell.io._tiff import ome_tiff_collection
    from subcell.io.reader import detect_format

    p = Path(path)
    if p.is_dir():
        return collection_images(p) if ngff_kind(p) in ("plate", "series") else []
    if detect_format(p) not in ("ome-tiff", "tiff") or not p.is_file():
        return []
    ome = ome_tiff_collection(p)
    if ome.problems:
        raise MetadataError(ome.problems[0], path=p, field="plate")
    return [CollectionImage(ome.names[i] or f"Image:{i}", "", w, scene=str(i))
            for i, w in sorted(ome.wells.items()) if i in ome.local]  # fmt: skip


def image_source(path: str | Path, image: CollectionImage) -> tuple[Path, str | None]:
    """Where one image of a collection is read from: (its group inside the store, no scene) or (the file, its
    scene)."""
    p = Path(path)
    return (p / image.path, None) if image.path else (p, image.scene)


def is_one_plate(images: list[CollectionImage]) -> bool:
    """Whether a collection is the fields of one plate (every image in a well of the same plate)."""
    return (
        bool(images)
        and all("well" in im.columns for im in images)
        and len({im.columns.get("plate") for im in images}) == 1
    )
