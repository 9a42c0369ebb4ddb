"""Resampling to a target voxel size (µm), anisotropic, with the interpolation order chosen by the caller."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import Image, VoxelSize, materialize

__all__ = [
    "RowResampler",
    "resample",
    "resample_image",
    "resample_image_lazy",
    "resample_label_rows",
    "resample_lazy",
    "resample_linear",
    "resample_rows",
    "resampled_grid",
    "resampled_shape",
    "source_rows",
]


def resampled_shape(
    shape: Sequence[int], voxel_size: VoxelSize | Sequence[float], target_voxel_size: VoxelSize | Sequence[float]
) -> tuple[int, int, int]:
    """ZYX shape covering the same physical extent at ``target_voxel_size`` (a single plane stays single)."""
    src = VoxelSize.of(voxel_size).as_tuple()
    dst = VoxelSize.of(target_voxel_size).as_tuple()
    z, y, x = (int(s) for s in shape[-3:])
    out = [max(1, round(n * s / d)) for n, s, d in zip((z, y, x), src, dst, strict=True)]
    if z == 1:
        out[0] = 1
    return (out[0], out[1], out[2])


def resampled_grid(
    shape: Sequence[int], voxel_size: VoxelSize | Sequence[float], target_voxel_size: VoxelSize | Sequence[float]
) -> tuple[tuple[int, int, int], VoxelSize]:
    """:func:`resampled_shape` and the exact voxel size of that grid (the same extent over its voxels), which
    differs from the target by less than half a voxel over the field: what a resampled image records."""
    out = resampled_shape(shape, voxel_size, target_voxel_size)
    src = VoxelSize.of(voxel_size).as_tuple()
    return out, VoxelSize(*(s * n / m for s, n, m in zip(src, tuple(shape)[-3:], out, strict=True)))


def resample(
    data: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    target_voxel_size: VoxelSize | Sequence[float],
    order: int = 1,
    labels: bool = False,
    anti_aliasing: bool | None = None,
) -> np.ndarray:
    """Resample the last three (Z, Y, X) axes of ``data`` to ``target_voxel_size``.

    Parameters
    ----------
    data : ndarray
        ``(..., Z, Y, X)``; leading axes (T, C) are resampled independently.
    voxel_size, target_voxel_size : (z, y, x) in µm
    order : int
        Spline order 0–5 (ignored for ``labels``, which always use nearest neighbour).
    labels : bool
        Integer labels: nearest neighbour, no anti-aliasing, dtype kept.
    anti_aliasing : bool, optional
        Gaussian pre-filter when downsampling; default on for intensities, off for labels.

    Returns
    -------
    ndarray
        Same leading axes, resampled ZYX; intensities as float32, labels in their dtype. Pixel *edges* are
        aligned, so the physical extent is preserved.
    """
    if data.ndim < 3:
        raise ValueRangeError(f"expected an array with at least 3 axes (..., Z, Y, X), got {data.ndim}", field="data")
    if not 0 <= order <= 5:
        raise ValueRangeError(f"expected a spline order 0..5, got {order}", field="order")
    from skimage.transform import resize

    out_zyx = resampled_shape(data.shape, voxel_size, target_voxel_size)
    if out_zyx == tuple(data.shape[-3:]):
        return data.copy() if labels else data.astype(np.float32)
    if labels:
        return resample_label_rows(data, 0, out_zyx[0], voxel_size=voxel_size, target_voxel_size=target_voxel_size)
    lead = data.shape[:-3]
    flat = data.reshape((-1, *data.shape[-3:]))
    aa = True if anti_aliasing is None else anti_aliasing
    out = np.empty((flat.shape[0], *out_zyx), dtype=np.float32)
    for i, vol in enumerate(flat):
        out[i] = resize(vol.astype(np.float32, copy=False), out_zyx, order=order, mode="edge", anti_aliasing=aa,
                        preserve_range=True)  # fmt: skip
    return out.reshape((*lead, *out_zyx))


def _nearest(n_in: int, n_out: int) -> np.ndarray:
    """The input index each of ``n_out`` output rows takes from ``n_in`` in a nearest-neighbour resampling with
    :func:`resample`'s geometry: scikit-image's order-0 ``resize`` of a ramp of the indices (the same call it makes
    on data, and separable: a volume's output voxel takes the input voxel at these indices along each axis)."""
    from skimage.transform import resize

    ramp = np.arange(n_in, dtype=np.float64)[:, None]
    out = resize(ramp, (n_out, 1), order=0, mode="edge", anti_aliasing=False, preserve_range=True)
    return np.rint(out[:, 0]).astype(np.int64)


def resample_label_rows(
    data: Any,
    z_start: int,
    z_stop: int,
    *,
    voxel_size: VoxelSize | Sequence[float],
    target_voxel_size: VoxelSize | Sequence[float],
) -> np.ndarray:
    """Output planes ``[z_start, z_stop)`` of :func:`resample` with ``labels=True`` (nearest neighbour, dtype kept)
    of a ``(..., Z, Y, X)`` label volume, NumPy or lazy, reading only the input planes they take: every label
    resampling here is made of this, whole or slab by slab."""
    out = resampled_shape(data.shape, voxel_size, target_voxel_size)
    iz, iy, ix = (_nearest(n, m) for n, m in zip(data.shape[-3:], out, strict=True))
    rows = iz[z_start:z_stop]
    if rows.size == 0:
        return np.zeros((*data.shape[:-3], 0, out[1], out[2]), data.dtype)
    a, b = int(rows.min()), int(rows.max()) + 1
    slab = materialize(data[..., a:b, :, :])
    return slab[..., rows - a, :, :][..., iy, :][..., ix]


def resample_image(
    image: Image, target_voxel_size: VoxelSize | Sequence[float], *, order: int = 1, labels: bool = False
) -> Image:
    """Resample an :class:`Image` (computed per timepoint and channel); the returned voxel size is exact.

    The output covers the same extent, so its voxel size is ``extent / n`` and may differ from the target by
    less than half a voxel over the field; that exact value is recorded.
    """
    target = VoxelSize.of(target_voxel_size)
    arr = image.numpy()
    out = resample(arr, voxel_size=image.voxel_size, target_voxel_size=target, order=order, labels=labels)
    return image.with_data(
        out,
        step="resample",
        parameters={"target_voxel_size": list(target.as_tuple()), "order": order, "labels": labels},
        voxel_size=resampled_grid(arr.shape, image.voxel_size, target)[1],
    )


def resample_lazy(
    data: Any,
    *,
    voxel_size: VoxelSize | Sequence[float],
    target_voxel_size: VoxelSize | Sequence[float],
    out_shape: Sequence[int] | None = None,
    labels: bool = False,
    chunk_z: int = 8,
) -> Any:
    """:func:`resample_linear` (or, ``labels``, :func:`resample` with ``labels=True``) of a ``(..., Z, Y, X)`` volume
    of any size, NumPy or lazy, as a Dask array computed ``chunk_z`` output planes at a time; each block equals those
    planes of the whole-volume result. A block reads the input planes it needs once, as stored, and resamples them
    a few planes at a time (:func:`resample_rows` or :func:`resample_label_rows`), so the float32 temporaries of
    the filter stay within a slab of 64 MB per plane group. Intensities come out float32, labels in their dtype."""
    import dask
    import dask.array as da

    src = VoxelSize.of(voxel_size)
    out = tuple(int(n) for n in out_shape) if out_shape is not None else resampled_shape(data.shape, src,
                                                                                           target_voxel_size)  # fmt: skip
    lead, n_in = tuple(data.shape[:-3]), int(data.shape[-3])
    dtype = np.dtype(data.dtype) if labels else np.dtype(np.float32)
    # output planes resampled at a time inside a block: ~64 MB of float32 input planes with the filter's copies
    step = max(1, (64 << 20) // max(1, 16 * math.prod(lead) * int(data.shape[-2]) * int(data.shape[-1])))

    def block(z0: int, z1: int) -> np.ndarray:
        if labels:
            return resample_label_rows(data, z0, z1, voxel_size=src, target_voxel_size=target_voxel_size)
        a, b = source_rows(z0, z1, n_in=n_in, voxel_z=src.z, target_voxel_z=VoxelSize.of(target_voxel_size).z)
        slab = materialize(data[..., a:b, :, :])
        return np.concatenate([
            resample_rows(slab, z, min(z1, z + step), voxel_size=src, target_voxel_size=target_voxel_size,
                          out_shape=out, n_in_z=n_in, data_z0=a)
            for z in range(z0, z1, step)
        ], axis=-3)  # fmt: skip

    return da.concatenate(
        [da.from_delayed(dask.delayed(block)(z0, min(z0 + chunk_z, out[0])),
                         shape=(*lead, min(z0 + chunk_z, out[0]) - z0, out[1], out[2]), dtype=dtype)
         for z0 in range(0, out[0], chunk_z)],
        axis=len(lead),
    )  # fmt: skip


def resample_image_lazy(
    image: Image, target_voxel_size: VoxelSize | Sequence[float], *, labels: bool = False, chunk_z: int = 8
) -> Image:
    """:func:`resample_linear` of an :class:`Image` of any size, as a lazy (Dask) image (:func:`resample_lazy`, a
    timepoint at a time): writing it streams, and each block equals those planes of the whole-volume result.
    Integer images are rounded and clipped back to their dtype (an intensity image keeps its type). ``labels``:
    nearest neighbour instead (ids and dtype kept; the values of :func:`resample` with ``labels=True``). This is
    the resampling prediction streams with (linear, Gaussian anti-aliasing); :func:`resample_image` is
    scikit-image's spline ``resize`` of the whole image in memory and differs from it slightly.
    """
    import dask.array as da

    target = VoxelSize.of(target_voxel_size)
    out, exact = resampled_grid(image.shape, image.voxel_size, target)
    dtype = np.dtype(image.dtype)

    def back(res: np.ndarray) -> np.ndarray:  # integers rounded and clipped back to their type
        info = np.iinfo(dtype)
        return np.clip(np.rint(res), info.min, info.max).astype(dtype)

    frames = [resample_lazy(image.data[t], voxel_size=image.voxel_size, target_voxel_size=exact, out_shape=out,
                            labels=labels, chunk_z=chunk_z) for t in range(image.shape[0])]  # fmt: skip
    if np.issubdtype(dtype, np.integer) and not labels:
        frames = [f.map_blocks(back, dtype=dtype) for f in frames]
    data = da.stack(frames)
    method = "nearest neighbour (labels)" if labels else "linear, anti-aliased"
    return image.with_data(data, step="resample", parameters={"target_voxel_size": list(target.as_tuple()),
                           "method": method}, voxel_size=exact)  # fmt: skip


def source_rows(z_start: int, z_stop: int, *, n_in: int, voxel_z: float, target_voxel_z: float) -> tuple[int, int]:
    """Input z-rows ``[a, b)`` that :func:`resample_linear` needs to produce output rows ``[z_start, z_stop)``."""
    ratio = target_voxel_z / voxel_z
    sigma = max(0.0, (ratio - 1) / 2)
    halo = int(np.ceil(4 * sigma)) + 1
    lo = int(np.floor((z_start + 0.5) * ratio - 0.5)) - halo
    hi = int(np.ceil((z_stop - 0.5) * ratio - 0.5)) + 1 + halo
    return max(0, lo), min(n_in, hi)


def resample_linear(
    data: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    target_voxel_size: VoxelSize | Sequence[float],
    out_shape: Sequence[int] | None = None,
    z_rows: tuple[int, int] | None = None,
    data_z0: int = 0,
    n_in_z: int | None = None,
) -> np.ndarray:
    """Linear resampling of ``(..., Z, Y, X)`` with Gaussian anti-aliasing, computable slab by slab.

    Same edge-aligned geometry as :func:`resample` (output voxel ``i`` centre ↦ input coordinate
    ``(i + 0.5) · target / voxel − 0.5``). ``data`` may be a z-slab of a larger volume: it starts at input row
    ``data_z0`` of a volume with ``n_in_z`` rows and must contain :func:`source_rows` of the requested output
    rows ``z_rows``; the result equals those rows of the whole-volume result (streamed prediction relies on it).
    """
    from scipy import ndimage

    src = VoxelSize.of(voxel_size).as_tuple()
    dst = VoxelSize.of(target_voxel_size).as_tuple()
    n_in = (n_in_z if n_in_z is not None else data.shape[-3], data.shape[-2], data.shape[-1])
    full = resampled_shape(n_in, src, dst) if out_shape is None else tuple(int(s) for s in out_shape)
    rows = z_rows if z_rows is not None else (0, full[0])
    arr = materialize(data).astype(np.float32, copy=False)
    ratios = [d / s if n > 1 else 1.0 for s, d, n in zip(src, dst, n_in, strict=True)]
    sigmas = [0.0] * (arr.ndim - 3) + [max(0.0, (r - 1) / 2) for r in ratios]
    if any(sigmas):
        # 'nearest' matches the whole-volume filter at the true volume edges; inner slab edges carry a halo
        arr = ndimage.gaussian_filter(arr, sigmas, mode="nearest", truncate=4.0)
    for axis, (n_src, n_dst, r) in enumerate(zip(n_in, full, ratios, strict=True)):
        idx = np.arange(*rows) if axis == 0 else np.arange(n_dst)
        if n_src == n_dst and axis > 0:
            continue
        coord = np.clip((idx + 0.5) * r - 0.5, 0, n_src - 1)
        if axis == 0:
            coord = coord - data_z0
        lo = np.floor(coord).astype(np.int64)
        hi = np.minimum(lo + 1, (arr.shape[-3] if axis == 0 else n_src) - 1)
        frac = (coord - lo).astype(np.float32)
        ax = arr.ndim - 3 + axis
        shape = [1] * arr.ndim
        shape[ax] = -1
        f = frac.reshape(shape)
        arr = np.take(arr, lo, axis=ax) * (1 - f) + np.take(arr, hi, axis=ax) * f
    return arr.astype(np.float32, copy=False)


def _zy(v: Sequence[Any]) -> tuple[Any, Any, Any]:
    """A (z, y, x) triple with z and y swapped."""
    return v[1], v[0], v[2]


def resample_rows(
    data: Any,
    z_start: int,
    z_stop: int,
    *,
    voxel_size: VoxelSize | Sequence[float],
    target_voxel_size: VoxelSize | Sequence[float],
    out_shape: Sequence[int],
    n_in_z: int | None = None,
    data_z0: int = 0,
    axis: str = "z",
) -> np.ndarray:
    """Output rows ``[z_start, z_stop)`` of :func:`resample_linear` of a ``(..., Z, Y, X)`` volume, reading only
    the input planes they need (:func:`source_rows`) from ``data`` (NumPy or lazy), which holds the volume's
    planes from ``data_z0`` on (``n_in_z`` planes in all; default: ``data``'s). The rows equal those of the
    whole-volume result: what every slab-by-slab resampling here is made of.

    ``axis="y"``: rows along y instead (``(..., Z, n, X)``, every plane of output rows ``[z_start, z_stop)`` in y;
    ``data_z0`` and ``n_in_z`` count y rows): the same resampling with z and y swapped, equal to the whole-volume
    result within rounding (the axes are interpolated in another order)."""
    if axis == "y":
        out = resample_rows(np.swapaxes(data, -3, -2) if isinstance(data, np.ndarray) else data.swapaxes(-3, -2),
                            z_start, z_stop, voxel_size=_zy(VoxelSize.of(voxel_size).as_tuple()),
                            target_voxel_size=_zy(VoxelSize.of(target_voxel_size).as_tuple()),
                            out_shape=_zy(tuple(out_shape)), n_in_z=n_in_z, data_z0=data_z0)  # fmt: skip
        return np.swapaxes(out, -3, -2)
    src = VoxelSize.of(voxel_size)
    n_in = int(n_in_z) if n_in_z is not None else data_z0 + data.shape[-3]
    a, b = source_rows(z_start, z_stop, n_in=n_in, voxel_z=src.z, target_voxel_z=VoxelSize.of(target_voxel_size).z)
    slab = materialize(data[..., a - data_z0 : b - data_z0, :, :])
    return resample_linear(slab, voxel_size=src, target_voxel_size=target_voxel_size, out_shape=out_shape,
                           z_rows=(z_start, z_stop), data_z0=a, n_in_z=n_in)  # fmt: skip


class RowResampler:
    """Resample z-rows that arrive in order onto another grid, passing each finished output row on: a row sink
    (``(z0, rows (..., n, Y, X))``) in front of another, e.g. a prediction streamed onto the input's grid.

    The result equals :func:`resample_linear` of the whole volume (it is that function, on slabs). Memory: the
    input rows the next output rows still need (:func:`source_rows`), and the output rows each arriving piece of
    input completes, computed ``chunk`` rows at a time and handed on together (one ``sink`` call per piece at most).

    Parameters
    ----------
    sink : callable ``(z0, rows)``
        Receives the output rows in order, ``rows`` shaped ``(..., n, Y_out, X_out)`` float32: all the rows each
        piece of input completes.
    n_in_z : int
        Planes of the whole input volume.
    voxel_size, target_voxel_size : (z, y, x) in µm
        The exact voxel sizes of the input and the output grid (extent / planes).
    out_shape : (Z, Y, X)
        The output grid; the same physical extent as the input.
    chunk : int
        Output rows computed per call of :func:`resample_linear` (bounds its temporaries).
    axis : "z" or "y"
        ``"y"``: the rows are bands of every plane arriving in y order, ``(y0, rows (..., Z, n, X))``, and ``sink``
        gets ``(0, rows, y0)``; ``n_in_z`` counts the input's y rows (the same resampling with z and y swapped,
        :func:`resample_rows`).
    """

    def __init__(self, sink: Any, *, n_in_z: int, voxel_size: VoxelSize | Sequence[float],
                 target_voxel_size: VoxelSize | Sequence[float], out_shape: Sequence[int], chunk: int = 4,
                 axis: str = "z") -> None:  # fmt: skip
        if chunk < 1:
            raise ValueRangeError(f"expected chunk >= 1, got {chunk}", field="chunk")
        if axis not in ("z", "y"):
            raise ValueRangeError(f"expected axis 'z' or 'y', got {axis!r}", field="axis")
        swap = _zy if axis == "y" else tuple
        self._axis = axis
        self._sink = sink
        self._n_in = int(n_in_z)
        self._src = swap(VoxelSize.of(voxel_size).as_tuple())
        self._dst = swap(VoxelSize.of(target_voxel_size).as_tuple())
        self._out = swap(tuple(int(s) for s in out_shape))
        self._chunk = chunk
        self._rows: list[np.ndarray] = []  # input rows held, starting at input row self._z0
        self._z0 = 0
        self._received = 0
        self._emitted = 0

    def _need(self, start: int, stop: int) -> tuple[int, int]:
        return source_rows(start, stop, n_in=self._n_in, voxel_z=self._src[0], target_voxel_z=self._dst[0])

    def __call__(self, z0: int, rows: np.ndarray) -> None:
        if z0 != self._received:
            raise ValueRangeError(f"rows must arrive in order: expected row {self._received}, got {z0}", field="z0")
        rows = np.asarray(rows, dtype=np.float32)
        rows = np.swapaxes(rows, -3, -2) if self._axis == "y" else rows
        self._rows.append(rows)
        self._received += rows.shape[-3]
        if self._received > self._n_in:
            raise ValueRangeError(f"received {self._received} rows of a {self._n_in}-row volume", field="rows")
        self._emit()

    def _emit(self) -> None:
        # the output rows the input received so far completes, computed ``chunk`` rows at a time into one array
        # handed on in one call: a sink that writes chunked storage (an OME-Zarr of 16 × 256 × 256 chunks) then
        # rewrites each chunk once per piece of input, not once per ``chunk`` rows (a third of a prediction's time
        # off the model's grid went to rewriting chunks)
        n_out, first = self._out[0], self._emitted
        last = first
        while last < n_out and self._need(first, last + 1)[1] <= self._received:
            last += 1
        if last == first:
            return  # the next output row needs input rows not yet received
        out: np.ndarray | None = None
        for start in range(first, last, self._chunk):
            stop = min(last, start + self._chunk)
            held = np.concatenate(self._rows, axis=-3) if len(self._rows) > 1 else self._rows[0]
            rows = resample_rows(held, start, stop, voxel_size=self._src, target_voxel_size=self._dst,
                                 out_shape=self._out, n_in_z=self._n_in, data_z0=self._z0)  # fmt: skip
            if out is None:
                out = np.empty((*rows.shape[:-3], last - first, *rows.shape[-2:]), np.float32)
            out[..., start - first : stop - first, :, :] = rows
            # drop the input rows no later output row needs
            keep = self._need(stop, stop + 1)[0] if stop < n_out else self._received
            self._rows = [held[..., keep - self._z0 :, :, :]] if keep < self._received else []
            self._z0 = keep
        self._emitted = last
        assert out is not None  # first < last: at least one chunk
        if self._axis == "y":
            self._sink(0, np.swapaxes(out, -3, -2), first)
        else:
            self._sink(first, out)

    def close(self) -> None:
        """Check that every output row was passed on (every input row was received)."""
        if self._emitted != self._out[0]:
            raise ValueRangeError(f"the volume ended after {self._received} of {self._n_in} input rows; "
                                  f"{self._emitted} of {self._out[0]} output rows written", field="rows")  # fmt: skip
