"""Smoothing and background removal: Gaussian, edge-preserving diffusion, rolling-ball-like top-hat."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize
from subcell.segment.filters._common import SMOOTH_TRUNCATE, _as_3d, sigma_voxels

__all__ = ["edge_preserving_smooth", "gaussian_smooth", "gradient_sq", "subtract_background"]


def gaussian_smooth(
    img: np.ndarray, *, sigma_um: float, voxel_size: VoxelSize | Sequence[float], per_slice: bool = False
) -> np.ndarray:
    """Gaussian smoothing with sigma in µm, in 3D or each z-plane on its own.

    Parameters
    ----------
    img : (Z, Y, X) or (Y, X) array
    sigma_um : float
        Standard deviation in µm, converted per axis with ``voxel_size`` (anisotropic voxels get anisotropic
        kernels in voxels, an isotropic one in µm).
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.
    per_slice : bool
        Smooth each z-plane separately (no smoothing along z).

    Returns
    -------
    (Z, Y, X) float32 array. The kernel is truncated at 3 sigma; edges are replicated.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((5, 15, 15), np.float32); a[2, 7, 7] = 1
    >>> out = gaussian_smooth(a, sigma_um=0.2, voxel_size=(0.4, 0.1, 0.1), per_slice=True)
    >>> bool(out[1].any()), round(float(out.sum()), 3)
    (False, 1.0)
    """
    a = _as_3d(img).astype(np.float32, copy=False)
    return ndi.gaussian_filter(
        a, sigma_voxels(sigma_um, voxel_size, per_slice=per_slice), mode="nearest", truncate=SMOOTH_TRUNCATE
    )


def _central_differences(a: np.ndarray, axes: list[int], spacing: tuple[float, ...]) -> dict[int, np.ndarray]:
    """(f(x+1) - f(x-1)) / 2 per axis with replicated edges (zero-flux), in physical units."""
    out = {}
    for ax in axes:
        c = np.empty_like(a)
        src = np.moveaxis(a, ax, 0)
        dst = np.moveaxis(c, ax, 0)
        np.subtract(src[2:], src[:-2], out=dst[1:-1])
        np.subtract(src[1], src[0], out=dst[0])
        np.subtract(src[-1], src[-2], out=dst[-1])
        c *= np.float32(0.5 / spacing[ax])
        out[ax] = c
    return out


def gradient_sq(
    img: np.ndarray, *, voxel_size: VoxelSize | Sequence[float] = (1.0, 1.0, 1.0), per_slice: bool = False
) -> np.ndarray:
    """|∇I|² per voxel from central differences (units of the smallest voxel edge), as edge-preserving smoothing
    measures it; its mean over the field scales the conductance."""
    a = _as_3d(img).astype(np.float32, copy=False)
    vs = VoxelSize.of(voxel_size).as_tuple()
    axes = [ax for ax in range(3) if a.shape[ax] > 1 and not (per_slice and ax == 0)]
    out = np.zeros(a.shape, np.float32)
    if not axes:
        return out
    spacing = tuple(v / min(vs[i] for i in axes) for v in vs)
    for c in _central_differences(a, axes, spacing).values():
        out += c * c
    return out


def edge_preserving_smooth(
    img: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float] = (1.0, 1.0, 1.0),
    iterations: int = 10,
    conductance: float = 1.2,
    time_step: float = 0.0625,
    per_slice: bool = False,
    mean_sq_gradient: float | None = None,
) -> np.ndarray:
    """Gradient anisotropic diffusion (Perona–Malik with exponential conductance), vectorized in NumPy.

    The algorithm of ITK's ``GradientAnisotropicDiffusionImageFilter`` (the Segmenter's edge-preserving
    smoothing): across each voxel face the flux is ∂I·exp(-|∇I|² / (2 K² ⟨|∇I|²⟩)), with |∇I|² at the face from
    the normal difference plus the averaged tangential central differences; zero-flux boundaries. Derivatives
    are in units of the smallest voxel edge, as ITK's image spacing.

    Parameters
    ----------
    img : (Z, Y, X) or (Y, X) array
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.
    iterations : int
        Diffusion steps (each spreads intensity by about one voxel).
    conductance : float
        K: gradients much larger than K·(mean gradient) are edges and diffuse little.
    time_step : float
        Step size; stable up to 1/2^(N+1) for N dimensions (0.0625 in 3D).
    per_slice : bool
        Diffuse within each z-plane only.
    mean_sq_gradient : float, optional
        ⟨|∇I|²⟩ that scales K. Fitted once on the input (:func:`gradient_sq`) when not given and kept for every
        iteration (ITK refits it each iteration; one fit per field is what lets a block-wise run equal the
        whole-volume one).

    Returns
    -------
    (Z, Y, X) float32 array.
    """
    if iterations < 0 or conductance <= 0 or time_step <= 0:
        raise ValueRangeError("iterations must be >= 0 and conductance, time_step > 0", field="edge_preserving_smooth")
    a = _as_3d(img).astype(np.float32, copy=True)
    vs = VoxelSize.of(voxel_size).as_tuple()
    axes = [ax for ax in range(3) if a.shape[ax] > 1 and not (per_slice and ax == 0)]
    if not axes:
        return a
    spacing = tuple(v / min(vs[i] for i in axes) for v in vs)
    if mean_sq_gradient is None:
        mean_sq_gradient = float(np.mean(gradient_sq(a, voxel_size=vs, per_slice=per_slice), dtype=np.float64))
    k = np.float32(2.0 * conductance**2 * max(mean_sq_gradient, 1e-20))
    for _ in range(iterations):
        cd = _central_differences(a, axes, spacing)

        def face_flux(
            ax: int, a: np.ndarray = a, cd: dict[int, np.ndarray] = cd, k: np.float32 = k
        ) -> tuple[int, np.ndarray]:
            s = np.float32(spacing[ax])
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[ax] = slice(0, -1)
            hi[ax] = slice(1, None)
            lo_t, hi_t = tuple(lo), tuple(hi)
            d = a[hi_t] - a[lo_t]  # normal derivative on the faces between neighbours along ax
            d /= s
            grad2 = d * d
            for other in axes:
                if other != ax:
                    t = cd[other][lo_t] + cd[other][hi_t]  # 2 × the tangential derivative at the face
                    t *= np.float32(0.5)
                    t *= t
                    grad2 += t
            grad2 /= -k
            np.exp(grad2, out=grad2)
            grad2 *= d
            grad2 /= s
            return ax, grad2

        with ThreadPoolExecutor(max_workers=min(len(axes), 3)) as pool:  # NumPy releases the GIL
            fluxes = list(pool.map(face_flux, axes))
        for ax, flux in fluxes:
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[ax] = slice(0, -1)
            hi[ax] = slice(1, None)
            flux *= np.float32(time_step)
            a[tuple(lo)] += flux  # zero-flux boundary: edge voxels only exchange with the inside
            a[tuple(hi)] -= flux
    return a


def subtract_background(
    img: np.ndarray,
    *,
    radius_um: float,
    voxel_size: VoxelSize | Sequence[float],
    per_slice: bool = True,
    origin: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """Remove a slowly varying background (uneven illumination, out-of-focus haze): a rolling-ball-like top-hat.

    The background is the grey opening of the image with a disk (per slice) or ellipsoid (3D) of radius
    ``radius_um``: everything narrower than that footprint is removed from it, so choose a radius larger than
    the objects kept (e.g. the largest nucleus radius). It is computed on a copy downsampled so the radius spans
    about 8 pixels, smoothed over the footprint and interpolated back, which keeps large radii fast.

    Parameters
    ----------
    img : (Z, Y, X) or (Y, X) array
    radius_um : float
        Footprint radius in µm.
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.
    per_slice : bool
        Estimate the background of each z-plane on its own (default; widefield haze changes with focus).
    origin : (z, y, x) int
        Position of ``img`` in its field: the subsampling grid is anchored to the field, so a block gives the
        same background as the whole field.

    Returns
    -------
    (Z, Y, X) float32 array: the image minus its background, clipped at 0.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:64, :64]
    >>> ramp = (xx / 64).astype(np.float32)[None]          # uneven illumination
    >>> spot = ramp.copy(); spot[0, 30:34, 30:34] += 1      # a small object on it
    >>> out = subtract_background(spot, radius_um=4, voxel_size=(1, 1, 1))
    >>> round(float(out[0, 31, 31]), 1), round(float(out[0, 5, 60]), 1)
    (1.0, 0.0)
    """
    if radius_um <= 0:
        raise ValueRangeError(f"radius_um must be > 0, got {radius_um}", field="radius_um")
    a = _as_3d(img).astype(np.float32, copy=False)
    vs = VoxelSize.of(voxel_size).as_tuple()
    flat = per_slice or a.shape[0] == 1
    step = [1 if (ax == 0 and flat) else max(1, int(radius_um / vs[ax] / 8)) for ax in range(3)]
    first = [(-int(o)) % st for o, st in zip(origin, step, strict=True)]  # first sample on the field's grid
    small = a[first[0] :: step[0], first[1] :: step[1], first[2] :: step[2]]
    r = [0.0 if (ax == 0 and flat) else radius_um / (vs[ax] * step[ax]) for ax in range(3)]
    half = [math.floor(x) for x in r]
    zz, yy, xx = np.ogrid[-half[0] : half[0] + 1, -half[1] : half[1] + 1, -half[2] : half[2] + 1]
    foot = sum((g / max(x, 1e-9)) ** 2 for g, x in zip((zz, yy, xx), r, strict=True)) <= 1.0
    background = ndi.grey_opening(small, footprint=foot, mode="nearest")
    background = ndi.uniform_filter(background, size=[2 * h + 1 for h in half], mode="nearest")
    for ax in range(3):  # linear interpolation back, sample j sitting at first + j·step
        if step[ax] > 1:
            pos = (np.arange(a.shape[ax]) - first[ax]) / step[ax]
            n = background.shape[ax]
            i0 = np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
            i1 = np.minimum(i0 + 1, n - 1)
            w = np.clip(pos - i0, 0, 1).astype(np.float32)
            shape = [1, 1, 1]
            shape[ax] = -1
            w = w.reshape(shape)
            background = np.take(background, i0, axis=ax) * (1 - w) + np.take(background, i1, axis=ax) * w
    return np.maximum(a - background, 0, dtype=np.float32)
