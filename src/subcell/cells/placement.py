"""Where a structure sits in an aligned cell: statistics relative to the nucleus and the cell.

Computed the same way on real crops and on generated ones, so a generative model can be checked against the
placement rules of the data (for synthetic cells: the generator's rules). All lengths in µm; intensities are
used as weights (negative values clipped to 0), restricted to the cell mask.

* ``radial_profile`` — share of the structure's signal in the cytoplasm at distance bands from the nuclear
  surface (e.g. mitochondria denser near the nucleus).
* ``inside_nucleus_fraction`` — share of the signal inside the nucleus (nucleoli ≈ 1).
* ``object_count`` — connected components after an Otsu threshold inside the cell (e.g. nucleoli count).
* ``apical_offset_um`` — z of the signal's centroid minus the nucleus centroid (Golgi: above the nucleus, > 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "apical_offset_um",
    "inside_nucleus_fraction",
    "object_count",
    "placement_stats",
    "radial_profile",
    "structure_mask",
]


def _weights(image: np.ndarray, cell: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(image, dtype=np.float64), 0, None) * (cell > 0.5)


def structure_mask(image: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """The structure as a binary mask: above an Otsu threshold computed inside the cell (float 0/1)."""
    from skimage.filters import threshold_otsu

    img = np.asarray(image, dtype=np.float64)
    inside = img[cell > 0.5]
    if inside.size < 2 or np.ptp(inside) == 0:
        return np.zeros(img.shape)
    return ((img > threshold_otsu(inside)) & (cell > 0.5)).astype(np.float64)


def radial_profile(image: np.ndarray, cell: np.ndarray, nucleus: np.ndarray, voxel_um: float,
                   bands_um: Sequence[float] = (0.0, 1.5, 3.0, 4.5)) -> np.ndarray:  # fmt: skip
    """Share of cytoplasmic signal per distance band from the nucleus surface (sums to ≤ 1; beyond the last
    band is left out). Bands are ``[b_i, b_{i+1})``."""
    w = _weights(image, cell) * (nucleus <= 0.5)
    if not (nucleus > 0.5).any():
        return np.full(len(bands_um) - 1, np.nan)
    d = ndi.distance_transform_edt(nucleus <= 0.5, sampling=voxel_um)
    total = w.sum()
    if total <= 0:
        return np.full(len(bands_um) - 1, np.nan)
    return np.array([w[(d >= a) & (d < b)].sum() / total for a, b in pairwise(bands_um)])


def inside_nucleus_fraction(image: np.ndarray, cell: np.ndarray, nucleus: np.ndarray) -> float:
    w = _weights(image, cell)
    total = w.sum()
    return float(w[nucleus > 0.5].sum() / total) if total > 0 else float("nan")


def object_count(image: np.ndarray, cell: np.ndarray, voxel_um: float, *, min_volume_um3: float = 0.2) -> int:
    """Connected components above an Otsu threshold (computed inside the cell) of at least ``min_volume_um3``."""
    from skimage.filters import threshold_otsu

    img = np.asarray(image, dtype=np.float64)
    inside = img[cell > 0.5]
    if inside.size < 2 or np.ptp(inside) == 0:
        return 0
    mask = (img > threshold_otsu(inside)) & (cell > 0.5)
    lab, n = ndi.label(mask)
    if n == 0:
        return 0
    sizes = np.bincount(lab.ravel())[1:] * voxel_um**3
    return int((sizes >= min_volume_um3).sum())


def apical_offset_um(image: np.ndarray, cell: np.ndarray, nucleus: np.ndarray, voxel_um: float) -> float:
    """z of the signal-weighted centroid minus z of the nucleus centroid (µm; positive = apical)."""
    w = _weights(image, cell)
    if w.sum() <= 0 or not (nucleus > 0.5).any():
        return float("nan")
    z = np.arange(w.shape[0], dtype=np.float64)[:, None, None]
    zs = float((w * z).sum() / w.sum())
    zn = float(np.argwhere(nucleus > 0.5)[:, 0].mean())
    return (zs - zn) * voxel_um


def placement_stats(image: np.ndarray, cell: np.ndarray, nucleus: np.ndarray, voxel_um: float, *,
                    segmented: bool = False) -> dict[str, float]:  # fmt: skip
    """All placement statistics of one structure image in one aligned cell.

    ``segmented``: compute them on the structure's Otsu mask (:func:`structure_mask`) instead of on intensities,
    which makes images with diffuse background (e.g. generated ones) comparable with sparse real ones.
    """
    if segmented:
        image = structure_mask(image, cell)
    prof = radial_profile(image, cell, nucleus, voxel_um)
    out = {f"radial_{a:g}_{b:g}um": float(v) for (a, b), v in zip(((0, 1.5), (1.5, 3), (3, 4.5)), prof, strict=True)}
    out["inside_nucleus_fraction"] = inside_nucleus_fraction(image, cell, nucleus)
    out["object_count"] = float(object_count(image, cell, voxel_um))
    out["apical_offset_um"] = apical_offset_um(image, cell, nucleus, voxel_um)
    return out
