"""Block-wise segmentation equals whole-volume segmentation; instance ids are merged across block faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from subcell import Image, io
from subcell.errors import ValueRangeError
from subcell.metrics import dice, match_instances
from subcell.segment import load_workflow, run_workflow
from subcell.segment.chunked import merge_across_faces, segment_chunked


def test_objects_crossing_faces_are_merged_but_touching_ones_are_not() -> None:
    left = np.array([[1, 1, 2, 0]])
    right = np.array([[7, 7, 0, 9]])
    assert merge_across_faces(left, right) == [(1, 7)]  # 2 and 9 do not meet
    left2 = np.array([[3, 3, 3, 3, 3, 3]])
    right2 = np.array([[8, 0, 0, 0, 0, 0]])  # 8 only grazes the big object 3: 1/1 of its own footprint
    assert merge_across_faces(left2, right2) == [(3, 8)]
    assert merge_across_faces(left2, right2, min_contact=2.0) == []


def test_chunked_instances_match_the_whole_volume(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vol = np.zeros((8, 96, 96), np.float32)
    zz, yy, xx = np.ogrid[:8, :96, :96]
    for cy, cx in [(20, 20), (48, 48), (47, 70), (80, 30), (10, 90)]:  # several straddle the 32-px block faces
        vol[(((yy - cy) ** 2 + (xx - cx) ** 2) < 81) & (zz > 1) & (zz < 7)] = 1.0
    vol += rng.normal(0, 0.05, vol.shape).astype(np.float32)
    img = Image(vol, voxel_size=(0.5, 0.2, 0.2), dims="ZYX", channel_names=["dna"])
    wf = load_workflow("nucleus")
    whole = run_workflow(wf, {"dna": vol}, voxel_size=img.voxel_size)
    out = segment_chunked(img, wf, tmp_path / "c.ome.zarr", block_yx=32)
    chunked = io.read(out).numpy()[0, 0]
    m = match_instances(chunked, whole)
    assert m.n_pred == m.n_true == 5 and m.f1(0.9) == 1.0
    assert io.read(out).voxel_size == img.voxel_size
    assert not (out / ".scratch").exists()  # the relabelling scratch is gone


def test_chunked_masks_agree_with_the_whole_volume(tmp_path: Path) -> None:
    from subcell.synth import synth_field

    f = synth_field(shape=(16, 192, 192), seed=4)
    img = f.image.sel(channel=["nucleoli"])
    wf = load_workflow("nucleoli")
    whole = run_workflow(wf, {"nucleoli": img.numpy()[0, 0]}, voxel_size=img.voxel_size)
    out = segment_chunked(img, wf, tmp_path / "m.ome.zarr", block_yx=96)
    assert dice(io.read(out).numpy()[0, 0], whole) >= 0.95


def test_block_statistics_are_fitted_once_for_the_volume(tmp_path: Path) -> None:
    """Objects only in the left half: the right-hand blocks hold pure noise and must not get their own threshold."""
    rng = np.random.default_rng(1)
    vol = rng.normal(0, 0.05, (8, 96, 96)).astype(np.float32)
    zz, yy, xx = np.ogrid[:8, :96, :96]
    for cy in (12, 36, 60, 84):
        vol[(((yy - cy) ** 2 + (xx - 20) ** 2) < 100) & (zz > 1) & (zz < 7)] += 1.0
    img = Image(vol, voxel_size=(0.5, 0.2, 0.2), dims="ZYX", channel_names=["dna"])
    (tmp_path / "w.yaml").write_text(
        "name: bare\ninputs: [dna]\nkind: mask\nsteps:\n"
        "  - normalize: {method: percentile, low: 1, high: 99}\n  - threshold: {method: otsu}\n"
    )
    wf = load_workflow(tmp_path / "w.yaml")
    whole = run_workflow(wf, {"dna": vol}, voxel_size=img.voxel_size)
    glob = io.read(segment_chunked(img, wf, tmp_path / "g.ome.zarr", block_yx=48)).numpy()[0, 0]
    per = io.read(segment_chunked(img, wf, tmp_path / "p.ome.zarr", block_yx=48, statistics="per_block")).numpy()[0, 0]
    assert not whole[:, :, 48:].any() and glob[:, :, 48:].mean() < 1e-3 and dice(glob, whole) > 0.98
    assert per[:, :, 48:].mean() > 0.1  # per-block fitting thresholds the noise on its own statistics
    with pytest.raises(ValueRangeError, match="per_block"):
        segment_chunked(img, wf, tmp_path / "x.ome.zarr", statistics="blockwise")


def test_recorded_statistics_reproduce_the_run() -> None:
    rng = np.random.default_rng(2)
    vol = rng.normal(0, 1, (4, 32, 32)).astype(np.float32)
    wf = load_workflow("nucleus")
    rec: dict = {}
    first = run_workflow(wf, {"dna": vol}, voxel_size=(0.5, 0.2, 0.2), record=rec)
    assert set(rec) and all(isinstance(v, dict) for v in rec.values())
    again = run_workflow(wf, {"dna": vol * 3 + 5}, voxel_size=(0.5, 0.2, 0.2), statistics=rec)
    assert not np.array_equal(first, again)  # fixed statistics do not follow the rescaled intensities
    same = run_workflow(wf, {"dna": vol}, voxel_size=(0.5, 0.2, 0.2), statistics=rec)
    assert np.array_equal(first, same)
