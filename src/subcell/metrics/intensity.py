"""Intensity-prediction metrics: Pearson r (global, masked, per object), the noise ceiling, SSIM, PSNR, NRMSE.

The noise ceiling follows Ounkomol et al. 2018: if the target is ``truth + noise`` with noise independent of
everything, no prediction can correlate with the target better than
``C_max = sqrt(1 - var(noise) / var(target))``. The noise variance comes either from a no-label control image
(its variance is the noise) or from two independent acquisitions of the same field (``var(a - b) / 2``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.metrics import pieces
from subcell.metrics.moments import Moments, ObjectMoments

__all__ = [
    "ceiling_from_variances",
    "noise_ceiling",
    "noise_variance_from_control",
    "noise_variance_from_pair",
    "nrmse",
    "pearson",
    "pearson_per_object",
    "psnr",
    "psnr_from",
    "squared_error_sum",
    "ssim",
]


def _check(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> None:
    if pred.shape != target.shape:
        raise ValueRangeError(f"prediction shape {pred.shape} differs from target shape {target.shape}", field="shape")
    if mask is not None and mask.shape != pred.shape:
        raise ValueRangeError(f"mask shape {mask.shape} differs from image shape {pred.shape}", field="mask")


def pearson(pred: np.ndarray, target: np.ndarray, *, mask: np.ndarray | None = None) -> float:
    """Pearson correlation of two arrays (over ``mask`` when given); NaN when either is constant."""
    _check(pred, target, mask)
    a, b = np.asarray(pred), np.asarray(target)
    if mask is not None:
        a, b = a[mask.astype(bool)], b[mask.astype(bool)]
    m = Moments()
    m.add(a, b)  # piece by piece: no float64 or centred copy of the volume
    return m.pearson


def pearson_per_object(pred: np.ndarray, target: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Pearson r inside each labelled object (label id → r); background (0) is skipped."""
    _check(pred, target, labels)
    m = ObjectMoments()
    m.add(labels, pred, target)
    return m.pearson()


def noise_variance_from_control(control: np.ndarray) -> float:
    """Noise variance estimated from a no-label control image (all of its variance is noise)."""
    m = Moments()
    m.add(control)
    return m.var_a


def noise_variance_from_pair(a: np.ndarray, b: np.ndarray) -> float:
    """Noise variance from two independent noisy acquisitions of the same signal: ``var(a - b) / 2``."""
    _check(a, b)
    m = Moments()
    for sl in _pieces(np.asarray(a).size):
        m.add(np.asarray(a).reshape(-1)[sl].astype(np.float64) - np.asarray(b).reshape(-1)[sl])
    return m.var_a / 2


def noise_ceiling(target: np.ndarray, noise_variance: float, *, mask: np.ndarray | None = None) -> float:
    """``C_max = sqrt(1 - noise_variance / var(target))``: the best Pearson r any prediction can reach."""
    t = np.asarray(target)
    m = Moments()
    m.add(t[mask.astype(bool)] if mask is not None else t)
    return ceiling_from_variances(noise_variance, m.var_a)


def ceiling_from_variances(noise_variance: float, target_variance: float) -> float:
    """``sqrt(1 - noise_variance / target_variance)``, NaN when the target is constant."""
    if not target_variance > 0:
        return float("nan")
    return math.sqrt(max(0.0, 1.0 - noise_variance / target_variance))


def _pieces(size: int) -> list[slice]:
    step = pieces.PIECE_VOXELS
    return [slice(i, i + step) for i in range(0, size, step)]


def squared_error_sum(pred: np.ndarray, target: np.ndarray) -> float:
    """Sum of squared differences in float64, piece by piece."""
    fp, ft = np.asarray(pred).reshape(-1), np.asarray(target).reshape(-1)
    total = 0.0
    for sl in _pieces(fp.size):
        d = fp[sl].astype(np.float64) - ft[sl]
        total += float(np.dot(d, d))
    return total


def _range(target: np.ndarray) -> float:
    r = float(np.max(target)) - float(np.min(target))
    return r if r > 0 else 1.0


