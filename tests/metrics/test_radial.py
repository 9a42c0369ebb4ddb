"""Where a channel's signal lies in each cell, centre (or nucleus) to edge, on layouts of known answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from subcell.errors import ValueRangeError
from subcell.metrics.radial import radial_positions, radial_table


def _disc(radius: int = 20, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= radius**2


def test_an_even_signal_has_every_shells_share_of_the_voxels() -> None:
    cell = _disc()
    lab = cell[None].astype(np.int32)
    t = radial_table(lab, voxel_size=(1, 0.2, 0.2), intensity={"a": np.full(lab.shape, 7.0)}, bins=4)
    meanfrac = t[[f"a_radial_meanfrac_{k}" for k in range(1, 5)]].to_numpy()
    assert np.allclose(meanfrac, 1.0) and t[[f"a_radial_frac_{k}" for k in range(1, 5)]].sum(axis=1).iloc[0] == 1.0
    # a disc's voxels lie mostly outward: the even signal's mean position is the voxels' own (2/3 for a disc)
    assert t.loc[0, "a_radial_mean"] == pytest.approx(2 / 3, abs=0.03)


def test_a_rim_or_a_core_signal_falls_in_the_outer_or_inner_shell() -> None:
    cell = _disc()
    lab = cell[None].astype(np.int32)
    region, pos = radial_positions(cell[None], None, (1, 0.2, 0.2))
    rim = np.zeros(cell.shape)
    rim[region[0]] = pos >= 0.8  # the outer fifth
    core = np.zeros(cell.shape)
    core[region[0]] = pos < 0.2
    t = radial_table(lab, voxel_size=(1, 0.2, 0.2), intensity={"rim": rim[None] + 100, "core": core[None] + 100},
                     bins=5, background={"rim": {1: 100.0}, "core": {1: 100.0}})  # fmt: skip
    assert t.loc[0, "rim_radial_frac_5"] == pytest.approx(1.0) and t.loc[0, "rim_radial_mean"] > 0.8
    assert t.loc[0, "core_radial_frac_1"] == pytest.approx(1.0) and t.loc[0, "core_radial_mean"] < 0.2
    assert t.loc[0, "rim_radial_meanfrac_5"] > 2
    # without its background the offset spreads evenly and hides the rim
    raw = radial_table(lab, voxel_size=(1, 0.2, 0.2), intensity={"rim": rim[None] + 100}, bins=5)
    assert raw.loc[0, "rim_radial_frac_5"] < 0.4
    with pytest.raises(ValueRangeError, match="radial bins"):
        radial_table(lab, voxel_size=(1, 0.2, 0.2), intensity={"rim": rim[None]}, bins=0)
    # an image of another shape is refused, even one of as many voxels (it was silently reshaped)
    with pytest.raises(ValueRangeError, match="intensity has shape"):
        radial_table(lab, voxel_size=(1, 0.2, 0.2), intensity={"rim": rim.reshape(32, 128)})


def test_with_a_nucleus_positions_run_from_its_boundary_to_the_cell_edge() -> None:
    # a box cell with a box nucleus at one end: the cytoplasm runs 0 → 1 from the nucleus to the cell's edge
    cell = np.zeros((20, 40, 60), bool)
    cell[1:19, 2:38, 2:58] = True
    nucleus = np.zeros_like(cell)
    nucleus[1:19, 2:38, 2:20] = True
    region, pos = radial_positions(cell, nucleus, (0.5, 0.5, 0.5))
    assert not (region & nucleus).any() and pos.min() > 0 and pos.max() < 1
    near = np.where(nucleus, 1000.0, 0.0)  # the nucleus itself is left out of the cytoplasm's distribution
    near[7:13, 14:26, 20:23] = 10.0  # against the nucleus, mid-cell: ≤ 1.5 µm from it, ≥ 3 µm from the edge
    far = np.zeros(cell.shape)
    far[7:13, 14:26, 55:58] = 10.0  # against the far edge, 17.5 µm from the nucleus
    t = radial_table(cell.astype(np.int32), voxel_size=(0.5, 0.5, 0.5), intensity={"er": near, "far": far}, bins=4,
                     nuclei=nucleus.astype(np.uint8))  # fmt: skip
    assert t.loc[0, "er_radial_frac_1"] + t.loc[0, "er_radial_frac_2"] == pytest.approx(1.0)
    assert t.loc[0, "er_radial_mean"] < 0.35 and t.loc[0, "far_radial_frac_4"] == pytest.approx(1.0)
    assert np.isnan(radial_table(cell.astype(np.int32), voxel_size=(0.5, 0.5, 0.5),
                                 intensity={"none": np.zeros(cell.shape)})["none_radial_mean"].iloc[0])  # fmt: skip


def test_measure_cli_adds_the_radial_distribution(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell.cli.main import run
    from tests.conftest import cli_user_error
    from tests.metrics.test_compartments import write_plane

    write_plane(tmp_path)
    out = tmp_path / "t.csv"
    args = ["measure", str(tmp_path / "cells.ome.tif"), str(out), "--intensity", str(tmp_path / "img.ome.tif")]
    assert run([*args, "--radial", "3"]) == 0
    t = pd.read_csv(out)
    # the nucleus (300 over a background of 100) sits at each cell's centre: the inner shell holds the most
    assert (t["yap_radial_meanfrac_1"] > 1.5).all() and np.allclose(t.filter(like="yap_radial_frac_").sum(axis=1), 1)
    assert run([*args, "--radial", "3", "--nuclei", str(tmp_path / "nuclei.ome.tif"), "--overwrite"]) == 0
    t = pd.read_csv(out)  # from the nucleus out, the cytoplasm is even (150 everywhere)
    assert np.allclose(t.filter(like="yap_radial_meanfrac_").to_numpy(), 1.0, atol=0.02)
    err = cli_user_error(capsys, *args[:2], str(tmp_path / "u.csv"), "--radial", "3")
    assert "give --intensity" in err and not (tmp_path / "u.csv").exists()
    err = cli_user_error(capsys, *args[:2], str(tmp_path / "u.csv"), *args[3:], "--radial", "-2")
    assert "--radial must be 0" in err
