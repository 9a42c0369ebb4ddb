"""Intensity normalization: z-score and percentile scaling, NaN-aware, optionally restricted to a mask."""

from __future__ import annotations

from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import materialize

__all__ = ["percentile_normalize", "zscore"]


def _values(data: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    arr = np.asarray(data)
    if mask is not None:
        m = materialize(mask).astype(bool, copy=False)
        if m.shape != arr.shape:
            raise ValueRangeError(f"mask shape {m.shape} does not match data shape {arr.shape}", field="mask")
        arr = arr[m]
    vals = arr.astype(np.float64, copy=False).ravel()
    finite = vals[np.isfinite(vals)]
    if finite.size == 0:
        raise ValueRangeError("no finite values to normalize (empty mask or all NaN)", field="data")
    return finite


def zscore(
    data: np.ndarray, *, mean: float | None = None, std: float | None = None, mask: np.ndarray | None = None
) -> np.ndarray:
    """``(data - mean) / std`` as float32; statistics from finite values (inside ``mask``) unless given.

    Raises
    ------
    ValueRangeError
        No finite values, or zero standard deviation (a constant image has no z-score).
    """
    data = materialize(data)  # a lazy array is computed once, not once per statistic and again below
    if mean is None or std is None:
        vals = _values(data, mask)
        mean = float(vals.mean()) if mean is None else mean
        std = float(vals.std()) if std is None else std
    if not np.isfinite(std) or std <= 0:
        raise ValueRangeError(f"standard deviation is {std}; a constant image cannot be z-scored", field="std")
    return ((np.asarray(data, dtype=np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)


def percentile_normalize(
    data: np.ndarray,
    *,
    low: float = 1.0,
    high: float = 99.8,
    clip: bool = True,
    mask: np.ndarray | None = None,
    eps: float = 1e-12,
) -> np.ndarray:
    """Map the ``low``/``high`` percentiles to 0/1 (float32), clipping outside when ``clip``.

    Examples
    --------
    >>> import numpy as np
    >>> out = percentile_normalize(np.arange(101.0), low=0, high=100)
    >>> float(out[0]), float(out[100])
    (0.0, 1.0)
    """
    if not 0 <= low < high <= 100:
        raise ValueRangeError(f"expected 0 <= low < high <= 100, got low={low}, high={high}", field="percentiles")
    data = materialize(data)
    vals = _values(data, mask)
    lo, hi = (float(v) for v in np.percentile(vals, [low, high]))
    out: Any = (np.asarray(data, dtype=np.float32) - np.float32(lo)) / np.float32(max(hi - lo, eps))
    if clip:
        out = np.clip(out, 0.0, 1.0)
    return np.asarray(out, dtype=np.float32)
