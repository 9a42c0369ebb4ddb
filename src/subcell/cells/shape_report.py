"""Shape space of a cell store: coefficients per cell, PCA modes, walks along them, and a figure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from subcell.cells.shape_space import ShapeSpace, fit_shape_space, shape_coefficients, walk_volumes
from subcell.errors import ValueRangeError
from subcell.plotting import png_bytes, subplots

__all__ = ["ShapeSpaceResult", "shape_space_of_store"]

SIGMAS = (-2.0, -1.0, 0.0, 1.0, 2.0)


@dataclass
class ShapeSpaceResult:
    table: Any  # per cell: identity columns, coefficients, errors, PC scores
    space: ShapeSpace
    modes: Any  # per mode: explained variance ratio and std
    walks: dict[int, np.ndarray] = field(default_factory=dict)  # mode → (steps, 2, Z, Y, X)
    figure_png: bytes = b""


def shape_space_of_store(
    store: Any,
    *,
    lmax: int = 8,
    n_modes: int = 8,
    walk_modes: int = 3,
    sigmas: Sequence[float] = SIGMAS,
    progress: Callable[[int, int], None] | None = None,
) -> ShapeSpaceResult:
    """Fit spherical harmonics to every extracted cell of ``store`` (a :class:`~subcell.io.CellStore`) and PCA."""
    import pandas as pd

    cells = store.extracted
    if len(cells) < 3:
        raise ValueRangeError(f"a shape space needs at least 3 extracted cells, the store has {len(cells)}",
                              path=store.path)  # fmt: skip
    ci, ni = store.channel_index("cell_mask"), store.channel_index("nucleus_mask")
    rows = []
    for k, (_, r) in enumerate(cells.iterrows()):
        crop = store.crop(r.crop_index)
        rows.append(shape_coefficients(crop[ci] > 0.5, crop[ni] > 0.5, store.voxel_um, lmax=lmax))
        if progress is not None:
            progress(k + 1, len(cells))
    coef = pd.DataFrame(rows)
    keep = [c for c in cells.columns if not c.startswith("align_")]
    table = pd.concat([cells[keep].reset_index(drop=True), coef], axis=1)
    space = fit_shape_space(table, lmax=lmax, n_modes=n_modes)
    scores = space.transform(table[space.feature_names].to_numpy(np.float64))
    for i in range(scores.shape[1]):
        table[f"shape_mode_{i + 1}"] = scores[:, i]
    modes = pd.DataFrame({
        "mode": np.arange(1, len(space.std) + 1),
        "explained_variance_ratio": space.explained_variance_ratio,
        "std_um": space.std,
    })  # fmt: skip
    walks = {
        m: walk_volumes(space, m, sigmas, store.box, store.voxel_um) for m in range(min(walk_modes, len(space.std)))
    }
    return ShapeSpaceResult(table, space, modes, walks, _figure(walks, sigmas, space))


def _figure(walks: dict[int, np.ndarray], sigmas: Sequence[float], space: ShapeSpace) -> bytes:
    n = len(walks)
    fig, axes = subplots(2 * n, len(sigmas), figsize=(1.9 * len(sigmas), 2.0 * 2 * n), squeeze=False)
    for row, (mode, vol) in enumerate(walks.items()):
        for j, s in enumerate(sigmas):
            cell, nucleus = vol[j, 0], vol[j, 1]
            zc = int(np.argmax(nucleus.sum(axis=(1, 2)))) if nucleus.any() else cell.shape[0] // 2
            yc = cell.shape[1] // 2
            for k, (c_img, n_img) in enumerate(((cell[zc], nucleus[zc]), (cell[:, yc], nucleus[:, yc]))):
                ax = axes[2 * row + k, j]
                ax.imshow(c_img.astype(float) + n_img, cmap="magma", vmin=0, vmax=2,
                          origin="lower" if k else "upper", interpolation="nearest")  # fmt: skip
                ax.set_xticks([])
                ax.set_yticks([])
                if k == 0:
                    ratio = space.explained_variance_ratio[mode]
                    ax.set_title(f"mode {mode + 1} ({ratio:.0%}) {s:+g}σ", fontsize=8)
                if j == 0:
                    ax.set_ylabel("top (y/x)" if k == 0 else "side (z/x)", fontsize=8)
    return png_bytes(fig)
