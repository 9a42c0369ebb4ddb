"""Structure detectors: multi-scale LoG spots and Hessian filaments."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize
from subcell.segment.filters._common import DERIVATIVE_TRUNCATE, _as_3d, derivative_order, sigma_voxels

__all__ = ["eigenvalues_by_magnitude", "filament_filter", "filament_top", "hessian_eigenvalues", "spot_filter"]


def spot_filter(
    img: np.ndarray,
    *,
    sigmas_um: Sequence[float],
    voxel_size: VoxelSize | Sequence[float],
    per_slice: bool = False,
) -> np.ndarray:
    """Multi-scale Laplacian-of-Gaussian spot response: max over scales of −σ²∇²G∗I (bright spots > 0).

    Parameters
    ----------
    img : (Z, Y, X) or (Y, X) array
        Normalized intensities.
    sigmas_um : sequence of float
        Scales in µm; a spot of radius r responds most at σ ≈ r/√3 (3D) or r/√2 (2D).
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.
    per_slice : bool
        2D LoG on each z-plane.

    Returns
    -------
    (Z, Y, X) float32 array, scale-normalized (comparable across scales); threshold it with ``threshold``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((1, 15, 15), np.float32); a[0, 6:9, 6:9] = 1
    >>> r = spot_filter(a, sigmas_um=[1.0], voxel_size=(1, 1, 1))
    >>> tuple(int(i) for i in np.unravel_index(r.argmax(), r.shape))
    (0, 7, 7)
    """
    a = _as_3d(img).astype(np.float32, copy=False)
    if not sigmas_um:
        raise ValueRangeError("give at least one scale in µm", field="sigmas_um")
    out = np.full(a.shape, -np.inf, np.float32)
    for s_um in sigmas_um:
        sig = sigma_voxels(s_um, voxel_size, per_slice=per_slice or a.shape[0] == 1)
        resp = np.zeros(a.shape, np.float32)
        for ax in range(3):
            if sig[ax] == 0:
                continue
            # scale-normalized second derivative along ax (σ² in that axis's voxel units = σ_µm² / vs²·vs²)
            resp -= np.float32(sig[ax] ** 2) * ndi.gaussian_filter(
                a, sig, order=derivative_order(ax, ax), mode="nearest", truncate=DERIVATIVE_TRUNCATE
            )
        np.maximum(out, resp, out=out)
    return out


EIGEN_STEP = 1 << 16  # voxels per run of the 3×3 eigenvalue formula


def _by_magnitude(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compare-swap: (smaller, larger) by absolute value, elementwise."""
    swap = np.abs(x) > np.abs(y)
    return np.where(swap, y, x), np.where(swap, x, y)


def hessian_eigenvalues(img: np.ndarray, sigma_vox: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale-normalized Hessian eigenvalues per voxel, sorted by magnitude |λ1| <= |λ2| <= |λ3| (float32).

    The Hessian comes from Gaussian derivative filters, each scaled by σ_i·σ_j (in voxels). Axes with sigma 0
    are left out: with one axis off (a per-slice filter) the 2×2 eigenvalues are solved in closed form and the
    third is 0; in 3D the trigonometric closed form is used, with no per-voxel matrix solve.

    Parameters
    ----------
    img : (Z, Y, X) array
    sigma_vox : (z, y, x) sequence of float
        Gaussian sigmas in voxels (0 switches an axis off).

    Returns
    -------
    tuple of three (Z, Y, X) float32 arrays
        λ1, λ2, λ3 with |λ1| <= |λ2| <= |λ3|; bright structures have negative eigenvalues across them.
    """
    a = np.asarray(img, dtype=np.float32)
    sig = list(sigma_vox)

    def second(i: int, j: int) -> np.ndarray:
        out = ndi.gaussian_filter(a, sig, order=derivative_order(i, j), mode="nearest", truncate=DERIVATIVE_TRUNCATE)
        out *= np.float32(sig[i] * sig[j])
        return out

    return eigenvalues_by_magnitude(second, [ax for ax in range(3) if sig[ax] > 0], a.shape)


def eigenvalues_by_magnitude(
    second: Callable[[int, int], np.ndarray], active: Sequence[int], shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues of a per-voxel symmetric Hessian, sorted by magnitude (see :func:`hessian_eigenvalues`), from
    ``second(i, j)``: its (i, j) component as a new float32 array (consumed in place), over the ``active`` axes
    (the others' rows are zero)."""
    if len(active) < 2:
        z = np.zeros(shape, np.float32)
        only = second(active[0], active[0]) if active else z.copy()
        return z, z.copy(), only
    if len(active) == 2:
        i, j = active
        hii, hjj, hij = second(i, i), second(j, j), second(i, j)
        mean = (hii + hjj) * np.float32(0.5)
        half = (hii - hjj) * np.float32(0.5)
        np.multiply(half, half, out=half)
        np.multiply(hij, hij, out=hij)
        root = np.sqrt(half + hij)
        small, large = _by_magnitude(mean - root, mean + root)
        return np.zeros(shape, np.float32), small, large
    comps = [second(i, j).reshape(-1) for i, j in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))]
    out = [np.empty(comps[0].size, np.float32) for _ in range(3)]
    # a run of voxels at a time: the formula's ~20 temporaries stay in the cache (6× faster than whole volumes, the
    # same numbers: every operation is elementwise)
    for start in range(0, comps[0].size, EIGEN_STEP):
        part = slice(start, start + EIGEN_STEP)
        for o, e in zip(out, _eigenvalues_3x3(*(c[part] for c in comps)), strict=True):
            o[part] = e
    return out[0].reshape(shape), out[1].reshape(shape), out[2].reshape(shape)


