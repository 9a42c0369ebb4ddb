"""A simple synthetic field: ellipsoidal nuclei inside cells, DNA and membrane fluorescence, exact labels.

Deterministic for a seed. Used by ``make demo`` and tests until the physical generator lands.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import Image, Provenance, VoxelSize

__all__ = ["blob_field"]


def blob_field(
    shape: Sequence[int] = (32, 128, 128),
    *,
    voxel_size: VoxelSize | Sequence[float] = (0.29, 0.108, 0.108),
    n_cells: int = 6,
    nucleus_radius_um: float = 3.0,
    seed: int = 0,
) -> tuple[Image, np.ndarray]:
    """Return ``(image, nucleus_labels)``: a 2-channel ``dna``/``membrane`` uint16 field and ZYX int32 labels.

    Nuclei are ellipsoids of radius ``nucleus_radius_um`` (µm) at non-overlapping random positions; the
    membrane channel is the boundary of the Voronoi cells around them. Shot and read noise are added.
    """
    from scipy import ndimage as ndi

    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueRangeError(f"expected a positive (Z, Y, X) shape, got {shape}", field="shape")
    if n_cells < 1:
        raise ValueRangeError(f"expected at least one cell, got {n_cells}", field="n_cells")
    if nucleus_radius_um <= 0:
        raise ValueRangeError(f"expected a positive radius in µm, got {nucleus_radius_um}", field="nucleus_radius_um")
    vs = VoxelSize.of(voxel_size)
    rng = np.random.default_rng(seed)
    extent = np.array(shape) * np.array(vs.as_tuple())
    r = nucleus_radius_um
    centres: list[np.ndarray] = []
    for _ in range(n_cells * 200):
        if len(centres) == n_cells:
            break
        c = rng.uniform([min(r, e / 2) for e in extent], [max(e - r, e / 2) for e in extent])
        c[0] = extent[0] / 2 if extent[0] < 2 * r else c[0]
        if all(np.linalg.norm((c - o)[1:]) > 2.4 * r for o in centres):
            centres.append(c)
    zz, yy, xx = np.meshgrid(
        *[(np.arange(n) + 0.5) * v for n, v in zip(shape, vs.as_tuple(), strict=True)], indexing="ij"
    )
    labels = np.zeros(shape, np.int32)
    dist_best = np.full(shape, np.inf)
    owner = np.zeros(shape, np.int32)
    for i, c in enumerate(centres, start=1):
        ry, rx, rz = r * rng.uniform(0.85, 1.15, 3)
        d = np.sqrt(((zz - c[0]) / rz) ** 2 + ((yy - c[1]) / ry) ** 2 + ((xx - c[2]) / rx) ** 2)
        labels[d <= 1.0] = i
        planar = np.hypot(yy - c[1], xx - c[2])
        closer = planar < dist_best
        dist_best[closer] = planar[closer]
        owner[closer] = i
    membrane = (ndi.maximum_filter(owner, size=(1, 3, 3)) != ndi.minimum_filter(owner, size=(1, 3, 3))).astype(
        np.float64
    )
    dna = (labels > 0).astype(np.float64) * (0.7 + 0.3 * rng.random(shape))
    sigma = (0.6 / vs.z, 0.25 / vs.y, 0.25 / vs.x)  # ~PSF in µm → voxels
    channels = []
    for density, peak in ((dna, 3000.0), (membrane, 1500.0)):
        clean = ndi.gaussian_filter(density, sigma) * peak + 100.0
        noisy = rng.poisson(clean) + rng.normal(0, 5, shape)
        channels.append(np.clip(noisy, 0, 65535).astype(np.uint16))
    image = Image(
        np.stack(channels),
        voxel_size=vs,
        dims="CZYX",
        channel_names=["dna", "membrane"],
        provenance=Provenance(
            source="subcell.synth.blob_field",
            step="synth",
            parameters={"shape": list(shape), "n_cells": len(centres), "nucleus_radius_um": r, "seed": seed},
        ),
    )
    return image, labels
