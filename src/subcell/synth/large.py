"""Fields of any size, generated block by block: lazily as Dask arrays, or streamed straight to OME-Zarr.

A block of the engine's grid (:func:`block_grid`, :mod:`subcell.blocks`) spans the full z range and ``block_yx``
pixels laterally. It is rendered with a lateral halo (so the
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

from subcell.blocks import Block, BlockGrid, map_blocks
from subcell.image import Image, Provenance
from subcell.synth.colony import Colony, make_colony
from subcell.synth.config import STRUCTURES, SynthConfig
from subcell.synth.generate import LABEL_NAMES, channel_names, render_channels
from subcell.synth.optics import psf_sigma_voxels
from subcell.synth.render import render_region

__all__ = ["block_grid", "block_regions", "lazy_field", "render_block", "write_large_field"]

_BF_HALO_PX = 48


def _halo(config: SynthConfig) -> int:
    sigma = psf_sigma_voxels(config.optics, config.voxel_size)
    return max(_BF_HALO_PX, math.ceil(4 * max(sigma[1:])))


def block_grid(config: SynthConfig) -> BlockGrid:
    """The engine's grid for a field: blocks of ``block_yx`` spanning z, read with the optics' halo."""
    nz, _, _ = config.shape
    h = _halo(config)
    return BlockGrid(config.shape, (nz, config.block_yx, config.block_yx), halo=(0, h, h))


def block_regions(config: SynthConfig) -> Iterator[tuple[tuple[int, int], tuple[slice, slice, slice]]]:
    """``((by, bx), (z, y, x) slices)`` of every block, row-major."""
    for block in block_grid(config):
        yield (block.index[1], block.index[2]), block.core  # type: ignore[misc]


def render_block(
    colony: Colony, config: SynthConfig, index: tuple[int, int], region: tuple[slice, slice, slice]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Channels ``(C, Z, Y, X)`` uint16 and labels ``{name: (Z, Y, X)}`` of one block."""
    block = block_grid(config).block((0, *index))
    if block.core != tuple(region):
        raise ValueError(f"block {index} covers {block.core}, not {region}")
    rendered = render_region(colony, block.read, seed=config.seed)  # type: ignore[arg-type]
    channels = render_channels(rendered, config, (config.seed, 0xB1, index[0], index[1]))
    crop = block.trim
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

        def one_block(block: Block) -> dict[str, np.ndarray]:
            region = block.core
            channels, labels = render_block(colony, config, (block.index[1], block.index[2]), region)  # type: ignore[arg-type]
            writer.write_region((slice(0, 1), slice(None), *region), channels[None])
            for name, lab in labels.items():
                writer.write_label_region(name, (slice(0, 1), slice(0, 1), *region), lab[None, None])
            part = {k: np.zeros(n) for k in stats}
            _accumulate(part, labels["cell"], labels["nucleus"], region)
            return part

        for part in map_blocks(one_block, block_grid(config)):
            for k in stats:
                stats[k] += part[k]
        vz, vy, vx = config.voxel_size
        voxel = vz * vy * vx
        rows = []
        for c in colony.cells:
            count = stats["cell"][c.id]
            if count == 0:
                continue
            rows.append({
                "frame": 0, "cell_id": c.id, "parent_id": 0,
                "centroid_z_um": stats["z"][c.id] / count * vz,
                "centroid_y_um": stats["y"][c.id] / count * vy,
                "centroid_x_um": stats["x"][c.id] / count * vx,
                "cell_volume_um3": count * voxel, "nucleus_volume_um3": stats["nucleus"][c.id] * voxel,
                "height_um": c.height, "radius_um": c.radius, "mitotic": c.mitotic,
                "stage": c.stage if c.mitotic else "interphase",
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
