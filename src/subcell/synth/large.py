"""Fields of any size, generated block by block: lazily as Dask arrays, or streamed straight to OME-Zarr.

A block spans the full z range and ``block_yx`` pixels laterally. It is rendered with a lateral halo (so the
PSF blur and the bright-field defocus see their neighbours) and cropped. Cells come from one colony built up
front (cheap: a list of seeds) and are drawn from their own random streams; camera noise is drawn from a
stream keyed by (seed, block), so a block is the same whichever order, process or chunking computes it.
Memory is bounded by one block plus its halo, whatever the field size.

Bright-field formation uses FFTs that are periodic across the extended block; the halo (≥ 48 px) keeps the
wrap-around out of the kept area for the in-focus structure, but strongly defocused planes of very large
cells can show faint block seams.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from subcell.image import Image, Provenance
from subcell.synth.colony import Colony, make_colony
from subcell.synth.config import STRUCTURES, SynthConfig
from subcell.synth.generate import LABEL_NAMES, channel_names, render_channels
from subcell.synth.optics import psf_sigma_voxels
from subcell.synth.render import render_region

__all__ = ["block_regions", "lazy_field", "render_block", "write_large_field"]

_BF_HALO_PX = 48


def _halo(config: SynthConfig) -> int:
    sigma = psf_sigma_voxels(config.optics, config.voxel_size)
    return max(_BF_HALO_PX, math.ceil(4 * max(sigma[1:])))


def block_regions(config: SynthConfig) -> Iterator[tuple[tuple[int, int], tuple[slice, slice, slice]]]:
    """``((by, bx), (z, y, x) slices)`` of every block, row-major."""
    nz, ny, nx = config.shape
    b = config.block_yx
    for by, y0 in enumerate(range(0, ny, b)):
        for bx, x0 in enumerate(range(0, nx, b)):
            yield (by, bx), (slice(0, nz), slice(y0, min(ny, y0 + b)), slice(x0, min(nx, x0 + b)))


def render_block(
    colony: Colony, config: SynthConfig, index: tuple[int, int], region: tuple[slice, slice, slice]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Channels ``(C, Z, Y, X)`` uint16 and labels ``{name: (Z, Y, X)}`` of one block."""
    h = _halo(config)
    _, ny, nx = config.shape
    ext = (
        region[0],
        slice(max(0, region[1].start - h), min(ny, region[1].stop + h)),
        slice(max(0, region[2].start - h), min(nx, region[2].stop + h)),
    )
    rendered = render_region(colony, ext, seed=config.seed)
    channels = render_channels(rendered, config, (config.seed, 0xB1, index[0], index[1]))
    crop = (
        slice(None),
        slice(region[1].start - ext[1].start, region[1].stop - ext[1].start),
        slice(region[2].start - ext[2].start, region[2].stop - ext[2].start),
    )
    labels = {"cell": rendered.cell[crop], "nucleus": rendered.nucleus[crop]}
    labels.update({s: rendered.masks[s][crop] for s in STRUCTURES})
    return channels[(slice(None), *crop)], labels


def lazy_field(config: SynthConfig) -> tuple[Image, dict[str, Any]]:
    """A Dask-backed field and its labels; blocks are generated only when computed."""
    import dask
    import dask.array as da

    colony = make_colony(config)
    n_c = len(channel_names())
    rows: list[list[Any]] = []
    label_rows: dict[str, list[list[Any]]] = {n: [] for n in LABEL_NAMES}
    current_by = -1
    for (by, _bx), region in block_regions(config):
        shape = tuple(s.stop - s.start for s in region)
        job = dask.delayed(render_block, pure=True)(colony, config, (by, _bx), region)
        if by != current_by:
            rows.append([])
            for n in LABEL_NAMES:
                label_rows[n].append([])
            current_by = by
        rows[-1].append(da.from_delayed(job[0], shape=(n_c, *shape), dtype=np.uint16))
        for n in LABEL_NAMES:
            dtype = np.int32 if n in ("cell", "nucleus") else np.uint8
            label_rows[n][-1].append(da.from_delayed(job[1][n], shape=shape, dtype=dtype))
    data = da.block([[r[None] for r in row] for row in rows])  # (1, C, Z, Y, X)
    image = Image(
        data,
        voxel_size=config.voxel_size,
        channel_names=channel_names(),
        provenance=Provenance(source="subcell.synth", step="synth", parameters=config.model_dump(mode="json")),
    )
    labels = {n: da.block(rows_)[None] for n, rows_ in label_rows.items()}
    return image, labels


