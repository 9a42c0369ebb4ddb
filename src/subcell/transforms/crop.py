"""Cropping and padding of the trailing spatial axes, in voxels or micrometres."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize

__all__ = ["crop_or_pad", "crop_physical", "pad_to_multiple"]


def crop_or_pad(
    data: np.ndarray, shape: Sequence[int], *, mode: str = "constant", cval: float = 0, anchor: str = "center"
) -> np.ndarray:
    """Crop or pad the last ``len(shape)`` axes to ``shape`` (centred, or from the ``"start"``)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) > data.ndim or min(shape, default=1) < 1:
        raise ValueRangeError(f"target shape {shape} does not fit an array with {data.ndim} axes", field="shape")
    if anchor not in ("center", "start"):
        raise ValueRangeError(f"anchor must be 'center' or 'start', got {anchor!r}", field="anchor")
    k = len(shape)
    lead = data.ndim - k
    slices: list[slice] = [slice(None)] * lead
    pads: list[tuple[int, int]] = [(0, 0)] * lead
    for n, s in zip(data.shape[lead:], shape, strict=True):
        diff = n - s
        before = diff // 2 if anchor == "center" else 0
        if diff >= 0:
            slices.append(slice(before, before + s))
            pads.append((0, 0))
        else:
            need = -diff
            b = need // 2 if anchor == "center" else 0
            slices.append(slice(None))
            pads.append((b, need - b))
    out = data[tuple(slices)]
    if any(p != (0, 0) for p in pads):
        kwargs: dict[str, Any] = {"constant_values": cval} if mode == "constant" else {}
        out = np.pad(out, pads, mode=mode, **kwargs)  # type: ignore[call-overload]
    return out


def pad_to_multiple(
    data: np.ndarray, multiple: int | Sequence[int], *, ndim: int = 3, mode: str = "reflect"
) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """Pad the last ``ndim`` axes up to a multiple (e.g. of a network's total downsampling).

    Returns the padded array and the pad widths, so the result can be cropped back exactly.
    """
    mult = (multiple,) * ndim if isinstance(multiple, int) else tuple(int(m) for m in multiple)
    if len(mult) != ndim or min(mult) < 1:
        raise ValueRangeError(f"expected {ndim} positive multiples, got {multiple}", field="multiple")
    pads = [(0, 0)] * (data.ndim - ndim)
    for n, m in zip(data.shape[-ndim:], mult, strict=True):
        extra = (-n) % m
        pads.append((extra // 2, extra - extra // 2))
    if mode == "reflect" and any(max(p) >= n for p, n in zip(pads[-ndim:], data.shape[-ndim:], strict=True)):
        mode = "symmetric"  # reflect needs pads smaller than the axis
    return np.pad(data, pads, mode=mode), tuple(pads)  # type: ignore[call-overload]


def crop_physical(
    data: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    start_um: Sequence[float],
    size_um: Sequence[float],
) -> np.ndarray:
    """Crop the ZYX box starting at ``start_um`` with extent ``size_um`` (both (z, y, x) in µm).

    Voxels whose centres fall in ``[start, start + size)`` are kept.
    """
    vs = VoxelSize.of(voxel_size).as_tuple()
    if len(start_um) != 3 or len(size_um) != 3 or min(size_um) <= 0:
        raise ValueRangeError(
            f"expected (z, y, x) start and positive size in µm, got {start_um}, {size_um}", field="box"
        )
    slices = []
    for n, v, s0, sz in zip(data.shape[-3:], vs, start_um, size_um, strict=True):
        a = max(0, int(np.ceil(s0 / v - 0.5)))
        b = min(n, int(np.ceil((s0 + sz) / v - 0.5)))
        if b <= a:
            raise ValueRangeError(f"box {start_um}+{size_um} µm lies outside the image", field="box")
        slices.append(slice(a, b))
    index: tuple[Any, ...] = (Ellipsis, *slices)
    return data[index]
