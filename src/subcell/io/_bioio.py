"""OME-TIFF and vendor formats, with units taken from the OME metadata itself (OME-Zarr: ``_ngff``).

OME-TIFF pixels are read page by page through tifffile's OME series (``_tiff``'s page reader: a frame's pages at
a time, through one kept handle), 4-5× faster than bioio-ome-tiff's reader on a time-lapse
(``benchmarks/io/results.md``); bioio reads the rare file whose series do not map onto its OME images, and vendor
formats (CZI, ND2, LIF) through its plugins.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from subcell.errors import InputFileError, MetadataError
from subcell.io._raw import RawImage
from subcell.io._tiff import open_kept, read_tiff, scene_index
from subcell.io._units import LENGTH_UM, TIME_S

__all__ = ["PROVENANCE_NS", "VENDOR_PLUGINS", "read_ome_tiff", "read_vendor"]

PROVENANCE_NS = "https://subcell.dev/provenance"

VENDOR_PLUGINS = {".czi": "bioio-czi", ".nd2": "bioio-nd2", ".lif": "bioio-lif"}


def _unit_value(unit: Any) -> str:
    return str(getattr(unit, "value", unit) or "")


def read_ome_tiff(path: Path, *, scene: int | str | None = None) -> RawImage:
    """OME-TIFF: pixels through tifffile's OME series (bioio-ome-tiff where those do not map onto the OME images),
    physical sizes, time increment, channel names and provenance from the OME-XML."""
    import ome_types

    # the process's kept handle: its headers, series and OME model parsed once per file version, so each scene of
    # a many-scene file (an HCS plate) is read without parsing every other's again
    tf, lock = open_kept(path)
    with lock:
        xml = tf.ome_metadata
        series_axes = [s.axes.upper() for s in tf.series]
        if not xml:  # named .ome.tif but written without OME-XML
            return read_tiff(path, scene=scene, tf=tf)
        ome = getattr(tf, "_subcell_ome", None)
        if ome is None:
            try:
                ome = ome_types.from_xml(xml, parser_kwargs={"context": _xml_context()})
            except Exception as e:
                raise InputFileError(f"OME-XML in this OME-TIFF is invalid ({str(e).splitlines()[0]})",
                                     path=path) from None  # fmt: skip
            tf._subcell_ome = ome
        scenes = tuple(image.id for image in ome.images)  # (the names bioio gives OME-TIFF scenes)
        image_names = [image.name for image in ome.images]
        if isinstance(scene, str) and scene not in scenes and image_names.count(scene) == 1:
            scene = image_names.index(scene)  # an image's Name (a position's, a well's), as `manifest make` lists
        idx = scene_index(path, scene, scenes)
        pixels = ome.images[idx].pixels
        # tifffile's OME series, a frame's pages at a time through one kept handle (the plain TIFF reader's):
        # bioio's reader took 1.4 s for 20 frames of a 48 × 16×320×320 movie and 3.0 s for all, this 0.3 s and 0.7 s
        raw = read_tiff(path, scene=idx, tf=tf) if _pages_readable(series_axes, len(scenes)) else None
    if raw is not None:
        data, dims = _squeeze_samples(raw.data, raw.dims)
    else:
        from bioio_ome_tiff import Reader

        reader = Reader(str(path))
        reader.set_scene(idx)
        data, dims = _squeeze_samples(reader.dask_data, reader.dims.order)
    vs = tuple(
        _length_um(getattr(pixels, f"physical_size_{a}"), getattr(pixels, f"physical_size_{a}_unit")) for a in "zyx"
    )
    note = None if all(v is not None for v in vs[1:]) else "its OME-XML has no PhysicalSizeX/Y"
    ti = None
    if pixels.time_increment:
        ti = float(pixels.time_increment) * TIME_S.get(_unit_value(pixels.time_increment_unit), 1.0)
    names = [c.name or f"c{i}" for i, c in enumerate(pixels.channels)] or None
    prov = None
    for ann in ome.structured_annotations.map_annotations if ome.structured_annotations else []:
        if ann.namespace == PROVENANCE_NS:
            value = ann.value if isinstance(ann.value, dict) else {m.k: m.value for m in ann.value.ms}
            prov = json.loads(value.get("provenance", "{}"))
    return RawImage(
        data=data, dims=dims, voxel_size=vs, voxel_size_note=note, channel_names=names, time_interval=ti,  # type: ignore[arg-type]
        scenes=scenes, scene=scenes[idx] if len(scenes) > 1 else None, fmt="ome-tiff", provenance=prov,
    )  # fmt: skip


@functools.cache
def _xml_context() -> Any:
    """One xsdata context for every OME-XML parsed: ome-types builds a new one per document by default, and with
    it the binding metadata of every OME class it meets (3.5 of the 4 ms an OME-TIFF header cost; 0.5 ms
    shared), which made `manifest make` over 2000 OME-TIFFs spend 17 of its 30 s (profiled) there."""
    from xsdata_pydantic_basemodel.bindings import XmlContext

    return XmlContext()


def _pages_readable(series_axes: list[str], n_images: int) -> bool:
    """Whether tifffile's series of an OME-TIFF are its OME images one by one, on axes the page reader names
    without guessing (TCZYX, and RGB samples where there are no channels); else bioio reads it."""
    return len(series_axes) == n_images and all(
        set(axes) <= set("TCZYX") or (set(axes) <= set("TZYXS") and "S" in axes) for axes in series_axes
    )


def _length_um(value: Any, unit: Any) -> float | None:
    if value is None:
        return None
    factor = LENGTH_UM.get(_unit_value(unit) or "µm")
    return float(value) * factor if factor is not None else None


def _squeeze_samples(data: Any, dims: str) -> tuple[Any, str]:
    """bioio may add an ``S`` (samples) axis: drop it when 1, read RGB samples as channels when C is 1."""
    if "S" not in dims:
        return data, dims
    s = dims.index("S")
    if data.shape[s] == 1:
        return data[tuple(0 if i == s else slice(None) for i in range(data.ndim))], dims.replace("S", "")
    c = dims.index("C")
    if data.shape[c] == 1:
        data = data[tuple(0 if i == c else slice(None) for i in range(data.ndim))]
        return data, dims.replace("C", "").replace("S", "C")
    raise MetadataError("image has both channels and RGB samples; not supported", field="dims")


_IMAGES = "images are OME-TIFF, TIFF, OME-Zarr, or a microscope's own format through its bioio plugin (CZI, ND2, LIF)"
_NOT_IMAGES = {  # files found beside images and given by mistake: said at once (no 2 s of bioio's imports first)
    **dict.fromkeys((".csv", ".tsv", ".parquet", ".pq", ".xlsx", ".xls"), f"a table, not an image: {_IMAGES}"),
    **dict.fromkeys((".json", ".yaml", ".yml", ".txt", ".md", ".xml", ".html"), f"a text file, not an image: {_IMAGES}"),
    **dict.fromkeys((".npy", ".npz"), "a NumPy array, not an image file (it states no axes and no voxel size): "
                    "write it as one, subcell.io.write(Image(numpy.load(PATH), dims='ZYX', voxel_size=(z, y, x)), "
                    "'image.ome.zarr')"),
}  # fmt: skip


def read_vendor(path: Path, *, scene: int | str | None = None) -> RawImage:
    """CZI / ND2 / LIF (and anything else bioio has a plugin for)."""
    if (what := _NOT_IMAGES.get(path.suffix.lower())) is not None:
        raise InputFileError(what, path=path)
    plugin = VENDOR_PLUGINS.get(path.suffix.lower())
    if plugin and importlib.util.find_spec(plugin.replace("-", "_")) is None:
        raise InputFileError(
            f"reading {path.suffix} files needs the bioio plugin {plugin!r}: pip install {plugin}", path=path
        )
    import bioio

    try:
        img = bioio.BioImage(str(path))
    except Exception as e:
        if type(e).__name__ == "UnsupportedFileFormatError":  # (its message: the path again, a web address, and
            # advice on listing plugins)
            raise InputFileError(f"no installed reader knows this format; {_IMAGES}", path=path) from None
        said = str(e).split("\n")[0]
        raise InputFileError(f"unreadable ({type(e).__name__}: {said})", path=path) from None
    scenes = tuple(img.scenes)
    idx = scene_index(path, scene, scenes)
    img.set_scene(idx)
    pps = img.physical_pixel_sizes
    ti: Any = img.time_interval
    seconds = ti.total_seconds() if hasattr(ti, "total_seconds") else (float(ti) if ti else None)
    data, dims = _squeeze_samples(img.dask_data, img.dims.order)
    return RawImage(
        data=data, dims=dims, voxel_size=(pps.Z, pps.Y, pps.X), channel_names=[str(c) for c in img.channel_names],
        time_interval=seconds or None, scenes=scenes, scene=scenes[idx] if len(scenes) > 1 else None,
        fmt=f"bioio ({type(img.reader).__module__.split('.')[0]})",
    )  # fmt: skip
