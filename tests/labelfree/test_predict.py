"""Tiled prediction: equals whole-volume prediction, seam-free, streamed, metadata kept, bad input refused."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from subcell import Image, io  # noqa: E402
from subcell.errors import ChannelError, InputFileError, MetadataError, ValueRangeError  # noqa: E402
from subcell.image import VoxelSize  # noqa: E402
from subcell.labelfree import LabelFreeModel, PredictConfig, predict_image, predict_to_zarr, preset  # noqa: E402
from subcell.labelfree.tile_plan import choose_tile  # noqa: E402
from tests.labelfree.conftest import VOXEL, paired_volume  # noqa: E402


def _model(depth: int = 1, *, seed: int = 0, uncertainty: bool = False) -> LabelFreeModel:
    torch.manual_seed(seed)
    cfg = preset("resunet", depth=depth, base_channels=4, z_levels=depth)
    m = LabelFreeModel.create(cfg, input_channel="brightfield", targets=["dna"], voxel_size=VoxelSize(*VOXEL),
                              uncertainty=uncertainty, patch_size=(8, 16, 16))  # fmt: skip
    for mod in m.network.modules():  # non-trivial running statistics, as after training
        if isinstance(mod, torch.nn.BatchNorm3d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    return m


def test_tiled_prediction_equals_whole_volume_prediction() -> None:
    model = _model(depth=1)
    image = paired_volume(5, shape=(40, 72, 72)).channel("brightfield")
    whole = predict_image(model, image, PredictConfig(tile=(40, 72, 72), precision="fp32"))
    # the default trim is the network's measured edge reach: tiles equal the whole volume
    tiled = predict_image(model, image, PredictConfig(tile=(32, 48, 48), precision="fp32"))
    assert tiled.provenance.parameters["trim"] == [h if h else 0 for h in model.halo]
    assert tiled.provenance.parameters["tiles"] >= 2 * 2 * 2
    np.testing.assert_allclose(tiled.numpy(), whole.numpy(), atol=1e-4)
    # a wider trim than needed changes nothing beyond rounding
    wide = predict_image(model, image, PredictConfig(tile=(32, 48, 48), overlap=0.75, trim=11, precision="fp32"))
    np.testing.assert_allclose(wide.numpy(), whole.numpy(), atol=1e-4)
    # without the trim (a model that claimed no reach) tile borders are measurably different: the reason for it
    model.measured_halo = (0, 0, 0)
    loose = predict_image(model, image, PredictConfig(tile=(32, 48, 48), trim=0, precision="fp32"))
    assert np.abs(loose.numpy() - whole.numpy()).max() > 1e-4


def test_constant_network_gives_a_seam_free_volume() -> None:
    model = _model(depth=2)
    with torch.no_grad():
        for p in model.network.parameters():
            p.zero_()
        model.network.head.inner.bias.fill_(2.5)
    image = paired_volume(1, shape=(20, 100, 90)).channel("brightfield")
    out = predict_image(model, image, PredictConfig(tile=(8, 32, 32), precision="fp32")).numpy()
    assert out.shape == (1, 1, 20, 100, 90)
    np.testing.assert_allclose(out, 2.5, rtol=1e-6)  # blending weights sum to one everywhere: no seams


def test_tile_weights_made_on_the_device_equal_the_grids_own() -> None:
    from subcell.labelfree.predict import _tile_weight
    from subcell.transforms.tiling import TileGrid

    grid = TileGrid((40, 104, 96), (32, 48, 48), overlap=0.4, trim=(4, 6, 6), multiple=(8, 8, 8))
    assert len(grid) >= 8
    for kz in range(len(grid.starts[0])):
        for ky in range(len(grid.starts[1])):
            for kx in range(len(grid.starts[2])):
                w = _tile_weight(grid, kz, ky, kx, torch.device("cpu"))
                assert w.dtype == torch.float32
                np.testing.assert_array_equal(w.numpy(), grid.weight(kz, ky, kx))  # bit for bit


def test_streamed_zarr_equals_in_memory_and_keeps_metadata(tmp_path: Path) -> None:
    model = _model(depth=1, uncertainty=True)
    image = paired_volume(2, shape=(12, 40, 44), frames=2).channel("brightfield")
    image = image.with_metadata(time_interval=30.0)
    cfg = PredictConfig(tile=(12, 24, 24), precision="fp32")
    mem = predict_image(model, image, cfg)
    assert mem.provenance.parameters["tiles"] > 1
    out = predict_to_zarr(model, image, tmp_path / "pred.ome.zarr", cfg)
    back = io.read(out)
    assert back.shape == (2, 2, 12, 40, 44)
    assert back.channel_names == ("dna", "dna_std")
    assert back.voxel_size.isclose(VOXEL) and back.time_interval == 30.0
    assert "labelfree.predict" in [h["step"] for h in back.provenance.history]
    np.testing.assert_allclose(back.numpy(), mem.numpy(), atol=1e-6)
    assert (back.numpy()[:, 1] > 0).all()  # standard deviations


def test_a_prediction_store_without_a_pyramid_has_the_same_full_resolution(tmp_path: Path) -> None:
    """``levels=1`` (a prediction only read back, as ``labelfree nuclei`` does) writes level 0 alone, the same
    values, whole-plane rows or lateral regions."""
    import zarr

    from subcell.labelfree.predict_regions import predict_regions_to_zarr

    model = _model(depth=1)
    image = paired_volume(5, shape=(4, 300, 300)).channel("brightfield")
    cfg = PredictConfig(tile=(4, 128, 128), precision="fp32")
    full = predict_to_zarr(model, image, tmp_path / "full.ome.zarr", cfg)
    assert sorted(zarr.open_group(str(full), mode="r").array_keys()) == ["0", "1"]
    for name, write in (("rows", predict_to_zarr), ("regions", predict_regions_to_zarr)):
        kw = {"region_yx": 256} if name == "regions" else {}
        out = write(model, image, tmp_path / f"{name}.ome.zarr", cfg, levels=1, **kw)
        assert sorted(zarr.open_group(str(out), mode="r").array_keys()) == ["0"]
        np.testing.assert_allclose(io.read(out).numpy(), io.read(full).numpy(), atol=1e-6)


def test_input_smaller_than_a_tile_is_padded_and_cropped_back() -> None:
    model = _model(depth=2)
    image = paired_volume(3, shape=(3, 11, 13)).channel("brightfield")
    out = predict_image(model, image, PredictConfig(precision="fp32"))
    assert out.shape == (1, 1, 3, 11, 13) and np.isfinite(out.numpy()).all()


def test_other_voxel_size_is_resampled_with_a_warning_or_refused() -> None:
    model = _model(depth=1)
    image = paired_volume(4, shape=(16, 48, 48)).channel("brightfield")
    coarse = Image(image.numpy()[:, :, :, ::2, ::2], voxel_size=(0.5, 0.5, 0.5), channel_names=["brightfield"])
    with pytest.warns(UserWarning, match="resampling input"):
        out = predict_image(model, coarse, PredictConfig(precision="fp32"))
    assert out.shape[2:] == (16, 48, 48) and out.voxel_size.isclose(VOXEL)
    with pytest.raises(MetadataError, match="resampling is disallowed"):
        predict_image(model, coarse, PredictConfig(allow_resample=False))


def test_prediction_onto_the_inputs_grid_is_the_model_grid_prediction_resampled_back(tmp_path: Path) -> None:
    from subcell.transforms.resample import resample_linear

    model = _model(depth=1, uncertainty=True)
    image = paired_volume(4, shape=(16, 48, 48), frames=2).channel("brightfield")
    # an anisotropic grid coarser in z and y and finer in x than the model's (0.5, 0.25, 0.25)
    odd = Image(image.numpy()[:, :, ::2, ::2, :], voxel_size=(1.0, 0.5, 0.25), channel_names=["brightfield"])
    odd = Image(
        np.repeat(odd.numpy(), 2, axis=-1)[..., :90], voxel_size=(1.0, 0.5, 0.13), channel_names=["brightfield"]
    )
    cfg = PredictConfig(tile=(16, 24, 24), precision="fp32")
    with pytest.warns(UserWarning, match="resampling input"):
        on_model = predict_image(model, odd, cfg)
        on_input = predict_image(model, odd, cfg.model_copy(update={"output_grid": "input"}))
    assert on_model.shape[2:] != odd.shape[2:] and on_model.voxel_size.isclose(VOXEL, rtol=0.05)
    assert on_input.shape == (2, 2, *odd.shape[2:]) and on_input.voxel_size.isclose(odd.voxel_size)
    assert on_input.provenance.parameters["output_grid"] == "input"
    back = resample_linear(on_model.numpy(), voxel_size=on_model.voxel_size, target_voxel_size=odd.voxel_size,
                           out_shape=odd.shape[2:])  # fmt: skip
    np.testing.assert_allclose(on_input.numpy(), back, atol=1e-6)
    # tiles over the whole depth go in bands of rows, resampled band by band (along y); one tile over y goes in
    # rows of whole planes (along z): both give the whole prediction resampled
    assert on_input.provenance.parameters["banded"] is True
    with pytest.warns(UserWarning, match="resampling input"):
        split = cfg.model_copy(update={"output_grid": "input", "tile": (16, 48, 24)})
        rows_z = predict_image(model, odd, split)
        on_model_z = predict_image(model, odd, split.model_copy(update={"output_grid": "model"}))
    assert rows_z.provenance.parameters["banded"] is False
    back_z = resample_linear(on_model_z.numpy(), voxel_size=on_model_z.voxel_size, target_voxel_size=odd.voxel_size,
                             out_shape=odd.shape[2:])  # fmt: skip
    np.testing.assert_allclose(rows_z.numpy(), back_z, atol=1e-6)
    # streamed to OME-Zarr, with the tile planned for the resampler's rows too: the same within tiling's 1e-4
    with pytest.warns(UserWarning, match="resampling input"):
        out = predict_to_zarr(model, odd, tmp_path / "p.ome.zarr", PredictConfig(precision="fp32", output_grid="input"))
    streamed = io.read(out)
    assert streamed.voxel_size.isclose(odd.voxel_size) and streamed.channel_names == ("dna", "dna_std")
    step = next(h for h in streamed.provenance.history if h["step"] == "labelfree.predict")
    assert step["parameters"]["output_grid"] == "input"
    np.testing.assert_allclose(streamed.numpy(), on_input.numpy(), atol=1e-4)
    # an image already on the model's grid: the same prediction either way
    same = PredictConfig(tile=(16, 24, 24), precision="fp32", output_grid="input")
    np.testing.assert_array_equal(predict_image(model, image, same).numpy(), predict_image(model, image, cfg).numpy())


def test_resampling_back_onto_the_inputs_grid_is_budgeted() -> None:
    """A prediction onto a grid 5× finer than the model's holds 600² output planes: the tile chosen for the same
    memory limit computes fewer voxels at once than when the output stays on the model's grid."""
    model = _model(depth=2)
    fine = Image(np.random.default_rng(0).normal(size=(1, 1, 16, 600, 600)).astype(np.float32),
                 voxel_size=(0.5, 0.05, 0.05), channel_names=["brightfield"])  # fmt: skip
    at_once = {}
    for grid in ("model", "input"):
        with pytest.warns(UserWarning, match="resampling input"):
            out = predict_image(model, fine, PredictConfig(memory_limit_gb=0.36, precision="fp32", output_grid=grid))
        assert out.shape[-1] == (600 if grid == "input" else 120)
        at_once[grid] = np.prod(out.provenance.parameters["tile"]) * out.provenance.parameters["batch"]
    assert at_once["input"] < at_once["model"]


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_input_and_wrong_channel_are_refused(tmp_path: Path, value: float) -> None:
    model = _model(depth=1)
    data = paired_volume(4).numpy()
    data[0, 0, 3, 5, 5] = value
    bad = Image(data, voxel_size=VOXEL, channel_names=["brightfield", "dna"])
    with pytest.raises(ValueRangeError, match=r"NaN or Inf values .*planes 0–"):
        predict_to_zarr(model, bad, tmp_path / "x.ome.zarr")
    assert not (tmp_path / "x.ome.zarr").exists()  # nothing half-written
    other = Image(data, voxel_size=VOXEL, channel_names=["phase", "dna"])
    with pytest.raises(ChannelError, match="brightfield"):
        predict_image(model, other)


