"""Resampling to a target voxel size (µm), anisotropic, with the interpolation order chosen by the caller."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import Image, VoxelSize

__all__ = ["resample", "resample_image", "resampled_shape"]


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
