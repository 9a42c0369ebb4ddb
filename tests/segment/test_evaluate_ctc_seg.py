"""``subcell evaluate-seg`` against a Cell Tracking Challenge SEG folder: only the annotated frames (or planes)
are scored, each against the prediction's frame it names; SEG is reported with the matching scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from subcell import io
from subcell.cli.main import run
from subcell.image import Image
from subcell.metrics import evaluate_frames
from tests.conftest import cli_user_error


@pytest.fixture
def movie(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 5-frame prediction and the truth it is scored against (ids shifted, objects a little smaller)."""
    rng = np.random.default_rng(0)
    truth = np.zeros((5, 3, 24, 24), np.uint16)
    for t in range(5):
        for i, (y, x) in enumerate(rng.integers(2, 16, (3, 2)), start=1):
            truth[t, :, y : y + 5, x : x + 5] = i
    pred = np.where(truth > 0, truth + 10, 0).astype(np.int32)
    pred[:, :, :, 0] = 0
    pred[1] = 0  # frame 1 missed entirely
    path = io.write(Image(pred, voxel_size=(1, 0.5, 0.5), dims="TZYX"), tmp_path / "pred.ome.zarr")
    return path, pred, truth


def test_annotated_frames_only_are_scored(movie, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path, pred, truth = movie
    seg = tmp_path / "01_GT" / "SEG"
    seg.mkdir(parents=True)
    for t in (1, 3):  # the CTC annotates some frames only
        tifffile.imwrite(seg / f"man_seg{t:03d}.tif", truth[t], photometric="minisblack")
    capsys.readouterr()
    assert run(["evaluate-seg", str(path), str(tmp_path / "01_GT"), "--objects", str(tmp_path / "f.csv")]) == 0
    printed = capsys.readouterr().out
    _, table = evaluate_frames(pred[[1, 3]], truth[[1, 3]].astype(np.int32))
    assert "2 annotated frames of 5 scored" in printed and f"SEG {table.attrs['seg']:.4f}" in printed
    frames = pd.read_csv(tmp_path / "f.csv")
    assert frames.t.tolist() == [1, 3] and frames.seg[0] == 0 and frames.seg[1] > 0.5  # frame 1 was missed
    planes = tmp_path / "planes"
    planes.mkdir()
    tifffile.imwrite(planes / "man_seg_003_002.tif", truth[3, 2], photometric="minisblack")
    assert run(["evaluate-seg", str(path), str(planes), "--objects", str(tmp_path / "p.csv")]) == 0
    assert "1 annotated planes of 5 scored" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "p.csv")[["t", "z"]].values.tolist() == [[3, 2]]
    # a frame the prediction does not have, a frame of another shape: named
    tifffile.imwrite(seg / "man_seg007.tif", truth[3], photometric="minisblack")
    assert "man_seg007.tif: annotates frame 7" in cli_user_error(capsys, "evaluate-seg", str(path), str(seg))
    (seg / "man_seg007.tif").unlink()
    tifffile.imwrite(seg / "man_seg004.tif", truth[3, :, :20], photometric="minisblack")
    assert "man_seg004.tif: Z, Y, X (3, 20, 24)" in cli_user_error(capsys, "evaluate-seg", str(path), str(seg))
