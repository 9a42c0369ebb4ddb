"""Block-wise segmentation equals whole-volume segmentation, for every built-in workflow, by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from subcell import Image, io
from subcell.errors import ValueRangeError
from subcell.segment import builtin_workflows, load_workflow, run_workflow
from subcell.segment.chunked import merge_across_faces, segment_chunked
from subcell.segment.execute import execute

# a field with many cells at a coarse lateral voxel, so blocks and halos are much smaller than the field
VOXEL = (0.29, 0.2, 0.2)
INPUT_CHANNEL = {"prediction": "dna", "vesicles": "golgi"}  # no vesicle channel in the generator


@pytest.fixture(scope="module")
def field() -> Image:
    from subcell.synth import synth_field

    return synth_field(shape=(20, 224, 224), seed=5, voxel_size=VOXEL).image


def test_objects_crossing_faces_are_merged_but_touching_ones_are_not() -> None:
    left = np.array([[1, 1, 2, 0]])
    right = np.array([[7, 7, 0, 9]])
    assert merge_across_faces(left, right) == [(1, 7)]  # 2 and 9 do not meet
    left2 = np.array([[3, 3, 3, 3, 3, 3]])
    right2 = np.array([[8, 0, 0, 0, 0, 0]])  # 8 only grazes the big object 3: 1/1 of its own footprint
    assert merge_across_faces(left2, right2) == [(3, 8)]
    assert merge_across_faces(left2, right2, min_contact=2.0) == []


def _inputs(image: Image, names: list[str]) -> dict[str, np.ndarray]:
    return {n: image.numpy()[0, image.channel_names.index(INPUT_CHANNEL.get(n, n))] for n in names}


@pytest.mark.parametrize("name", sorted(set(builtin_workflows()) - {"nucleus_widefield"}))
def test_every_builtin_workflow_blockwise_equals_whole(name: str, field: Image, tmp_path: Path) -> None:
    """Blocks of 64 px on a 224-px field (16 blocks; 104 px for cells, whose watershed reaches 102 px): every kind
    of step crosses a block face."""
    wf = load_workflow(name)
    inputs = _inputs(field, wf.inputs)
    whole = run_workflow(wf, inputs, voxel_size=VOXEL)
    img = Image(np.stack(list(inputs.values()))[None], voxel_size=VOXEL, dims="TCZYX", channel_names=wf.inputs)
    out = segment_chunked(img, wf, tmp_path / "b.ome.zarr", block_yx=104 if name == "cells" else 64)
    blockwise = io.read(out).numpy()[0, 0]
    assert whole.any(), f"{name} found nothing on the field: the comparison would be empty"
    # identical, not just similar: same fitted numbers, objects judged whole, ids numbered by first voxel
    assert np.array_equal(blockwise, whole)
    assert not (out / ".scratch").exists()


def test_widefield_background_is_anchored_to_the_field() -> None:
    """subtract_background subsamples on a grid fixed to the field, so blocks give the whole field's result."""
    from subcell.synth import synth_field

    img = synth_field(shape=(8, 256, 256), seed=2, voxel_size=(0.5, 0.4, 0.4)).image
    dna = img.numpy()[0, img.channel_names.index("dna")].max(0, keepdims=True)  # a 2D widefield-like image
    _, xx = np.mgrid[:256, :256]
    dna = (dna * (0.4 + 0.6 * xx / 256)).astype(np.float32)  # uneven illumination
    wf = load_workflow("nucleus_widefield")
    whole = run_workflow(wf, {"dna": dna}, voxel_size=(1.0, 0.4, 0.4))
    blocks = execute(
        wf, {"dna": dna}, voxel_size=(1.0, 0.4, 0.4), block_yx=72, scratch=lambda n, d: np.zeros(dna.shape, d)
    )
    assert whole.max() >= 5 and np.array_equal(np.asarray(blocks), whole)


