"""Splitting touching round objects (nuclei) at narrow necks of their distance map."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from subcell.blocks import components_of_pairs
from subcell.image import VoxelSize
from subcell.segment import filters

__all__ = ["split_touching"]


def split_touching(
    mask: np.ndarray,
    *,
    depth_um: float = 0.5,
    max_neck_ratio: float = 0.7,
    voxel_size: VoxelSize | Sequence[float],
    intensity: np.ndarray | None = None,
    intensity_weight: float = 0.5,
) -> np.ndarray:
    """Separate touching round objects: watershed of the distance map from its h-maxima.

    Two lobes are split when the distance map (µm) dips by more than ``depth_um`` between their centres, i.e.
    when the neck between them is narrower than both by that much, and the neck is at most ``max_neck_ratio`` of
    the thinner lobe's radius (a wider neck is a bulge of one kidney-shaped or flattened nucleus). Objects
    without such a maximum keep one id. Workflows call it on one object at a time, so an object's split never
    depends on its neighbours (or on the block it was read in).

    With ``intensity`` (the stain, e.g. smoothed DNA, same shape as ``mask``, background near 0) the distance map
    is dimmed where the stain is dim: each voxel's distance × (its intensity relative to the object's bright
    level, the 90th percentile, capped at 1) ** ``intensity_weight``. Nuclei pressed flat against each other have
    no neck in their shape, but the stain fades across the gap between them; the dim band then cuts the
    landscape like a neck does, in the same µm units. The weight is below 1 because chromatin texture dims parts
    of one nucleus too: at 1, textured real nuclei were cut in two (Fluo-N3DH-CHO object F1 0.86 → 0.63), at 0.5
    they were not (0.86), while touching nuclei of a dense synthetic time-lapse were still separated (F1 0.80 →
    0.93; measured with `benchmarks/track/bench_track.py` data).

    Returns
    -------
    (Z, Y, X) int32 labels 1..n.
    """
    from skimage.morphology import h_maxima

    vs = VoxelSize.of(voxel_size)
    m = np.asarray(mask).astype(bool)
    m = m[None] if m.ndim == 2 else m
    if not m.any():
        return np.zeros(m.shape, np.int32)
    dist = ndi.distance_transform_edt(m, sampling=vs.as_tuple()).astype(np.float32)
    if intensity is not None:
        dist *= _relative_brightness(np.asarray(intensity, np.float32).reshape(m.shape), m) ** intensity_weight
    markers = ndi.label(h_maxima(dist, depth_um).astype(bool))[0].astype(np.int32)
    objects = ndi.label(m)[0].astype(np.int32)
    seeded = np.zeros(int(objects.max()) + 1, bool)
    seeded[np.unique(objects[markers > 0])] = True
    unseeded = ~seeded[objects] & m
    if unseeded.any():  # e.g. objects thinner than the depth: the whole object is its own seed
        markers = np.where(unseeded, objects + int(markers.max()), markers)
    lobes = filters.seeded_watershed(-dist, seeds=markers, mask=m)
    return _merge_wide_necks(lobes, dist, max_neck_ratio)


def _relative_brightness(intensity: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Intensity relative to the object's bright level (its 90th percentile inside the mask), in 0..1."""
    bright = float(np.percentile(intensity[mask], 90))
    lo = float(intensity[mask].min())
    if not np.isfinite(bright) or bright <= max(lo, 0.0):
        return np.ones(mask.shape, np.float32)
    return np.clip(intensity / bright, 0.0, 1.0)


def _merge_wide_necks(lobes: np.ndarray, dist: np.ndarray, max_neck_ratio: float) -> np.ndarray:
    """Join touching lobes whose neck (largest distance-map value on their shared face) is wider than
    ``max_neck_ratio`` × the thinner lobe's radius (its distance-map peak): a plateau or a bulge, not two objects.
    """
    n = int(lobes.max())
    if n < 2:
        return lobes
    codes, necks = [], []
    for ax in range(lobes.ndim):
        a, b = np.moveaxis(lobes, ax, 0), np.moveaxis(dist, ax, 0)
        face = (a[:-1] != a[1:]) & (a[:-1] > 0) & (a[1:] > 0)
        lo, hi = np.minimum(a[:-1][face], a[1:][face]), np.maximum(a[:-1][face], a[1:][face])
        codes.append(lo.astype(np.int64) * (n + 1) + hi)
        necks.append(np.minimum(b[:-1][face], b[1:][face]))
    code, neck = np.concatenate(codes), np.concatenate(necks)
    if code.size == 0:
        return lobes
    order = np.argsort(code, kind="stable")
    code, neck = code[order], neck[order]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    pair, widest = code[starts], np.maximum.reduceat(neck, starts)
    peak = np.asarray(ndi.maximum(dist, lobes, index=np.arange(n + 1)))
    i, j = np.divmod(pair, n + 1)
    wide = widest >= max_neck_ratio * np.minimum(peak[i], peak[j])
    if not wide.any():
        return lobes
    root = components_of_pairs(n + 1, np.stack([i[wide], j[wide]], axis=1))
    _, dense = np.unique(root, return_inverse=True)
    return dense.astype(np.int32)[lobes]
