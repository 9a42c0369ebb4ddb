"""Intensity scaling and thresholds: normalization ranges, global and masked-object thresholds."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize
from subcell.segment.filters._common import _as_3d
from subcell.segment.filters.morphology import size_filter

__all__ = ["apply_range", "masked_object_threshold", "normalize", "normalize_range", "threshold", "threshold_value"]


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


_GLOBAL = ("otsu", "triangle", "li", "yen", "noise", "absolute")


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
    """Global threshold: ``method`` (otsu, triangle, li, yen) × ``factor``; ``method="noise"``: ``factor`` robust
    standard deviations (1.4826 × the median absolute deviation) above the median, for a filter's response that is
    mostly background (the same cut in units of its noise at any voxel size, where an absolute cut on a LoG or
    Hessian response is not: its noise grows as the scale shrinks towards a voxel); or ``method="absolute"`` with
    ``value``.

    Parameters
    ----------
    img : (Z, Y, X) or (Y, X) array
    method : {"otsu", "triangle", "li", "yen", "noise", "absolute"}
    value : float, optional
        The cut for ``method="absolute"``.
    factor : float
        Multiplies a fitted threshold (lower it to keep dim objects); for ``noise``, the number of SDs.

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
    if method == "noise":  # the block engine's fit on the one chunk: one rule for both
        from subcell.segment.fits import NoiseFit, fit_chunks, noise_cut

        return noise_cut(fit_chunks(NoiseFit(), lambda: [a.ravel()]), factor)
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
