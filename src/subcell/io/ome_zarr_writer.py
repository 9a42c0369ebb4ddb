"""Streaming OME-Zarr writer: create from shape/dtype, fill block by block, pyramid + metadata on close.

Written by hand on top of ``zarr`` because the writers we evaluated either hold the volume in memory
(ome-zarr-py's ``write_image`` on NumPy) or downsample every level with nearest-neighbour on unaligned
regions (bioio-ome-zarr's ``write_region``). Here level 0 is filled first (in any order, by any number of
workers writing whole chunks), then each coarser level is computed chunk-wise from the previous one with a
local mean (images) or a stride (labels), so memory stays bounded by a few chunks.

The store is written under a hidden temporary name and renamed into place by :meth:`OmeZarrWriter.close`:
an interrupted write never leaves something that looks like a finished OME-Zarr.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import Image, Provenance, VoxelSize, materialize
from subcell.io._atomic import check_output, commit, discard, scratch_array, temporary_sibling
from subcell.io._cast import lossless_cast
from subcell.io.ngff_labels import image_of_label, prepare_label, register_label
from subcell.io.pyramid import build_pyramid, plan_pyramid

__all__ = ["NGFF_VERSIONS", "OmeZarrWriter"]

NGFF_VERSIONS = ("0.4", "0.5")
_AXES = [
    {"name": "t", "type": "time", "unit": "second"},
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space", "unit": "micrometer"},
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]
_SCRATCH = ".scratch"
_SLAB_BYTES = 128 << 20  # streamed writes hold at most one slab of this size (unless a chunk layer is larger)
_SUPPORTED = {"uint8", "uint16", "uint32", "int8", "int16", "int32", "int64", "uint64", "float32", "float64"}


class OmeZarrWriter:
    """Write one OME-Zarr image (NGFF 0.4 or 0.5), optionally with NGFF label images.

    Parameters
    ----------
    path : str or Path
        Output store, e.g. ``out.ome.zarr``.
    shape : (T, C, Z, Y, X)
        Level-0 shape.
    dtype : dtype
        Pixel type.
    voxel_size : VoxelSize or (z, y, x) µm
    channel_names : sequence of str, optional
    time_interval : float, optional
        Seconds between timepoints.
    provenance : Provenance, optional
    chunks : (T, C, Z, Y, X), optional
        Default ``(1, 1, min(Z, 32), min(Y, 256), min(X, 256))``.
    levels : int, optional
        Pyramid levels including level 0; default: until the image fits 256 px.
    ngff_version : {"0.4", "0.5"}
        0.4 (Zarr v2) is read by every current viewer; 0.5 (Zarr v3) by the newest.
    overwrite : bool
        Replace an existing output (only once the new one is complete).
    is_label : bool
        The image itself is a label image (e.g. segmentation output): its pyramid keeps ids (nearest, never
        averaged) and it carries NGFF ``image-label`` metadata, so viewers open it as labels.

    Examples
    --------
    >>> with OmeZarrWriter("out.ome.zarr", shape=(1, 1, 64, 512, 512), dtype="uint16",
    ...                    voxel_size=(0.29, 0.108, 0.108)) as w:            # doctest: +SKIP
    ...     for region, block in blocks:
    ...         w.write_region(region, block)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        shape: Sequence[int],
        dtype: Any,
        voxel_size: VoxelSize | Sequence[float],
        channel_names: Sequence[str] | None = None,
        time_interval: float | None = None,
        provenance: Provenance | None = None,
        chunks: Sequence[int] | None = None,
        levels: int | None = None,
        ngff_version: str = "0.4",
        overwrite: bool = False,
        is_label: bool = False,
    ) -> None:
        import zarr

        if ngff_version not in NGFF_VERSIONS:
            raise ValueRangeError(f"expected one of {NGFF_VERSIONS}, got {ngff_version!r}", field="ngff_version")
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) != 5 or min(self.shape) < 1:
            raise ValueRangeError(f"expected a positive (T, C, Z, Y, X) shape, got {tuple(shape)}", field="shape")
        self.dtype = _check_dtype(dtype)
        self.is_label = is_label
        if is_label and not np.issubdtype(self.dtype, np.integer):
            raise ValueRangeError(f"a label image needs an integer dtype, got {self.dtype}", field="dtype")
        self.voxel_size = VoxelSize.of(voxel_size)
        self.channel_names = (
            list(channel_names) if channel_names is not None else [f"c{i}" for i in range(self.shape[1])]
        )
        if len(self.channel_names) != self.shape[1]:
            raise ValueRangeError(
                f"{len(self.channel_names)} channel names for {self.shape[1]} channels", field="channel_names"
            )
        self.time_interval = time_interval
        self.provenance = provenance or Provenance(step="write")
        self.chunks = (
            tuple(int(c) for c in chunks) if chunks is not None else _default_chunks(self.shape, self.dtype.itemsize)
        )
        if len(self.chunks) != 5 or min(self.chunks) < 1:
            raise ValueRangeError(f"expected 5 positive chunk sizes (T, C, Z, Y, X), got {chunks}", field="chunks")
        self.factors = plan_pyramid(self.shape, self.voxel_size, levels=levels)
        self.path = check_output(path, overwrite=overwrite)
        self.into_image = image_of_label(self.path) is not None  # IMAGE/labels/NAME: an NGFF label of IMAGE
        if self.into_image:
            if not np.issubdtype(self.dtype, np.integer):
                raise ValueRangeError(f"only integer labels or masks go into an image's labels/, got {self.dtype}",
                                      path=self.path, field="labels")  # fmt: skip
            self.is_label = True  # a mask (0/1) is a label image with one value: ids kept in its pyramid
            ngff_version = prepare_label(self.path, shape=self.shape, voxel_size=self.voxel_size.as_tuple())
        self.ngff_version = ngff_version
        self._tmp = temporary_sibling(self.path)
        self._zarr_format: Literal[2, 3] = 2 if ngff_version == "0.4" else 3
        self._root = zarr.open_group(str(self._tmp), mode="w", zarr_format=self._zarr_format)
        self._arrays = [self._create(self._root, str(i), f, self.dtype) for i, f in enumerate(self.factors)]
        self._labels: dict[str, list[Any]] = {}
        self._any_finite = not np.issubdtype(self.dtype, np.floating)
        self._closed = False

    # -- creation helpers ---------------------------------------------------------------------------------------
    def _create(self, group: Any, name: str, factor: tuple[int, int, int], dtype: np.dtype[Any]) -> Any:
        shape = self.shape[:2] + tuple(max(1, n // f) for n, f in zip(self.shape[2:], factor, strict=True))
        chunks = tuple(min(c, s) for c, s in zip(self.chunks, shape, strict=True))
        kwargs: dict[str, Any] = {"shape": shape, "chunks": chunks, "dtype": dtype, "fill_value": 0}
        # zstd level 3 on byte-shuffled data: against level 5 on bit-shuffled data (measured on synthetic fields,
        # label-free predictions and label images) it encodes 1.3-4x faster, at the same or a better ratio for
        # uint16 and float32 images (2.40 vs 2.08, 1.27 vs 1.26) and 200-700x for labels either way
        if self._zarr_format == 2:
            import numcodecs

            kwargs["compressors"] = [numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)]
            kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        else:
            from zarr.codecs import BloscCodec

            kwargs["compressors"] = [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")]
            kwargs["dimension_names"] = [a["name"] for a in _AXES]
        return group.create_array(name=name, **kwargs)

    @property
    def level0(self) -> Any:
        """The full-resolution zarr array (for advanced parallel writers)."""
        return self._arrays[0]

    # -- filling ------------------------------------------------------------------------------------------------
    def write_region(self, region: Sequence[slice], data: np.ndarray) -> None:
        """Write one block at level 0; ``region`` is one slice per ``TCZYX`` axis (shorter tuples are padded).

        Blocks written concurrently must not share a chunk (align them to ``chunks``).
        """
        region = tuple(region) + (slice(None),) * (5 - len(region))
        block = np.asarray(data)
        if self._any_finite is False and np.isfinite(block).any():
            self._any_finite = True
        self._arrays[0][region] = lossless_cast(block, self.dtype, path=self.path, what="image data")

    def written_elsewhere(self, *, any_finite: bool) -> None:
        """Record what parallel writers wrote straight into :attr:`level0` (region-aligned, from other
        processes): whether any value was finite, which :meth:`close` checks as for :meth:`write_region`."""
        self._any_finite = self._any_finite or any_finite

    def write(self, data: Any) -> None:
        """Write the whole level 0 from a NumPy or Dask ``TCZYX`` array.

        Dask data is streamed one z-slab at a time (a slab spans whole chunk layers, so every chunk is written
        once, and is at most ``_SLAB_BYTES`` unless a single chunk layer is larger): peak memory is bounded by the
        slab, whatever the volume size. Within a slab the source chunks are read in parallel.
        """
        if tuple(data.shape) != self.shape:
            raise ValueRangeError(
                f"data shape {tuple(data.shape)} does not match the writer's {self.shape}", field="data"
            )
        if isinstance(data, np.ndarray):
            self.write_region((slice(None),) * 5, data)
            return
        for region in _slabs(data, self._arrays[0]):
            self.write_region(region, materialize(data[region]))

    def create_label(self, name: str, dtype: Any = np.int32) -> None:
        """Create an empty NGFF label image (shape ``(T, 1, Z, Y, X)``) to fill with :meth:`write_label_region`."""
        if not name or "/" in name or name.startswith("."):
            raise ValueRangeError(f"label names must be plain names, got {name!r}", field="labels")
        dt = np.dtype(dtype)
        if dt == np.bool_:
            dt = np.dtype(np.uint8)
        if not np.issubdtype(dt, np.integer):
            raise ValueRangeError(f"label {name!r} must be integer instance ids, got dtype {dt}", field="labels")
        group = self._root.require_group("labels").require_group(name)
        want = (self.shape[0], 1, *self.shape[2:])
        saved_shape = self.shape
        self.shape = want
        try:
            self._labels[name] = [self._create(group, str(i), f, dt) for i, f in enumerate(self.factors)]
        finally:
            self.shape = saved_shape

    def write_label_region(self, name: str, region: Sequence[slice], data: np.ndarray) -> None:
        """Write one block of a label image created with :meth:`create_label` (``region`` over T, C, Z, Y, X)."""
        region = tuple(region) + (slice(None),) * (5 - len(region))
        target = self._labels[name][0]
        target[region] = lossless_cast(data, target.dtype, path=self.path, what=f"label {name!r}")

    def add_label(self, name: str, data: Any) -> None:
        """Add an NGFF label image (integer instance ids, 0 = background) with the image's T/Z/Y/X extent.

        ``data`` may be ``ZYX``, ``TZYX`` or ``TCZYX`` with C = 1; NumPy or Dask.
        """
        arr = data
        if arr.ndim == 3:
            arr = arr[None, None]
        elif arr.ndim == 4:
            arr = arr[:, None]
        want = (self.shape[0], 1, *self.shape[2:])
        if tuple(arr.shape) != want:
            raise ValueRangeError(
                f"label {name!r} has shape {tuple(data.shape)}; expected {want} (T,1,Z,Y,X)", field="labels"
            )
        self.create_label(name, arr.dtype)
        target = self._labels[name][0]
        if isinstance(arr, np.ndarray):
            target[...] = lossless_cast(arr, target.dtype, path=self.path, what=f"label {name!r}")
        else:
            for region in _slabs(arr, target):
                target[region] = lossless_cast(
                    materialize(arr[region]), target.dtype, path=self.path, what=f"label {name!r}"
                )

    def scratch_array(self, name: str, *, shape: Sequence[int], dtype: Any, chunks: Sequence[int]) -> Any:
        """A temporary zarr array inside the unfinished store (e.g. for a two-pass relabelling); it is deleted
        when the store is closed or aborted, so it never appears in the output."""
        return scratch_array(self._tmp / _SCRATCH, name, shape=shape, dtype=dtype, chunks=chunks)

    def clear_scratch(self) -> None:
        """Delete every scratch array made so far (e.g. after each timepoint of a block-wise run)."""
        discard(self._tmp / _SCRATCH)

    def add_file(self, relpath: str, content: bytes) -> None:
        """Store an extra file (e.g. a Parquet table) inside the store; it appears atomically with the image."""
        rel = Path(relpath)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueRangeError(f"expected a relative path inside the store, got {relpath!r}", field="relpath")
        target = self._tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)

    def add_table(self, name: str, frame: Any) -> None:
        """Store a pandas DataFrame as ``tables/<name>.parquet`` inside the store (e.g. per-cell ground truth)."""
        import io as _io

        buf = _io.BytesIO()
        frame.to_parquet(buf, index=False)
        self.add_file(f"tables/{name}.parquet", buf.getvalue())

    # -- finishing ----------------------------------------------------------------------------------------------
    def close(self) -> Path:
        """Build the pyramid, write NGFF metadata, and move the store into place. Returns the final path."""
        if self._closed:
            return self.path
        try:
            if not self._any_finite:
                raise ValueRangeError(
                    "image has no finite values (all NaN/inf); nothing meaningful to write",
                    path=self.path,
                    field="data",
                )
            discard(self._tmp / _SCRATCH)
            build_pyramid(self._arrays, self.factors, labels=self.is_label)
            for arrays in self._labels.values():
                build_pyramid(arrays, self.factors, labels=True)
            self._write_metadata()
        except BaseException:
            self.abort()
            raise
        commit(self._tmp, self.path)
        if self.into_image:
            register_label(self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard everything written so far."""
        discard(self._tmp)
        self._closed = True

    def __enter__(self) -> OmeZarrWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def _multiscale(self, name: str, *, labels: bool) -> dict[str, Any]:
        t_scale = self.time_interval if self.time_interval else 1.0
        datasets = []
        vs = self.voxel_size.as_tuple()
        for i, f in enumerate(self.factors):
            transforms: list[dict[str, Any]] = [
                {"type": "scale", "scale": [t_scale, 1.0, *(v * k for v, k in zip(vs, f, strict=True))]}
            ]
            if not labels and f != (1, 1, 1):  # a local mean is centred between the voxels it averages
                transforms.append(
                    {
                        "type": "translation",
                        "translation": [0.0, 0.0, *((k - 1) / 2 * v for v, k in zip(vs, f, strict=True))],
                    }
                )
            datasets.append({"path": str(i), "coordinateTransformations": transforms})
        axes = [dict(a) for a in _AXES]
        if not self.time_interval:  # unknown interval: a scale of 1 with no unit, not "1 second"
            axes[0].pop("unit")
        ms: dict[str, Any] = {"name": name, "axes": axes, "datasets": datasets}
        ms["type"] = "stride" if labels else "local_mean"
        if self.ngff_version == "0.4":
            ms = {"version": "0.4", **ms}
        return ms

    def _ome(self, block: Mapping[str, Any]) -> dict[str, Any]:
        from subcell.io._ngff import ngff_attrs

        return ngff_attrs(dict(block), self.ngff_version)

    def _write_metadata(self) -> None:
        channels = []
        for cname, (lo, hi) in zip(self.channel_names, channel_windows(self._arrays[-1]), strict=True):
            channels.append({
                "label": cname, "active": True, "color": "FFFFFF", "coefficient": 1.0, "family": "linear",
                "inverted": False, "window": {"start": lo, "end": hi, "min": lo, "max": hi},
            })  # fmt: skip
        image_block: dict[str, Any] = {
            "multiscales": [self._multiscale(self.path.name, labels=self.is_label)],
            "omero": {"channels": channels, "rdefs": {"model": "greyscale" if len(channels) == 1 else "color"}},
        }
        if self.is_label:
            image_block["image-label"] = {"version": self.ngff_version}
            if self.into_image:
                image_block["image-label"]["source"] = {"image": "../../"}
        attrs = self._ome(image_block)
        attrs["subcell"] = {
            "provenance": self.provenance.to_dict(),
            "time_interval": self.time_interval,
            "channel_names": self.channel_names,
        }
        self._root.attrs.update(attrs)
        if self._labels:
            lab: Any = self._root["labels"]
            lab.attrs.update(self._ome({"labels": list(self._labels)}))
            for name in self._labels:
                block = {
                    "multiscales": [self._multiscale(name, labels=True)],
                    "image-label": {"version": self.ngff_version, "source": {"image": "../../"}},
                }
                lab[name].attrs.update(self._ome(block))


def channel_windows(coarse: Any) -> list[tuple[float, float]]:
    """Display window (min, max of finite values) per channel of a ``(T, C, Z, Y, X)`` array, read in its own chunk
    layers along z (:func:`_slabs`) in the stored dtype. The coarsest level is the whole image when a store has no
    pyramid (``levels=1``): a 100×2048×2048 float32 prediction read whole here, with its finite mask and a copy of
    the finite values, took ~3 GB above the prediction's budget."""
    c_n = coarse.shape[1]
    lo, hi = [np.inf] * c_n, [-np.inf] * c_n
    for region in _slabs(coarse, coarse):
        c = region[1].start
        vol = np.asarray(coarse[region])
        if not np.issubdtype(vol.dtype, np.floating):
            lo[c], hi[c] = min(lo[c], float(vol.min())), max(hi[c], float(vol.max()))
        elif (fin := np.isfinite(vol)).any():  # NaN and inf left out, without copying the finite values
            lo[c] = min(lo[c], float(np.min(vol, where=fin, initial=np.inf)))
            hi[c] = max(hi[c], float(np.max(vol, where=fin, initial=-np.inf)))
    return [(a, b) if a <= b else (0.0, 1.0) for a, b in zip(lo, hi, strict=True)]


def _slabs(data: Any, target: Any) -> list[tuple[slice, ...]]:
    """Regions of whole chunk layers along z, each at most ``_SLAB_BYTES`` (or one layer), aligned to ``target``."""
    t, c, z, y, x = target.shape
    zc = target.chunks[2]
    layer_bytes = zc * y * x * max(np.dtype(data.dtype).itemsize, np.dtype(target.dtype).itemsize)
    src = getattr(data, "chunks", None)
    src_z = src[2] if src else zc
    src_z = (max(src_z) if isinstance(src_z, tuple) else int(src_z)) or zc  # Dask: the sizes of its chunks; Zarr: one
    step = zc * max(1, min(-(-src_z // zc), _SLAB_BYTES // max(layer_bytes, 1)))
    return [
        (slice(ti, ti + 1), slice(ci, ci + 1), slice(z0, min(z, z0 + step)), slice(0, y), slice(0, x))
        for ti in range(t)
        for ci in range(c)
        for z0 in range(0, z, step)
    ]


def _default_chunks(shape: tuple[int, ...], itemsize: int = 2) -> tuple[int, ...]:
    """(1, 1, z, 256, 256) with z ≤ 32 and a chunk *layer* (z planes of the whole field) of at most ~64 MiB."""
    plane = shape[3] * shape[4] * itemsize
    z = max(1, min(shape[2], 32, (64 << 20) // max(plane, 1)))
    return (1, 1, z, min(shape[3], 256), min(shape[4], 256))


def _check_dtype(dtype: Any) -> np.dtype[Any]:
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return np.dtype(np.uint8)
    if dt.name not in _SUPPORTED:
        raise ValueRangeError(
            f"dtype {dt} cannot be stored; use one of {sorted(_SUPPORTED)} (e.g. float32)", field="dtype"
        )
    return dt


def write_ome_zarr(
    image: Image,
    path: str | Path,
    *,
    labels: Mapping[str, Any] | None = None,
    chunks: Sequence[int] | None = None,
    levels: int | None = None,
    ngff_version: str = "0.4",
    overwrite: bool = False,
    is_label: bool = False,
) -> Path:
    """Write an :class:`Image` (NumPy or Dask) and optional label arrays to OME-Zarr, atomically."""
    writer = OmeZarrWriter(
        path,
        shape=image.shape,
        dtype=image.dtype,
        voxel_size=image.voxel_size,
        channel_names=image.channel_names,
        time_interval=image.time_interval,
        provenance=image.provenance,
        chunks=chunks,
        levels=levels,
        ngff_version=ngff_version,
        overwrite=overwrite,
        is_label=is_label,
    )
    try:
        writer.write(image.data)
        for name, lab in (labels or {}).items():
            writer.add_label(name, lab.data if isinstance(lab, Image) else lab)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