def test_memory_limit_chooses_smaller_tiles() -> None:
    model = LabelFreeModel.create(
        preset("fnet"), input_channel="bf", targets=["dna"], voxel_size=VoxelSize(0.29, 0.29, 0.29)
    )
    big, _ = choose_tile(model, (100, 2048, 2048), memory_limit_gb=8)
    small, _ = choose_tile(model, (100, 2048, 2048), memory_limit_gb=3)
    assert np.prod(small) < np.prod(big)
    assert all(t % d == 0 for t, d in zip(small, model.divisor, strict=True))
    with pytest.raises(ValueRangeError, match="memory"):
        choose_tile(model, (100, 2048, 2048), memory_limit_gb=0.05)
    # the cell depth as a second input channel: its rows and the two channels concatenated take room in the input
    # slab, so the same network on the same budget gets a smaller tile (the benchmark's 64x1024x1024 nuclei field:
    # 2.48 GB peak without this, 2.05 GB with it, benchmarks/labelfree/results.md)
    import dataclasses

    from subcell.labelfree.pretrained import load_model

    cells = load_model("nucleus-in-cells")
    plain = dataclasses.replace(cells, cell_conditioned=False)
    kw = {"memory_limit_gb": 2, "itemsize": 2, "banded": True}
    with_depth, _ = choose_tile(cells, (64, 1024, 1024), **kw)  # type: ignore[arg-type]
    assert np.prod(with_depth) < np.prod(choose_tile(plain, (64, 1024, 1024), **kw)[0])  # type: ignore[arg-type]