def write_large_field(
    config: SynthConfig, path: str | Path, *, overwrite: bool = False, ngff_version: str = "0.4"
) -> Path:
    """Generate block by block straight into an OME-Zarr (bounded memory), with labels and a cell table."""
    import pandas as pd

    from subcell.io import OmeZarrWriter

    colony = make_colony(config)
    nz, ny, nx = config.shape
    writer = OmeZarrWriter(
        path,
        shape=(1, len(channel_names()), nz, ny, nx),
        dtype=np.uint16,
        voxel_size=config.voxel_size,
        channel_names=channel_names(),
        provenance=Provenance(source="subcell.synth", step="synth", parameters=config.model_dump(mode="json")),
        chunks=(1, 1, min(nz, 16), min(ny, 256), min(nx, 256)),
        ngff_version=ngff_version,
        overwrite=overwrite,
    )
    n = max((c.id for c in colony.cells), default=0) + 1
    stats = {k: np.zeros(n) for k in ("cell", "nucleus", "z", "y", "x")}
    try:
        for name in LABEL_NAMES:
            writer.create_label(name, np.int32 if name in ("cell", "nucleus") else np.uint8)
        for index, region in block_regions(config):
            channels, labels = render_block(colony, config, index, region)
            where = (slice(0, 1), slice(None), *region)
            writer.write_region(where, channels[None])
            for name, lab in labels.items():
                writer.write_label_region(name, (slice(0, 1), slice(0, 1), *region), lab[None, None])
            _accumulate(stats, labels["cell"], labels["nucleus"], region)
        vz, vy, vx = config.voxel_size
        voxel = vz * vy * vx
        rows = []
        for c in colony.cells:
            count = stats["cell"][c.id]
            if count == 0:
                continue
            rows.append({
                "frame": 0, "cell_id": c.id, "parent_id": 0,
                "centroid_z_um": (stats["z"][c.id] / count + 0.5) * vz,
                "centroid_y_um": (stats["y"][c.id] / count + 0.5) * vy,
                "centroid_x_um": (stats["x"][c.id] / count + 0.5) * vx,
                "cell_volume_um3": count * voxel, "nucleus_volume_um3": stats["nucleus"][c.id] * voxel,
                "height_um": c.height, "radius_um": c.radius, "mitotic": c.mitotic,
            })  # fmt: skip
        writer.add_table("cells", pd.DataFrame(rows))
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def _accumulate(stats: dict[str, np.ndarray], cell: np.ndarray, nucleus: np.ndarray, region: tuple[slice, ...]) -> None:
    n = len(stats["cell"])
    nz, ny, nx = cell.shape
    flat = cell.ravel()
    stats["cell"] += np.bincount(flat, minlength=n)[:n]
    stats["nucleus"] += np.bincount(nucleus.ravel(), minlength=n)[:n]
    stats["z"] += np.bincount(flat, weights=np.repeat(np.arange(nz, dtype=np.float64), ny * nx), minlength=n)[:n]
    ys = np.arange(region[1].start, region[1].stop, dtype=np.float64)
    xs = np.arange(region[2].start, region[2].stop, dtype=np.float64)
    stats["y"] += np.bincount(flat, weights=np.tile(np.repeat(ys, nx), nz), minlength=n)[:n]
    stats["x"] += np.bincount(flat, weights=np.tile(xs, nz * ny), minlength=n)[:n]
