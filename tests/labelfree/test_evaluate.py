"""Evaluation against the noise ceiling, per cell, and through the CLI (table, figure, errors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from subcell import Image, io
from subcell.errors import ChannelError, MetadataError
from subcell.labelfree.evaluate import evaluate_prediction
from tests.conftest import cli_user_error, subcell_cli
from tests.labelfree.conftest import tiny_config


def _truth_and_target(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    truth = ndimage.gaussian_filter(rng.normal(size=(12, 40, 40)), 2) * 50 + 20
    target = truth + rng.normal(scale=truth.std() * 0.5, size=truth.shape)
    return truth, target


def test_metrics_against_noise_free_truth_and_per_cell(rng: np.random.Generator) -> None:
    truth, target = _truth_and_target(rng)
    vs = (0.5, 0.2, 0.2)
    tgt = Image(np.stack([target, truth]), voxel_size=vs, dims="CZYX", channel_names=["dna", "dna_noise_free"])
    pred = Image(((truth - truth.mean()) / truth.std())[None], voxel_size=vs, dims="CZYX", channel_names=["dna"])
    cells = np.zeros(truth.shape, np.int32)
    cells[:, :20] = 1
    cells[:, 20:] = 2
    (row,) = evaluate_prediction(pred, tgt, cells=Image(cells, voxel_size=vs, dims="ZYX"))
    assert row["pearson_r_truth"] == pytest.approx(1.0)
    # a perfect prediction of the truth reaches the noise ceiling exactly
    assert row["pearson_r"] == pytest.approx(row["noise_ceiling"], abs=0.01)
    assert row["r_over_ceiling"] == pytest.approx(1.0, abs=0.01)
    assert 0.8 < row["noise_ceiling"] < 0.95
    assert row["cells"] == 2 and row["pearson_r_cell_mean"] > 0.7


def test_mask_targets_get_dice_at_otsu_and_half_inside_the_cells() -> None:
    vs = (0.5, 0.2, 0.2)
    truth = np.zeros((4, 20, 20), np.uint16)
    truth[:, 2:8, 2:8] = 3  # a labelled object (any label > 0 is foreground)
    prob = np.full(truth.shape, 0.3, np.float32)
    prob[:, 2:8, 2:6] = 0.9  # two thirds of the object found
    prob[:, 14:18, 14:18] = 0.6  # a false object
    pred = Image(prob[None], voxel_size=vs, dims="CZYX", channel_names=["nucleus"])
    tgt = Image(truth[None], voxel_size=vs, dims="CZYX", channel_names=["nucleus"])
    (row,) = evaluate_prediction(pred, tgt, mask_target=True)
    found, false = 4 * 6 * 4, 4 * 4 * 4
    from skimage.filters import threshold_otsu

    from subcell.metrics import dice

    assert row["mask_scored_in"] == "field" and row["otsu_threshold"] == pytest.approx(threshold_otsu(prob))
    assert row["dice_otsu"] == pytest.approx(dice(prob > row["otsu_threshold"], truth))
    assert row["dice_p50"] == pytest.approx(2 * found / (found + false + 4 * 36))
    assert row["iou_p50"] == pytest.approx(found / (4 * 36 + false))
    cells = np.zeros(truth.shape, np.int32)
    cells[:, :10, :10] = 1  # the false object lies outside every cell: not scored
    (inside,) = evaluate_prediction(pred, tgt, cells=Image(cells, voxel_size=vs, dims="ZYX"), mask_target=True)
    assert inside["mask_scored_in"] == "cells" and inside["dice_p50"] == pytest.approx(2 * found / (found + 4 * 36))
    (plain,) = evaluate_prediction(pred, tgt)
    assert "dice_otsu" not in plain


def test_only_the_channels_it_scores_go_onto_the_prediction_grid(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target on another grid with many channels (a synthetic field has 17): only the scored channel and its
    noise-free truth are resampled, and the rows equal those of the target reduced to them."""
    import importlib

    resample = importlib.import_module("subcell.transforms.resample")  # the module, not the function it exports
    truth, target = _truth_and_target(rng)
    others = [rng.normal(size=truth.shape) for _ in range(5)]
    names = ["brightfield", "dna", "membrane", "dna_noise_free", "er", "golgi", "mito"]
    data = np.stack([others[0], target, others[1], truth, *others[2:]])
    full = Image(data, voxel_size=(0.5, 0.2, 0.2), dims="CZYX", channel_names=names)
    pred = Image(rng.normal(size=(12, 20, 20))[None], voxel_size=(0.5, 0.4, 0.4), dims="CZYX", channel_names=["dna"])
    seen: list[int] = []
    inner = resample.resample_linear

    def counting(data: np.ndarray, **kw: object) -> np.ndarray:
        seen.append(data.shape[1])
        return inner(data, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(resample, "resample_linear", counting)
    (row,) = evaluate_prediction(pred, full)
    assert seen == [2]  # dna and dna_noise_free, not all 7
    (ref,) = evaluate_prediction(pred, full.sel(channel=["dna", "dna_noise_free"]))
    assert row == ref and row["noise_source"] == "noise-free truth"


def test_noise_ceiling_from_a_second_acquisition(rng: np.random.Generator) -> None:
    truth, target = _truth_and_target(rng)
    second = truth + rng.normal(scale=truth.std() * 0.5, size=truth.shape)
    vs = (0.5, 0.2, 0.2)
    mk = lambda a: Image(a, voxel_size=vs, dims="ZYX", channel_names=["dna"])  # noqa: E731
    (row,) = evaluate_prediction(mk(truth), mk(target), second_acquisition=mk(second))
    assert row["noise_source"] == "two acquisitions"
    assert row["noise_ceiling"] == pytest.approx(row["pearson_r"], abs=0.02)


def test_mismatched_inputs_are_refused(rng: np.random.Generator) -> None:
    truth, target = _truth_and_target(rng)
    pred = Image(truth, voxel_size=(0.5, 0.2, 0.2), dims="ZYX", channel_names=["dna"])
    with pytest.raises(ChannelError, match="membrane"):
        evaluate_prediction(pred, Image(target, voxel_size=(0.5, 0.2, 0.2), dims="ZYX", channel_names=["membrane"]))
    with pytest.raises(MetadataError, match="same field"):
        evaluate_prediction(pred, Image(target[:, :20], voxel_size=(0.5, 0.2, 0.2), dims="ZYX", channel_names=["dna"]))


def test_cli_train_predict_evaluate(paired_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "train.yaml"
    c = tiny_config(paired_dataset, tmp_path / "model")
    cfg.write_text(
        f"manifest: {paired_dataset}\noutput: {tmp_path / 'model'}\nbatch_size: 2\niterations: 8\nthreads: 1\n"
        f"patch_size: {list(c.patch_size)}\nnetwork: {{preset: resunet, depth: 1, base_channels: 4}}\n"  # type: ignore[attr-defined]
    )
    r = subcell_cli("labelfree", "train", str(cfg), "checkpoint_every=4", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and (tmp_path / "model" / "model.json").exists()
    field = paired_dataset.parent / "p3.ome.zarr"
    pred = tmp_path / "pred.ome.zarr"
    r = subcell_cli("labelfree", "predict", str(field), str(pred), "--model", str(tmp_path / "model"), "--quiet")
    assert r.returncode == 0, r.stderr
    r = subcell_cli("labelfree", "evaluate", str(pred), str(field), "--input", str(field),
                    "--out", str(tmp_path / "m.csv"), "--figure", str(tmp_path / "f.png"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(tmp_path / "m.csv")
    assert list(table["structure"]) == ["dna"] and -1 <= table["pearson_r"][0] <= 1
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    # a user mistake: one line on stderr, exit status 2, no output left behind (in-process: the CLI's own entry
    # point, without paying for another interpreter and torch import per case)
    bad = str(tmp_path / "bad.ome.zarr")
    err = cli_user_error(capsys, "labelfree", "predict", str(field), bad, "--model", str(tmp_path / "nope"))
    assert "model not found" in err and not (tmp_path / "bad.ome.zarr").exists()
    assert "iterations" in cli_user_error(capsys, "labelfree", "train", str(cfg), "iterations=-3")
    out = io.read(pred)
    assert out.channel_names == ("dna",)


def _ball(shape: tuple[int, ...], centre_um: tuple[float, ...], radius_um: float, vs: tuple[float, ...]) -> np.ndarray:
    grid = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, vs, strict=True)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grid, centre_um, strict=True)) <= radius_um**2


def test_cell_depth_is_measured_in_micrometres_and_finds_a_central_nucleus_but_not_an_off_centre_one() -> None:
    from subcell.labelfree.cell_prior import cell_depth, deepest_in_cells
    from subcell.metrics import dice

    vs = (0.5, 0.25, 0.25)  # anisotropic voxels: a cell round in µm is not round in voxels
    shape = (40, 80, 80)
    cell = _ball(shape, (10.0, 10.0, 10.0), 8.0, vs).astype(np.int32)
    depth = cell_depth(cell, vs)
    # 4 µm from the centre along z and along x: the same depth (≈ 0.5 of the 8 µm radius)
    assert depth[20 + 8, 40, 40] == pytest.approx(depth[20, 40, 40 + 16], abs=0.02)
    assert depth[20, 40, 40] == pytest.approx(1.0) and depth[20 + 8, 40, 40] == pytest.approx(0.5, abs=0.05)
    assert depth[cell == 0].max() == 0
    central = _ball(shape, (10.0, 10.0, 10.0), 5.0, vs) & (cell > 0)
    off = _ball(shape, (10.0, 10.0, 13.0), 5.0, vs) & (cell > 0)  # the same size, pushed to one side
    share = central.sum() / cell.sum()
    assert dice(deepest_in_cells(depth, cell, share), central) > 0.95
    assert dice(deepest_in_cells(depth, cell, off.sum() / cell.sum()), off) < 0.8


def test_cell_depth_of_single_planes_is_the_in_plane_distance() -> None:
    from subcell.labelfree.cell_prior import cell_depth

    vs = (1.0, 0.2, 0.2)
    disc = _ball((1, 60, 60), (0.0, 6.0, 6.0), 5.0, vs).astype(np.int32)
    depth = cell_depth(disc, vs)
    assert depth[0, 30, 30] == pytest.approx(1.0) and depth[0, 30, 30 + 12] == pytest.approx(0.5, abs=0.05)


def test_cell_depth_swept_down_the_field_in_windows_equals_each_cell_alone() -> None:
    import dask.array as da
    import zarr
    from scipy import ndimage as ndi

    from subcell.labelfree.cell_prior import cell_depth_into

    vs = (0.5, 0.25, 0.3)
    rng = np.random.default_rng(3)
    # touching cells of uneven heights (one 30 rows tall, starting above smaller ones), a cell in two pieces, and
    # cells at the field's edges
    cells = np.zeros((6, 40, 24), np.uint16)
    cells[:, 2:32, 1:7] = 1
    cells[1:5, 0:9, 8:20] = 2
    cells[:, 9:14, 8:24] = 3
    cells[2:6, 14:40, 10:18] = 4
    cells[0:3, 30:40, 0:6] = 5
    cells[4:6, 35:40, 19:24] = 5
    cells[rng.random(cells.shape) < 0.05] = 0  # holes: depths within each cell measured around them
    want = np.zeros(cells.shape, np.float32)
    for i in range(1, 6):  # each cell alone: distance to the nearest voxel outside it (the field's edge outside)
        own = np.pad(cells == i, 1)
        d = ndi.distance_transform_edt(own, sampling=vs)[1:-1, 1:-1, 1:-1]
        want[cells == i] = (d / d.max())[cells == i]
    for rows in (1, 3, 8, 64):
        for source in (cells, da.from_array(cells, chunks=(6, 5, 24))):
            out = zarr.zeros(cells.shape, chunks=(2, 4, 8), dtype="float32")
            cell_depth_into(out, source, vs, rows=rows)
            np.testing.assert_allclose(out[:], want, rtol=1e-6, atol=1e-7)
    lazy = da.from_array(cells, chunks=(6, 7, 24))  # rows by default: the stored chunk height
    held = np.zeros(cells.shape, np.float32)
    cell_depth_into(held, lazy, vs)
    np.testing.assert_allclose(held, want, rtol=1e-6, atol=1e-7)


def test_mask_scores_inside_cells_report_the_cell_depth_baseline() -> None:
    vs = (0.5, 0.25, 0.25)
    shape = (40, 80, 80)
    cell = _ball(shape, (10.0, 10.0, 10.0), 8.0, vs).astype(np.int32)
    nucleus = _ball(shape, (10.0, 10.0, 10.0), 5.0, vs)
    noisy = nucleus + np.random.default_rng(0).normal(0, 0.8, shape)  # a poor prediction of a central nucleus
    pred = Image(noisy[None].astype(np.float32), voxel_size=vs, dims="CZYX", channel_names=["nucleus"])
    tgt = Image(nucleus[None].astype(np.uint8), voxel_size=vs, dims="CZYX", channel_names=["nucleus"])
    (row,) = evaluate_prediction(pred, tgt, cells=Image(cell, voxel_size=vs, dims="ZYX"), mask_target=True)
    assert row["nucleus_share_of_cells"] == pytest.approx(nucleus.sum() / cell.sum())
    assert row["dice_cell_depth_baseline"] > 0.95 > row["dice_otsu"]  # the outlines alone beat this prediction
    # what `labelfree nuclei` makes of it: the depth averaged in and one object per cell mend the noisy prediction
    assert row["dice_nuclei_in_cells"] > row["dice_otsu"] + 0.05
    (field,) = evaluate_prediction(pred, tgt, mask_target=True)
    assert "dice_cell_depth_baseline" not in field
