"""One volume predicted region by region (serially and on a Dask cluster of 2 processes) equals the whole run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from subcell import io  # noqa: E402
from subcell.errors import ValueRangeError  # noqa: E402
from subcell.image import VoxelSize  # noqa: E402
from subcell.labelfree import LabelFreeModel, PredictConfig, predict_to_zarr, preset  # noqa: E402
from subcell.labelfree.predict_regions import predict_regions_to_zarr  # noqa: E402
from tests.labelfree.conftest import VOXEL, paired_volume  # noqa: E402

CFG = PredictConfig(tile=(16, 64, 64), batch_size=2, precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small model folder (non-trivial batch-norm statistics) and a 16 × 192 × 160 bright-field field."""
    root = tmp_path_factory.mktemp("regions")
    torch.manual_seed(3)
    cfg = preset("resunet", depth=2, base_channels=4, z_levels=1)
    m = LabelFreeModel.create(cfg, input_channel="brightfield", targets=["dna"], voxel_size=VoxelSize(*VOXEL),
                              patch_size=(8, 32, 32))  # fmt: skip
    for mod in m.network.modules():
        if isinstance(mod, torch.nn.BatchNorm3d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    m.save(root / "model")
    io.write(paired_volume(8, shape=(16, 192, 160)).channel("brightfield"), root / "bf.ome.zarr")
    return root / "model", root / "bf.ome.zarr"


def test_regions_assemble_the_whole_volume_prediction(saved: tuple[Path, Path], tmp_path: Path) -> None:
    from subcell.labelfree.pretrained import load_model

    model_dir, field = saved
    image = io.read(field)
    whole = io.read(predict_to_zarr(load_model(str(model_dir)), image, tmp_path / "whole.ome.zarr", CFG)).numpy()
    regions: list[tuple[slice, ...]] = []

    class Serial:  # an executor that runs the regions here and notes which they were
        def map(self, fn, blocks):  # type: ignore[no-untyped-def]
            regions.extend(b.core for b in blocks)
            return [fn(b) for b in blocks]

    parts = predict_regions_to_zarr(model_dir, image, tmp_path / "parts.ome.zarr", CFG, region_yx=64,
                                    executor=Serial())  # fmt: skip
    got = io.read(parts)
    assert len(regions) == 3 * 3  # 192 × 160 in 64-px regions
    assert {(r[1].start, r[2].start) for r in regions} == {(y, x) for y in (0, 64, 128) for x in (0, 64, 128)}
    assert got.voxel_size.isclose(VOXEL) and got.channel_names == ("dna",)
    assert np.abs(whole).max() > 0.1
    np.testing.assert_allclose(got.numpy(), whole, rtol=0, atol=1e-6)  # measured: identical


def test_regions_on_two_worker_processes_equal_the_serial_cli(saved: tuple[Path, Path], tmp_path: Path) -> None:
    from subcell.cli.main import run

    model_dir, field = saved
    common = ["--model", str(model_dir), "--tile", "16", "64", "64", "--batch-size", "2", "--precision", "fp32",
              "--device", "cpu", "--quiet"]  # fmt: skip
    assert run(["labelfree", "predict", str(field), str(tmp_path / "serial.ome.zarr"), *common]) == 0
    assert run(["labelfree", "predict", str(field), str(tmp_path / "spread.ome.zarr"), *common, "--region-yx",
                "64", "--scheduler", "local", "--workers", "2"]) == 0  # fmt: skip
    a, b = io.read(tmp_path / "serial.ome.zarr").numpy(), io.read(tmp_path / "spread.ome.zarr").numpy()
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)  # measured: identical
    assert not list(tmp_path.glob("*.tmp*"))  # nothing half-written left beside the outputs


def test_bad_regions_are_refused_before_any_work(saved: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, field = saved
    with pytest.raises(ValueRangeError, match="at least one tile"):
        predict_regions_to_zarr(model_dir, io.read(field), tmp_path / "o.ome.zarr", CFG, region_yx=32)
    assert not (tmp_path / "o.ome.zarr").exists()


def test_a_loaded_model_predicts_regions_serially_and_is_refused_for_workers(
    saved: tuple[Path, Path], tmp_path: Path
) -> None:
    from subcell.labelfree.pretrained import load_model

    model_dir, field = saved
    image = io.read(field)
    by_spec = io.read(predict_regions_to_zarr(model_dir, image, tmp_path / "spec.ome.zarr", CFG, region_yx=64))
    seen: list[tuple[int, int]] = []
    loaded = load_model(str(model_dir))
    by_model = io.read(predict_regions_to_zarr(loaded, image, tmp_path / "loaded.ome.zarr", CFG, region_yx=64,
                                               progress=lambda done, total: seen.append((done, total))))  # fmt: skip
    np.testing.assert_array_equal(by_model.numpy(), by_spec.numpy())
    assert seen and seen[-1][0] == seen[-1][1]  # each region reports its tiles up to its last
    params = [h for h in by_model.provenance.history if h["step"] == "labelfree.predict"][-1]["parameters"]
    assert params["region_yx"] == 64 and params["tiles"] > 1 and params["precision"] == "fp32"
    with pytest.raises(ValueRangeError, match="loaded model predicts regions serially"):
        predict_regions_to_zarr(loaded, image, tmp_path / "o.ome.zarr", CFG, region_yx=64, executor=object())
    assert not (tmp_path / "o.ome.zarr").exists()
