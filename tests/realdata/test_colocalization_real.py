"""Colocalization per cell on the shared real Allen mitotic cells, as a user runs it (opt-in with SUBCELL_TEST_DATA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from subcell import io
from subcell.cli.main import run
from subcell.metrics.colocalization import colocalization

pytestmark = pytest.mark.realdata

VS = ["0.29", "0.30", "0.33"]  # approximate (data README)


@pytest.mark.parametrize("name", ["TOMM20_M2", "LMNB1_M6"])
def test_measure_colocalizes_a_real_cells_channels(real_data: Path, tmp_path: Path, name: str) -> None:
    cell = real_data / "aics_mitotic_cells" / "cells" / f"{name}.tif"
    mask = tmp_path / "cell.ome.zarr"
    # the cell mask is stored resampled (0/255 with interpolated edges): made a mask first, as measure asks
    assert run(["convert", str(cell), str(mask), "-c", "3", "--threshold", "128", "--voxel-size", *VS]) == 0
    out = tmp_path / "coloc.csv"
    assert run(["measure", str(mask), str(out), "--intensity", str(cell), "--voxel-size", *VS, "--no-components",
                "--colocalize", "1,2", "--colocalize", "2,2", "--coloc-randomizations", "19"]) == 0  # fmt: skip
    row = pd.read_csv(out).iloc[0]
    channels = io.read(cell, voxel_size=[float(v) for v in VS]).channel_names
    dna, struct = channels[1], channels[2]
    self_pair = f"coloc_{struct}_{struct}"
    assert row[f"{self_pair}_pearson"] == pytest.approx(1.0) and row[f"{self_pair}_m1"] == pytest.approx(1.0)
    assert row[f"{self_pair}_p_value"] == pytest.approx(1 / 20)  # no shuffle matches a channel with itself
    a = io.read(cell, voxel_size=[float(v) for v in VS]).numpy()[0]
    inside = a[3] >= 128
    direct = colocalization(a[1], a[2], inside)
    pair = f"coloc_{dna}_{struct}"
    assert row[f"{pair}_pearson"] == pytest.approx(direct.pearson)
    assert row[f"{pair}_m1"] == pytest.approx(direct.m1) and 0 <= row[f"{pair}_m2"] <= 1
    assert row.voxels == inside.sum() and np.isfinite(row[f"{pair}_threshold_a"])