def test_ids_are_numbered_by_first_voxel_and_cut_objects_stay_whole() -> None:
    rng = np.random.default_rng(0)
    vol = np.zeros((8, 96, 96), np.float32)
    zz, yy, xx = np.ogrid[:8, :96, :96]
    for cy, cx in [(20, 20), (48, 48), (47, 70), (80, 30), (10, 90)]:  # several straddle the 32-px block faces
        vol[(((yy - cy) ** 2 + (xx - cx) ** 2) < 81) & (zz > 1) & (zz < 7)] = 1.0
    vol += rng.normal(0, 0.05, vol.shape).astype(np.float32)
    wf = load_workflow("nucleus")
    whole = run_workflow(wf, {"dna": vol}, voxel_size=(0.5, 0.2, 0.2))
    for block in (16, 32, 40):
        got = execute(
            wf, {"dna": vol}, voxel_size=(0.5, 0.2, 0.2), block_yx=block, scratch=lambda n, d: np.zeros(vol.shape, d)
        )
        assert np.array_equal(np.asarray(got), whole), block
    assert whole.max() == 5
    firsts = [np.flatnonzero(whole.ravel() == i)[0] for i in range(1, 6)]
    assert firsts == sorted(firsts)  # raster order of first voxels


def test_statistics_are_fitted_once_for_the_field(tmp_path: Path) -> None:
    """Objects only in the left half: the right-hand blocks hold pure noise and get the field's threshold."""
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
    rec: dict = {}
    whole = run_workflow(wf, {"dna": vol}, voxel_size=img.voxel_size, record=rec)
    lo, hi = np.percentile(vol, [1, 99])
    assert rec[0]["lo"] == pytest.approx(lo, rel=1e-9) and rec[0]["hi"] == pytest.approx(hi, rel=1e-9)
    glob = io.read(segment_chunked(img, wf, tmp_path / "g.ome.zarr", block_yx=48)).numpy()[0, 0]
    assert not whole[:, :, 48:].any() and np.array_equal(glob, whole)


def test_a_cell_cut_by_the_top_of_the_stack_is_filled_the_same_in_blocks(tmp_path: Path) -> None:
    """A cell taller than the stack (walls to the last plane, no apical membrane) 15 µm across, in blocks of
    8 µm: whether its inside is filled to the top is judged on its whole ring of columns, not per block. (Its
    neighbour ends in the stack: its apical membrane gives the field's basal-membrane thickness.)"""
    nz, n = 10, 120
    vol = np.zeros((nz, n, n), np.float32)
    peak = np.array([0.5, 1.0, 0.5], np.float32)[:, None, None]
    vol[1:4, 2:-2, 2:-2] = peak  # basal membrane
    vol[6:9, 3:-3, 81:-3] = peak  # the neighbour's apical membrane
    for a in (2, n - 3):
        vol[1:, 2:-2, a] = vol[1:, a, 2:-2] = 1.0  # walls up to the last plane
    vol[1:, 2:-2, 80] = 1.0
    (tmp_path / "w.yaml").write_text(
        "name: cut\ninputs: [membrane]\nkind: mask\nsteps:\n  - threshold: {method: absolute, value: 0.4}\n"
        "  - fill_between_membranes: {intensity: membrane, max_gap_um: 0.5}\n"
    )
    wf = load_workflow(tmp_path / "w.yaml")
    whole = run_workflow(wf, {"membrane": vol}, voxel_size=(0.3, 0.2, 0.2))
    assert whole[2:, 10:-10, 10:70].all()  # filled from the basal peak to the last plane
    assert whole[2:8, 10:-10, 90:-10].all() and not whole[8:, 10:-10, 90:-10].any()  # the neighbour: to its top
    opened = vol.copy()
    opened[:, 30:60, :3] = 0  # a gap in its far wall, and beyond it the dish: no longer a cell cut by the top
    whole_opened = run_workflow(wf, {"membrane": opened}, voxel_size=(0.3, 0.2, 0.2))
    assert not whole_opened[8:, 10:-10, 50:70].any()  # blocks that do not see the gap must not fill it either
    for name, v, w in (("closed", vol, whole), ("opened", opened, whole_opened)):
        img = Image(v, voxel_size=(0.3, 0.2, 0.2), dims="ZYX", channel_names=["membrane"])
        blocks = io.read(segment_chunked(img, wf, tmp_path / f"{name}.ome.zarr", block_yx=40)).numpy()[0, 0]
        assert np.array_equal(blocks, w), name


