"""Whole-field statistics fitted from summaries that merge over blocks (pure NumPy).

A fit runs in rounds; in each round every chunk of the data (a block's core, or the whole field as one chunk)
gives a small summary, summaries are merged, and the merged total refines the fit. Because a whole-volume run
is the one-chunk case of the same code, a block-wise run fits exactly the same numbers:

- :class:`PercentileFit`: exact order statistics (equal to ``numpy.percentile``, linear method) in three
  rounds: range, a 65,536-bin histogram that locates the ranks, and the values of the bins that hold them;
- :class:`ThresholdFit`: Otsu, Yen and triangle on the 256-bin histogram over the data range that
  scikit-image builds for float images (so the thresholds are scikit-image's), Li on a 4,096-bin histogram;
- :class:`MomentsFit` (mean, std, min, max: Chan's parallel update), :class:`MaxFit`, :class:`IntMedianFit`.

Nothing here is tied to blocks: ``fit_chunks(fit, chunks)`` runs a fit over any re-iterable source of chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError

__all__ = ["IntMedianFit", "MaxFit", "MomentsFit", "PercentileFit", "ThresholdFit", "fit_chunks", "run_fit"]

_EMPTY = "image has no finite values to fit {what} on"


def _finite(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v).ravel()
    return v[np.isfinite(v)] if np.issubdtype(v.dtype, np.floating) else v


class _Fit:
    rounds = 1

    def summary(self, r: int, values: np.ndarray, state: dict[str, Any]) -> Any:
        raise NotImplementedError

    def combine(self, r: int, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def conclude(self, r: int, total: Any, state: dict[str, Any]) -> None:
        raise NotImplementedError


def _range_summary(v: np.ndarray) -> tuple[int, Any, Any]:
    return (int(v.size), v.min() if v.size else None, v.max() if v.size else None)


def _range_combine(a: tuple[int, Any, Any], b: tuple[int, Any, Any]) -> tuple[int, Any, Any]:
    if not a[0]:
        return b
    if not b[0]:
        return a
    return (a[0] + b[0], min(a[1], b[1]), max(a[2], b[2]))


_NB = 65536


class PercentileFit(_Fit):
    """Exact percentiles (``numpy.percentile`` with linear interpolation) of data seen in chunks."""

    rounds = 3

    def __init__(self, percents: Sequence[float], what: str = "percentiles") -> None:
        self.q = [float(p) for p in percents]
        self.what = what

    def summary(self, r: int, v: np.ndarray, st: dict[str, Any]) -> Any:
        if r == 0:
            return _range_summary(v)
        if r == 1:
            return np.histogram(v, bins=_NB, range=st["range"])[0] if v.size else np.zeros(_NB, np.int64)
        out = []
        for lo, hi in st["windows"]:
            below = int(np.count_nonzero(v < lo))
            inside = v[(v >= lo) & (v <= hi)]
            out.append((below, inside))
        return out

    def combine(self, r: int, a: Any, b: Any) -> Any:
        if r == 0:
            return _range_combine(a, b)
        if r == 1:
            return a + b
        return [(x[0] + y[0], np.concatenate([x[1], y[1]])) for x, y in zip(a, b, strict=True)]

    def conclude(self, r: int, total: Any, st: dict[str, Any]) -> None:
        if r == 0:
            n, lo, hi = total
            if not n:
                raise ValueRangeError(_EMPTY.format(what=self.what), field="image")
            st["n"], st["range"], st["dtype"] = n, (lo, hi), np.result_type(lo)
            if lo == hi:  # constant data: every percentile is that value
                st["result"] = [float(lo)] * len(self.q)
            return
        if "result" in st:
            if r == 1:
                st["windows"] = []
            return
        n = st["n"]
        # numpy's virtual index for the linear method: (n·q + (1 − q)) − 1, then floor / gamma
        ranks = []
        for p in self.q:
            q = np.true_divide(p, 100)
            virtual = n * q + (1 - q) - 1
            k = int(np.floor(virtual))
            ranks.append((min(max(k, 0), n - 1), min(max(k + 1, 0), n - 1), float(virtual - np.floor(virtual))))
        if r == 1:
            edges = np.histogram_bin_edges(np.zeros(1, st["dtype"]), bins=_NB, range=st["range"])
            cum = np.cumsum(total)
            windows = []
            for k0, k1, _g in ranks:
                b0, b1 = (int(np.searchsorted(cum, k, side="right")) for k in (k0, k1))
                windows.append((edges[b0], edges[min(b1, _NB - 1) + 1]))
            st["windows"], st["ranks"] = windows, ranks
            return
        result = []
        for (below, unsorted), (k0, k1, g) in zip(total, st["ranks"], strict=True):
            vals = np.sort(unsorted)
            a, b = vals[k0 - below], vals[k1 - below]
            t = np.float64(g)
            diff = np.subtract(b, a)  # in the data's dtype, then promoted, as numpy's _lerp does
            result.append(float(np.subtract(b, diff * (1 - t)) if g >= 0.5 else np.add(a, diff * t)))
        st["result"] = result


def _otsu(counts: np.ndarray, centers: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(hist=(counts, centers)))


def _yen(counts: np.ndarray, centers: np.ndarray) -> float:
    from skimage.filters import threshold_yen

    return float(threshold_yen(hist=(counts, centers)))


def _triangle(counts: np.ndarray, centers: np.ndarray) -> float:
    """Zack's triangle method on a histogram.

    Written out because scikit-image's ``threshold_triangle`` takes only an image, not a histogram; the
    steps follow it (peak, the longer tail, the bin farthest from the peak–tail line).
    """
    hist = counts.astype(np.float64)
    nb = len(hist)
    peak = int(np.argmax(hist))
    low, high = np.flatnonzero(hist)[[0, -1]]
    flip = peak - low < high - peak
    if flip:
        hist, low, peak = hist[::-1], nb - high - 1, nb - peak - 1
    width = peak - low
    if width <= 0:
        return float(centers[peak if not flip else nb - peak - 1])
    x = np.arange(width)
    y = hist[x + low]
    norm = math.hypot(hist[peak], width)
    level = int(np.argmax(hist[peak] / norm * x - width / norm * y)) + low
    return float(centers[nb - level - 1 if flip else level])


def _li(counts: np.ndarray, centers: np.ndarray) -> float:
    """Li's iterative minimum cross-entropy threshold on a histogram (scikit-image's iteration, weighted by counts)."""
    c = counts.astype(np.float64)
    x = centers.astype(np.float64) - centers[0]
    tol = (centers[1] - centers[0]) / 2 if len(centers) > 1 else 0.0
    t_next = float((c * x).sum() / c.sum())
    t_curr = -2 * tol - 1
    for _ in range(1000):
        if abs(t_next - t_curr) <= tol:
            break
        t_curr = t_next
        fore = x > t_curr
        n_f, n_b = c[fore].sum(), c[~fore].sum()
        if n_f == 0 or n_b == 0:
            break
        mean_f, mean_b = (c[fore] * x[fore]).sum() / n_f, (c[~fore] * x[~fore]).sum() / n_b
        if mean_b == 0:
            break
        t_next = (mean_b - mean_f) / (math.log(mean_b) - math.log(mean_f))
    return float(t_next + centers[0])


_METHODS: dict[str, tuple[int, Callable[[np.ndarray, np.ndarray], float]]] = {
    "otsu": (256, _otsu),
    "yen": (256, _yen),
    "triangle": (256, _triangle),
    "li": (4096, _li),
}


class ThresholdFit(_Fit):
    """A global threshold from the histogram of all data (Otsu, Yen, triangle, Li)."""

    rounds = 2

    def __init__(self, method: str) -> None:
        if method not in _METHODS:
            raise ValueRangeError(f"unknown method {method!r}; expected one of {sorted(_METHODS)}", field="method")
        self.method = method
        self.bins, self.fn = _METHODS[method]

    def summary(self, r: int, v: np.ndarray, st: dict[str, Any]) -> Any:
        if r == 0:
            return _range_summary(v)
        if not v.size or "result" in st:
            return np.zeros(self.bins, np.int64)
        return np.histogram(v, bins=self.bins, range=st["range"])[0]

    def combine(self, r: int, a: Any, b: Any) -> Any:
        return _range_combine(a, b) if r == 0 else a + b

    def conclude(self, r: int, total: Any, st: dict[str, Any]) -> None:
        if r == 0:
            n, lo, hi = total
            if not n:
                raise ValueRangeError("image is empty; nothing to threshold", field="image")
            st["range"] = (lo, hi)  # in the data's dtype, as numpy.histogram(range=None) uses it
            if lo == hi:
                st["result"] = float(lo)
            return
        if "result" in st:
            return
        edges = np.histogram_bin_edges(np.zeros(1, np.result_type(st["range"][0])), bins=self.bins, range=st["range"])
        st["result"] = self.fn(total, (edges[:-1] + edges[1:]) / 2.0)


class MomentsFit(_Fit):
    """Count, mean, standard deviation, min and max (parallel variance update: stable in any chunking)."""

    def summary(self, r: int, v: np.ndarray, st: dict[str, Any]) -> Any:
        if not v.size:
            return (0, 0.0, 0.0, math.inf, -math.inf)
        v64 = v.astype(np.float64)
        m = float(v64.mean())
        return (int(v.size), m, float(((v64 - m) ** 2).sum()), float(v64.min()), float(v64.max()))

    def combine(self, r: int, a: Any, b: Any) -> Any:
        if not a[0]:
            return b
        if not b[0]:
            return a
        n = a[0] + b[0]
        delta = b[1] - a[1]
        return (
            n,
            a[1] + delta * b[0] / n,
            a[2] + b[2] + delta * delta * a[0] * b[0] / n,
            min(a[3], b[3]),
            max(a[4], b[4]),
        )

    def conclude(self, r: int, total: Any, st: dict[str, Any]) -> None:
        n, m, m2, lo, hi = total
        if not n:
            raise ValueRangeError(_EMPTY.format(what="mean and std"), field="image")
        st["result"] = {"n": n, "mean": m, "std": math.sqrt(m2 / n), "min": lo, "max": hi}


class MaxFit(_Fit):
    """The largest value (``-inf`` for no data); chunks give arrays of equal length for several maxima."""

    def summary(self, r: int, v: np.ndarray, st: dict[str, Any]) -> Any:
        return v

    def combine(self, r: int, a: Any, b: Any) -> Any:
        return np.maximum(a, b)

    def conclude(self, r: int, total: Any, st: dict[str, Any]) -> None:
        st["result"] = [float(x) for x in np.atleast_1d(total)]


class NoiseFit(_Fit):
    """The median and the robust standard deviation 1.4826·MAD (median absolute deviation from the median) of all
    data, exact: two :class:`PercentileFit` medians, the second of the deviations from the first. For a filter's
    response, mostly background, these are the level and spread of its response to noise, whatever the voxel
    size does to that spread (a threshold a fixed number of spreads above the level means the same everywhere)."""

    rounds = 6

    def __init__(self) -> None:
        self.level, self.spread = PercentileFit([50], "noise level"), PercentileFit([50], "noise spread")

    def summary(self, r: int, v: np.ndarray, st: dict[str, Any]) -> Any:
        if r < 3:
            return self.level.summary(r, v, st.setdefault("level", {}))
        return self.spread.summary(r - 3, np.abs(v - st["median"]), st.setdefault("spread", {}))

    def combine(self, r: int, a: Any, b: Any) -> Any:
        return (self.level if r < 3 else self.spread).combine(r % 3, a, b)

    def conclude(self, r: int, total: Any, st: dict[str, Any]) -> None:
        if r < 3:
            self.level.conclude(r, total, st.setdefault("level", {}))
            if r == 2:
                st["median"] = st["level"]["result"][0]
            return
        self.spread.conclude(r - 3, total, st.setdefault("spread", {}))
        if r == 5:
            st["result"] = {"median": st["median"], "sd": 1.4826 * st["spread"]["result"][0]}


def noise_cut(level_spread: dict[str, float], factor: float) -> float:
    """The ``noise`` threshold: ``factor`` robust SDs above the median (a :class:`NoiseFit` result)."""
    return level_spread["median"] + factor * level_spread["sd"]


class IntMedianFit(_Fit):
    """The median of non-negative integers (``numpy.median``), from merged counts; ``inf`` for no data."""

    def summary(self, r: int, v: np.ndarray, st: dict[str, Any]) -> Any:
        return np.bincount(np.asarray(v, np.int64).ravel())

    def combine(self, r: int, a: Any, b: Any) -> Any:
        n = max(len(a), len(b))
        return np.pad(a, (0, n - len(a))) + np.pad(b, (0, n - len(b)))

    def conclude(self, r: int, total: Any, st: dict[str, Any]) -> None:
        n = int(total.sum())
        if not n:
            st["result"] = math.inf
            return
        cum = np.cumsum(total)
        lo = int(np.searchsorted(cum, (n - 1) // 2, side="right"))
        hi = int(np.searchsorted(cum, n // 2, side="right"))
        st["result"] = (lo + hi) / 2


def run_fit(fit: _Fit, summarize: Callable[[int, dict[str, Any]], list[Any]]) -> Any:
    """Drive ``fit``: ``summarize(round, state)`` returns the chunks' summaries of that round."""
    state: dict[str, Any] = {}
    for r in range(fit.rounds):
        parts = summarize(r, state)
        total = parts[0]
        for p in parts[1:]:
            total = fit.combine(r, total, p)
        fit.conclude(r, total, state)
    return state["result"]


def fit_chunks(fit: _Fit, chunks: Callable[[], list[np.ndarray]]) -> Any:
    """Fit over data given as chunks (``chunks()`` is called once per round); non-finite values are ignored.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0); data = rng.normal(size=1000)
    >>> parts = lambda: [data[:300], data[300:]]
    >>> bool(np.allclose(fit_chunks(PercentileFit([5, 50, 95]), parts), np.percentile(data, [5, 50, 95])))
    True
    """
    return run_fit(fit, lambda r, st: [fit.summary(r, _finite(c), st) for c in chunks()])
