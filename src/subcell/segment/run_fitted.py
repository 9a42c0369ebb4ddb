"""Fitted steps: the statistic a step uses, fitted once on its whole input from summaries merged over blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from subcell.segment import filters
from subcell.segment import fits as F
from subcell.segment import steps as S
from subcell.segment.field import Field, Op

__all__ = ["fit_step"]


def fit_step(fld: Field, op: Op) -> dict[str, Any]:
    """The statistic a fitted step uses, fitted once on its whole input."""
    s, vs = op.step, fld.vs
    if fld.whole and isinstance(s, S.FilamentFilter):
        # one block: the filter's own maximum over the field *is* this fit (the same max of the same response),
        # so "fit it yourself" (None) computes the Hessian once instead of twice
        return {"top": None}
    halo: tuple[int, int, int] = (0, 0, 0)
    values: Callable[[dict[str, np.ndarray], tuple[slice, ...]], np.ndarray]

    def core_of(name: str) -> Callable[[dict[str, np.ndarray], tuple[slice, ...]], np.ndarray]:
        return lambda arrays, trim: arrays[name][trim]

    values = core_of(op.src)
    if isinstance(s, S.Normalize):
        fit: Any = (
            F.MomentsFit()
            if s.method == "std"
            else F.PercentileFit([s.low, s.high] if s.method == "percentile" else [0.0, s.high], what="normalization")
        )
    elif isinstance(s, S.Threshold):
        fit = F.NoiseFit() if s.method == "noise" else F.ThresholdFit(s.method)
    elif isinstance(s, S.EdgePreservingSmooth):
        fit, halo = F.MomentsFit(), (0 if s.per_slice else 1, 1, 1)
        values = lambda arrays, trim: filters.gradient_sq(arrays[op.src], voxel_size=vs, per_slice=s.per_slice)[trim]  # noqa: E731
    elif isinstance(s, S.FilamentFilter):
        fit, halo = F.MaxFit(), s.reach(vs)
        values = lambda arrays, trim: np.asarray(  # noqa: E731
            filters.filament_top(arrays[op.src], sigmas_um=s.sigmas_um, voxel_size=vs, per_slice=s.per_slice, core=trim)
        )
    elif isinstance(s, S.FillBetweenMembranes):
        fit = F.IntMedianFit()
        values = lambda arrays, trim: filters.basal_run_lengths(arrays[op.src][trim])  # noqa: E731
    else:
        raise AssertionError(f"{op.name} fits nothing")
    grid = fld.grid(halo, what=f"step {op.index + 1} ({op.name})")

    def summarize(r: int, st: dict[str, Any]) -> list[Any]:
        def task(block: Any) -> Any:
            v = values({op.src: fld.read(op.src, block.read)}, block.trim)
            return fit.summary(r, F._finite(v) if not isinstance(fit, F.MaxFit) else v, st)

        return fld.map(task, grid)

    res = F.run_fit(fit, summarize)
    if isinstance(s, S.Normalize):
        if s.method == "std":
            return {
                "lo": max(res["mean"] - s.low * res["std"], res["min"]),
                "hi": min(res["mean"] + s.high * res["std"], res["max"]),
            }
        return {"lo": res[0], "hi": res[1]}
    if isinstance(s, S.Threshold):  # "noise": factor spreads above the level; otherwise a multiple of the threshold
        return {"t": F.noise_cut(res, s.factor) if s.method == "noise" else res * s.factor}
    if isinstance(s, S.EdgePreservingSmooth):
        return {"mean_sq": res["mean"]}
    if isinstance(s, S.FilamentFilter):
        return {"top": res}
    return {"basal_len": res}