def _eigenvalues_3x3(a11: np.ndarray, a22: np.ndarray, a33: np.ndarray, a12: np.ndarray, a13: np.ndarray,
                     a23: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Closed-form eigenvalues of real symmetric 3×3 matrices (trigonometric method), sorted by magnitude; the
    diagonal arrays are changed in place."""
    q = (a11 + a22 + a33) / 3
    a11 -= q
    a22 -= q
    a33 -= q
    p1 = a12 * a12 + a13 * a13 + a23 * a23
    p = np.maximum(np.sqrt((a11 * a11 + a22 * a22 + a33 * a33 + 2 * p1) / 6), np.float32(1e-12))  # p³ stays > 0
    det = a11 * (a22 * a33 - a23 * a23) - a12 * (a12 * a33 - a23 * a13) + a13 * (a12 * a23 - a22 * a13)
    r = det / (2 * p * p * p)
    phi = np.arccos(np.clip(r, -1, 1, out=r), out=r)
    phi /= 3
    e1 = q + 2 * p * np.cos(phi)
    e3 = q + 2 * p * np.cos(phi + np.float32(2 * math.pi / 3))
    e2 = 3 * q - e1 - e3
    # sorting network for three values by magnitude
    e1, e2 = _by_magnitude(e1, e2)
    e2, e3 = _by_magnitude(e2, e3)
    e1, e2 = _by_magnitude(e1, e2)
    return e1, e2, e3


def filament_filter(
    img: np.ndarray,
    *,
    sigmas_um: Sequence[float],
    voxel_size: VoxelSize | Sequence[float],
    per_slice: bool = False,
    tau: float = 1.0,
    top: Sequence[float] | None = None,
) -> np.ndarray:
    """Multi-scale Hessian vesselness for bright filaments (Jerman et al. 2016), max over scales, in [0, 1].

    In 3D a bright tube has two large negative eigenvalues and a small third one; blobs (three large) are
    suppressed with Frangi's blobness ratio. With ``per_slice`` (or a single plane) the 2D line measure is used
    on each z-plane.

    Parameters
    ----------
    img : (Z, Y, X) or (Y, X) array
        Normalized (and usually smoothed) intensities.
    sigmas_um : sequence of float
        Scales in µm, about the filament radius.
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.
    per_slice : bool
        2D line filter on each z-plane.
    tau : float
        Jerman's τ in (0, 1]: eigenvalues above τ·max are treated as the maximum, which makes the response
        uniform along a filament; lower values saturate more of it.
    top : sequence of float, optional
        The largest cross-sectional curvature of the field at each scale (:func:`filament_top`), which sets
        τ·max. Fitted on ``img`` when not given; pass the field's value to filter a block of it.

    Returns
    -------
    (Z, Y, X) float32 array in [0, 1].
    """
    a = _as_3d(img).astype(np.float32, copy=False)
    if not sigmas_um:
        raise ValueRangeError("give at least one scale in µm", field="sigmas_um")
    two_d = per_slice or a.shape[0] == 1
    out = np.zeros(a.shape, np.float32)
    for s_um in sigmas_um:
        sig = sigma_voxels(s_um, voxel_size, per_slice=two_d)
        l1, l2, l3 = hessian_eigenvalues(a, sig)
        # bright structures have negative curvature across them: 3D tubes in two directions (λ2, λ3); in a
        # plane the z eigenvalue is 0, so the single cross-sectional eigenvalue (λ3) drives the 2D measure
        lam2 = -l3 if two_d else -l2
        lam3 = -l3
        peak = float(lam3.max()) if top is None else float(top[sigmas_um.index(s_um)])
        lam_rho = np.where(lam3 > tau * peak, lam3, np.float32(tau * peak)).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            resp = lam2 * lam2 * (lam_rho - lam2) * 27 / (lam2 + lam_rho) ** 3
        resp = np.where(lam2 >= lam_rho / 2, np.float32(1.0), resp)
        resp = np.where((lam2 <= 0) | (lam3 <= 0), np.float32(0.0), resp)
        if not two_d:  # suppress blobs, whose curvature is strong along the third axis too (Frangi's R_B)
            rb2 = (l1 * l1) / (np.abs(l2 * l3) + np.float32(1e-20))
            resp = resp * np.exp(-rb2 / np.float32(2 * 0.5**2))
        np.maximum(out, np.nan_to_num(resp.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0), out=out)
    return out


def filament_top(
    img: np.ndarray,
    *,
    sigmas_um: Sequence[float],
    voxel_size: VoxelSize | Sequence[float],
    per_slice: bool = False,
    core: tuple[slice, ...] | None = None,
) -> list[float]:
    """The largest cross-sectional curvature −λ3 at each scale (inside ``core`` of ``img`` when given)."""
    a = _as_3d(img).astype(np.float32, copy=False)
    two_d = per_slice or a.shape[0] == 1
    out = []
    for s_um in sigmas_um:
        lam3 = -hessian_eigenvalues(a, sigma_voxels(s_um, voxel_size, per_slice=two_d))[2]
        part = lam3 if core is None else lam3[core]
        out.append(float(part.max()) if part.size else -np.inf)
    return out
