"""Colocalization of two channels in a region: Pearson and Spearman correlation, Manders' M1 / M2 above Costes'
automatic thresholds, Manders' overlap, Li's ICQ, and Costes' randomization test.

The coefficients, as Fiji's Coloc 2 and JACoP report them (Bolte & Cordelières 2006, Dunn et al. 2011):

- **Pearson r**: linear correlation of the two channels' values in the region; **Spearman ρ** the same of their
  ranks (robust to a few bright voxels and to a non-linear relation).
- **Costes' thresholds** (Costes et al. 2004): the channels' orthogonal (total least squares) regression line
  ``b = slope · a + intercept``, walked down from the brightest ``a``; the thresholds ``(Ta, slope · Ta +
  intercept)`` are the highest pair where the voxels below them (``a < Ta`` or ``b < Tb``) no longer correlate
  (Pearson ≤ 0). What is below is background and noise; what is above is signal in both.
- **M1** = Σ a over voxels with ``a > Ta`` and ``b > Tb`` / Σ a over voxels with ``a > Ta``: the fraction of
  channel a's signal that lies where channel b has signal; **M2** the same for b. The thresholds move with the
  background level, so the voxels counted are those with signal, not the whole region as with a threshold of 0;
  the values summed are the channels' own, as Coloc 2 and JACoP sum them (subtract a camera offset first).
- **Pearson above**: r of the voxels above both thresholds.
- **Manders' overlap** Σab / √(Σa² Σb²) and **Li's ICQ** (the fraction of voxels where both channels lie on the
  same side of their means, minus 0.5: from −0.5, segregated, to +0.5, dependent): both depend on the offset.
- **Costes' P**: channel a cut into blocks of about the point-spread function's size (so randomized images keep
  the images' own spatial correlation), the blocks shuffled ``randomizations`` times and r measured again in the
  region; P is the fraction of shuffles whose r reaches the measured one, (k + 1) / (N + 1): small when the
  measured correlation is not explained by chance (Coloc 2 reports 1 − P).

Written here because scikit-image gives Pearson's and Manders' coefficients for thresholds one already has, but
not Costes' thresholds or his randomization test (Coloc 2 and JACoP are Fiji plugins in Java); the correlations
themselves come from SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from subcell.errors import ValueRangeError

__all__ = ["Colocalization", "ColocalizationSpec", "colocalization", "costes_thresholds"]

THRESHOLDS = ("costes", "otsu")
_SCAN = 64  # thresholds tried down the regression line before bisection
_BISECT = 16  # bisection steps between the last correlated and the first uncorrelated one (range / 2^16)


@dataclass(frozen=True)
class Colocalization:
    """The coefficients of one pair of channels in one region (NaN where a coefficient is not defined: fewer than
    two voxels, a constant channel, no voxel above a threshold, or the P-value when not asked for)."""

    pearson: float
    spearman: float
    m1: float
    m2: float
    threshold_a: float
    threshold_b: float
    pearson_above: float
    overlap: float
    icq: float
    p_value: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ColocalizationSpec:
    """Which pairs of channels to compare in each object, and how: the thresholds (``"costes"``, ``"otsu"``, or
    two numbers) and Costes' randomization test (``randomizations`` shuffles of blocks of ``block_um`` µm per
    axis, z y x: about the point-spread function's size; 0 for no P-value)."""

    pairs: tuple[tuple[str, str], ...]
    thresholds: str | tuple[float, float] = "costes"
    randomizations: int = 0
    block_um: tuple[float, float, float] = (1.0, 0.4, 0.4)

    def block(self, voxel_size: Sequence[float]) -> list[int]:
        """The blocks' size in voxels (z y x) of ``voxel_size`` (µm), at least one."""
        return [max(1, round(um / v)) for um, v in zip(self.block_um, voxel_size, strict=True)]


def _r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two float64 vectors; NaN below two values or when either is constant."""
    if x.size < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / den if den > 0 else float("nan")


def costes_thresholds(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Costes' automatic thresholds ``(Ta, Tb)`` of two channels' values (any shape, the same number of values).

    The highest point of the channels' orthogonal regression line where the voxels below it (``a < Ta`` or
    ``b < Tb``) correlate no more (Pearson ≤ 0): 64 steps down the line, then bisection to 1/2^16 of ``a``'s
    range. Channels that do not correlate at all (r ≤ 0, or either constant) have no voxel above their thresholds:
    they are the channels' maxima. Where the voxels below still correlate at the bottom of the line, the thresholds
    are its lowest point (everything is signal).
    """
    x = np.asarray(a, np.float64).reshape(-1)
    y = np.asarray(b, np.float64).reshape(-1)
    if x.size != y.size:
        raise ValueRangeError(f"the two channels differ in number of values: {x.size} and {y.size}", field="shape")
    if x.size < 2:
        return float("nan"), float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    top_a, top_b = float(x.max()), float(y.max())
    if not sxy > 0 or sxx == 0 or syy == 0:
        return top_a, top_b
    slope = (syy - sxx + math.sqrt((syy - sxx) ** 2 + 4 * sxy * sxy)) / (2 * sxy)
    intercept = float(y.mean()) - slope * float(x.mean())

    def below_r(ta: float) -> float:
        below = (x < ta) | (y < slope * ta + intercept)
        return _r(x[below], y[below])

    def uncorrelated(ta: float) -> bool:
        r = below_r(ta)
        return math.isnan(r) or r <= 0  # (nothing left below, or a constant remainder: nothing correlates)

    low = float(x.min())
    steps = np.linspace(top_a, low, _SCAN + 1)
    hi = steps[0]
    for ta in steps[1:]:
        if uncorrelated(ta):
            lo = float(ta)
            break
        hi = float(ta)
    else:
        return low, slope * low + intercept
    for _ in range(_BISECT):  # hi: still correlated below; lo: not — the highest uncorrelated lies between
        mid = (hi + lo) / 2
        if uncorrelated(mid):
            lo = mid
        else:
            hi = mid
    return lo, slope * lo + intercept


