"""Nucleus and cytoplasm of each cell: sizes, nuclei count, means and the N/C ratio, on layouts of known answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError
from subcell.metrics.compartments import compartment_table, nc_ratios

VS2 = (1.0, 0.2, 0.2)


def _plane() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two 2D cells (ids 3 and 7), each a 40×40 px square with a 12×12 px nucleus (ids 1 and 2); a reporter 4× as
    bright above the background (100) in the nucleus (300) as in the cytoplasm (150)."""
    cells = np.zeros((1, 60, 100), np.int32)
    cells[0, 10:50, 5:45], cells[0, 10:50, 55:95] = 3, 7
    nuclei = np.zeros_like(cells)
    nuclei[0, 24:36, 19:31], nuclei[0, 24:36, 69:81] = 1, 2
    img = np.full(cells.shape, 100.0)
    img[cells > 0] = 150.0
    img[nuclei > 0] = 300.0
    return cells, nuclei, img


def write_plane(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_plane` written as ``cells.ome.tif``, ``nuclei.ome.tif`` and ``img.ome.tif`` (channel ``yap``)."""
    from subcell.image import Image
    from subcell.io import write

    cells, nuclei, img = _plane()
    write(Image(cells[0].astype(np.uint16), voxel_size=VS2, dims="YX"), folder / "cells.ome.tif")
    write(Image(nuclei[0].astype(np.uint16), voxel_size=VS2, dims="YX"), folder / "nuclei.ome.tif")
    write(Image(img[0].astype(np.uint16), voxel_size=VS2, dims="YX", channel_names=["yap"]), folder / "img.ome.tif")
    return cells, nuclei, img


def test_sizes_and_means_of_the_two_compartments() -> None:
    cells, nuclei, img = _plane()
    t = compartment_table(cells, nuclei, voxel_size=VS2, intensity={"yap": img}, margin_um=0).set_index("label")
    assert t.loc[3, "nucleus_area_um2"] == pytest.approx(144 * 0.04)
    assert t.loc[3, "cytoplasm_area_um2"] == pytest.approx((1600 - 144) * 0.04)
    assert t.loc[7, "nucleus_fraction"] == pytest.approx(144 / 1600) and (t["nuclei"] == 1).all()
    assert (t["yap_nucleus_mean"] == 300).all() and (t["yap_cytoplasm_mean"] == 150).all()
    ratios = nc_ratios(t.assign(yap_background=100.0), ["yap"])
    assert np.allclose(ratios["yap_nc_ratio"], 4.0)
    # a cytoplasm no brighter than the background has no ratio
    dim = nc_ratios(t.assign(yap_background=150.0), ["yap"])
    assert dim["yap_nc_ratio"].isna().all()
    # ratios again with a known background replace the table's own (one column, not two of one name)
    again = nc_ratios(ratios, ["yap"], {"yap": 125.0})
    assert list(again.columns).count("yap_nc_ratio") == 1 and np.allclose(again["yap_nc_ratio"], 7.0)


def test_the_margin_keeps_the_blur_out_of_the_ratio() -> None:
    cells, nuclei, img = _plane()
    blurred = ndi.gaussian_filter(img, (0, 2.0, 2.0))  # the microscope mixes the compartments at the boundary
    ratio = {}
    for margin in (0.0, 1.2):  # 6 px of 0.2 µm: three blur widths
        t = compartment_table(cells, nuclei, voxel_size=VS2, intensity={"yap": blurred}, margin_um=margin)
        ratio[margin] = nc_ratios(t.assign(yap_background=100.0), ["yap"])["yap_nc_ratio"].to_numpy()
    assert (ratio[0.0] < 3.6).all()  # both means pulled towards each other
    assert np.allclose(ratio[1.2], 4.0, rtol=0.03)
    # the band inside the cell's edge keeps the background blurred into the cytoplasm out of it
    inner_only = compartment_table(cells, nuclei, voxel_size=VS2, intensity={"yap": blurred}, margin_um=1.2)
    assert inner_only["yap_cytoplasm_mean"].to_numpy() == pytest.approx(150.0, rel=0.01)
    # sizes are of the whole compartments, whatever the margin
    t = compartment_table(cells, nuclei, voxel_size=VS2, intensity={"yap": blurred}, margin_um=1.2)
    assert t.loc[0, "nucleus_area_um2"] == pytest.approx(144 * 0.04)
    with pytest.raises(ValueRangeError, match="margin must be >= 0"):
        compartment_table(cells, nuclei, voxel_size=VS2, margin_um=-1)


def test_nuclei_are_counted_by_the_cell_that_holds_most_of_them() -> None:
    cells, nuclei, _ = _plane()
    nuclei[0, 12:16, 8:12] = 5  # a second nucleus in cell 3: binucleate
    nuclei[0, 40:44, 39:49] = 6  # 6 of its 10 columns in cell 3, 4 outside: cell 3's
    nuclei[0, 12:16, 50:60] = 8  # 5 of its 10 columns in cell 7: no more than half, nobody's
    cells[0, 1:5, 1:5] = 9  # a cell whose nucleus was not found
    t = compartment_table(cells, nuclei, voxel_size=VS2).set_index("label")
    assert t["nuclei"].to_dict() == {3: 3, 7: 1, 9: 0}
    assert t.loc[9, "nucleus_fraction"] == 0
    # a mask (no ids; 8-bit 0/255 as Fiji saves it): its connected pieces are the nuclei
    mask = np.where(nuclei > 0, 255, 0).astype(np.uint8)
    assert compartment_table(cells, mask, voxel_size=VS2).set_index("label")["nuclei"].to_dict() == {3: 3, 7: 1, 9: 0}
    img = np.ones(cells.shape)
    lone = compartment_table(cells, nuclei, voxel_size=VS2, intensity={"a": img}).set_index("label")
    assert np.isnan(lone.loc[9, "a_nucleus_mean"]) and lone.loc[9, "a_cytoplasm_mean"] == 1.0


def test_compartments_in_3d_use_each_axis_voxel_size() -> None:
    cells = np.zeros((20, 40, 40), np.int32)
    cells[2:18, 5:35, 5:35] = 1
    nuclei = np.zeros_like(cells)
    nuclei[6:14, 14:26, 14:26] = 1
    # 0.45 µm inside the nucleus: its outer planes stay (0.5 µm voxels: their centres lie 0.5 µm from outside's),
    # two pixels go on each side (0.2 and 0.4 µm): the core is 8 planes of 8×8 px, bright 2; the band is 10
    img = np.ones(cells.shape)
    img[nuclei > 0] = 10.0
    img[6:14, 16:24, 16:24] = 2.0
    t = compartment_table(cells, nuclei, voxel_size=(0.5, 0.2, 0.2), intensity={"a": img}, margin_um=0.45)
    assert t.loc[0, "nucleus_volume_um3"] == pytest.approx(8 * 144 * 0.5 * 0.04)  # sizes: the whole nucleus
    assert t.loc[0, "a_nucleus_mean"] == 2.0 and t.loc[0, "a_cytoplasm_mean"] == 1.0
    wide = compartment_table(cells, nuclei, voxel_size=(0.5, 0.2, 0.2), intensity={"a": img}, margin_um=0.55)
    assert wide.loc[0, "a_nucleus_mean"] == 2.0  # the outer planes go too: a smaller core, all of it 2


def test_measure_cli_adds_the_compartments_of_each_cell(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell.cli.batch_commands import COMMANDS
    from subcell.cli.main import run
    from subcell.image import Image
    from subcell.io import write
    from subcell.io.manifest import ManifestRow
    from tests.conftest import cli_user_error

    cells, _, img = write_plane(tmp_path)
    out = tmp_path / "t.csv"
    args = ["measure", str(tmp_path / "cells.ome.tif"), str(out), "--intensity", str(tmp_path / "img.ome.tif")]
    assert run([*args, "--nuclei", str(tmp_path / "nuclei.ome.tif"), "--nc-margin-um", "0"]) == 0
    t = pd.read_csv(out).set_index("label")
    assert (t["yap_background"] == 100).all() and np.allclose(t["yap_nc_ratio"], 4.0)
    assert (t["nuclei"] == 1).all() and (t["yap_mean"] < 300).all()  # the cell's own columns are the whole cell
    # with --exclude too: the cell's columns are its cytoplasm, the compartments still of the whole cell
    assert run([*args, "--nuclei", str(tmp_path / "nuclei.ome.tif"), "--exclude", str(tmp_path / "nuclei.ome.tif"),
                "--overwrite"]) == 0  # fmt: skip
    t = pd.read_csv(out).set_index("label")
    assert (t["yap_mean"] == 150).all() and (t["nucleus_area_um2"] > 0).all()
    # a known background instead of the local one; a note where the local one swallows the cytoplasm
    capsys.readouterr()
    assert run([*args, "--nuclei", str(tmp_path / "nuclei.ome.tif"), "--nc-margin-um", "0", "--nc-background",
                "yap=125", "--overwrite"]) == 0  # fmt: skip
    assert np.allclose(pd.read_csv(out)["yap_nc_ratio"], 7.0) and "note" not in capsys.readouterr().err
    cells[0, 8:52, 3:47] = 3  # cell 3 drawn larger than itself: its unlabelled surroundings are no longer background
    cells[cells == 7] = 0
    write(Image(cells[0].astype(np.uint16), voxel_size=VS2, dims="YX"), tmp_path / "big.ome.tif")
    write(Image((img[0] + 50 * (cells[0] == 0)).astype(np.uint16), voxel_size=VS2, dims="YX", channel_names=["yap"]),
          tmp_path / "img.ome.tif", overwrite=True)  # fmt: skip
    assert run(["measure", str(tmp_path / "big.ome.tif"), str(tmp_path / "big.csv"), "--intensity",
                str(tmp_path / "img.ome.tif"), "--nuclei", str(tmp_path / "nuclei.ome.tif")]) == 0  # fmt: skip
    assert "note: 1 of 1 cells have no yap N/C ratio" in capsys.readouterr().err
    for extra, message in {("--nc-margin-um", "-1"): "nc_margin_um", ("--nc-background", "dna=3"): "no channel 'dna'",
                           ("--nc-background", "x"): "expected VALUE or NAME=VALUE"}.items():  # fmt: skip
        err = cli_user_error(capsys, *args[:2], str(tmp_path / "u.csv"), *args[3:], "--nuclei",
                             str(tmp_path / "nuclei.ome.tif"), *extra)  # fmt: skip
        assert message in err and not (tmp_path / "u.csv").exists()
    err = cli_user_error(capsys, *args[:2], str(tmp_path / "u.csv"), *args[3:], "--nc-background", "100")
    assert "give --nuclei" in err
    # batch measure: a row's `nuclei` column, also beside an image's companion labels with an `exclude` column
    row = ManifestRow(row=0, source=tmp_path / "img.ome.tif",
                      metadata={"labels": "cells.ome.tif", "nuclei": "nuclei.ome.tif", "exclude": "nuclei.ome.tif"})  # fmt: skip
    measured, options, inputs = COMMANDS["measure"].row_args(row, tmp_path)
    assert measured == [str(tmp_path / "cells.ome.tif")]
    assert options[-4:] == ["--exclude", str(tmp_path / "nuclei.ome.tif"), "--nuclei", str(tmp_path / "nuclei.ome.tif")]
    assert inputs[-1] == tmp_path / "nuclei.ome.tif"
