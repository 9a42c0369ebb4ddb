"""Per-cell features for state classification, from a cell store's aligned crops and table (µm everywhere)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError

__all__ = ["cell_features", "store_features"]

MASKS = ("cell_mask", "nucleus_mask")
SHAPE_SUFFIXES = ("volume_um3", "surface_area_um2", "sphericity", "axis_major_um", "axis_medium_um", "axis_minor_um")


def _sh_energy(mask: np.ndarray, voxel_um: float, lmax: int, prefix: str) -> dict[str, float]:
    """Energy per degree l of the shape's SH expansion: invariant to rotation, so the alignment's residual
    ambiguity (and mitotic cells' arbitrary spindle axis) cannot leak into the features."""
    from subcell.cells.harmonics import fit_harmonics

    if not mask.any():
        return {f"{prefix}sh_energy_l{l}": float("nan") for l in range(lmax + 1)}  # noqa: E741
    fit = fit_harmonics(mask, (voxel_um,) * 3, lmax=lmax)
    coef = np.asarray(fit.coefficients)
    out, i = {}, 0
    for l in range(lmax + 1):  # noqa: E741
        out[f"{prefix}sh_energy_l{l}"] = float(np.sum(coef[i : i + 2 * l + 1] ** 2))
        i += 2 * l + 1
    return out


def _intensity(values: np.ndarray, prefix: str) -> dict[str, float]:
    if values.size == 0:
        return {f"{prefix}{k}": float("nan") for k in ("mean", "std", "p10", "p50", "p90", "cv", "bright_fraction")}
    mean = float(values.mean())
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return {
        f"{prefix}mean": mean,
        f"{prefix}std": float(values.std()),
        f"{prefix}p10": float(p10),
        f"{prefix}p50": float(p50),
        f"{prefix}p90": float(p90),
        f"{prefix}cv": float(values.std() / mean) if mean else 0.0,
        # condensed chromatin, a bright organelle: the share of the region above twice its median
        f"{prefix}bright_fraction": float(np.mean(values > 2 * p50)) if p50 > 0 else 0.0,
    }


def cell_features(
    crop: np.ndarray, channel_names: Sequence[str], voxel_um: float, *, channels: Sequence[str] | None = None,
    lmax: int = 8,
) -> dict[str, float]:  # fmt: skip
    """Features of one aligned crop (C, Z, Y, X) whose last channels are ``cell_mask`` and ``nucleus_mask``.

    Per channel: intensity statistics inside the cell and inside the nucleus (normalized by the cell's median,
    so staining and gain differences between cells do not become "state"), the nucleus/cell intensity ratio and
    a texture measure (mean gradient magnitude over the mean, inside the cell). Shape: SH energy per degree of
    cell and nucleus, the nucleus/cell volume ratio.
    """
    names = list(channel_names)
    for m in MASKS:
        if m not in names:
            raise ValueRangeError(f"the store has no {m!r} channel (channels {names})", field="channels")
    cell = crop[names.index("cell_mask")] > 0.5
    nucleus = crop[names.index("nucleus_mask")] > 0.5
    out: dict[str, float] = {}
    out.update(_sh_energy(cell, voxel_um, lmax, "cell_"))
    out.update(_sh_energy(nucleus, voxel_um, lmax, "nucleus_"))
    out["nucleus_cell_volume_ratio"] = float(nucleus.sum() / max(cell.sum(), 1))
    for name in channels or [n for n in names if n not in MASKS]:
        if name not in names:
            raise ValueRangeError(f"no channel {name!r} in the store (channels {names})", field="channels")
        img = crop[names.index(name)].astype(np.float64)
        ref = float(np.median(img[cell])) if cell.any() else 0.0
        ref = ref if ref > 0 else (float(img[cell].mean()) if cell.any() and img[cell].mean() > 0 else 1.0)
        norm = img / ref
        out.update(_intensity(norm[cell], f"{name}_cell_"))
        out.update(_intensity(norm[nucleus], f"{name}_nucleus_"))
        inside = float(norm[nucleus].sum()) if nucleus.any() else 0.0
        out[f"{name}_nucleus_share"] = inside / max(float(norm[cell].sum()), 1e-12)
        grad = ndi.gaussian_gradient_magnitude(norm, sigma=1.0)
        out[f"{name}_texture"] = float(grad[cell].mean() / max(norm[cell].mean(), 1e-12)) if cell.any() else 0.0
    return out


def store_features(store: Any, *, channels: Sequence[str] | None = None, lmax: int = 8) -> Any:
    """One row per extracted cell of a :class:`~subcell.io.CellStore` (same order as ``store.extracted``): the
    table's shape columns and :func:`cell_features` of its crop."""
    import pandas as pd

    table = store.extracted
    shape_cols = [f"{p}_{s}" for p in ("cell", "nucleus") for s in SHAPE_SUFFIXES if f"{p}_{s}" in table.columns]
    rows = []
    for r in table.itertuples(index=False):
        crop = store.crop(int(r.crop_index))
        row = {c: float(getattr(r, c)) for c in shape_cols}
        row.update(cell_features(crop, store.channel_names, store.voxel_um, channels=channels, lmax=lmax))
        rows.append(row)
    return pd.DataFrame(rows)
