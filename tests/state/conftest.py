"""Fixtures of the cell-state tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from subcell.cells import ExtractConfig, extract_to_store
    from subcell.synth import synth_field

    items = []
    for seed in (1, 2, 3):
        f = synth_field(shape=(16, 192, 192), voxel_size=(0.5, 0.3, 0.3), seed=seed, **{"cells.mitotic_fraction": 0.4})
        mitotic = dict(zip(f.cells.cell_id, f.cells.mitotic, strict=True))
        for cid in np.unique(f.labels["cell"])[1:]:
            cell = (f.labels["cell"][0] == cid).astype(np.int32)
            nucleus = ((f.labels["nucleus"][0] == cid) & (cell > 0)).astype(np.int32)
            if nucleus.any():
                items.append((f.image, cell, nucleus, {"source": f"field{seed}",
                              "state": "mitotic" if mitotic[int(cid)] else "interphase"}))  # fmt: skip
    cfg = ExtractConfig(channels=["dna"], box=(24, 40, 40), voxel_um=0.5, border="flag", oversize="rescale")
    path = tmp_path_factory.mktemp("cells") / "cells.zarr"
    extract_to_store(items, path, cfg)
    return path
