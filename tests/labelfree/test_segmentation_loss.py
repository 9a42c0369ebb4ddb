"""Training on masks with a segmentation loss (``loss: bce_dice``): the loss, a model that predicts
probabilities through every prediction path (folder model, tiles, bioimage.io package), and the config errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from subcell import Image, io  # noqa: E402
from subcell.labelfree import LabelFreeModel, PredictConfig, predict_image, train_labelfree  # noqa: E402
from subcell.labelfree.train import _loss  # noqa: E402
from subcell.metrics import dice  # noqa: E402
from tests.labelfree.conftest import VOXEL, tiny_config, write_dataset  # noqa: E402


def _masked_volume(seed: int, shape: tuple[int, int, int] = (16, 48, 48)) -> Image:
    """Bright-field whose smoothed bright regions are the 'objects': a mask target that is a local function of
    the input, stored as labels (1, 2, ...) as segmentation outputs are."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    bf = ndi.gaussian_filter(rng.normal(size=shape), (1, 2, 2)).astype(np.float32)
    bf = (bf - bf.mean()) / bf.std()
    labels, _ = ndi.label(ndi.gaussian_filter(bf, 1) > 0.4)
    data = np.stack([bf * 50 + 500, labels.astype(np.float32)])[None]  # TCZYX
    return Image(data, voxel_size=VOXEL, channel_names=["brightfield", "objects"])


@pytest.fixture(scope="module")
def mask_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("masks"), [_masked_volume(10 + i) for i in range(4)], "objects", "m")


def test_bce_dice_loss_rewards_overlap_and_ignores_unweighted_voxels() -> None:
    loss = _loss(False, 1, "bce_dice")
    y = (torch.rand(2, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    w = torch.ones_like(y)
    w[:, :, :2] = 0  # the loss mask leaves out half the planes
    right, wrong = 8 * (2 * y - 1), -8 * (2 * y - 1)
    assert float(loss(right, (y, y, w))) < 0.01 < 1.5 < float(loss(wrong, (y, y, w)))
    out = torch.zeros_like(y, requires_grad=True)
    value = loss(out, (y, y, w))
    value.backward()
    assert out.grad is not None
    assert torch.all(out.grad[:, :, :2] == 0) and torch.all(out.grad[:, :, 2:][y[:, :, 2:] > 0] < 0)
    changed = out.detach().clone()
    changed[:, :, :2] = 5.0  # anything outside the mask
    assert float(loss(changed, (y, y, w))) == pytest.approx(float(value.detach()), abs=1e-6)
    # a batch with no foreground at all stays finite (the Dice term's smoothing)
    none = torch.zeros_like(y)
    assert torch.isfinite(loss(-8 * torch.ones_like(y), (none, none, w)))


def test_training_on_masks_predicts_probabilities_that_segment(mask_dataset: Path, tmp_path: Path) -> None:
    cfg = tiny_config(mask_dataset, tmp_path / "seg", loss="bce_dice", iterations=80, lr=3e-3,
                      checkpoint_every=40, validate_every=40)  # fmt: skip
    result = train_labelfree(cfg)
    losses = [h["loss"] for h in result.history.train]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    meta = json.loads((tmp_path / "seg" / "model.json").read_text())
    assert meta["normalization"]["target"] == "probability" and meta["config"]["loss"] == "bce_dice"
    model = LabelFreeModel.load(tmp_path / "seg")
    assert model.predicts_probability
    test = io.read(mask_dataset.parent / "m3.ome.zarr")
    field = Image(test.numpy()[:, :1], voxel_size=VOXEL, channel_names=["brightfield"])
    truth = test.numpy()[0, 1] > 0
    whole = predict_image(model, field, PredictConfig(precision="fp32"))
    p = whole.numpy()[0, 0]
    assert p.min() >= 0 and p.max() <= 1 and p.max() > 0.9 and p.min() < 0.3  # probabilities, spread
    assert dice(p > 0.5, truth) > 0.6
    # tiled equals whole for a probability model too
    tiled = predict_image(model, field, PredictConfig(precision="fp32", tile=(16, 32, 32)))
    assert tiled.provenance.parameters["tiles"] > 1
    np.testing.assert_allclose(tiled.numpy(), whole.numpy(), atol=1e-4)
    # the network itself ends with logits: the prediction is their sigmoid
    x = (field.numpy()[0, 0] - field.numpy().mean()) / field.numpy().std()
    with torch.inference_mode():
        logits = model.network(torch.from_numpy(x.astype(np.float32))[None, None]).numpy()[0, 0]
    assert logits.min() < -1 and logits.max() > 1
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-logits)), atol=1e-3)
    # through the CLI, as a user scores a mask model on a held-out field
    from subcell.cli.main import run

    pred_path, table = tmp_path / "pred.ome.zarr", tmp_path / "scores.csv"
    assert run(["labelfree", "predict", str(mask_dataset.parent / "m3.ome.zarr"), str(pred_path), "--model",
                str(tmp_path / "seg"), "--precision", "fp32", "--quiet"]) == 0  # fmt: skip
    assert run(["labelfree", "evaluate", str(pred_path), str(mask_dataset.parent / "m3.ome.zarr"), "--channel",
                "objects=objects", "--mask-target", "--out", str(table)]) == 0  # fmt: skip
    import pandas as pd

    row = pd.read_csv(table).iloc[0]
    assert row["mask_scored_in"] == "field" and row["dice_p50"] == pytest.approx(dice(p > 0.5, truth), abs=0.01)


def test_regression_and_segmentation_configs_differ_only_where_they_should(mask_dataset: Path, tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="uncertainty"):
        tiny_config(mask_dataset, tmp_path / "u", loss="bce_dice", uncertainty=True)
    with pytest.raises(ValidationError, match="loss"):
        tiny_config(mask_dataset, tmp_path / "u", loss="dice")
    mse = train_labelfree(tiny_config(mask_dataset, tmp_path / "mse", iterations=2, binarize_targets=True))
    assert not mse.model.predicts_probability and mse.model.normalization["target"] == "zscore_per_image"
