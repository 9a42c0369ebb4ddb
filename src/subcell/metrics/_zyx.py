"""What the per-cell metrics (neighbours, compartments, radial, ``measure``) share: arrays lifted to (Z, Y, X) and
checked, a mask told from instance labels, and the distance from inside a mask to its outside in µm, for a volume
or a single plane."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError

__all__ = ["components", "depth_um", "mask_components", "zyx"]


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


def mask_components(a: np.ndarray) -> np.ndarray | None:
    """The connected components (ids 1..N) of a mask, or None when ``a`` holds instance ids.

    A mask is a boolean array, integers holding only 0 and 1, or 8-bit 0 and 255 (an ImageJ / Fiji binary mask);
    an empty frame (nothing but 0) is neither, it holds no object either way (None);
    its components touch by faces, edges or corners (26-connected in 3D, 8 in a plane), as
    ``skimage.measure.label`` and Fiji's 3D Objects Counter count them: a thin tubule running diagonally through
    anisotropic voxels stays one object.
    """
    arr = np.asarray(a)
    if arr.dtype != np.bool_:
        if not np.issubdtype(arr.dtype, np.integer) or arr.size == 0:
            return None
        top = int(arr.max())
        if top == 0 or (top > 1 and not (arr.dtype == np.uint8 and top == 255 and not ((arr > 0) & (arr < 255)).any())):
            return None
    elif not arr.any():
        return None
    return components(arr > 0)


def components(mask: np.ndarray) -> np.ndarray:
    """Connected components (ids 1..N) of a mask, touching by faces, edges or corners."""
    return np.asarray(ndi.label(mask, structure=np.ones((3,) * mask.ndim, bool))[0])
