"""The classical vocabulary: pure 3D (and slice-by-slice 2D) filters with lengths in micrometres.

Every function takes a ``(Z, Y, X)`` array (a 2D image is a single z-plane) and keyword-only options, and
returns a new array; lengths are µm and converted with ``voxel_size``. Nothing here opens files or imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize

__all__ = [
    "edge_preserving_smooth",
    "filament_filter",
    "fill_between_membranes",
    "fill_holes",
    "gaussian_smooth",
    "hessian_eigenvalues",
    "masked_object_threshold",
    "normalize",
    "seeded_watershed",
    "sigma_voxels",
    "size_filter",
    "spot_filter",
    "subtract_background",
    "threshold",
    "topology_preserving_thinning",
]


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


def normalize(
    img: np.ndarray,
    *,
    method: str = "percentile",
    low: float = 0.5,
    high: float = 99.5,
    clip: bool = True,
) -> np.ndarray:
    """Intensity normalization to about [0, 1] (float32).

    Parameters
    ----------
    img : (Z, Y, X) or (Y, X) array
        Raw intensities.
    method : {"percentile", "std", "minmax"}
        ``"percentile"``: the ``low``/``high`` percentiles map to 0/1. ``"std"``: clip to
        ``[mean - low·std, mean + high·std]`` (within the data range) then min-max, robust to bright outliers
        (the Segmenter's auto-contrast). ``"minmax"``: min-max after clipping values above the ``high``
        percentile (outlier suppression; ``high=100`` keeps the maximum).
    low, high : float
        Percentiles (``percentile``, ``minmax``) or multiples of the standard deviation (``std``).
    clip : bool
        Clip the result to [0, 1].

    Returns
    -------
    float32 array of the same shape.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([0, 10, 20, 30, 1000], np.float32)
    >>> normalize(a, method="minmax", high=75).tolist()
    [0.0, 0.3333333432674408, 0.6666666865348816, 1.0, 1.0]
    """
    a = np.asarray(img, dtype=np.float32)
    lo, hi = normalize_range(a, method=method, low=low, high=high)
    return apply_range(a, lo, hi, clip=clip)


def normalize_range(img: np.ndarray, *, method: str = "percentile", low: float = 0.5, high: float = 99.5) -> tuple[float, float]:  # fmt: skip
    """The (lo, hi) intensities that :func:`normalize` maps to 0 and 1 (its fitted statistics)."""
    a = np.asarray(img, dtype=np.float32)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        raise ValueRangeError("image has no finite values to normalize", field="image")
    if method == "percentile":
        lo, hi = np.percentile(finite, [low, high])
    elif method == "std":  # clipped to the data range, so the result spans [0, 1] like the Segmenter's
        m, s = float(finite.mean()), float(finite.std())
        lo, hi = max(m - low * s, float(finite.min())), min(m + high * s, float(finite.max()))
    elif method == "minmax":
        lo, hi = float(finite.min()), float(np.percentile(finite, high)) if high < 100 else float(finite.max())
    else:
        raise ValueRangeError(f"unknown method {method!r}; expected 'percentile', 'std' or 'minmax'", field="method")
    return float(lo), float(hi)


def apply_range(img: np.ndarray, lo: float, hi: float, *, clip: bool = True) -> np.ndarray:
    """Map ``lo`` → 0 and ``hi`` → 1 (float32), optionally clipped to [0, 1]."""
    a = np.asarray(img, dtype=np.float32)
    out = (a - np.float32(lo)) / np.float32(max(hi - lo, 1e-12))
    return np.clip(out, 0, 1) if clip else out


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
    return ndi.gaussian_filter(a, sigma_voxels(sigma_um, voxel_size, per_slice=per_slice), mode="nearest", truncate=3.0)


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
            order = [0, 0, 0]
            order[ax] = 2
            # scale-normalized second derivative along ax (σ² in that axis's voxel units = σ_µm² / vs²·vs²)
            resp -= np.float32(sig[ax] ** 2) * ndi.gaussian_filter(a, sig, order=order, mode="nearest", truncate=3.0)
        np.maximum(out, resp, out=out)
    return out


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
    active = [ax for ax in range(3) if sig[ax] > 0]

    def second(i: int, j: int) -> np.ndarray:
        order = [0, 0, 0]
        order[i] += 1
        order[j] += 1
        out = ndi.gaussian_filter(a, sig, order=order, mode="nearest", truncate=3.0)
        out *= np.float32(sig[i] * sig[j])
        return out

    if len(active) < 2:
        z = np.zeros(a.shape, np.float32)
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
        return np.zeros(a.shape, np.float32), small, large
    a11, a22, a33 = second(0, 0), second(1, 1), second(2, 2)
    a12, a13, a23 = second(0, 1), second(0, 2), second(1, 2)
    # closed-form eigenvalues of a real symmetric 3×3 matrix (trigonometric method)
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


_GLOBAL = ("otsu", "triangle", "li", "yen", "absolute")


def _global_threshold(values: np.ndarray, method: str) -> float:
    from skimage import filters

    if values.size == 0:
        raise ValueRangeError("image is empty; nothing to threshold", field="image")
    if np.all(values == values.flat[0]):
        return float(values.flat[0])
    fn: dict[str, Callable[[np.ndarray], float]] = {
        "otsu": filters.threshold_otsu,
        "triangle": filters.threshold_triangle,
        "li": filters.threshold_li,
        "yen": filters.threshold_yen,
    }
    return float(fn[method](values))


def threshold(img: np.ndarray, *, method: str = "otsu", value: float | None = None, factor: float = 1.0) -> np.ndarray:
    """Global threshold: ``method`` (otsu, triangle, li, yen) × ``factor``, or ``method="absolute"`` with ``value``.

    Parameters
    ----------
    img : (Z, Y, X) or (Y, X) array
    method : {"otsu", "triangle", "li", "yen", "absolute"}
    value : float, optional
        The cut for ``method="absolute"``.
    factor : float
        Multiplies a fitted threshold (lower it to keep dim objects).

    Returns
    -------
    (Z, Y, X) bool array, True above the threshold.

    Examples
    --------
    >>> import numpy as np
    >>> threshold(np.array([[0.1, 0.2, 0.9, 1.0]]), method="absolute", value=0.5).tolist()
    [[[False, False, True, True]]]
    """
    a = _as_3d(img)
    return a > threshold_value(a, method=method, value=value, factor=factor)


def threshold_value(img: np.ndarray, *, method: str = "otsu", value: float | None = None, factor: float = 1.0) -> float:
    """The intensity :func:`threshold` cuts at (its fitted statistic)."""
    if method not in _GLOBAL:
        raise ValueRangeError(f"unknown method {method!r}; expected one of {list(_GLOBAL)}", field="method")
    if method == "absolute":
        if value is None:
            raise ValueRangeError("method 'absolute' needs a value", field="value")
        return float(value)
    a = np.asarray(img)
    return _global_threshold(a[np.isfinite(a)], method) * factor


def masked_object_threshold(
    img: np.ndarray,
    *,
    global_method: str = "triangle",
    global_factor: float = 1.0,
    local_factor: float = 1.0,
    min_object_um3: float = 0.0,
    voxel_size: VoxelSize | Sequence[float],
) -> np.ndarray:
    """Masked-object (MO) thresholding: a low global threshold finds objects, then Otsu inside each object.

    Handles structures whose brightness varies from cell to cell: each object is thresholded against its own
    intensity distribution.

    Parameters
    ----------
    img : (Z, Y, X) or (Y, X) array
    global_method : {"otsu", "triangle", "li", "yen"}
        The low, global threshold that outlines objects.
    global_factor : float
        Multiplies the global threshold.
    local_factor : float
        Multiplies each object's Otsu threshold.
    min_object_um3 : float
        Objects of the global mask smaller than this (µm³) are dropped before the local step.
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.

    Returns
    -------
    (Z, Y, X) bool array.
    """
    a = _as_3d(img).astype(np.float32, copy=False)
    low = threshold(a, method=global_method, factor=global_factor)
    if min_object_um3 > 0:
        low = size_filter(low, min_volume_um3=min_object_um3, voxel_size=voxel_size)
    labels, _n = ndi.label(low)
    out = np.zeros(a.shape, bool)
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        obj = labels[sl] == i
        vals = a[sl][obj]
        t = _global_threshold(vals, "otsu") * local_factor if vals.size > 1 else -np.inf
        out[sl] |= obj & (a[sl] > t)
    return out


def seeded_watershed(
    landscape: np.ndarray,
    *,
    seeds: np.ndarray,
    mask: np.ndarray | None = None,
    compactness: float = 0.0,
    max_distance_um: float | None = None,
    voxel_size: VoxelSize | Sequence[float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Watershed from labelled ``seeds`` on ``landscape`` (flooded from low to high), restricted to ``mask``.

    Output ids are the seed ids, so region i grows from seed i (e.g. cell i from nucleus i).

    Parameters
    ----------
    landscape : (Z, Y, X) or (Y, X) array
        Flooded from low to high: e.g. a membrane image (walls are bright) or a negated distance map.
    seeds : integer array of the same shape
        Labelled seeds; 0 is unseeded.
    mask : bool array, optional
        Regions never grow outside it.
    compactness : float
        Compact watershed (0: classic).
    max_distance_um : float, optional
        Regions stop this far (µm) from every seed (cells have a maximum size).
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.

    Returns
    -------
    (Z, Y, X) int32 labels with the seed ids.

    Examples
    --------
    >>> import numpy as np
    >>> land = np.zeros((1, 1, 7), np.float32); land[0, 0, 3] = 1
    >>> seeds = np.zeros((1, 1, 7), np.int32); seeds[0, 0, 0] = 4; seeds[0, 0, 6] = 9
    >>> seeded_watershed(land, seeds=seeds)[0, 0].tolist()
    [4, 4, 4, 4, 9, 9, 9]
    """
    from skimage.segmentation import watershed

    land = _as_3d(landscape)
    sd = _as_3d(seeds, "seeds")
    if sd.shape != land.shape or (mask is not None and _as_3d(mask, "mask").shape != land.shape):
        raise ValueRangeError(f"seeds/mask shape must match the image {land.shape}", field="seeds")
    if not np.issubdtype(sd.dtype, np.integer):
        raise ValueRangeError(f"seeds must be integer labels, got {sd.dtype}", field="seeds")
    m = None if mask is None else _as_3d(mask, "mask").astype(bool)
    if max_distance_um is not None:
        near = ndi.distance_transform_edt(sd == 0, sampling=VoxelSize.of(voxel_size).as_tuple()) <= max_distance_um
        m = near if m is None else (m & near)
    return watershed(land, markers=sd, mask=m, compactness=compactness).astype(np.int32)


def fill_holes(
    mask: np.ndarray,
    *,
    max_hole_um: float | None = None,
    voxel_size: VoxelSize | Sequence[float],
    per_slice: bool = False,
    close_lateral_border: bool = False,
) -> np.ndarray:
    """Fill enclosed holes: per z-plane (``per_slice``) or in 3D.

    Parameters
    ----------
    mask : (Z, Y, X) or (Y, X) bool array
    max_hole_um : float, optional
        Largest hole filled: an area in µm² per plane, a volume in µm³ in 3D; None fills every hole.
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.
    per_slice : bool
        Fill each z-plane on its own (a single plane always is).
    close_lateral_border : bool
        Treat the y/x edges of the field as walls, so objects cut by the field edge (cells at the border of a
        colony image) are filled too; the top and bottom of the stack stay open.

    Returns
    -------
    (Z, Y, X) bool array.

    Examples
    --------
    >>> import numpy as np
    >>> ring = np.ones((1, 5, 5), bool); ring[0, 2, 2] = False
    >>> bool(fill_holes(ring, voxel_size=(1, 1, 1))[0, 2, 2])
    True
    """
    m = _as_3d(mask, "mask").astype(bool)
    if close_lateral_border:
        padded = np.pad(m, ((0, 0), (1, 1), (1, 1)), constant_values=True)
        filled = fill_holes(padded, max_hole_um=max_hole_um, voxel_size=voxel_size, per_slice=per_slice)
        return filled[:, 1:-1, 1:-1] | m
    vs = VoxelSize.of(voxel_size).as_tuple()
    planes = [(z, m[z]) for z in range(m.shape[0])] if per_slice or m.shape[0] == 1 else [(None, m)]
    out = m.copy()
    unit = vs[1] * vs[2] if per_slice or m.shape[0] == 1 else vs[0] * vs[1] * vs[2]
    for z, plane in planes:
        filled = ndi.binary_fill_holes(plane)
        holes = filled & ~plane
        if max_hole_um is not None and holes.any():
            lab, _n = ndi.label(holes)
            sizes = np.bincount(lab.ravel())[1:] * unit
            small = np.concatenate([[False], sizes <= max_hole_um])
            holes = small[lab]
        if z is None:
            out |= holes
        else:
            out[z] |= holes
    return out


def _first_run(mask: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (y, x) column: start, end (exclusive) and brightest plane of the lowest run of ``mask`` along z."""
    nz = mask.shape[0]
    z = np.arange(nz)[:, None, None]
    start = np.argmax(mask, axis=0)
    gap = (z >= start) & ~mask
    end = np.where(gap.any(0), np.argmax(gap, axis=0), nz)
    run = (z >= start) & (z < end)
    peak = np.argmax(np.where(run, values, -np.inf), axis=0)
    return start, end, peak


def basal_run_lengths(mask: np.ndarray) -> np.ndarray:
    """Length (planes) of the lowest run of ``mask`` in every column that has more than one run."""
    m = _as_3d(mask, "mask").astype(bool)
    nz = m.shape[0]
    if nz < 3:
        return np.zeros(0, np.int64)
    zeros = np.zeros(m.shape, np.float32)
    b_start, b_end, _ = _first_run(m, zeros)
    t_start, _, _ = _first_run(m[::-1], zeros)
    several = m.any(0) & (b_end < nz - t_start)
    return (b_end - b_start)[several].astype(np.int64)


def fill_between_membranes(
    mask: np.ndarray,
    intensity: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    max_gap_um: float = 3.0,
    basal_len: float | None = None,
) -> np.ndarray:
    """The volume enclosed by cell membranes in a monolayer, filled column by column.

    ``mask`` is the thresholded membrane signal, ``intensity`` the (lightly smoothed) membrane image. In each
    (y, x) column the lowest run of ``mask`` along z is the basal membrane and the highest run the apical one;
    the column is filled from the brightest plane of the first to the brightest plane of the last, so the
    blur of the optics below the glass and above the cells is not counted as cell. A single run much longer
    than the basal membrane (median over columns) is a lateral wall and is filled whole. Where the apical
    membrane is missing (dim or broken), the height of the nearest column that has one, within
    ``max_gap_um``, is used. Columns without membrane stay empty (outside the colony). A single plane
    (2D image) is returned unchanged: fill it with :func:`fill_holes`.

    Parameters
    ----------
    mask : (Z, Y, X) bool array
        Membrane foreground.
    intensity : (Z, Y, X) array
        Membrane intensities of the same shape, used to place each membrane at its brightest plane.
    voxel_size : VoxelSize or (z, y, x) µm
    max_gap_um : float
        Largest lateral distance (µm) across which a missing apical membrane is bridged.
    basal_len : float, optional
        The median basal-membrane run (planes) of the field (:func:`basal_run_lengths`); fitted on ``mask``
        when not given.

    Returns
    -------
    (Z, Y, X) bool array
    """
    m = _as_3d(mask, "mask").astype(bool)
    a = _as_3d(intensity, "intensity").astype(np.float32, copy=False)
    if a.shape != m.shape:
        raise ValueRangeError(f"intensity has shape {a.shape}, the mask {m.shape}", field="intensity")
    if max_gap_um < 0:
        raise ValueRangeError(f"max_gap_um must be >= 0, got {max_gap_um}", field="max_gap_um")
    nz = m.shape[0]
    if nz < 3:
        return m.copy()
    vs = VoxelSize.of(voxel_size).as_tuple()
    has = m.any(0)
    b_start, b_end, b_peak = _first_run(m, a)
    t_start, _t_end, t_peak = _first_run(m[::-1], a[::-1])
    top_end, top_peak = nz - t_start, nz - 1 - t_peak
    single = has & (b_end >= top_end)  # the lowest run is also the highest
    several = has & ~single
    run_len = b_end - b_start
    if basal_len is None:
        basal_len = float(np.median(run_len[several])) if several.any() else np.inf
    wall = single & (run_len > 1.5 * basal_len)
    low = np.where(wall, b_start, b_peak)
    high = np.where(several, top_peak, np.where(wall, top_end - 1, -1))
    known = several | wall
    missing = has & ~known
    if missing.any() and known.any():
        dist, (iy, ix) = ndi.distance_transform_edt(~known, sampling=vs[1:], return_indices=True)
        bridged = missing & (dist <= max_gap_um)
        high = np.where(bridged, high[iy, ix], high)
        known |= bridged
    z = np.arange(nz)[:, None, None]
    return (z >= low) & (z <= high) & known


def size_filter(
    mask: np.ndarray, *, min_volume_um3: float, voxel_size: VoxelSize | Sequence[float], per_slice: bool = False
) -> np.ndarray:
    """Remove objects smaller than ``min_volume_um3`` (µm³; µm² per plane with ``per_slice``).

    Parameters
    ----------
    mask : (Z, Y, X) or (Y, X) bool mask or integer labels
        A label image keeps its ids (objects are judged by id, and a label image with one object stays a
        label image); a mask is judged by connected components (face connectivity).
    min_volume_um3 : float
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.
    per_slice : bool
        Judge the objects of each z-plane by their area.

    Returns
    -------
    Array of the input's kind: bool for a mask, the same integer dtype for labels.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((1, 4, 8), bool); m[0, :2, :2] = True; m[0, :, 4:] = True
    >>> int(size_filter(m, min_volume_um3=5, voxel_size=(1, 1, 1)).sum())
    16
    """
    m = _as_3d(mask, "mask")
    vs = VoxelSize.of(voxel_size).as_tuple()
    if np.issubdtype(m.dtype, np.integer) and m.dtype != np.bool_ and m.max() > 1:
        sizes = np.bincount(m.ravel())
        keep = sizes * (vs[0] * vs[1] * vs[2]) >= min_volume_um3
        keep[0] = False
        return np.where(keep[m], m, 0).astype(m.dtype)
    b = m.astype(bool)
    if per_slice or b.shape[0] == 1:
        unit = vs[1] * vs[2]
        out = np.zeros_like(b)
        for z in range(b.shape[0]):
            lab, _ = ndi.label(b[z])
            keep = np.bincount(lab.ravel()) * unit >= min_volume_um3
            keep[0] = False
            out[z] = keep[lab]
    else:
        lab, _ = ndi.label(b)
        keep = np.bincount(lab.ravel()) * (vs[0] * vs[1] * vs[2]) >= min_volume_um3
        keep[0] = False
        out = keep[lab]
    if np.issubdtype(m.dtype, np.integer) and m.dtype != np.bool_:  # labels with a single id stay labels
        return np.where(out, m, 0).astype(m.dtype)
    return out


def topology_preserving_thinning(
    mask: np.ndarray, *, min_thickness_um: float, thin_um: float, voxel_size: VoxelSize | Sequence[float]
) -> np.ndarray:
    """Thin a mask by ``thin_um`` without breaking it.

    Voxels within ``min_thickness_um`` of each plane's skeleton are protected, so thin connections and the
    topology survive while thick parts lose their rim (the Segmenter's Golgi post-processing).

    Parameters
    ----------
    mask : (Z, Y, X) or (Y, X) bool array
    min_thickness_um : float
        Half-width (µm) around the skeleton that is never removed.
    thin_um : float
        How much (µm) the rim of thick parts is eroded.
    voxel_size : VoxelSize or (z, y, x) sequence of float
        Voxel edge lengths in µm.

    Returns
    -------
    (Z, Y, X) bool array, a subset of ``mask``.
    """
    from skimage.morphology import skeletonize

    m = _as_3d(mask, "mask").astype(bool)
    vs = VoxelSize.of(voxel_size).as_tuple()
    protected = np.zeros_like(m)
    for z in range(m.shape[0]):
        if m[z].any():
            skel = skeletonize(m[z])
            dist = ndi.distance_transform_edt(~skel, sampling=vs[1:])
            protected[z] = dist <= min_thickness_um
    r = [max(0, round(thin_um / v)) for v in vs]
    if m.shape[0] == 1:
        r[0] = 0
    zz, yy, xx = np.ogrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1, -r[2] : r[2] + 1]
    ball = (zz * vs[0]) ** 2 + (yy * vs[1]) ** 2 + (xx * vs[2]) ** 2 <= thin_um**2 + 1e-9
    eroded = ndi.binary_erosion(m, structure=ball, border_value=1)
    rim = m & ~eroded
    return m & ~(rim & ~protected)
