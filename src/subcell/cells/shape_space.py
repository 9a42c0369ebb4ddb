"""Shape space of aligned single cells: spherical-harmonic coefficients of cell and nucleus, PCA shape modes,
and walks along the modes rendered back into volumes.

Feature vector of a cell (all µm): the cell centroid relative to the nucleus centroid (3), the cell's SH
coefficients, the nucleus's SH coefficients, each about its own centroid in the aligned crop. PCA runs on
these unscaled coefficients (so a mode is a shape change in µm, as in the Allen cell shape space).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from subcell.cells.harmonics import coefficient_names, fit_harmonics, rasterize
from subcell.errors import ValueRangeError

__all__ = ["ShapeSpace", "fit_shape_space", "shape_coefficients", "walk_volumes"]

OFFSET_COLUMNS = ["cell_offset_z_um", "cell_offset_y_um", "cell_offset_x_um"]


def shape_coefficients(cell: np.ndarray, nucleus: np.ndarray, voxel_um: float, *, lmax: int = 8) -> dict[str, float]:
    """SH coefficients (µm) of an aligned cell and its nucleus, the cell offset, and the fits' errors."""
    spacing = (voxel_um,) * 3
    if not nucleus.any():
        raise ValueRangeError("the crop has an empty nucleus mask", field="nucleus_mask")
    fc = fit_harmonics(cell, spacing, lmax=lmax)
    fn = fit_harmonics(nucleus, spacing, lmax=lmax)
    row: dict[str, float] = dict(zip(OFFSET_COLUMNS, (fc.center_um - fn.center_um).tolist(), strict=True))
    row.update(zip(coefficient_names(lmax, "cell_"), fc.coefficients.tolist(), strict=True))
    row.update(zip(coefficient_names(lmax, "nucleus_"), fn.coefficients.tolist(), strict=True))
    row.update(
        cell_sh_error_um=fc.mean_error_um, nucleus_sh_error_um=fn.mean_error_um,
        cell_sh_max_error_um=fc.max_error_um, nucleus_sh_max_error_um=fn.max_error_um,
    )  # fmt: skip
    return row


@dataclass
class ShapeSpace:
    """PCA of shape features: mean, unit modes (rows), their standard deviations and explained variance."""

    lmax: int
    feature_names: list[str]
    mean: np.ndarray
    modes: np.ndarray
    std: np.ndarray
    explained_variance_ratio: np.ndarray

    def transform(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features) - self.mean) @ self.modes.T

    def inverse(self, scores: np.ndarray) -> np.ndarray:
        return self.mean + np.asarray(scores) @ self.modes

    def split(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cell offset, cell coefficients, nucleus coefficients) of a feature vector."""
        n = (self.lmax + 1) ** 2
        return vector[:3], vector[3 : 3 + n], vector[3 + n : 3 + 2 * n]


def fit_shape_space(table: Any, *, lmax: int, n_modes: int = 8) -> ShapeSpace:
    """PCA over the rows of a table that holds :func:`shape_coefficients` columns."""
    from sklearn.decomposition import PCA

    names = [*OFFSET_COLUMNS, *coefficient_names(lmax, "cell_"), *coefficient_names(lmax, "nucleus_")]
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise ValueRangeError(f"table lacks shape coefficients (e.g. {missing[0]}) for lmax={lmax}", field="lmax")
    x = table[names].to_numpy(np.float64)
    if len(x) < 3:
        raise ValueRangeError(f"a shape space needs at least 3 cells, got {len(x)}", field="cells")
    k = min(n_modes, len(x) - 1, x.shape[1])
    pca = PCA(n_components=k, svd_solver="full").fit(x)
    return ShapeSpace(
        lmax=lmax,
        feature_names=names,
        mean=pca.mean_,
        modes=pca.components_,
        std=np.sqrt(pca.explained_variance_),
        explained_variance_ratio=pca.explained_variance_ratio_,
    )


def walk_volumes(
    space: ShapeSpace, mode: int, sigmas: Sequence[float], box: Sequence[int], voxel_um: float
) -> np.ndarray:
    """(len(sigmas), 2, Z, Y, X) uint8: cell and nucleus rasterized at ``mean + s·std·mode`` for each s."""
    spacing = (voxel_um,) * 3
    centre = (np.asarray(box) - 1) / 2 * voxel_um
    out = np.zeros((len(sigmas), 2, *box), np.uint8)
    for i, s in enumerate(sigmas):
        scores = np.zeros(len(space.std))
        scores[mode] = s * space.std[mode]
        offset, cell, nucleus = space.split(space.inverse(scores))
        out[i, 0] = rasterize(cell, box, spacing, centre + offset)
        out[i, 1] = rasterize(nucleus, box, spacing, centre)
    return out
