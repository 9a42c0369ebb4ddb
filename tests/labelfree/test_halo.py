"""A network's edge reach is measured on its weights, stored with the model, and trimmed by the tiled
predictor, so tiles on the network's stride phase equal a whole-volume pass even for trained networks whose
tile edges reach tens of voxels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from subcell import Image  # noqa: E402
from subcell.errors import InputFileError, ValueRangeError  # noqa: E402
from subcell.image import VoxelSize  # noqa: E402
from subcell.labelfree import LabelFreeModel, PredictConfig, predict_image, preset  # noqa: E402
from subcell.labelfree.halo import edge_reach  # noqa: E402
from subcell.labelfree.pretrained import shipped_folder  # noqa: E402
from tests.labelfree.conftest import VOXEL, paired_volume  # noqa: E402


def _convs(kernels: list[tuple[int, int, int]]) -> torch.nn.Module:
    layers = []
    for k in kernels:
        conv = torch.nn.Conv3d(1, 1, k, padding=tuple(s // 2 for s in k), bias=False)
        torch.nn.init.constant_(conv.weight, 1.0 / np.prod(k))
        layers.append(conv)
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize(
    ("kernels", "reach"),
    [([(3, 3, 3)], (1, 1, 1)), ([(3, 3, 3)] * 3, (3, 3, 3)), ([(1, 3, 3), (1, 5, 5)], (0, 3, 3))],
)
def test_edge_reach_of_stacked_convolutions_is_their_padding(
    kernels: list[tuple[int, int, int]], reach: tuple[int, int, int]
) -> None:
    # zero padding corrupts exactly the voxels whose receptive field crosses the edge: the sum of the half-widths
    assert edge_reach(_convs(kernels), (8, 16, 16), (1, 1, 1)) == reach


def test_edge_reach_of_a_planar_model_is_zero_in_z() -> None:
    assert edge_reach(_convs([(1, 3, 3)] * 2), (1, 32, 32), (1, 1, 1)) == (0, 2, 2)


def test_edge_reach_probes_further_when_the_effect_reaches_the_middle() -> None:
    # 9 convolutions that each shift the volume by one voxel in z: the last 9 planes read the zero padding
    # (exactly, no decay), beyond the middle of a 2-patch crop of 8: the probe doubles until it sees the end
    net = _convs([(3, 1, 1)] * 9)
    for conv in net:
        torch.nn.init.zeros_(conv.weight)
        with torch.no_grad():
            conv.weight[0, 0, 2, 0, 0] = 1.0
    assert edge_reach(net, (4, 4, 4), (1, 1, 1)) == (9, 0, 0)


def test_halo_is_measured_once_and_stored_with_the_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = preset("resunet", depth=1, base_channels=4, z_levels=1)
    model = LabelFreeModel.create(cfg, input_channel="brightfield", targets=["dna"], voxel_size=VoxelSize(*VOXEL),
                                  patch_size=(8, 16, 16))  # fmt: skip
    halo = model.halo
    assert all(0 < h <= 16 for h in halo)
    folder = model.save(tmp_path / "m")
    assert json.loads((folder / "model.json").read_text())["halo"] == list(halo)
    assert LabelFreeModel.load(folder).measured_halo == halo  # read, not measured again
    meta = json.loads((folder / "model.json").read_text())
    meta["halo"] = [1, -2, 3]
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputFileError, match=r"model.json.*halo must be three voxel counts"):
        LabelFreeModel.load(folder)


def _whole_and_tiled(model: LabelFreeModel, image: Image, **tiled: object) -> tuple[np.ndarray, np.ndarray, dict]:
    whole = predict_image(model, image, PredictConfig(tile=model.valid_tile(image.shape[2:]), precision="fp32"))
    out = predict_image(model, image, PredictConfig(precision="fp32", **tiled))  # type: ignore[arg-type]
    return whole.numpy(), out.numpy(), out.provenance.parameters


def test_shipped_model_tiled_equals_whole_volume(tmp_path: Path) -> None:
    # the shipped 2D model's edges reach ~46 voxels; a memory budget that forces tiles (at 0.3 µm, 2 x 2 of them)
    model = LabelFreeModel.load(shipped_folder("dna-2d"))
    assert model.halo[1] > 30 and model.halo[0] == 0
    image = paired_volume(3, shape=(1, 260, 236)).channel("brightfield")
    image = Image(image.data, voxel_size=model.voxel_size, channel_names=image.channel_names)
    whole, tiled, params = _whole_and_tiled(model, image, tile=(1, 160, 160))
    assert params["tiles"] > 1 and params["trim"][1:] == list(model.halo[1:])
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_default_network_tiled_on_its_stride_phase_equals_whole_volume() -> None:
    # narrow tiles of the default network: starts that are not multiples of its divisor (8) change the strided
    # convolutions' phase and differed by 7e-3 even with a wide trim
    torch.manual_seed(1)
    model = LabelFreeModel.create(preset("resunet", z_levels=3), input_channel="brightfield", targets=["dna"],
                                  voxel_size=VoxelSize(*VOXEL))  # fmt: skip
    image = paired_volume(4, shape=(32, 100, 124)).channel("brightfield")
    whole, tiled, params = _whole_and_tiled(model, image, tile=(32, 64, 64))
    assert params["tiles"] >= 4
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_a_tile_too_short_for_the_edge_reach_is_refused() -> None:
    model = LabelFreeModel.load(shipped_folder("dna-2d"))
    image = paired_volume(3, shape=(1, 260, 236)).channel("brightfield")
    image = Image(image.data, voxel_size=model.voxel_size, channel_names=image.channel_names)
    with pytest.raises(ValueRangeError, match=r"tile 64 long in y cannot be trimmed by the network's edge reach"):
        predict_image(model, image, PredictConfig(tile=(1, 64, 64), precision="fp32"))


def test_old_model_folders_without_halo_get_it_measured(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    shutil.copytree(shipped_folder("dna-2d"), folder)
    meta = json.loads((folder / "model.json").read_text())
    stored = tuple(meta.pop("halo"))
    (folder / "model.json").write_text(json.dumps(meta))
    model = LabelFreeModel.load(folder)
    assert model.measured_halo is None and model.halo == stored
