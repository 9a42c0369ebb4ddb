"""OME-TIFF writing with tifffile: OME-XML built with ome-types (units, channels, provenance), planes streamed.

A Dask image is written slab by slab (one chunk of z-planes at a time), so memory is bounded by a chunk, not
by the file. The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import Image, materialize
from subcell.io._atomic import atomic_output
from subcell.io._bioio import PROVENANCE_NS

__all__ = ["write_ome_tiff"]

_OME_TYPES = {
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "int8": "int8", "int16": "int16",
    "int32": "int32", "float32": "float", "float64": "double",
}  # fmt: skip
_BIGTIFF_BYTES = 2**31


def _ome_xml(image: Image, dtype: np.dtype[Any]) -> str:
    from ome_types import model as m

    t, c, z, y, x = image.shape
    vs = image.voxel_size
    prov = json.dumps(image.provenance.to_dict())
    fields: dict[str, Any] = dict(  # ome-types coerces the strings to its enums
        id="Pixels:0",
        dimension_order="XYZCT",
        type=_OME_TYPES[dtype.name],
        size_t=t, size_c=c, size_z=z, size_y=y, size_x=x,
        physical_size_z=vs.z, physical_size_y=vs.y, physical_size_x=vs.x,
        physical_size_z_unit="µm", physical_size_y_unit="µm", physical_size_x_unit="µm",
        time_increment=image.time_interval, time_increment_unit="s",
        channels=[m.Channel(id=f"Channel:0:{i}", name=n, samples_per_pixel=1) for i, n in enumerate(image.channel_names)],
        tiff_data_blocks=[m.TiffData(plane_count=t * c * z)],
        big_endian=False,
    )  # fmt: skip
    pixels = m.Pixels(**fields)
    annotation: dict[str, Any] = {"id": "Annotation:0", "namespace": PROVENANCE_NS, "value": {"provenance": prov}}
    ome = m.OME(
        images=[m.Image(id="Image:0", name=Path(str(image.provenance.source or "image")).name, pixels=pixels)],
        structured_annotations=m.StructuredAnnotations(map_annotations=[m.MapAnnotation(**annotation)]),
        creator=f"subcell {image.provenance.version}",
    )
    return ome.to_xml()


def _planes(image: Image, dtype: np.dtype[Any]) -> Iterator[np.ndarray]:
    """Planes in XYZCT order (z fastest), computing one z-slab at a time."""
    data = image.data
    t, c, z = image.shape[:3]
    if isinstance(data, np.ndarray):
        for ti in range(t):
            for ci in range(c):
                for zi in range(z):
                    yield np.ascontiguousarray(data[ti, ci, zi], dtype=dtype)
        return
    zc = max(data.chunks[2]) if data.chunks[2] else 1
    for ti in range(t):
        for ci in range(c):
            for z0 in range(0, z, zc):
                slab = materialize(data[ti, ci, z0 : z0 + zc]).astype(dtype, copy=False)
                yield from slab


def write_ome_tiff(
    image: Image,
    path: str | Path,
    *,
    overwrite: bool = False,
    compression: str | None = "zlib",
    frames: Iterable[np.ndarray] | None = None,
    described: Callable[[], Image] | None = None,
) -> Path:
    """Write an :class:`Image` as a single-series OME-TIFF (``XYZCT`` planes), atomically.

    ``frames``: the image's timepoints, ``(C, Z, Y, X)`` each, made while they are written (a time-lapse never held
    whole); ``image`` then gives the shape, dtype and metadata and its data is not read. ``described()``: the image
    whose metadata the OME-XML carries in the end, asked once every plane is written (a provenance known only then);
    the description is rewritten in place before the file takes its name.
    """
    import tifffile

    dtype = np.dtype(np.uint8) if image.dtype == np.bool_ else image.dtype
    if dtype.name not in _OME_TYPES:
        raise ValueRangeError(
            f"dtype {dtype} cannot be stored in OME-TIFF; use one of {sorted(_OME_TYPES)} (e.g. "
            f"{'uint32 for label ids, or ' if dtype.kind in 'iu' else ''}float32), or write OME-Zarr",
            field="dtype",
        )
    xml = _ome_xml(image, dtype)
    t, c, z, y, x = image.shape
    n_planes = t * c * z
    finite = [not np.issubdtype(dtype, np.floating)]

    made = iter(frames or ())

    def given() -> Iterator[np.ndarray]:
        n = 0
        for n, frame in enumerate(made, start=1):
            if tuple(frame.shape) != (c, z, y, x):
                raise ValueRangeError(f"frame {n - 1} has shape {tuple(frame.shape)}; expected {(c, z, y, x)}",
                                      path=path, field="frames")  # fmt: skip
            for plane in frame.reshape(c * z, y, x):
                yield np.ascontiguousarray(plane, dtype=dtype)
        raise ValueRangeError(f"{n} frames given; expected {t}", path=path, field="frames")  # (asked for more)

    def checked() -> Iterator[np.ndarray]:
        for plane in _planes(image, dtype) if frames is None else given():
            if not finite[0] and np.isfinite(plane).any():
                finite[0] = True
            yield plane

    with atomic_output(path, overwrite=overwrite) as tmp:
        tifffile.imwrite(
            tmp,
            data=checked(),
            shape=(n_planes, y, x),
            dtype=dtype,
            description=xml.encode("utf-8"),
            metadata=None,
            photometric="minisblack",
            compression=compression,
            bigtiff=image.nbytes >= _BIGTIFF_BYTES,
            software=f"subcell {image.provenance.version}",
        )
        # tifffile takes the planes it needs: asking once more ends the frames (their maker's last step runs)
        if frames is not None and next(made, None) is not None:
            raise ValueRangeError(f"more than {t} frames given", path=path, field="frames")
        if not finite[0]:
            raise ValueRangeError(
                "image has no finite values (all NaN/inf); nothing meaningful to write", path=path, field="data"
            )
        if described is not None:  # (a longer description is appended and the tag pointed at it: tifffile's own)
            tifffile.tiffcomment(tmp, _ome_xml(described(), dtype).encode("utf-8"))
    return Path(path)