def psnr_from(mse: float, data_range: float) -> float:
    """PSNR in dB of a mean squared error over a data range (infinite for a perfect match)."""
    return float("inf") if mse == 0 else 10 * math.log10(data_range**2 / mse)


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, with the target's range as the peak."""
    _check(pred, target)
    return psnr_from(squared_error_sum(pred, target) / max(np.asarray(target).size, 1), _range(target))


def nrmse(pred: np.ndarray, target: np.ndarray) -> float:
    """Root-mean-square error divided by the target's standard deviation."""
    _check(pred, target)
    m = Moments()
    m.add(target)
    sd = math.sqrt(m.var_a) if m.n else 0.0
    rmse = math.sqrt(squared_error_sum(pred, target) / max(m.n, 1))
    return rmse / sd if sd > 0 else float("nan")


def ssim(pred: np.ndarray, target: np.ndarray, **kwargs: Any) -> float:
    """Structural similarity (scikit-image, Gaussian-weighted), with the target's range as data range.

    2D images (one z-plane) are compared in 2D; volumes in 3D.
    """
    _check(pred, target)
    from skimage.metrics import structural_similarity

    a = np.asarray(pred).squeeze()  # cast to float64 a block at a time (large volumes) or here (small ones)
    b = np.asarray(target).squeeze()
    if b.ndim == 3 and b.shape[0] < 11:  # the Gaussian window (sigma 1.5) spans 11 voxels
        # a thin stack: compare plane by plane
        return float(np.mean([ssim(pa, pb, **kwargs) for pa, pb in zip(a, b, strict=True)]))
    opts = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": _range(b)}
    opts.update(kwargs)
    if a.size > pieces.PIECE_VOXELS:
        return _ssim_in_blocks(a, b, opts)
    return float(structural_similarity(a.astype(np.float64), b.astype(np.float64), **opts))


def _ssim_in_blocks(a: np.ndarray, b: np.ndarray, opts: dict[str, Any]) -> float:
    """scikit-image's SSIM of a large volume, block by block: the same value (to rounding of the final mean).

    Its SSIM map at a voxel depends only on the images within the filter's reach, and its mean is over the voxels
    at least ``pad`` (half the window) from every edge. So the scored region is cut into blocks of at most
    ``PIECE_VOXELS`` (:mod:`subcell.metrics.pieces`), each computed with ``pad`` voxels of context on every side and its map's interior
    summed: ~15 float64 arrays of one block at a time instead of the volume (for 64×1024×1024, 9 GB → ~0.6 GB).
    """
    import itertools

    from skimage.metrics import structural_similarity

    gaussian = bool(opts.get("gaussian_weights"))
    reach = int(3.5 * float(opts.get("sigma", 1.5)) + 0.5) if gaussian else None  # scikit-image's truncate 3.5
    win = opts.get("win_size") or (2 * reach + 1 if reach is not None else 7)
    pad = (int(win) - 1) // 2
    inner = [n - 2 * pad for n in a.shape]
    if (reach or 0) > pad or min(inner) < 1:  # the filter reaches beyond the context, or nothing is scored
        return float(structural_similarity(a.astype(np.float64), b.astype(np.float64), **opts))
    edge = list(inner)
    while int(np.prod(edge)) > pieces.PIECE_VOXELS:
        k = int(np.argmax(edge))
        edge[k] = (edge[k] + 1) // 2
    total, count = 0.0, 0
    for start in itertools.product(*(range(0, n, e) for n, e in zip(inner, edge, strict=True))):
        ext = tuple(slice(s0, min(s0 + e, n) + 2 * pad) for s0, e, n in zip(start, edge, inner, strict=True))
        _, smap = structural_similarity(a[ext].astype(np.float64), b[ext].astype(np.float64), full=True, **opts)
        scored = smap[tuple(slice(pad, -pad) if pad else slice(None) for _ in range(smap.ndim))]
        total += float(scored.sum(dtype=np.float64))
        count += scored.size
    return total / count