def _otsu(v: np.ndarray) -> float:
    """Otsu's threshold of one channel's values in the region (its maximum when constant: nothing above)."""
    from skimage.filters import threshold_otsu

    if v.size == 0:
        return float("nan")
    return float(threshold_otsu(v)) if v.min() < v.max() else float(v.max())


def colocalization(
    a: np.ndarray,
    b: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    thresholds: str | tuple[float, float] = "costes",
    randomizations: int = 0,
    block: Sequence[int] | None = None,
    seed: int = 0,
) -> Colocalization:
    """The colocalization coefficients of channels ``a`` and ``b`` (same shape) in ``mask`` (the whole array when
    None); see the module's description of each.

    Parameters
    ----------
    thresholds : "costes" or (Ta, Tb)
        Where each channel's signal starts, for M1, M2 and Pearson above: Costes' automatic thresholds
        (:func:`costes_thresholds`, computed in the region) or given values (e.g. a background level).
    randomizations : int
        Costes' randomization test with this many shuffles of ``a``'s blocks (0: no P-value). The blocks tile the
        array trimmed to whole blocks (centred); r is measured in ``mask`` on the trimmed array, shuffled or not.
    block : voxels per axis
        The blocks' size, about the point-spread function's (required with ``randomizations``).
    seed : int
        Seeds the shuffles (the same numbers every run).
    """
    xa, xb = np.asarray(a), np.asarray(b)
    if xa.shape != xb.shape:
        raise ValueRangeError(f"the two channels differ in shape: {xa.shape} and {xb.shape}", field="shape")
    m = np.ones(xa.shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != xa.shape:
        raise ValueRangeError(f"the mask has shape {m.shape} but the channels have {xa.shape}", field="mask")
    x, y = xa[m].astype(np.float64), xb[m].astype(np.float64)
    if isinstance(thresholds, str):
        if thresholds not in THRESHOLDS:
            raise ValueRangeError(
                f"thresholds must be one of {', '.join(THRESHOLDS)} or two numbers, got {thresholds!r}",
                field="thresholds",
            )
        ta, tb = costes_thresholds(x, y) if thresholds == "costes" else (_otsu(x), _otsu(y))
    else:
        ta, tb = (float(t) for t in thresholds)
    from scipy.stats import spearmanr

    pearson = _r(x, y)
    spearman = float(spearmanr(x, y).statistic) if x.size >= 2 and not math.isnan(pearson) else float("nan")
    over_a, over_b = x > ta, y > tb
    both = over_a & over_b
    sum_a, sum_b = float(x[over_a].sum()), float(y[over_b].sum())
    m1 = float(x[both].sum()) / sum_a if sum_a > 0 else float("nan")
    m2 = float(y[both].sum()) / sum_b if sum_b > 0 else float("nan")
    den = math.sqrt(float(x @ x) * float(y @ y))
    overlap = float(x @ y) / den if den > 0 else float("nan")
    icq = float(np.mean((x - x.mean()) * (y - y.mean()) > 0)) - 0.5 if x.size else float("nan")
    p = float("nan")
    if randomizations > 0:
        if block is None:
            raise ValueRangeError("Costes' randomization needs a block size (voxels per axis)", field="block")
        p = _randomization_p(xa, xb, m, [max(1, int(n)) for n in block], randomizations, seed)
    return Colocalization(pearson, spearman, m1, m2, ta, tb, _r(x[both], y[both]), overlap, icq, p)


def _randomization_p(a: np.ndarray, b: np.ndarray, mask: np.ndarray, block: list[int], n: int, seed: int) -> float:
    """(k + 1) / (n + 1), k the shuffles of ``a``'s blocks whose r in ``mask`` reaches the unshuffled r."""
    if len(block) != a.ndim:
        raise ValueRangeError(f"block has {len(block)} sizes for {a.ndim}-dimensional channels", field="block")
    counts = [s // k for s, k in zip(a.shape, block, strict=True)]
    if math.prod(counts) < 2:
        return float("nan")  # one block: nothing to shuffle
    trim = tuple(
        slice((s - c * k) // 2, (s - c * k) // 2 + c * k) for s, c, k in zip(a.shape, counts, block, strict=True)
    )
    ta, tb, tm = a[trim].astype(np.float64), b[trim].astype(np.float64), mask[trim]
    y = tb[tm]
    observed = _r(ta[tm], y)
    if math.isnan(observed):
        return float("nan")
    # (c0, k0, c1, k1, ...) → (c0, c1, ..., k0, k1, ...): one row per block, shuffled as rows
    split = [v for c, k in zip(counts, block, strict=True) for v in (c, k)]
    nd = a.ndim
    order = [2 * i for i in range(nd)] + [2 * i + 1 for i in range(nd)]
    blocks = ta.reshape(split).transpose(order).reshape(math.prod(counts), -1)
    back = np.argsort(order)
    rng = np.random.default_rng(seed)
    reached = 0
    for _ in range(n):
        shuffled = blocks[rng.permutation(blocks.shape[0])]
        image = shuffled.reshape([*counts, *block]).transpose(back).reshape(ta.shape)
        r = _r(image[tm], y)
        reached += bool(r >= observed)  # (a NaN r — a constant shuffle in the region — does not reach it)
    return (reached + 1) / (n + 1)
