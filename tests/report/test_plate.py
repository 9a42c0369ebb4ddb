"""A plate's readout: a gathered per-object table summarised per well and drawn as plate maps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from subcell.report.plate import plate_grid, plate_map_png, readout_columns, readouts, well_summary


def _objects(field: str, well: str, sizes: list[float], frames: int = 1) -> list[dict[str, object]]:
    row, column = well[0], well[1:]
    return [{"id": field, "well": well, "row": row, "column": column, "t": t, "label": i + 1, "volume_um3": v}
            for t in range(frames) for i, v in enumerate(sizes)]  # fmt: skip


def test_wells_in_plate_order_with_objects_per_field_and_median_size() -> None:
    table = pd.DataFrame(
        _objects("a10_0", "A10", [1.0, 2.0, 3.0])
        + _objects("a2_0", "A2", [10.0])
        + _objects("a2_1", "A2", [20.0, 30.0, 40.0])
        + _objects("b1_0", "B1", [5.0, 7.0], frames=3)  # a time-lapse: 2 objects per frame
    )
    fields = pd.DataFrame({"id": ["a2_2", "c1_0"], "well": ["A2", "C1"], "row": ["A", "C"], "column": ["2", "1"]})
    s = well_summary(table, fields).set_index("well")
    assert list(s.index) == ["A2", "A10", "B1", "C1"]  # A2 before A10: columns are numbers
    assert s.loc["A2", ["fields", "objects"]].tolist() == [3, 4]  # its third field ran and found nothing
    assert s.loc["A2", "objects_per_field"] == pytest.approx((1 + 3 + 0) / 3)
    assert s.loc["B1", "objects_per_field"] == pytest.approx(2.0) and s.loc["B1", "objects"] == 6
    assert s.loc["C1", ["fields", "objects"]].tolist() == [1, 0] and np.isnan(s.loc["C1", "median_volume_um3"])
    assert s.loc["A2", "median_volume_um3"] == pytest.approx(25.0) and s.loc["A10", "median_volume_um3"] == 2.0
    moving = table.assign(speed_um_per_min=np.arange(len(table), dtype=float))  # a tracked object's speed too
    assert well_summary(moving).set_index("well").loc["A10", "median_speed_um_per_min"] == pytest.approx(1.0)
    stained = table.assign(dna_mean=np.arange(len(table), dtype=float), dna_std=1.0)  # `measure --intensity`
    assert readouts(stained.columns) == {"volume_um3": "median size (µm³)", "dna_mean": "median dna intensity"}
    assert well_summary(stained).set_index("well").loc["A10", "median_dna_mean"] == pytest.approx(1.0)
    # with each object's local background (`measure`): the same nuclei in A2 on a background 100 brighter read
    # 100 brighter in the raw mean, the same above the background
    lit = stained.assign(dna_mean=stained.dna_mean + 100.0 * (stained.well == "A2"), dna_background=0.0)
    lit.loc[lit.well == "A2", "dna_background"] = 100.0
    assert readouts(lit.columns)["dna_above_background"] == "median dna above background"
    assert readout_columns(lit.columns) == ["volume_um3", "dna_mean", "dna_background"]
    both = well_summary(lit).set_index("well")
    assert both.loc["A2", "median_dna_mean"] - both.loc["A2", "median_dna_above_background"] == pytest.approx(100.0)
    assert both.loc["A10", "median_dna_above_background"] == both.loc["A10", "median_dna_mean"]
    # `measure --colocalize dna,mito`: the pair's r, M1 and M2 per well (not its thresholds or P-values)
    paired = stained.assign(coloc_dna_mito_pearson=np.arange(len(table), dtype=float), coloc_dna_mito_m1=0.5,
                            coloc_dna_mito_m2=0.25, coloc_dna_mito_threshold_a=9.0, coloc_dna_mito_p_value=0.01)  # fmt: skip
    said = readouts(paired.columns)
    assert said["coloc_dna_mito_pearson"] == "median r dna_mito" and said["coloc_dna_mito_m1"] == "median M1 dna_mito"
    assert "coloc_dna_mito_threshold_a" not in said and "coloc_dna_mito_p_value" not in said
    per_well = well_summary(paired).set_index("well")
    assert per_well.loc["A10", "median_coloc_dna_mito_pearson"] == pytest.approx(1.0)
    assert per_well.loc["B1", "median_coloc_dna_mito_m2"] == 0.25
    # `measure --neighbours`: how crowded, how deep in their colonies (censored distances, NaN, left out)
    crowded = table.assign(neighbours=np.arange(len(table)), colony_edge_distance_um=np.nan, neighbour_ids="")
    crowded.loc[crowded.well == "A10", "colony_edge_distance_um"] = [3.0, np.nan, 5.0]  # its three objects
    assert readouts(crowded.columns)["neighbours"] == "median neighbours" and "neighbour_ids" not in readouts(
        crowded.columns
    )
    near = well_summary(crowded).set_index("well")
    assert near.loc["A10", "median_neighbours"] == pytest.approx(1.0)
    assert near.loc["A10", "median_colony_edge_distance_um"] == pytest.approx(4.0)
    # `measure --nuclei`: a translocation assay's N/C ratio per well
    moved = table.assign(yap_nc_ratio=np.arange(len(table), dtype=float), yap_nucleus_mean=1.0)
    assert readouts(moved.columns)["yap_nc_ratio"] == "median yap N/C ratio"
    assert readouts(moved.assign(yap_radial_mean=0.5).columns)["yap_radial_mean"] == "median yap radial position"
    assert well_summary(moved).set_index("well").loc["A10", "median_yap_nc_ratio"] == pytest.approx(1.0)
    png = plate_map_png(s.reset_index(), [("objects_per_field", "objects per field")])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_plate_grid_places_each_well_in_its_row_and_column() -> None:
    summary = pd.DataFrame({"well": ["A1", "C3", "B2"], "row": ["A", "C", "B"], "column": ["1", "3", "2"],
                            "objects_per_field": [1.0, 9.0, 4.0]})  # fmt: skip
    rows, columns, grid = plate_grid(summary, "objects_per_field")
    assert rows == ["A", "B", "C"] and columns == ["1", "2", "3"]
    np.testing.assert_array_equal(np.isnan(grid), ~np.eye(3, dtype=bool))  # only the diagonal has wells
    assert np.diag(grid).tolist() == [1.0, 4.0, 9.0]
    sparse = summary.iloc[[0, 1]]  # A1 and C3 only: B and 2 are kept, the plate's geometry
    assert plate_grid(sparse, "objects_per_field")[:2] == (["A", "B", "C"], ["1", "2", "3"])
