"""Where in each cell a channel's signal lies, from the centre (or the nucleus) out to the membrane.

CellProfiler's MeasureObjectIntensityDistribution reads a 2D object's intensity in rings; the Allen Institute's
studies of intracellular organization ask the same of 3D hiPSC cells (are the mitochondria perinuclear, is the
Golgi near the nucleus, do lysosomes move out). Here, in µm on anisotropic voxels, 2D or 3D: each voxel of a cell
gets a relative position from 0 (the cell's innermost point, or with a nucleus the nuclear boundary) to 1 (the
cell's edge), the positions are cut into ``bins`` shells of equal width, and each channel's signal above the
cell's background is split among them.

Position without a nucleus: 1 − depth / the cell's largest depth (depth: the distance to outside the cell). With
its nucleus (the nucleus segmentation inside it): d_n / (d_n + d_m) over the cytoplasm, d_n the distance to the
nucleus, d_m to outside the cell (the nucleus itself is left out; a cell without a nucleus falls back to depth).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize
from subcell.metrics._zyx import depth_um, zyx

__all__ = ["radial_positions", "radial_table"]


def radial_positions(
    cell: np.ndarray, nucleus: np.ndarray | None, voxel_size: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The voxels measured (a mask of ``cell``'s shape) and their positions, 0 (centre or nucleus) … 1 (edge).

    ``cell`` and ``nucleus`` are (Z, Y, X) boolean arrays of one cell's box (a single plane measured in 2D); the
    box's outside is the cell's outside."""
    depth = depth_um(cell, voxel_size)
    if nucleus is not None and nucleus.any() and (cell & ~nucleus).any():
        region = cell & ~nucleus
        to_nucleus = depth_um(~nucleus, voxel_size, box_is_outside=False)
        d_n, d_m = to_nucleus[region], depth[region]
        return region, d_n / (d_n + d_m)
    return cell, 1 - depth[cell] / depth[cell].max()


def radial_table(
    cells: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    intensity: Mapping[str, np.ndarray],
    bins: int = 4,
    nuclei: np.ndarray | None = None,
    background: Mapping[str, Mapping[int, float]] | None = None,
) -> Any:
    """One row per cell: for each channel, ``<ch>_radial_frac_<k>`` (the share of its signal in shell k, 1 =
    innermost … ``bins`` = at the edge), ``<ch>_radial_meanfrac_<k>`` (that share over the shell's share of the
    voxels: 1 everywhere for an even signal, above 1 where the signal gathers) and ``<ch>_radial_mean`` (the
    signal-weighted mean position, 0 … 1: a single number for "how peripheral").

    The signal is the intensity above ``background[channel][label]`` (the cell's local background, as
    ``measure`` gives it; 0 where none is given), negative values counted as 0. NaN for a cell with no signal.
    """
    import pandas as pd

    if not isinstance(bins, int) or bins < 1:
        raise ValueRangeError(f"radial bins must be a whole number >= 1, got {bins}", field="radial")
    lab = zyx(cells, "cells", labels=True)
    nuc = None if nuclei is None else zyx(nuclei, "nuclei", like=lab.shape) > 0
    vs = VoxelSize.of(voxel_size).as_tuple()
    chans = {k: zyx(a, "intensity", like=lab.shape) for k, a in intensity.items()}
    rows = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        cell = lab[sl] == i
        nucleus = None if nuc is None else nuc[sl] & cell
        region, pos = radial_positions(cell, nucleus, vs)
        shell = np.minimum((pos * bins).astype(np.int64), bins - 1)
        share = np.bincount(shell, minlength=bins) / len(shell)
        row: dict[str, Any] = {"label": i}
        for name, a in chans.items():
            bg = (background or {}).get(name, {}).get(i, 0.0)
            bg = bg if np.isfinite(bg) else 0.0  # no unlabelled voxel around the cell: none known
            signal = np.clip(a[sl][region].astype(np.float64) - bg, 0, None)
            total = signal.sum()
            frac = np.bincount(shell, weights=signal, minlength=bins) / total if total > 0 else np.full(bins, np.nan)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean_frac = frac / share
            for k in range(bins):
                row[f"{name}_radial_frac_{k + 1}"] = frac[k]
                row[f"{name}_radial_meanfrac_{k + 1}"] = mean_frac[k]
            row[f"{name}_radial_mean"] = float((signal * pos).sum() / total) if total > 0 else np.nan
        rows.append(row)
    columns = ["label"] + [
        f"{n}_radial_{kind}_{k + 1}" for n in chans for kind in ("frac", "meanfrac") for k in range(bins)
    ]
    columns += [f"{n}_radial_mean" for n in chans]
    dtypes: dict[str, Any] = {c: np.float64 for c in columns}
    dtypes["label"] = np.int64
    return pd.DataFrame(rows, columns=columns).astype(dtypes)
