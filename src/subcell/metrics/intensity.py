"""Intensity-prediction metrics: Pearson r (global, masked, per object), the noise ceiling, SSIM, PSNR, NRMSE.

The noise ceiling follows Ounkomol et al. 2018: if the target is ``truth + noise`` with noise independent of
everything, no prediction can correlate with the target better than
``C_max = sqrt(1 - var(noise) / var(target))``. The noise variance comes either from a no-label control image
(its variance is the noise) or from two independent acquisitions of the same field (``var(a - b) / 2``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
    "nrmse_from",
    "pearson",
    "pearson_per_object",
    "psnr",
    "psnr_from",
    "squared_error_sum",
    "ssim",
    "ssim_of",
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
    return nrmse_from(squared_error_sum(pred, target) / max(m.n, 1), math.sqrt(m.var_a) if m.n else 0.0)


def nrmse_from(mse: float, target_sd: float) -> float:
    """NRMSE of a mean squared error and the target's standard deviation (NaN for a constant target)."""
    return math.sqrt(mse) / target_sd if target_sd > 0 else float("nan")


def ssim(pred: np.ndarray, target: np.ndarray, **kwargs: Any) -> float:
    """Structural similarity (scikit-image, Gaussian-weighted), with the target's range as data range.

    2D images (one z-plane) are compared in 2D; volumes in 3D; stacks thinner than the window plane by plane.
    """
    _check(pred, target)
    a, b = np.asarray(pred), np.asarray(target)
    return ssim_of(lambda ext: (a[ext], b[ext]), a.shape, **kwargs)


Reader = Callable[[tuple[slice, ...]], tuple[np.ndarray, np.ndarray]]


def ssim_of(read: Reader, shape: Sequence[int], *, data_range: float | None = None, **kwargs: Any) -> float:
    """:func:`ssim` of two arrays of ``shape`` that ``read(slices)`` returns a block of (both at once), read block
    by block: arrays on disk, or values made on the fly (z-scores), are never held whole.

    Axes of length 1 are dropped (a single plane is 2D). A stack thinner than the Gaussian window (11 planes) is
    compared plane by plane, each with its own range; otherwise ``data_range`` is the target's range (read whole
    to find it when not given). Volumes of more than ``PIECE_VOXELS`` go block by block (:func:`_ssim_in_blocks`).
    """
    full = tuple(int(n) for n in shape)
    keep = [ax for ax, n in enumerate(full) if n > 1]
    dims = tuple(full[ax] for ax in keep)

    def squeezed(ext: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
        where = [slice(0, 1)] * len(full)
        for ax, sl in zip(keep, ext, strict=True):
            where[ax] = sl
        a, b = read(tuple(where))
        sizes = tuple(len(range(*sl.indices(n))) for sl, n in zip(ext, dims, strict=True))
        return np.asarray(a).reshape(sizes), np.asarray(b).reshape(sizes)

    if len(dims) == 3 and dims[0] < 11:  # a thin stack (the Gaussian window, sigma 1.5, spans 11 voxels)
        return float(np.mean([ssim(*squeezed((slice(z, z + 1), slice(None), slice(None))), **kwargs)
                              for z in range(dims[0])]))  # fmt: skip
    whole = tuple(slice(0, n) for n in dims)
    if data_range is None or math.prod(dims) <= pieces.PIECE_VOXELS:
        a, b = squeezed(whole)
        if data_range is None:
            data_range = _range(b)
        read_block = lambda ext: (a[ext], b[ext])  # noqa: E731
    else:
        read_block = squeezed
    opts = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": data_range}
    opts.update(kwargs)
    return _ssim_in_blocks(read_block, dims, opts)


def _ssim_in_blocks(read: Reader, shape: tuple[int, ...], opts: dict[str, Any]) -> float:
    """scikit-image's SSIM of a large volume, block by block: the same value (to rounding of the final mean).

    Its SSIM map at a voxel depends only on the images within the filter's reach, and its mean is over the voxels
    at least ``pad`` (half the window) from every edge. So the scored region is cut into blocks of at most
    ``PIECE_VOXELS`` (:mod:`subcell.metrics.pieces`), each computed with ``pad`` voxels of context on every side and its map's interior
    summed: ~15 float64 arrays of one block at a time instead of the volume (for 64×1024×1024, 9 GB → ~0.6 GB).
    A volume of at most ``PIECE_VOXELS`` is one block.
    """
    import itertools

    from skimage.metrics import structural_similarity

    def f64(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return pair[0].astype(np.float64, copy=False), pair[1].astype(np.float64, copy=False)

    gaussian = bool(opts.get("gaussian_weights"))
    reach = int(3.5 * float(opts.get("sigma", 1.5)) + 0.5) if gaussian else None  # scikit-image's truncate 3.5
    win = opts.get("win_size") or (2 * reach + 1 if reach is not None else 7)
    pad = (int(win) - 1) // 2
    inner = [n - 2 * pad for n in shape]
    if math.prod(shape) <= pieces.PIECE_VOXELS or (reach or 0) > pad or min(inner) < 1:
        # one block, or the filter reaches beyond the context, or nothing is scored: scikit-image on the whole
        return float(structural_similarity(*f64(read(tuple(slice(0, n) for n in shape))), **opts))
    edge = list(inner)
    while int(np.prod(edge)) > pieces.PIECE_VOXELS:
        k = int(np.argmax(edge))
        edge[k] = (edge[k] + 1) // 2
    total, count = 0.0, 0
    for start in itertools.product(*(range(0, n, e) for n, e in zip(inner, edge, strict=True))):
        ext = tuple(slice(s0, min(s0 + e, n) + 2 * pad) for s0, e, n in zip(start, edge, inner, strict=True))
        _, smap = structural_similarity(*f64(read(ext)), full=True, **opts)
        scored = smap[tuple(slice(pad, -pad) if pad else slice(None) for _ in range(smap.ndim))]
        total += float(scored.sum(dtype=np.float64))
        count += scored.size
    return total / count
