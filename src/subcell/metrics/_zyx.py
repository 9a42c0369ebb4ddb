"""What the per-cell metrics (neighbours, compartments, radial) share: arrays lifted to (Z, Y, X) and checked,
and the distance from inside a mask to its outside in µm, for a volume or a single plane."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError

__all__ = ["depth_um", "zyx"]


def zyx(a: np.ndarray, what: str, *, like: tuple[int, ...] | None = None, labels: bool = False) -> np.ndarray:
    """``a`` as (Z, Y, X) (a (Y, X) plane is one z), of the shape ``like`` where given, of integers if ``labels``;
    else a one-line error naming ``what``."""
    out = np.asarray(a)
    out = out[None] if out.ndim == 2 else out
    if out.ndim != 3:
        raise ValueRangeError(f"{what} must be a (Z, Y, X) or (Y, X) array, got shape {np.shape(a)}", field=what)
    if like is not None and out.shape != like:
        raise ValueRangeError(f"{what} has shape {out.shape} but the labels {like}", field=what)
    if labels and not np.issubdtype(out.dtype, np.integer):
        raise ValueRangeError(f"{what} must be integer labels, got {out.dtype}", field=what)
    return out


def depth_um(mask: np.ndarray, voxel_size: Sequence[float], *, box_is_outside: bool = True) -> np.ndarray:
    """Distance (µm) from every True voxel of a (Z, Y, X) ``mask`` to the nearest False one (0 on False voxels).

    A single plane is measured in 2D (its z size unused). ``box_is_outside``: beyond the array counts as False (an
    object cropped tightly to its box still has an edge there); otherwise only False voxels count (the mask must
    hold one)."""
    flat = mask.shape[0] == 1
    m = mask[0] if flat else mask
    sampling = tuple(voxel_size)[1:] if flat else tuple(voxel_size)
    if box_is_outside:
        m = np.pad(m, 1)
    d = np.asarray(ndi.distance_transform_edt(m, sampling=sampling))
    if box_is_outside:
        d = d[(slice(1, -1),) * d.ndim]
    return d[None] if flat else d
