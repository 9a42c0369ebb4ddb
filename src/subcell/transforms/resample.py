"""Resampling to a target voxel size (µm), anisotropic, with the interpolation order chosen by the caller."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import Image, VoxelSize, materialize

__all__ = ["resample", "resample_image", "resample_linear", "resampled_shape", "source_rows"]


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
    lead = data.shape[:-3]
    flat = data.reshape((-1, *data.shape[-3:]))
    aa = (not labels) if anti_aliasing is None else anti_aliasing
    out = np.empty((flat.shape[0], *out_zyx), dtype=data.dtype if labels else np.float32)
    for i, vol in enumerate(flat):
        out[i] = resize(
            vol if labels else vol.astype(np.float32, copy=False),
            out_zyx,
            order=0 if labels else order,
            mode="edge",
            anti_aliasing=aa,
            preserve_range=True,
        )
    return out.reshape((*lead, *out_zyx))


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
    src = image.voxel_size.as_tuple()
    exact: list[Any] = [s * n / m for s, n, m in zip(src, arr.shape[-3:], out.shape[-3:], strict=True)]
    return image.with_data(
        out,
        step="resample",
        parameters={"target_voxel_size": list(target.as_tuple()), "order": order, "labels": labels},
        voxel_size=VoxelSize(*exact),
    )


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
