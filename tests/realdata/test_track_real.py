"""Dynamics on real movies from the command line, as a user runs it (opt-in with SUBCELL_TEST_DATA): a CTC movie
segmented, tracked and scored against its reference masks, whose ids are its tracks (no man_track.txt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subcell.cli.main import run

pytestmark = pytest.mark.realdata


def test_cho_movie_segmented_tracked_and_scored_against_its_reference(real_data: Path, tmp_path: Path) -> None:
    cho = real_data / "ctc_fluo-n3dh-cho_3dt"
    seg, tracks = tmp_path / "seg.ome.zarr", tmp_path / "tracks"
    # the files state neither axes nor sizes: given once, at the first step (CTC documentation: 1 × 0.202 µm)
    assert run(["segment", str(cho / "Fluo-N3DH-CHO_02_img.tif"), str(seg), "-w", "nucleus", "--axes", "TZYX",
                "--voxel-size", "1", "0.202", "0.202", "--time-interval", "60"]) == 0  # fmt: skip
    assert run(["track", str(seg), str(tracks), "--max-speed-um-per-min", "10"]) == 0
    # the reference states no voxel size: it is read on the prediction's grid
    assert run(["evaluate-tracks", str(tracks), str(cho / "Fluo-N3DH-CHO_02_ERR_SEG.tif"), "--axes", "TZYX",
                "--ids-are-tracks", "-o", str(tmp_path / "scores")]) == 0  # fmt: skip
    scores = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    print({k: scores[k] for k in ("TRA", "DET", "LNK", "SEG")})
    assert scores["TRA"] >= 0.9 and scores["LNK"] >= 0.8  # 0.939 and 0.873 measured (11 reference tracks)
    assert scores["true_divisions"] is None  # ids carry no lineage: divisions are not scored
