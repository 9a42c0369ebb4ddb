"""Figures of integrated-cell results (PNG bytes): image grids of mid-slices, evaluation summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from subcell.plotting import png_bytes, subplots

__all__ = ["evaluation_png", "grid_png"]


def _slices(vol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max projection over z (top view) and over y (side view) of a (Z, Y, X) volume."""
    return vol.max(axis=0), vol.max(axis=1)


def grid_png(rows: Sequence[Sequence[np.ndarray]], row_titles: Sequence[str], col_titles: Sequence[str] | None = None,
             *, side: bool = True) -> bytes:  # fmt: skip
    """A grid of (Z, Y, X) volumes: top views (and side views below each row when ``side``)."""
    n_rows = len(rows) * (2 if side else 1)
    n_cols = max(len(r) for r in rows)
    fig, axes = subplots(n_rows, n_cols, figsize=(1.7 * n_cols, 1.6 * n_rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i, (row, title) in enumerate(zip(rows, row_titles, strict=True)):
        for j, vol in enumerate(row):
            top, sv = _slices(np.asarray(vol, dtype=np.float32))
            hi = float(np.percentile(vol, 99.8)) or 1.0
            r = i * (2 if side else 1)
            axes[r, j].imshow(top, cmap="magma", vmin=0, vmax=hi, interpolation="nearest")
            if side:
                axes[r + 1, j].imshow(sv, cmap="magma", vmin=0, vmax=hi, origin="lower", interpolation="nearest")
            if col_titles is not None and i == 0:  # one title per axes: the row's name rides on the first column
                axes[r, j].set_title(col_titles[j] if j else f"{title}\n{col_titles[j]}", fontsize=7)
            elif j == 0:
                axes[r, j].set_title(title, fontsize=8, loc="left")
    return png_bytes(fig)


def evaluation_png(summary: Any, kl_per_dim: np.ndarray) -> bytes:
    """ELBO with true vs shuffled reference per structure, and KL per latent dimension of the reference model."""
    cond = summary[summary.model == "conditional"]
    fig, (a1, a2) = subplots(1, 2, figsize=(10, 3.4))
    x = np.arange(len(cond))
    a1.bar(x - 0.2, cond.elbo_nats, 0.4, label="true reference")
    a1.bar(x + 0.2, cond.elbo_shuffled_nats, 0.4, label="shuffled reference")
    a1.set_xticks(x, cond.structure, rotation=30, fontsize=8)
    a1.set_ylabel("held-out ELBO (nats / cell)")
    a1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.28), ncol=2, frameon=False)  # below: never on a bar
    order = np.argsort(-kl_per_dim)
    a2.bar(np.arange(len(order)), kl_per_dim[order])
    a2.set_xlabel("reference latent dimension (sorted)")
    a2.set_ylabel("mean KL (nats)")
    return png_bytes(fig)
