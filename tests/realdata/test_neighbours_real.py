"""Neighbours and compartments of real Allen cells, as a user runs `measure` (opt-in with SUBCELL_TEST_DATA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from subcell import io
from subcell.cli.main import run

pytestmark = pytest.mark.realdata


def test_measure_gives_real_cells_their_nucleus_and_neighbours(real_data: Path, tmp_path: Path) -> None:
    """The Allen pipeline's 5 cells of FOV AICS-11_409 and their nuclei (nucleus i lies wholly inside cell i): each
    cell holds its one nucleus, whose size is the nucleus label's own, and the cells touching are mutual."""
    root = real_data / "aics_fov_11-409_brightfield_labels"
    cells, nuclei = root / "AICS-11_409_c5_SEG_Memb_labels_clean.tif", root / "AICS-11_409_c6_SEG_DNA_labels_clean.tif"
    out = tmp_path / "cells.csv"
    assert run(["measure", str(cells), str(out), "--intensity", str(root / "AICS-11_409_c3_Bright_100X.tif"),
                "--nuclei", str(nuclei), "--neighbours"]) == 0  # fmt: skip
    t = pd.read_csv(out, dtype={"neighbour_ids": str}).fillna({"neighbour_ids": ""}).set_index("label")
    assert len(t) == 5 and (t["nuclei"] == 1).all()
    img = io.read(nuclei)
    lab = img.numpy()[0, 0]
    voxel = float(np.prod(img.voxel_size.as_tuple()))
    for i in t.index:
        assert t.loc[i, "nucleus_volume_um3"] == pytest.approx((lab == i).sum() * voxel)
    assert (t["nucleus_fraction"].between(0.1, 0.8)).all()
    pairs = {(i, int(j)) for i, ids in t["neighbour_ids"].items() for j in str(ids).split(";") if j}
    assert pairs and all((j, i) in pairs for i, j in pairs)
    assert t["contact_fraction"].between(0, 1).all()
    # only the pipeline's accepted cells are labelled: those touching form a colony, a lone one its own
    assert (t["colony_cells"] == t["colony"].map(t["colony"].value_counts())).all()
    assert ((t["neighbours"] == 0) == (t["colony_cells"] == 1)).all()
