"""Synthetic hiPSC-like fields with exact ground truth: single fields, time-lapses, and lazily generated large fields.

Output channels (uint16, in this order): ``brightfield``, the eight structures (``dna``, ``nuclear_envelope``,
``nucleoli``, ``membrane``, ``mitochondria``, ``microtubules``, ``golgi``, ``er``) as noisy widefield fluorescence,
then the same eight as ``<name>_noise_free``: the expected camera signal (same units, rounded to integers), i.e. the
ideal target for evaluating predictions against the noise ceiling. Ground-truth label images: ``cell`` and
``nucleus`` (int32, matching ids: nucleus i lies in cell i) and one binary uint8 mask per structure (its owning
cell is the ``cell`` label at the same voxel).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from subcell.image import Image, Provenance
from subcell.synth.colony import Colony, make_colony, step_colony
from subcell.synth.config import STRUCTURES, SynthConfig
from subcell.synth.optics import (
    brightfield_contrast,
    camera,
    fluorescence,
    haze,
    illumination,
    line_gain,
    psf_sigma_voxels,
)
from subcell.synth.render import RegionRender, render_region
from subcell.synth.visible import visible_tracks

__all__ = ["LABEL_NAMES", "SynthField", "channel_names", "render_channels", "synth_field"]

LABEL_NAMES = ("cell", "nucleus", *STRUCTURES)
_POINT_STRUCTURES = ("microtubules", "er")  # lines of points: scaled so a line's blurred peak is ~1


def channel_names() -> list[str]:
    """Names of the generated channels, in order."""
    return ["brightfield", *STRUCTURES, *(f"{s}_noise_free" for s in STRUCTURES)]


@dataclass
class SynthField:
    """A generated field: the image, its ground-truth labels, a per-cell table and (time-lapse) a lineage table."""

    image: Image
    labels: dict[str, np.ndarray]  # (T, Z, Y, X): cell, nucleus int32; structure masks uint8
    cells: Any  # pandas.DataFrame
    lineage: Any  # pandas.DataFrame (one row per track)
    config: SynthConfig


def render_channels(
    rendered: RegionRender, config: SynthConfig, rng_key: tuple[int, ...], *, mode: str = "reflect"
) -> np.ndarray:
    """All channels (C, Z, Y, X) uint16 of a rendered region; noise drawn from streams keyed by ``rng_key``."""
    sigma = psf_sigma_voxels(config.optics, config.voxel_size)
    gain = line_gain(sigma)
    noise = config.noise
    n_s = len(STRUCTURES)
    out = np.empty((1 + 2 * n_s, *rendered.cell.shape), np.uint16)

    def one(i: int) -> None:
        name = STRUCTURES[i]
        expected = fluorescence(rendered.density[name], sigma, mode=mode)
        scale = noise.peak_photons * (gain if name in _POINT_STRUCTURES else 1.0)
        expected *= np.float32(scale)
        expected += np.float32(noise.background)
        out[1 + i] = camera(expected, noise, np.random.default_rng([*rng_key, 1 + i]))
        expected += np.float32(noise.offset)  # the noise-free signal in camera units
        np.rint(expected, out=expected)
        np.minimum(expected, 65535, out=expected)
        out[1 + n_s + i] = expected

    def bright() -> None:
        bf = config.brightfield
        rel = brightfield_contrast(rendered.delta_n, config.voxel_size, bf)
        if bf.haze > 0:
            rel = haze(rel, config.voxel_size, bf.haze)
        expected = np.float32(bf.photons) * rel
        if bf.illumination_ramp > 0:
            expected *= illumination(rendered.region or tuple(slice(0, n) for n in rel.shape), config)[None]
        out[0] = camera(expected, noise, np.random.default_rng([*rng_key, 0]), read_noise=bf.read_noise)

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(bright)] + [pool.submit(one, i) for i in range(n_s)]
        for f in futures:
            f.result()
    return out


def _frame(colony: Colony, config: SynthConfig) -> tuple[np.ndarray, RegionRender]:
    region = tuple(slice(0, n) for n in config.shape)
    rendered = render_region(colony, region, seed=config.seed)  # type: ignore[arg-type]
    channels = render_channels(rendered, config, (config.seed, 0x5E, colony.frame))
    return channels, rendered


def _cell_rows(colony: Colony, rendered: RegionRender, config: SynthConfig) -> list[dict[str, Any]]:
    vz, vy, vx = config.voxel_size
    voxel = vz * vy * vx
    cell_lab, nuc_lab = rendered.cell, rendered.nucleus
    n = max((c.id for c in colony.cells), default=0) + 1
    cell_vox = np.bincount(cell_lab.ravel(), minlength=n)
    nuc_vox = np.bincount(nuc_lab.ravel(), minlength=n)
    present = [c for c in colony.cells if cell_vox[c.id] > 0]
    nz, ny, nx = cell_lab.shape
    flat = cell_lab.ravel()
    sums = [
        np.bincount(flat, weights=np.repeat(np.arange(nz, dtype=np.float64), ny * nx), minlength=n),
        np.bincount(flat, weights=np.tile(np.repeat(np.arange(ny, dtype=np.float64), nx), nz), minlength=n),
        np.bincount(flat, weights=np.tile(np.arange(nx, dtype=np.float64), nz * ny), minlength=n),
    ]
    centroids = [tuple(s[c.id] / cell_vox[c.id] for s in sums) for c in present]
    border = set(
        np.unique(
            np.concatenate(
                [cell_lab[:, 0].ravel(), cell_lab[:, -1].ravel(), cell_lab[:, :, 0].ravel(), cell_lab[:, :, -1].ravel()]
            )
        )
    )
    rows = []
    for c, cen in zip(present, centroids, strict=True):
        counts = rendered.counts.get(c.id, {})
        rows.append({
            "frame": colony.frame,
            "cell_id": c.id,
            "parent_id": c.parent,
            "centroid_z_um": cen[0] * vz, "centroid_y_um": cen[1] * vy, "centroid_x_um": cen[2] * vx,
            "cell_volume_um3": float(cell_vox[c.id] * voxel),
            "nucleus_volume_um3": float(nuc_vox[c.id] * voxel),
            "height_um": c.height,
            "radius_um": c.radius,
            "mitotic": c.mitotic,
            "stage": c.stage if c.mitotic else "interphase",
            "touches_border": c.id in border,
            "nucleoli_count": counts.get("nucleoli", 0),
            "mitochondria_tubules": counts.get("mitochondria", 0),
            "microtubules": counts.get("microtubules", 0),
            "golgi_blobs": counts.get("golgi", 0),
        })  # fmt: skip
    return rows


def synth_field(config: SynthConfig | None = None, **overrides: Any) -> SynthField:
    """Generate one field (or a time-lapse when ``config.time.frames > 1``) in memory.

    Parameters
    ----------
    config : SynthConfig, optional
        Defaults to ``SynthConfig()``; keyword ``overrides`` are validated into it (e.g. ``shape=(32, 256, 256)``).
    """
    import pandas as pd

    from subcell.synth.load import load_config

    if overrides or config is None:
        cfg = load_config(overrides={**(config.model_dump() if config is not None else {}), **overrides})
    else:
        cfg = config
    colony = make_colony(cfg)
    frames, labels, rows = [], {n: [] for n in LABEL_NAMES}, []  # type: ignore[var-annotated]
    parents: dict[int, int] = {}
    born: dict[int, int] = {}
    next_id = max((c.id for c in colony.cells), default=0) + 1
    rng_time = np.random.default_rng([cfg.seed, 0x7E])
    for t in range(cfg.time.frames):
        if t > 0:
            colony, next_id, divisions = step_colony(colony, rng_time, next_id)
            for parent, a, b in divisions:
                parents[a] = parents[b] = parent
                born[a] = born[b] = t
        channels, rendered = _frame(colony, cfg)
        frames.append(channels)
        labels["cell"].append(rendered.cell)
        labels["nucleus"].append(rendered.nucleus)
        for s in STRUCTURES:
            labels[s].append(rendered.masks[s])
        rows.extend(_cell_rows(colony, rendered, cfg))
    # the truth is what the field shows: cells that leave it and come back, or are born out of view (a colony
    # beyond the field) are new tracks without parents (subcell.synth.visible)
    lineage = visible_tracks(rows, {"cell": labels["cell"], "nucleus": labels["nucleus"]}, parents, born, next_id)
    data = np.stack(frames) if len(frames) > 1 else frames[0][None]  # T C Z Y X (no copy for one frame)
    image = Image(
        data,
        voxel_size=cfg.voxel_size,
        channel_names=channel_names(),
        time_interval=cfg.time.interval_s if cfg.time.frames > 1 else None,
        provenance=Provenance(source="subcell.synth", step="synth", parameters=cfg.model_dump(mode="json")),
    )
    return SynthField(
        image=image,
        labels={k: np.stack(v) if len(v) > 1 else v[0][None] for k, v in labels.items()},
        cells=pd.DataFrame(rows),
        lineage=lineage,
        config=cfg,
    )


def write_field(field: SynthField, path: str | Path, *, overwrite: bool = False, ngff_version: str = "0.4") -> Path:
    """Write a generated field as OME-Zarr with NGFF labels; the cell and lineage tables go into ``tables/``."""
    from subcell.io import OmeZarrWriter

    writer = OmeZarrWriter(
        path,
        shape=field.image.shape,
        dtype=field.image.dtype,
        voxel_size=field.image.voxel_size,
        channel_names=field.image.channel_names,
        time_interval=field.image.time_interval,
        provenance=field.image.provenance,
        ngff_version=ngff_version,
        overwrite=overwrite,
    )
    try:
        writer.write(field.image.data)
        for name, lab in field.labels.items():
            writer.add_label(name, lab)
        writer.add_table("cells", field.cells)
        writer.add_table("lineage", field.lineage)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
