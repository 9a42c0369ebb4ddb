"""Spherical-harmonic parameterization of a closed surface: r(θ, φ) = Σ c_lm Y_lm(θ, φ) about the centroid.

The surface is the smoothed marching-cubes mesh of a binary mask (µm); each vertex gives a radius in its
direction and the real spherical-harmonic coefficients up to degree ``lmax`` are fitted by (lightly
regularized) least squares. Exact for star-shaped objects up to ``lmax``; for others the fit averages the
radii a ray meets and the reconstruction error says how much shape was lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from subcell.errors import ValueRangeError
from subcell.metrics.shape import surface_mesh

__all__ = ["SHFit", "coefficient_names", "fit_harmonics", "radius_at", "rasterize", "real_sph_harm"]


def real_sph_harm(lmax: int, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Orthonormal real spherical harmonics, (N, (lmax+1)²), columns ordered l = 0..lmax, m = −l..l.

    ``theta``: polar angle from +z; ``phi``: azimuth in the y/x plane from +x towards +y.
    """
    from scipy.special import sph_harm_y

    theta = np.asarray(theta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    cols = []
    for l in range(lmax + 1):  # noqa: E741 - the conventional degree symbol
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), theta, phi)
            if m > 0:
                cols.append(np.sqrt(2) * y.real)
            elif m < 0:
                cols.append(np.sqrt(2) * y.imag)
            else:
                cols.append(y.real)
    return np.stack(cols, axis=-1)


def coefficient_names(lmax: int, prefix: str = "") -> list[str]:
    """Column names ``{prefix}sh_l{l}_m{m}`` matching :func:`real_sph_harm`'s order."""
    return [f"{prefix}sh_l{l}_m{m}" for l in range(lmax + 1) for m in range(-l, l + 1)]  # noqa: E741


def _angles(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z, y, x = points[:, 0], points[:, 1], points[:, 2]
    r = np.sqrt(x * x + y * y + z * z)
    theta = np.arccos(np.clip(z / np.maximum(r, 1e-12), -1, 1))
    phi = np.arctan2(y, x)
    return r, theta, phi


@dataclass(frozen=True)
class SHFit:
    """Coefficients (in µm), the centre they are about (µm, mask frame), and the fit's error."""

    lmax: int
    coefficients: np.ndarray
    center_um: np.ndarray
    mean_error_um: float
    max_error_um: float


def fit_harmonics(
    mask: np.ndarray, spacing: Sequence[float] | np.ndarray, *, lmax: int = 8, center_um: Sequence[float] | np.ndarray | None = None,
    regularization: float = 1e-6,
) -> SHFit:  # fmt: skip
    """Fit r(θ, φ) of the mask's surface with real spherical harmonics up to degree ``lmax``.

    Parameters
    ----------
    mask : (Z, Y, X) bool
    spacing : (z, y, x) µm
    center_um : (3,), optional
        Centre of the parameterization (default: the mask's centroid), in µm of the mask's index frame.
    """
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        raise ValueRangeError("cannot fit spherical harmonics to an empty mask", field="mask")
    vs = np.asarray(spacing, dtype=np.float64)
    center = np.asarray(center_um, dtype=np.float64) if center_um is not None else np.argwhere(m).mean(axis=0) * vs
    verts, _ = surface_mesh(m, vs)
    r, theta, phi = _angles(verts - center)
    basis = real_sph_harm(lmax, theta, phi)
    # vertices are dense where the surface is far from the centre: weight each by 1/r² (solid-angle measure)
    w = 1.0 / np.maximum(r, 1e-6) ** 2
    a = basis * w[:, None]
    gram = basis.T @ a + regularization * np.trace(basis.T @ a) / basis.shape[1] * np.eye(basis.shape[1])
    coef = np.linalg.solve(gram, a.T @ r)
    err = np.abs(basis @ coef - r)
    return SHFit(lmax, coef, center, float(err.mean()), float(err.max()))


def radius_at(coefficients: np.ndarray, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """r(θ, φ) of a coefficient vector (any shape of angles)."""
    lmax = round(np.sqrt(len(coefficients))) - 1
    shape = np.shape(theta)
    basis = real_sph_harm(lmax, np.ravel(theta), np.ravel(phi))
    return (basis @ coefficients).reshape(shape)


def rasterize(
    coefficients: np.ndarray,
    shape: Sequence[int],
    spacing: Sequence[float] | np.ndarray,
    center_um: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Binary volume of the surface r(θ, φ) about ``center_um`` (inside where |p − c| ≤ r(θ, φ))."""
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij")
    p = np.stack([g.ravel() for g in grids], axis=-1) - np.asarray(center_um)
    r, theta, phi = _angles(p)
    return (r <= radius_at(coefficients, theta, phi)).reshape(tuple(shape))
