"""Single-cell extraction, shape space and the integrated model on the shared real Allen data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from subcell import Image, io
from subcell.cells import ExtractConfig, extract_to_store, shape_space_of_store

pytestmark = pytest.mark.realdata

MITOTIC_VS = (0.29, 0.30, 0.33)  # approximate (data README)
CHANNELS = ["membrane", "dna", "structure", "seg_cell", "seg_dna", "seg_struct"]


def mitotic_cells(root: Path, structure: str) -> list:
    index = pd.read_csv(root / "aics_mitotic_cells" / "cells" / "index.csv")
    out = []
    for r in index[index.structure == structure].itertuples():
        img = io.read(root / "aics_mitotic_cells" / "cells" / r.file, voxel_size=MITOTIC_VS, channel_names=CHANNELS)
        a = img.numpy()[0]
        cell = (a[3] >= 128).astype(np.int32)
        out.append((img, cell, ((a[4] >= 128) & (cell > 0)).astype(np.int32),
                    {"source": r.file, "structure": r.structure, "state": r.mitotic_stage}))  # fmt: skip
    return out


def test_mitotic_cells_extract_shape_and_integrated_model(real_data: Path, tmp_path: Path) -> None:
    fields = mitotic_cells(real_data.resolve(), "LMNB1") + mitotic_cells(real_data.resolve(), "TOMM20")
    cfg = ExtractConfig(channels=["membrane", "dna", "structure"], box=(32, 48, 48), voxel_um=0.8, border="flag",
                        oversize="rescale", margin_um=0.3)  # fmt: skip
    table = extract_to_store(fields, tmp_path / "c.zarr", cfg)
    assert (table.crop_index >= 0).sum() == 14 and set(table.state) == {f"M{i}" for i in range(1, 8)}
    store = io.read_cell_store(tmp_path / "c.zarr")
    for r in store.extracted.itertuples():
        crop = store.crop(r.crop_index)
        cell_vol = crop[store.channel_index("cell_mask")].sum() * 0.8**3 * r.align_scale**3
        assert cell_vol == pytest.approx(r.cell_volume_um3, rel=0.15)
        centre = np.argwhere(crop[store.channel_index("nucleus_mask")] > 0).mean(axis=0)
        assert np.allclose(centre, (np.array(cfg.box) - 1) / 2, atol=2.5)  # chromatin can be split in anaphase
    shape = shape_space_of_store(store, lmax=6, n_modes=4, walk_modes=1)
    assert shape.table.cell_sh_error_um.median() < 1.0 and len(shape.table) == 14
    pytest.importorskip("torch")
    from subcell.integrated import TrainConfig, evaluate_model, train_integrated

    part = {"iterations": 6, "network": {"latent_dim": 4, "depth": 2, "base_channels": 4}}
    res = train_integrated(TrainConfig(cells=[tmp_path / "c.zarr"], output=tmp_path / "m", structures=["structure"],
                                       reference=part, conditional=part, test_fraction=0.3, val_fraction=0.1,
                                       batch_size=2, validate_every=3))  # fmt: skip
    assert res.model.structures == ["LMNB1", "TOMM20"] or res.model.structures == ["TOMM20", "LMNB1"]
    ev = evaluate_model(res.model, res.data, res.split["test"], samples=1)
    assert np.isfinite(ev.summary.elbo_nats).all()


@pytest.mark.slow  # ~60 s on 2 cores; the default suite must stay under 12 minutes (run with `make test-all`)
def test_fov_cells_shape_space(real_data: Path, tmp_path: Path) -> None:
    root = real_data.resolve() / "aics_fov_cell_nucleus_labels"
    vs = (0.29, 0.108, 0.108)  # not in the files (data README); nominal Allen pipeline size
    cells = io.read(root / "input_1_cellWholeIndex.tiff", voxel_size=vs, axes="ZYX").numpy()[0, 0].astype(np.int32)
    nuclei = io.read(root / "input_2_nucWholeIndex.tiff", voxel_size=vs, axes="ZYX").numpy()[0, 0].astype(np.int32)
    image = Image((cells > 0).astype(np.uint8), voxel_size=vs, dims="ZYX", channel_names=["foreground"])
    cfg = ExtractConfig(box=(48, 64, 64), voxel_um=0.5, border="flag", oversize="rescale")
    table = extract_to_store([(image, cells, nuclei, {"source": "fov"})], tmp_path / "c.zarr", cfg)
    n_ids = len(set(np.unique(cells)) - {0})
    assert (table.crop_index >= 0).sum() == n_ids and table.touches_border.any()
    measured = np.bincount(cells.ravel())[table.label_id] * np.prod(vs)
    assert np.allclose(table.cell_volume_um3, measured)  # shape features are voxel counts in µm³
    shape = shape_space_of_store(io.read_cell_store(tmp_path / "c.zarr"), lmax=8, n_modes=5, walk_modes=1)
    assert shape.table.nucleus_sh_error_um.median() < 0.3 and shape.modes.explained_variance_ratio[0] > 0.2
