"""Toy cell stores (helpers) with known placement rules: ``dna`` fills the nucleus, ``cap`` sits on top of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

BOX = (16, 16, 16)


def toy_cell(rng: np.random.Generator) -> np.ndarray:
    """(4, Z, Y, X): dna, cap, cell_mask, nucleus_mask of one random cell (0.5 µm voxels)."""
    g = np.meshgrid(*[np.arange(n, dtype=float) for n in BOX], indexing="ij")
    c = np.array(BOX) / 2 - 0.5 + rng.uniform(-1.5, 1.5, 3)
    rc = np.array([4.0, 6.5, 6.5]) * rng.uniform(0.8, 1.1, 3)
    rn = rc * rng.uniform(0.4, 0.6)
    cell = sum(((gi - ci) / r) ** 2 for gi, ci, r in zip(g, c, rc, strict=True)) <= 1
    cn = c + np.array([rng.uniform(-0.5, 0.5), *rng.uniform(-1.5, 1.5, 2)])  # nucleus off the cell centre
    nucleus = (sum(((gi - ci) / r) ** 2 for gi, ci, r in zip(g, cn, rn, strict=True)) <= 1) & cell
    top = cn + np.array([rn[0] + 1.5, 0, 0])
    cap = (sum(((gi - ci) / r) ** 2 for gi, ci, r in zip(g, top, (1.2, 2.5, 2.5), strict=True)) <= 1) & cell
    return np.stack([nucleus * 100.0 + 5, cap * 80.0 + 5, cell, nucleus]).astype(np.float32)


def write_toy_store(path: Path, n: int, seed: int = 0) -> Path:
    from subcell.io import CellStoreWriter

    rng = np.random.default_rng(seed)
    with CellStoreWriter(path, channel_names=["dna", "cap", "cell_mask", "nucleus_mask"], box=BOX,
                         voxel_um=0.5) as w:  # fmt: skip
        for i in range(n):
            w.append(toy_cell(rng), {"label_id": i + 1, "source": "toy", "touches_border": False})
    return path


def toy_config(store: Path, out: Path, iterations: int = 150, **extra: object) -> dict:
    part = {"iterations": iterations, "lr": 2e-3, "network": {"latent_dim": 4, "depth": 2, "base_channels": 8},
            "beta": {"kind": "warmup", "warmup_steps": 50}}  # fmt: skip
    return {"cells": [str(store)], "output": str(out), "structures": ["dna", "cap"], "batch_size": 8,
            "reference": part, "conditional": part, "validate_every": 50, "checkpoint_every": 10,
            "val_fraction": 0.2, "test_fraction": 0.25, "precision": "fp32", **extra}  # fmt: skip
