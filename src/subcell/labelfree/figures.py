"""Figures of label-free training and evaluation (matplotlib, Agg; returned as PNG bytes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from subcell.plotting import OrthoPlanes, PanelSummary, panel_summary, png_bytes, subplots

__all__ = ["evaluation_figure_png", "training_curve_png"]


def training_curve_png(history: Any) -> bytes:
    """Training loss (per step, smoothed) and validation loss / Pearson r against the step; with ``keep: best`` a
    dashed line at the step whose weights were kept."""
    fig, (ax1, ax2) = subplots(1, 2, figsize=(10, 3.6))
    steps = np.array([h["step"] for h in history.train])
    loss = np.array([h["loss"] for h in history.train])
    if steps.size:
        ax1.plot(steps, loss, color="0.75", lw=0.8, label="train (per step)")
        k = max(1, steps.size // 50)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax1.plot(steps[k - 1 :], smooth, color="C0", label=f"train (mean of {k})")
    if history.validation:
        vs = [v["step"] for v in history.validation]
        ax1.plot(vs, [v["val_loss"] for v in history.validation], "o-", color="C1", label="validation")
        for key in sorted(k for k in history.validation[0] if k.startswith("val_r_")):
            ax2.plot(vs, [v[key] for v in history.validation], "o-", label=key[6:])
        ax2.legend(title="validation Pearson r")
    if history.best is not None:  # keep: best — the step whose weights the model ends with
        step = history.best["step"]
        for ax in (ax1, ax2):
            ax.axvline(step, color="0.3", ls="--", lw=0.8, label=f"kept: step {step}")
    ax1.set(xlabel="step", ylabel="loss", yscale="log", title="loss")
    ax1.legend()
    ax2.set(xlabel="step", ylabel="Pearson r", title="validation r", ylim=(min(0.0, ax2.get_ylim()[0]), 1.0))
    return png_bytes(fig)


def evaluation_figure_png(
    panels: Mapping[str, Any], voxel_size: Sequence[float], metrics: Mapping[str, Mapping[str, float]]
) -> bytes:
    """Orthogonal views (XY, XZ, YZ at physical aspect) of the input and, per structure, target and prediction at
    the same contrast (both z-scored, shown between the z-scored target's 0.5–99.5 percentiles), the prediction
    titled with its Pearson r.

    ``panels`` maps a title to a ``(Z, Y, X)`` NumPy or Dask volume (each read once, in blocks:
    :func:`subcell.plotting.panel_summary`): ``"target <structure>"`` and ``"prediction <structure>"`` pair up; anything else (the
    input) gets its own limits. ``metrics`` maps a structure to its metric values.
    """
    from subcell.plotting import contrast_limits, orthoviews_png

    summaries = {title: panel_summary(vol) for title, vol in panels.items()}

    def zscore(s: PanelSummary) -> Any:
        return lambda v: ((v - s.mean) / (s.std or 1.0)).astype(np.float32)

    limits: dict[str, tuple[float, float]] = {}
    titled: dict[str, OrthoPlanes] = {}
    for title, summary in summaries.items():
        kind, _, structure = title.partition(" ")
        paired = kind in ("target", "prediction") and {f"target {structure}", f"prediction {structure}"} <= set(panels)
        if paired:
            # both in z-score units (predictions are, measured targets are photon counts), at the target's limits
            m = metrics.get(structure, {})
            new = f"{title} (r={m['pearson_r']:.2f})" if kind == "prediction" and "pearson_r" in m else title
            titled[new] = summary.planes.map(zscore(summary))
            target = summaries[f"target {structure}"]
            limits[new] = contrast_limits(zscore(target)(target.sample))
        else:
            titled[title] = summary.planes
            limits[title] = contrast_limits(summary.sample)
    return orthoviews_png(titled, voxel_size, limits=limits, columns=3)
