"""Tracking a movie whose stage drifts: ``track_timelapse(drift_um=)`` and ``subcell track --drift``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from subcell.track import track_timelapse

VS = (1.0, 0.5, 0.5)


def jittered(n_t: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Four still nuclei (6 × 6 voxels, 3 µm) 14 µm apart on a stage that jumps 4 µm back and forth each frame
    (a multi-position time-lapse's repositioning error): ``(labels (T, 1, Y, X), drift (T, 3) µm)``."""
    drift_vox = np.array([[0, 0, 0], [0, 8, 0], [0, 0, 8], [0, 8, 8], [0, -2, 3], [0, 6, -5]])[:n_t]
    lab = np.zeros((n_t, 1, 96, 96), np.uint16)
    for t, (_, dy, dx) in enumerate(drift_vox):
        for i, (y, x) in enumerate([(20, 20), (20, 48), (48, 20), (48, 48)]):
            lab[t, 0, y + dy : y + dy + 6, x + dx : x + dx + 6] = i + 1
    return lab, drift_vox * np.array(VS)


def test_drift_is_taken_out_when_linking_and_measuring_motion() -> None:
    lab, drift = jittered()
    # 1 µm/min over 1-min frames: 1 µm reach, far below the 4 µm jumps
    loose = track_timelapse(lab, voxel_size=VS, time_interval_s=60)
    assert len(loose.lineage) > 4  # the jumps break every track
    tr = track_timelapse(lab, voxel_size=VS, time_interval_s=60, drift_um=drift)
    assert len(tr.lineage) == 4 and (tr.lineage["n_frames"] == 6).all()
    assert np.allclose(tr.table["step_um"].dropna(), 0.0) and np.allclose(tr.lineage["path_length_um"], 0.0)
    first = tr.table[tr.table.t == 3].sort_values("label")  # positions stay where each object is in its frame
    assert first["y_um"].tolist() == pytest.approx([(20 + 8 + 2.5) * 0.5] * 2 + [(48 + 8 + 2.5) * 0.5] * 2)
    assert (first["drift_y_um"] == 4.0).all() and (first["drift_x_um"] == 4.0).all()
    with pytest.raises(ValueError, match="one finite \\(z, y, x\\) row per frame"):
        track_timelapse(lab, voxel_size=VS, time_interval_s=60, drift_um=drift[:3])


def test_cli_track_drift_auto_and_from_a_table(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    from subcell.cli.main import run
    from subcell.image import Image
    from subcell.io import write
    from tests.conftest import cli_user_error

    lab, drift = jittered()
    movie = tmp_path / "nuclei.ome.tif"
    write(Image(lab, voxel_size=VS, dims="TCYX", time_interval=60.0), movie)
    assert run(["track", str(movie), str(tmp_path / "plain")]) == 0
    assert pd.read_parquet(tmp_path / "plain" / "lineage.parquet").shape[0] > 4
    capsys.readouterr()
    assert run(["track", str(movie), str(tmp_path / "auto"), "--drift", "auto"]) == 0
    assert "drift taken out: at most 0.00 µm in z, 4.00 in y, 4.00 in x" in capsys.readouterr().out
    lineage = pd.read_parquet(tmp_path / "auto" / "lineage.parquet")
    assert len(lineage) == 4 and lineage["path_length_um"].abs().max() < 0.05
    from subcell.report.collect import collect_sections

    said = {s.name: s for s in collect_sections(tmp_path / "auto")}["Dynamics"].lines
    assert (
        "tracks.parquet: linked and measured without the stage's drift (at most 0.00 µm in z, 4.00 in y, 4.00 in x)"
        in said
    )
    table = tmp_path / "drift.csv"
    pd.DataFrame({"t": range(6), "drift_z_um": drift[:, 0], "drift_y_um": drift[:, 1],
                  "drift_x_um": drift[:, 2]}).to_csv(table, index=False)  # fmt: skip
    assert run(["track", str(movie), str(tmp_path / "table"), "--drift", str(table)]) == 0
    tracks = pd.read_parquet(tmp_path / "table" / "tracks.parquet")
    assert tracks["track_id"].nunique() == 4 and {"drift_y_um", "drift_x_um"} <= set(tracks.columns)
    pd.DataFrame({"t": range(3), "drift_z_um": 0.0, "drift_y_um": 0.0, "drift_x_um": 0.0}).to_csv(table, index=False)
    err = cli_user_error(capsys, "track", str(movie), str(tmp_path / "short"), "--drift", str(table))
    assert "drift.csv" in err and "frames 0..2" in err and not (tmp_path / "short").exists()


def test_batch_track_takes_each_rows_drift(tmp_path: Path) -> None:
    import pandas as pd

    from subcell.cli.main import run
    from subcell.image import Image
    from subcell.io import write

    lab, drift = jittered()
    write(Image(lab, voxel_size=VS, dims="TCYX", time_interval=60.0), tmp_path / "a.ome.tif")
    pd.DataFrame({"t": range(6), "drift_z_um": drift[:, 0], "drift_y_um": drift[:, 1],
                  "drift_x_um": drift[:, 2]}).to_csv(tmp_path / "a_drift.csv", index=False)  # fmt: skip
    rows = [{"id": "plain", "source": "a.ome.tif", "drift": None},
            {"id": "auto", "source": "a.ome.tif", "drift": "auto"},
            {"id": "table", "source": "a.ome.tif", "drift": "a_drift.csv"}]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "movies.csv", index=False)
    out = tmp_path / "tracked"
    assert run(["batch", "track", str(tmp_path / "movies.csv"), str(out), "--workers", "1", "--quiet"]) == 0
    lineage = pd.read_parquet(out / "lineage")
    counts = lineage.groupby("id").size()
    assert counts["plain"] > 4 and counts["auto"] == 4 and counts["table"] == 4
    assert "drift" not in lineage.columns  # a run column, not a description of the row
    assert "a_drift.csv" in (out / "table.tracks" / "config.yaml").read_text()
