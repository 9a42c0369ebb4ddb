"""Shared helpers of the filters: array shape and lengths in voxels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize

__all__ = ["DERIVATIVE_TRUNCATE", "SMOOTH_TRUNCATE", "derivative_order", "gaussian_reach", "sigma_voxels"]

# Gaussian kernels are cut at this many σ. Smoothing kernels are renormalized by scipy and may stop at 3σ; derivative
# kernels reach 4σ: cut at 3σ a second-derivative kernel does not sum to zero, so σ²·∂² carries 0.4–1.6 % of the local
# intensity (σ = 1–3 voxels) and a Laplacian of Gaussian up to 5 % — a flat bright region looks like a dim spot.
# At 4σ the leak is below 0.05 %.
SMOOTH_TRUNCATE = 3.0
DERIVATIVE_TRUNCATE = 4.0


def _as_3d(img: np.ndarray, name: str = "image") -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 2:
        return a[None]
    if a.ndim != 3:
        raise ValueRangeError(f"expected a (Z, Y, X) or (Y, X) {name}, got {a.ndim} axes {a.shape}", field=name)
    return a


def sigma_voxels(
    sigma_um: float, voxel_size: VoxelSize | Sequence[float], *, per_slice: bool = False
) -> tuple[float, float, float]:
    """A length in µm as Gaussian sigmas in voxels (z, y, x); ``per_slice`` (or a single plane) sets z to 0."""
    if sigma_um < 0:
        raise ValueRangeError(f"expected a non-negative length in µm, got {sigma_um}", field="sigma_um")
    vs = VoxelSize.of(voxel_size).as_tuple()
    return (0.0 if per_slice else sigma_um / vs[0], sigma_um / vs[1], sigma_um / vs[2])


def gaussian_reach(
    sigma_um: float, voxel_size: VoxelSize | Sequence[float], *, truncate: float, per_slice: bool = False
) -> tuple[int, int, int]:
    """Voxels per axis (z, y, x) a Gaussian (derivative) filter of ``sigma_um`` cut at ``truncate`` σ reads around a
    voxel: scipy's kernel radius ``int(truncate·σ + 0.5)``, plus one (a difference, or rounding, at the edge); z is 0
    for a per-slice filter. What a block must be read with for its filtered values to be the whole field's."""
    r = tuple(int(truncate * sigma_um / v + 0.5) + 1 for v in VoxelSize.of(voxel_size).as_tuple())
    return (0 if per_slice else r[0], r[1], r[2])


def derivative_order(*axes: int) -> tuple[int, int, int]:
    """The (z, y, x) derivative order of differentiating once along each of ``axes`` (``(1, 1)``: ∂²/∂y²)."""
    order = [0, 0, 0]
    for ax in axes:
        order[ax] += 1
    return order[0], order[1], order[2]