def test_bad_block_settings_are_one_line_errors(tmp_path: Path) -> None:
    vol = np.random.default_rng(3).random((4, 64, 64)).astype(np.float32)
    img = Image(vol, voxel_size=(0.5, 0.2, 0.2), dims="ZYX", channel_names=["membrane"])
    (tmp_path / "ws.yaml").write_text(
        "name: flood\ninputs: [membrane]\nkind: instance\nsteps:\n"
        "  - threshold: {method: otsu, output: seeds}\n  - label: {output: ids}\n"
        "  - seeded_watershed: {input: membrane, seeds: ids}\n"
    )
    flood = load_workflow(tmp_path / "ws.yaml")
    with pytest.raises(ValueRangeError, match="no bounded reach"):
        segment_chunked(img, flood, tmp_path / "a.ome.zarr", block_yx=32)
    run_workflow(flood, {"membrane": vol}, voxel_size=img.voxel_size)  # whole: fine
    (tmp_path / "wide.yaml").write_text(
        "name: wide\ninputs: [membrane]\nsteps:\n  - gaussian_smooth: {sigma_um: 2}\n  - threshold: {method: otsu}\n"
    )
    with pytest.raises(ValueRangeError, match=r"smaller than the reach of step 1 \(gaussian_smooth\)"):
        segment_chunked(img, load_workflow(tmp_path / "wide.yaml"), tmp_path / "b.ome.zarr", block_yx=16)
    assert not (tmp_path / "a.ome.zarr").exists() and not (tmp_path / "b.ome.zarr").exists()
    with pytest.raises(ValueRangeError, match="at least 16"):
        segment_chunked(img, flood, tmp_path / "c.ome.zarr", block_yx=8)


def test_blocks_through_an_executor_equal_the_serial_run(field: Image, tmp_path: Path) -> None:
    """The executor seam (here two threads; Dask in the collections issue) gives the same labels."""
    from concurrent.futures import ThreadPoolExecutor

    wf = load_workflow("nucleus")
    img = Image(
        field.numpy()[:, [field.channel_names.index("dna")]], voxel_size=VOXEL, dims="TCZYX", channel_names=["dna"]
    )
    serial = io.read(segment_chunked(img, wf, tmp_path / "s.ome.zarr", block_yx=64)).numpy()
    with ThreadPoolExecutor(2) as pool:
        threaded = io.read(segment_chunked(img, wf, tmp_path / "t.ome.zarr", block_yx=64, executor=pool)).numpy()
    assert serial.max() >= 3 and np.array_equal(serial, threaded)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("gaussian_smooth", {"sigma_um": 0.5}),
        ("spot_filter", {"sigmas_um": [0.3, 0.6]}),
        ("spot_filter", {"sigmas_um": [0.6], "per_slice": True}),
        ("filament_filter", {"sigmas_um": [0.2, 0.5]}),
    ],
)
def test_a_block_read_with_the_steps_reach_gives_the_whole_fields_numbers(name: str, params: dict) -> None:
    """The reach a step declares is the halo that makes a block's float result bit-identical to the whole field's
    inside it (the workflow tests above compare thresholded masks, which hide a short halo: a kernel's last taps
    rarely flip a voxel)."""
    from subcell.image import VoxelSize
    from subcell.segment import filters
    from subcell.segment.field import Op
    from subcell.segment.run_local import run_local
    from subcell.segment.steps import STEP_TYPES

    s, vs = STEP_TYPES[name](**params), VoxelSize.of(VOXEL)
    img = np.random.default_rng(3).random((12, 90, 90)).astype(np.float32)
    fitted = (
        {"top": filters.filament_top(img, sigmas_um=params["sigmas_um"], voxel_size=vs)} if "filament" in name else {}
    )
    op = Op(0, name, s, "img", {}, "#0", fitted)
    whole = run_local(op, {"img": img}, vs, (0, 0, 0))
    _, ry, rx = s.reach(vs)
    block = run_local(op, {"img": img[:, 40 - ry : 50 + ry, 40 - rx : 50 + rx]}, vs, (0, 40 - ry, 40 - rx))
    assert np.array_equal(block[:, ry:-ry, rx:-rx], whole[:, 40:50, 40:50])
