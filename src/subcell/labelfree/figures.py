"""Figures of label-free training and evaluation (matplotlib, Agg; returned as PNG bytes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from subcell.plotting import png_bytes, subplots

__all__ = ["evaluation_figure_png", "orthogonal_views", "training_curve_png"]


def training_curve_png(history: Any) -> bytes:
    """Training loss (per step, smoothed) and validation loss / Pearson r against the step."""
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
    ax1.set(xlabel="step", ylabel="loss", yscale="log", title="loss")
    ax1.legend()
    ax2.set(xlabel="step", ylabel="Pearson r", title="validation r", ylim=(min(0.0, ax2.get_ylim()[0]), 1.0))
    return png_bytes(fig)


def orthogonal_views(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central XY, XZ and YZ planes of a ``(Z, Y, X)`` volume (for figures)."""
    z, y, x = (s // 2 for s in volume.shape)
    return volume[z], volume[:, y, :], volume[:, :, x]


def evaluation_figure_png(
    panels: Mapping[str, np.ndarray], voxel_size: Sequence[float], metrics: Mapping[str, Mapping[str, float]]
) -> bytes:
    """Rows of orthogonal views (input, target, prediction, … as given) and a bar chart of metrics per target.

    ``panels`` maps a title to a ``(Z, Y, X)`` volume; ``metrics`` maps a target to its metric values.
    """
    n = len(panels)
    fig, axes = subplots(n + 1, 2, figsize=(9, 2.6 * (n + 1)), gridspec_kw={"width_ratios": [3, 1]})
    vz, vy, vx = voxel_size
    for row, (title, vol) in enumerate(panels.items()):
        xy, xz, _ = orthogonal_views(vol)
        lo, hi = np.percentile(vol, [0.5, 99.5])
        ext_xy = (0, vol.shape[2] * vx, vol.shape[1] * vy, 0)
        ext_xz = (0, vol.shape[2] * vx, vol.shape[0] * vz, 0)
        axes[row, 0].imshow(xy, cmap="gray", vmin=lo, vmax=hi, extent=ext_xy)
        axes[row, 0].set_title(f"{title}: XY (µm)", fontsize=9)
        axes[row, 1].imshow(xz, cmap="gray", vmin=lo, vmax=hi, extent=ext_xz, aspect="auto")
        axes[row, 1].set_title("XZ", fontsize=9)
    ax = axes[n, 0]
    names = list(metrics)
    keys = [k for k in ("pearson_r", "noise_ceiling", "pearson_r_truth", "ssim") if any(k in metrics[t] for t in names)]
    width = 0.8 / max(1, len(keys))
    for i, key in enumerate(keys):
        vals = [metrics[t].get(key, np.nan) for t in names]
        ax.bar(np.arange(len(names)) + i * width, vals, width, label=key)
    ax.set_xticks(np.arange(len(names)) + width * (len(keys) - 1) / 2, names)
    ax.set(ylim=(0, 1), title="metrics per target")
    ax.legend(fontsize=8)
    axes[n, 1].axis("off")
    return png_bytes(fig)
