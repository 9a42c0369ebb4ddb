"""Means, variances and covariances accumulated piece by piece, for a volume or for each labelled object.

A metric of a large volume or a long time-lapse (Pearson r, a variance for the noise ceiling, r per cell) is a
function of these sums, so it can be computed one piece at a time (a z-slab, a frame) and give what the whole
array gives, to rounding. Pieces are merged with Chan, Golub and LeVeque's pairwise update in float64: each piece
is centred on its own mean, so the sums do not lose digits to a large mean as raw sums of squares would.
Written here because NumPy and SciPy offer no mergeable two-variable moments (``np.cov`` needs the whole array).
"""

from __future__ import annotations

import math

import numpy as np

from subcell.errors import ValueRangeError
from subcell.metrics import pieces

__all__ = ["Moments", "ObjectMoments"]


class Moments:
    """Count, means and centred sums of squares and products of one variable (``b`` None) or two.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.arange(10.0), np.arange(10.0) ** 2
    >>> m = Moments()
    >>> m.add(a[:4], b[:4]); m.add(a[4:], b[4:])
    >>> round(m.pearson, 12) == round(float(np.corrcoef(a, b)[0, 1]), 12)
    True
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean_a = self.mean_b = 0.0
        self.saa = self.sbb = self.sab = 0.0

    def add(self, a: np.ndarray, b: np.ndarray | None = None) -> None:
        """Add the values of ``a`` (and the paired values of ``b``, same shape), piece by piece."""
        fa = np.asarray(a).reshape(-1)
        fb = None if b is None else np.asarray(b).reshape(-1)
        if fb is not None and fb.size != fa.size:
            raise ValueRangeError(f"paired values differ in number: {fa.size} and {fb.size}", field="shape")
        step = pieces.PIECE_VOXELS
        for i in range(0, fa.size, step):
            x = fa[i : i + step].astype(np.float64)
            y = None if fb is None else fb[i : i + step].astype(np.float64)
            self._merge(x, y)

    def _merge(self, x: np.ndarray, y: np.ndarray | None) -> None:
        nb = x.size
        if nb == 0:
            return
        ma = float(x.mean())
        x = x - ma
        saa = float(np.dot(x, x))
        mb = sbb = sab = 0.0
        if y is not None:
            mb = float(y.mean())
            y = y - mb
            sbb, sab = float(np.dot(y, y)), float(np.dot(x, y))
        n = self.n + nb
        da, db = ma - self.mean_a, mb - self.mean_b
        w = self.n * nb / n
        self.mean_a += da * nb / n
        self.mean_b += db * nb / n
        self.saa += saa + da * da * w
        self.sbb += sbb + db * db * w
        self.sab += sab + da * db * w
        self.n = n

    @property
    def var_a(self) -> float:
        """Population variance of ``a`` (``np.var``); NaN when empty."""
        return self.saa / self.n if self.n else float("nan")

    @property
    def var_b(self) -> float:
        return self.sbb / self.n if self.n else float("nan")

    @property
    def pearson(self) -> float:
        """Pearson r of ``a`` and ``b``; NaN with fewer than two values or when either is constant."""
        den = math.sqrt(self.saa * self.sbb)
        return self.sab / den if self.n >= 2 and den > 0 else float("nan")


class ObjectMoments:
    """:class:`Moments` of two variables for every labelled object at once (label 0 is background), accumulated
    piece by piece with the same update, vectorised over the objects (one ``bincount`` per sum)."""

    def __init__(self) -> None:
        self.n = np.zeros(0, np.int64)
        self.mean_a = np.zeros(0)
        self.mean_b = np.zeros(0)
        self.saa = np.zeros(0)
        self.sbb = np.zeros(0)
        self.sab = np.zeros(0)

    def add(self, labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        """Add the voxels of every object of ``labels`` (non-negative integers), with their values in ``a``, ``b``."""
        fl, fa, fb = (np.asarray(v).reshape(-1) for v in (labels, a, b))
        if not fl.size == fa.size == fb.size:
            raise ValueRangeError(f"labels and values differ in number: {fl.size}, {fa.size}, {fb.size}", field="shape")
        step = pieces.PIECE_VOXELS
        for i in range(0, fl.size, step):
            lab = fl[i : i + step]
            fg = lab > 0
            if fg.any():
                self._merge(lab[fg].astype(np.intp), fa[i : i + step][fg].astype(np.float64),
                            fb[i : i + step][fg].astype(np.float64))  # fmt: skip

    def _grow(self, size: int) -> None:
        if size <= self.n.size:
            return
        extra = size - self.n.size
        self.n = np.concatenate([self.n, np.zeros(extra, np.int64)])
        for name in ("mean_a", "mean_b", "saa", "sbb", "sab"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(extra)]))

    def _merge(self, ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        size = int(ids.max()) + 1
        self._grow(size)
        nb = np.bincount(ids, minlength=size)
        has = nb > 0
        safe = np.maximum(nb, 1)
        ma, mb = np.bincount(ids, x, size) / safe, np.bincount(ids, y, size) / safe
        x, y = x - ma[ids], y - mb[ids]
        saa, sbb, sab = (np.bincount(ids, v, size) for v in (x * x, y * y, x * y))
        n0 = self.n[:size]
        n = n0 + nb
        nn = np.maximum(n, 1)
        da, db = ma - self.mean_a[:size], mb - self.mean_b[:size]
        w = n0 * nb / nn
        self.mean_a[:size] = np.where(has, self.mean_a[:size] + da * nb / nn, self.mean_a[:size])
        self.mean_b[:size] = np.where(has, self.mean_b[:size] + db * nb / nn, self.mean_b[:size])
        self.saa[:size] += np.where(has, saa + da * da * w, 0.0)
        self.sbb[:size] += np.where(has, sbb + db * db * w, 0.0)
        self.sab[:size] += np.where(has, sab + da * db * w, 0.0)
        self.n[:size] = n

    def pearson(self) -> dict[int, float]:
        """Pearson r of every object present (label id → r; NaN below two voxels or when either is constant)."""
        out = {}
        for i in np.flatnonzero(self.n):
            den = math.sqrt(self.saa[i] * self.sbb[i])
            out[int(i)] = float(self.sab[i] / den) if self.n[i] >= 2 and den > 0 else float("nan")
        return out