def test_corrupted_and_foreign_models_are_refused(tmp_path: Path) -> None:
    model = _model(depth=1)
    folder = model.save(tmp_path / "m")
    LabelFreeModel.load(folder)
    (folder / "weights.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(InputFileError, match="corrupted"):
        LabelFreeModel.load(folder)
    folder2 = model.save(tmp_path / "m2")
    (folder2 / "model.json").write_text('{"format": "subcell-model/1", "kind": "integrated"}')
    with pytest.raises(InputFileError, match="expected a labelfree model"):
        LabelFreeModel.load(folder2)
    torch.save({"x": 1}, tmp_path / "foreign.pt")
    with pytest.raises(InputFileError, match="model folder"):
        LabelFreeModel.load(tmp_path / "foreign.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputFileError, match="not found"):
            LabelFreeModel.load(tmp_path / "missing")


def test_a_subset_of_timepoints_records_its_frames_and_their_interval(tmp_path: Path) -> None:
    model = _model(depth=1)
    image = paired_volume(3, shape=(8, 24, 24), frames=3).channel("brightfield")
    image = Image(image.data, voxel_size=image.voxel_size, channel_names=image.channel_names, time_interval=10.0)
    seen: list[tuple[int, int]] = []
    out = predict_image(model, image, PredictConfig(timepoints=[0, 2], precision="fp32"),
                        progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert out.shape[0] == 2 and out.time_interval == 20.0
    assert seen[-1][0] == seen[-1][1] and {t for _, t in seen} == {seen[-1][1]}  # tiles over both frames
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[0][0] < seen[-1][1] // 2 + 1
    assert out.provenance.parameters["timepoints"] == [0, 2]
    uneven = predict_to_zarr(model, image, tmp_path / "p.ome.zarr", PredictConfig(timepoints=[1, 0], precision="fp32"))
    back = io.read(uneven)
    steps = {h["step"]: h for h in [*back.provenance.history, back.provenance._own()]}
    assert back.time_interval is None and steps["labelfree.predict"]["parameters"]["timepoints"] == [1, 0]


def test_an_only_channel_of_another_name_is_used_with_a_warning() -> None:
    model = _model(depth=1)
    image = paired_volume(4, shape=(8, 24, 24)).channel("brightfield")
    renamed = Image(image.data, voxel_size=image.voxel_size, channel_names=["c0"])
    with pytest.warns(UserWarning, match="trained on channel 'brightfield'.*'c0'"):
        out = predict_image(model, renamed, PredictConfig(precision="fp32"))
    same = predict_image(model, image, PredictConfig(precision="fp32"))
    np.testing.assert_array_equal(out.numpy(), same.numpy())


def test_a_budget_too_small_for_rows_over_whole_planes_chooses_bands_then_lateral_regions() -> None:
    import dask.array as da

    from subcell.labelfree.predict import _fit_memory

    model = _model(depth=3)
    vs = VoxelSize(*VOXEL)
    roomy = PredictConfig(memory_limit_gb=0.5, precision="fp32")
    image = paired_volume(6, shape=(16, 520, 520)).channel("brightfield")
    assert _fit_memory(model, image, (16, 520, 520), vs, roomy) == (None, roomy)
    # 0.35 GB: the libraries' 0.3 GB leave ~75 MB, too little for a 16-plane row buffer over 520 × 520 and a tile,
    # enough for a band of rows one tile high
    tight = PredictConfig(memory_limit_gb=0.35, precision="fp32")
    assert _fit_memory(model, image, (16, 520, 520), vs, tight) == (None, tight)
    assert predict_image(model, image, tight).provenance.parameters["banded"] is True
    # a stack too deep for one row of tiles over its depth within the budget: no bands, lateral regions
    shape = (256, 520, 520)
    deep = Image(da.zeros((1, 1, *shape), dtype=np.float32, chunks=(1, 1, 64, 520, 520)), voxel_size=VOXEL,
                 channel_names=["brightfield"])  # fmt: skip
    with pytest.raises(ValueRangeError, match="memory_limit"):
        predict_image(model, deep, tight)  # in memory the whole output is held anyway: no regions there
    region, fixed = _fit_memory(model, deep, shape, vs, tight)
    assert region in (256, 512) and fixed.tile is not None and max(fixed.tile[1:]) <= region
    # regions read lateral parts of the input, which needs it on the model's grid
    coarse = Image(deep.data[:, :, :, ::2, ::2], voxel_size=(VOXEL[0], VOXEL[1] * 2, VOXEL[2] * 2),
                   channel_names=["brightfield"])  # fmt: skip
    with pytest.raises(ValueRangeError, match="resample it first") as err:
        _fit_memory(model, coarse, shape, vs, tight)
    # the command it names puts the image on the grid, and the regions then fit
    from subcell.transforms.resample import resample_image_lazy

    hint = str(err.value).split("--resample ")[1].split(")")[0]
    fixed_grid = resample_image_lazy(coarse, [float(v) for v in hint.split()])
    assert fixed_grid.shape[2:] == shape
    assert _fit_memory(model, fixed_grid, shape, vs, tight)[0] in (256, 512)


def test_bands_of_rows_sum_the_same_tiles_as_whole_planes(tmp_path: Path) -> None:
    from subcell.labelfree.predict import predict_volume

    model = _model(depth=2)
    shape = (16, 100, 90)  # y and x not multiples of the tile grid: the last band reaches into the padding
    image = paired_volume(2, shape=shape).channel("brightfield")
    x = image.numpy()[0]
    x = (x - x.mean()) / x.std()
    whole = predict_image(model, image, PredictConfig(tile=model.valid_tile(shape), precision="fp32")).numpy()[0]
    cfg = PredictConfig(tile=(16, 32, 32), batch_size=1, precision="fp32")
    outs, calls = {}, []
    for bands in (False, True):
        out = np.full((1, *shape), np.nan, np.float32)

        def sink(z0: int, rows: np.ndarray, y0: int = 0, out: np.ndarray = out) -> None:
            calls.append((z0, y0, rows.shape[2]))
            assert np.isnan(out[:, z0 : z0 + rows.shape[1], y0 : y0 + rows.shape[2]]).all()  # each voxel once
            out[:, z0 : z0 + rows.shape[1], y0 : y0 + rows.shape[2]] = rows

        summary = predict_volume(model, lambda z0, z1, ys=slice(None), xs=slice(None): x[:, z0:z1, ys, xs],
                                 shape, sink, config=cfg, bands=bands)  # fmt: skip
        assert summary["banded"] is bands
        outs[bands] = out
    # the same tiles, weights and order for every voxel: equal to the bit (one tile per batch in both)
    np.testing.assert_array_equal(outs[True], outs[False])
    np.testing.assert_allclose(outs[True], whole, atol=1e-4)
    banded = calls[1:]
    assert calls[0] == (0, 0, shape[1]) and len(banded) >= 3  # whole planes at once, or bands never a plane
    assert all(n < shape[1] for _, _, n in banded) and sum(n for _, _, n in banded) == shape[1]
    # predict_image and predict_to_zarr put the bands where they belong (their own input normalisation)
    mem = predict_image(model, image, cfg)
    assert mem.provenance.parameters["banded"] is True
    np.testing.assert_allclose(mem.numpy()[0], outs[True], atol=1e-6)
    back = io.read(predict_to_zarr(model, image, tmp_path / "b.ome.zarr", cfg)).numpy()
    np.testing.assert_array_equal(back, mem.numpy())


# the second shape's grid reaches past the volume's end in z and x: regions cover it as the whole volume does
@pytest.mark.parametrize("shape", [(16, 150, 140), (13, 150, 141)])
def test_lateral_regions_assemble_into_the_whole_volume_prediction(tmp_path: Path, monkeypatch, shape) -> None:  # type: ignore[no-untyped-def]
    from subcell.labelfree import predict as predict_module

    model = _model(depth=1)
    image = paired_volume(6, shape=shape).channel("brightfield")
    whole = predict_image(model, image, PredictConfig(tile=model.valid_tile(shape), precision="fp32"))
    cfg = PredictConfig(precision="fp32")
    # what a budget too small for whole-plane rows chooses (the choice itself is tested above, with a larger volume)
    monkeypatch.setattr(
        predict_module, "_fit_memory", lambda *a: (64, cfg.model_copy(update={"tile": (16, 32, 32), "batch_size": 2}))
    )
    back = io.read(predict_to_zarr(model, image, tmp_path / "p.ome.zarr", cfg))
    params = [h for h in back.provenance.history if h["step"] == "labelfree.predict"][-1]["parameters"]
    assert params["region_yx"] == 64 and params["tiles"] > 9
    np.testing.assert_allclose(back.numpy(), whole.numpy(), atol=1e-4)


class _CountingArray:
    """A stored array that counts the chunks read from it (what dask asks of a zarr array)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim, self.reads = data, data.shape, data.dtype, data.ndim, 0

    def __getitem__(self, key: object) -> np.ndarray:
        self.reads += 1
        return self.data[key]  # type: ignore[index]


def test_stack_statistics_read_every_stored_chunk_once_and_equal_the_whole_stacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The normalisation statistics of a chunked stack (chunks deeper than the 4-plane slabs resampled stacks
    are read in, split in y) read each chunk once and equal mean, standard deviation and percentiles of the whole
    stack; an in-memory stack gets the same numbers. Chunks larger than the block bound are read in parts that
    still cover every voxel once (the rows kept for the prediction are the stack)."""
    import dask.array as da

    from subcell.labelfree import predict_input
    from subcell.labelfree.predict_input import stack_stats

    class Percentiles:
        percentiles = (1.0, 50.0, 99.5)

    rng = np.random.default_rng(3)
    data = (rng.gamma(2.0, 50.0, size=(1, 1, 20, 40, 24)) + 10).astype(np.float32)
    stored = _CountingArray(data)
    chunked = da.from_array(stored, chunks=(1, 1, 8, 16, 24), asarray=False, meta=np.empty((0,) * 5, np.float32))
    lazy = Image(chunked, voxel_size=VOXEL, dims="TCZYX")
    got = stack_stats(lazy, 0, 0, VoxelSize(*VOXEL), (20, 40, 24), Percentiles())  # type: ignore[arg-type]
    assert stored.reads == 3 * 3  # z chunks × y chunks
    np.testing.assert_allclose(got["mean"], data.mean(dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(got["std"], data.std(dtype=np.float64), rtol=1e-9)
    np.testing.assert_allclose(list(got["percentiles"].values()), np.percentile(data, [1.0, 50.0, 99.5]))
    memory = stack_stats(Image(data, voxel_size=VOXEL, dims="TCZYX"), 0, 0, VoxelSize(*VOXEL), (20, 40, 24),
                         Percentiles())  # type: ignore[arg-type]  # fmt: skip
    np.testing.assert_allclose(memory["mean"], got["mean"], rtol=1e-12)
    assert memory["percentiles"] == got["percentiles"]
    monkeypatch.setattr(predict_input, "STATS_BLOCK_VOXELS", 5 * 24)  # five rows of one plane per block
    kept = np.full((1, 20, 40, 24), np.nan, np.float32)
    parts = stack_stats(lazy, 0, 0, VoxelSize(*VOXEL), (20, 40, 24), Percentiles(), keep=kept)  # type: ignore[arg-type]
    np.testing.assert_array_equal(kept[0], data[0, 0])
    blocks = predict_input._stats_blocks(lazy, VoxelSize(*VOXEL), (20, 40, 24))
    assert max((z.stop - z.start) * (y.stop - y.start) * 24 for z, y in blocks) <= 5 * 24
    np.testing.assert_allclose(parts["mean"], got["mean"], rtol=1e-12)
    assert parts["percentiles"] == got["percentiles"]


def test_a_tiling_whose_rows_span_the_stack_reads_the_file_once(tmp_path: Path) -> None:
    """The statistics pass keeps a small stack it reads, and a tiling whose one tile row spans every plane takes
    its rows from there: each stored chunk is read once for the whole prediction (twice before), with the same
    prediction; a tiling of several rows reads the rows from the file again."""
    import dask.array as da

    model = _model(depth=1)
    image = paired_volume(7, shape=(36, 32, 32)).channel("brightfield")
    data = image.numpy().astype(np.float32)
    want = predict_image(model, image, PredictConfig(tile=(36, 32, 32), precision="fp32")).numpy()
    for tile, once in (((36, 32, 32), True), ((20, 32, 32), False)):
        stored = _CountingArray(data)
        chunked = da.from_array(stored, chunks=(1, 1, 8, 16, 32), asarray=False, meta=np.empty((0,) * 5, np.float32))
        lazy = Image(chunked, voxel_size=image.voxel_size, channel_names=image.channel_names)
        out = predict_to_zarr(
            model, lazy, tmp_path / f"pred{tile[0]}.ome.zarr", PredictConfig(tile=tile, precision="fp32")
        )
        chunks = 5 * 2  # z × y
        assert stored.reads == chunks if once else stored.reads > chunks, (tile, stored.reads)
        np.testing.assert_allclose(io.read(out).numpy(), want, atol=1e-5)


def test_a_band_of_rows_from_an_image_off_the_model_grid_is_those_rows_resampled() -> None:
    import dask.array as da

    from subcell.labelfree.predict_input import _raw_rows

    class Rows:  # the stored stack, recording the input rows (y) each read asks for
        def __init__(self, a: np.ndarray) -> None:
            self.a, self.shape, self.dtype, self.ndim, self.asked = a, a.shape, a.dtype, a.ndim, []

        def __getitem__(self, key):  # type: ignore[no-untyped-def]
            self.asked.append(key[3])
            return self.a[key]

    stored = Rows(paired_volume(3, shape=(16, 60, 52)).channel("brightfield").numpy())
    odd = Image(da.from_array(stored, chunks=(1, 1, 16, 6, 52)), voxel_size=(0.5, 0.27, 0.3),
                channel_names=["brightfield"])  # fmt: skip
    grid, shape = VoxelSize(0.5, 0.25, 0.25), (16, 65, 62)
    rows = _raw_rows(odd, 0, 0, grid, shape)
    whole = rows(0, 16)
    stored.asked.clear()
    band = rows(0, 16, slice(20, 41), slice(0, 62))  # every plane of rows 20-40: resampled along y
    assert band.shape == (1, 16, 21, 62)
    np.testing.assert_allclose(band, whole[:, :, 20:41], atol=1e-5)
    # only the input rows around the band (~18-39 of 60) are read, not the planes
    read = {y for k in stored.asked for y in range(*k.indices(60))}
    assert min(read) >= 12 and max(read) < 48
    with pytest.raises(ValueRangeError, match="resampled to the model's"):
        rows(0, 8, slice(20, 41), slice(0, 62))  # a lateral part of some planes is not read off the grid
