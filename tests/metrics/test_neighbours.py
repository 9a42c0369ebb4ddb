"""Neighbours, contact and colonies of labelled cells, on layouts whose answers are known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from subcell.errors import ValueRangeError
from subcell.metrics.neighbours import colony_context, neighbour_table, neighbours


def _grid(rows: int, cols: int, *, size: int = 10, gap: int = 1, at: tuple[int, int] = (20, 20),
          shape: tuple[int, int] = (120, 160), first: int = 1) -> np.ndarray:  # fmt: skip
    """A (1, Y, X) colony of ``rows`` × ``cols`` square cells ``size`` pixels wide, ``gap`` pixels apart."""
    lab = np.zeros((1, *shape), np.int32)
    for r in range(rows):
        for c in range(cols):
            y, x = at[0] + r * (size + gap), at[1] + c * (size + gap)
            lab[0, y : y + size, x : x + size] = first + r * cols + c
    return lab


def test_neighbours_are_separated_by_at_most_the_distance_in_um() -> None:
    lab = np.zeros((6, 12, 40), np.int32)
    lab[1:5, 2:10, 2:10] = 1
    lab[1:5, 2:10, 10:18] = 2  # touches 1 face to face
    lab[1:5, 2:10, 21:29] = 3  # 3 voxels (0.6 µm along x) of background after 2
    vs = (0.5, 0.2, 0.2)
    assert neighbours(lab, voxel_size=vs, distance_um=0)[1]["ids"] == [2]
    assert neighbours(lab, voxel_size=vs, distance_um=0)[2]["ids"] == [1]
    assert neighbours(lab, voxel_size=vs, distance_um=0.5)[2]["ids"] == [1]
    assert neighbours(lab, voxel_size=vs, distance_um=0.6)[2]["ids"] == [1, 3]
    assert neighbours(lab, voxel_size=vs, distance_um=0.6)[3]["ids"] == [2]
    # 3 lies 1.6 µm from 1's side, but behind 2: no neighbour through another cell, whatever the distance
    assert neighbours(lab, voxel_size=vs, distance_um=3.0)[1]["ids"] == [2]
    # along z one voxel of background is 0.5 µm: the voxel size of each axis counts
    stack = np.zeros((8, 8, 8), np.int32)
    stack[0:3, 2:6, 2:6], stack[4:7, 2:6, 2:6] = 1, 2
    assert neighbours(stack, voxel_size=vs, distance_um=0.4)[1]["ids"] == []
    assert neighbours(stack, voxel_size=vs, distance_um=0.5)[1]["ids"] == [2]
    with pytest.raises(ValueRangeError, match="neighbour distance must be >= 0"):
        neighbours(lab, voxel_size=vs, distance_um=-1)


def test_contact_fraction_is_the_share_of_the_outline_in_µm() -> None:
    lab = np.zeros((1, 40, 60), np.int32)
    lab[0, 10:20, 10:30] = 1  # 2 µm tall (y 0.2 µm), 2 µm wide (x 0.1 µm): its right side is a quarter of it
    lab[0, 5:25, 30:40] = 2
    near = neighbours(lab, voxel_size=(1.0, 0.2, 0.1), distance_um=0)
    assert near[1]["contact_fraction"] == pytest.approx(0.25)
    # 2 is 4 µm tall and 1 µm wide: 2 µm of its 10 µm outline touch 1
    assert near[2]["contact_fraction"] == pytest.approx(0.2)
    alone = np.zeros((1, 20, 20), np.int32)
    alone[0, 5:10, 5:10] = 4
    assert neighbours(alone, voxel_size=(1, 1, 1))[4] == {"ids": [], "contact_um2": {}, "contact_fraction": 0.0}
    assert near[1]["contact_um2"] == {2: pytest.approx(2.0)}  # in a plane, the length of contact (µm)


def test_a_cell_cut_by_the_field_border_keeps_its_cut_out_of_its_surface() -> None:
    lab = np.zeros((1, 20, 20), np.int32)
    lab[0, 0:10, 0:10], lab[0, 0:10, 10:20] = 1, 2  # both cut by the top border, 2 also by the right one
    near = neighbours(lab, voxel_size=(1, 1, 1), distance_um=0)
    assert near[1]["contact_fraction"] == pytest.approx(10 / 20)  # left and bottom seen, right side touches 2
    assert near[2]["contact_fraction"] == pytest.approx(10 / 20)


def test_neighbour_table_counts_a_grids_neighbours_and_spacing() -> None:
    lab = _grid(3, 4, gap=1)  # a watershed line between cells
    table = neighbour_table(lab, voxel_size=(1.0, 0.5, 0.5), distance_um=1.0).set_index("label")
    # a grid's corner cells have 2 face neighbours, edge ones 3, inner ones 4 (the diagonal is 1.4 px away)
    expected = {1: 2, 2: 3, 3: 3, 4: 2, 5: 3, 6: 4, 7: 4, 8: 3, 9: 2, 10: 3, 11: 3, 12: 2}
    assert table["neighbours"].to_dict() == expected
    assert table.loc[6, "neighbour_ids"] == "2;5;7;10"
    assert table.loc[6, "neighbour_contact_um2"] == "5;5;5;5"  # each side: 10 px of 0.5 µm
    assert np.allclose(table["nearest_neighbour_um"], 5.5)  # 11 px of 0.5 µm
    # a cell nearer the field's border than its nearest neighbour: one may lie beyond it
    edge = neighbour_table(_grid(2, 2, at=(2, 40)), voxel_size=(1, 0.5, 0.5)).set_index("label")
    assert (
        edge.loc[[1, 2], "nearest_neighbour_um"].isna().all() and (edge.loc[[3, 4], "nearest_neighbour_um"] > 0).all()
    )
    # touching only: the watershed line parts them
    assert (neighbour_table(lab, voxel_size=(1, 0.5, 0.5), distance_um=0)["neighbours"] == 0).all()


def test_colonies_close_their_gaps_and_measure_the_edge_distance() -> None:
    a = _grid(5, 5, gap=1, at=(20, 10), shape=(120, 200))
    b = _grid(2, 2, gap=1, at=(30, 150), shape=(120, 200), first=26)  # 21 px from a's right side
    lab = np.maximum(a, b)
    vs = (1.0, 0.5, 0.5)
    table = colony_context(lab, voxel_size=vs, gap_um=2.0).set_index("label")
    assert table.loc[1:25, "colony"].nunique() == 1 and table.loc[26:29, "colony"].nunique() == 1
    assert table.loc[1, "colony"] != table.loc[26, "colony"]
    assert (table.loc[1:25, "colony_cells"] == 25).all() and (table.loc[26:29, "colony_cells"] == 4).all()
    assert table.loc[1, "colony_area_um2"] == pytest.approx((54 * 0.5) ** 2)  # the lines between cells closed
    ring = {1, 2, 3, 4, 5, 6, 10, 11, 15, 16, 20, 21, 22, 23, 24, 25}
    assert set(table.index[table["colony_edge"]]) == ring | {26, 27, 28, 29}
    # the middle cell's centroid (pixel 20 + 2·11 + 4.5) lies 26.5 px from the colony's first pixel: 27 px (13.5
    # µm) from its edge
    assert table.loc[13, "colony_edge_distance_um"] == pytest.approx(13.5)
    assert table.loc[1, "colony_edge_distance_um"] == pytest.approx(2.5)  # 5 px from two edges
    assert not table["colony_touches_border"].any() and not table["colony_edge_censored"].any()
    # a cell missing inside the colony (not segmented, or dead) leaves a hole, not an edge
    holed = np.where(lab == 13, 0, lab)
    inner = colony_context(holed, voxel_size=vs, gap_um=2.0).set_index("label")
    assert set(inner.index[inner["colony_edge"]]) == ring | {26, 27, 28, 29}
    assert inner.loc[1, "colony_area_um2"] == table.loc[1, "colony_area_um2"]
    # gaps wider than gap_um part the cells: every cell its own colony, every cell at an edge
    apart = colony_context(lab, voxel_size=vs, gap_um=0.4)
    assert apart["colony"].nunique() == 29 and apart["colony_edge"].all()


def test_the_field_border_is_not_a_colony_edge() -> None:
    lab = _grid(4, 8, gap=1, at=(30, 0), shape=(100, 80))  # cut by the left and right borders
    table = colony_context(lab, voxel_size=(1, 1, 1), gap_um=2).set_index("label")
    assert table["colony_touches_border"].all()
    # the second row's cells lie 16 px below the colony's top edge (pixel 30 + 11 + 4.5 from its side at 29.5),
    # but the side border is nearer for the first two (centroids 4.5 and 15.5 px from it): the colony goes on
    assert table.loc[11, "colony_edge_distance_um"] == pytest.approx(16.0)
    assert not table.loc[11, "colony_edge_censored"]
    for i in (9, 10):
        assert np.isnan(table.loc[i, "colony_edge_distance_um"]) and table.loc[i, "colony_edge_censored"]
    assert table.loc[1, "colony_edge"] and not table.loc[9, "colony_edge"]  # the border beside 9 is no edge
    full = colony_context(np.ones((1, 20, 20), np.int32), voxel_size=(1, 1, 1))
    assert full["colony_edge_censored"].all() and not full["colony_edge"].any()


def test_measure_cli_adds_neighbours_from_the_cells_before_exclude(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell.cli.main import run
    from subcell.image import Image
    from subcell.io import write
    from subcell.synth import synth_field
    from tests.conftest import cli_user_error

    f = synth_field(shape=(12, 192, 192), n_cells=5, seed=4)
    vs = f.image.voxel_size.as_tuple()
    cell, nucleus = f.labels["cell"][0], f.labels["nucleus"][0]
    for name, arr in (("cell", cell), ("nucleus", nucleus)):
        write(Image(arr.astype(np.uint16), voxel_size=vs, dims="ZYX"), tmp_path / f"{name}.ome.tif")
    out = tmp_path / "t.csv"
    args = ["measure", str(tmp_path / "cell.ome.tif"), str(out), "--neighbours", "--neighbour-um", "0.5"]
    assert run([*args, "--exclude", str(tmp_path / "nucleus.ome.tif")]) == 0
    got = pd.read_csv(out, keep_default_na=False, na_values=[""]).set_index("label")
    direct = neighbour_table(cell, voxel_size=vs, distance_um=0.5).set_index("label")
    assert got["neighbours"].to_dict() == direct["neighbours"].to_dict() and got["neighbours"].sum() > 0
    assert np.allclose(got["contact_fraction"], direct["contact_fraction"])
    assert got["colony"].notna().all() and "colony_edge_distance_um" in got
    for i, ids in direct["neighbour_ids"].items():  # neighbours are mutual
        for j in filter(None, str(ids).split(";")):
            assert str(i) in direct.loc[int(j), "neighbour_ids"].split(";")
    err = cli_user_error(capsys, *args[:2], str(tmp_path / "u.csv"), "--neighbours", "--colony-gap-um", "-1")
    assert "colony_gap_um" in err and "-1" in err and not (tmp_path / "u.csv").exists()


def test_an_empty_frame_keeps_the_columns_and_dtypes() -> None:
    """A movie's frames are measured one by one and concatenated (and gathered into one Parquet dataset): a frame
    without objects must not turn the ids or flags into objects or floats."""
    from subcell.metrics.neighbours import NeighbourSpec
    from subcell.segment import measure_frames

    lab = np.zeros((2, 4, 40, 40), np.uint16)
    lab[0, :, 5:15, 5:15], lab[0, :, 5:15, 15:25] = 1, 2
    table = measure_frames(lab, voxel_size=(1, 0.5, 0.5), neighbours=NeighbourSpec())
    assert table["neighbour_ids"].tolist() == ["2", "1"] and table["colony_cells"].tolist() == [2, 2]
    empty = measure_frames(lab[1:], voxel_size=(1, 0.5, 0.5), neighbours=NeighbourSpec())
    assert len(empty) == 0 and empty.dtypes.to_dict() == table.dtypes.to_dict()
