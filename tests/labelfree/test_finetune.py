"""Fine-tuning (init, freezing, layer-wise rates), padding of small images, output selection, shipped-model lookup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from subcell.errors import InputFileError, ValueRangeError
from subcell.labelfree import LabelFreeModel, train_labelfree
from subcell.labelfree.data import Volume, pad_to_patch
from tests.labelfree.conftest import tiny_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _weights(model: LabelFreeModel, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.network.state_dict().items() if k.startswith(prefix) and "weight" in k}


@pytest.fixture(scope="module")
def base_model(paired_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base") / "model"
    return train_labelfree(tiny_config(paired_dataset, out, iterations=6)).folder  # type: ignore[return-value]


def test_small_images_are_padded_with_no_loss_in_the_padding() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 9, 7)).astype(np.float32)
    vol = Volume("crop", x, x * 2, None, np.array([0, 17, 314]), np.zeros(1), np.ones(1))
    padded = pad_to_patch(vol, (8, 16, 16))
    assert padded.shape == (8, 16, 16)
    np.testing.assert_array_equal(padded.input[:, :5, :9, :7], x)
    assert padded.weight is not None
    assert padded.weight[:5, :9, :7].all() and padded.weight.sum() == 5 * 9 * 7  # zero weight in the padding
    # foreground indices still point at the same voxels
    before = np.unravel_index(vol.foreground, vol.shape)
    after = np.unravel_index(padded.foreground, padded.shape)
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert pad_to_patch(padded, (8, 16, 16)) is padded


def test_training_on_images_smaller_than_the_patch_pads_them(paired_dataset: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    res = train_labelfree(tiny_config(paired_dataset, tmp_path / "pad", patch_size=(32, 16, 16), iterations=3),
                          on_message=messages.append)  # fmt: skip
    assert res.folder is not None and res.summary["steps"] == 3
    assert any("padded" in m for m in messages)
    assert np.isfinite(res.summary["final_loss"])


def test_fine_tuning_starts_from_the_initial_weights(paired_dataset: Path, base_model: Path, tmp_path: Path) -> None:
    init = LabelFreeModel.load(base_model)
    # a vanishing learning rate: the fine-tuned convolutions must be the initial ones
    res = train_labelfree(tiny_config(paired_dataset, tmp_path / "ft", init=str(base_model), lr=1e-12, iterations=2,
                                      network="fnet"))  # fmt: skip
    tuned = res.model
    assert tuned.network_config == init.network_config  # the network comes from the initial model, not the config
    for k, v in _weights(init, "").items():
        torch.testing.assert_close(tuned.network.state_dict()[k].cpu(), v, atol=1e-6, rtol=0)
    assert tuned.config["init"] == str(base_model)


def test_frozen_encoder_stays_and_new_targets_get_new_outputs(
    paired_dataset: Path, base_model: Path, tmp_path: Path
) -> None:
    init = LabelFreeModel.load(base_model)
    messages: list[str] = []
    res = train_labelfree(
        tiny_config(paired_dataset, tmp_path / "fz", init=str(base_model), freeze_encoder=True, iterations=3,
                    lr=1e-2, targets=["membrane"]),
        on_message=messages.append,
    )  # fmt: skip
    tuned = res.model.network.state_dict()
    for k, v in _weights(init, "encoders.").items():
        assert torch.equal(tuned[k].cpu(), v), k
    changed = [k for k, v in _weights(init, "decoders.").items() if not torch.equal(tuned[k].cpu(), v)]
    assert changed, "the decoder did not train"
    assert any("new output channel(s) ['membrane']" in m for m in messages)


def test_transfer_matches_mean_and_log_variance_rows_by_target_name() -> None:
    from subcell.image import VoxelSize
    from subcell.labelfree import preset
    from subcell.labelfree.train import _transfer

    def make(targets: list[str]) -> LabelFreeModel:
        net = preset("resunet", depth=1, base_channels=4, z_levels=1)
        return LabelFreeModel.create(net, input_channel="bf", targets=targets, voxel_size=VoxelSize(1, 1, 1),
                                     uncertainty=True, patch_size=(4, 8, 8))  # fmt: skip

    torch.manual_seed(0)
    init, model = make(["dna", "membrane"]), make(["membrane", "nucleus"])
    before = {k: v.clone() for k, v in model.network.state_dict().items() if k.startswith("head.")}
    fresh = _transfer(init, model, lambda _: None)
    assert fresh == [1, 3]  # nucleus: mean row 1 and log-variance row 3
    src = init.network.state_dict()
    for k, v in model.network.state_dict().items():
        if k.startswith("head."):
            assert torch.equal(v[0], src[k][1]) and torch.equal(v[2], src[k][3]), k  # membrane: rows 1 and 3 of init
            assert torch.equal(v[1], before[k][1]) and torch.equal(v[3], before[k][3]), k  # fresh rows untouched


@pytest.mark.parametrize("new_target", [False, True])
def test_interpolate_init_ends_between_the_initial_and_the_fine_tuned_weights(
    paired_dataset: Path, base_model: Path, tmp_path: Path, new_target: bool
) -> None:
    init = LabelFreeModel.load(base_model)
    kw = {"init": str(base_model), "iterations": 3, "lr": 1e-2, "targets": ["membrane"] if new_target else None}
    full = train_labelfree(tiny_config(paired_dataset, tmp_path / "full", **kw)).model.network.state_dict()
    res = train_labelfree(tiny_config(paired_dataset, tmp_path / "mix", interpolate_init=0.25, **kw))
    mixed, start = res.model.network.state_dict(), init.network.state_dict()
    assert res.summary["interpolated_init"] == 0.25
    last, blended = res.history.validation[-2:]  # the fine-tune's last validation, then the blend's (model card)
    assert res.summary["validation"] == blended and blended["blended"] == 0.25 and blended["step"] == last["step"]
    assert blended["val_loss"] != last["val_loss"]
    moved = [k for k, v in full.items() if v.is_floating_point() and not torch.equal(v.cpu(), start[k])]
    assert any(k.startswith("decoders.") for k in moved)  # the fine-tune changed the weights
    for k, v in mixed.items():
        if not v.is_floating_point():
            continue
        # a target the initial model lacks keeps its fine-tuned output row (there is no initial one to blend with)
        want = full[k] if new_target and k.startswith("head.") else 0.75 * start[k].to(v) + 0.25 * full[k]
        torch.testing.assert_close(v, want, atol=1e-6, rtol=1e-5, msg=k)
    with pytest.raises(ValueError, match="interpolate_init needs init"):
        tiny_config(paired_dataset, tmp_path / "x", interpolate_init=0.5)


def test_fine_tune_contradicting_the_initial_model_is_refused(
    paired_dataset: Path, base_model: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueRangeError, match="contradicts the initial model"):
        train_labelfree(tiny_config(paired_dataset, tmp_path / "a", init=str(base_model), voxel_size=(1, 1, 1)))
    with pytest.raises(InputFileError, match="shipped models"):
        train_labelfree(tiny_config(paired_dataset, tmp_path / "b", init="no_such_model"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_selected_outputs_equal_the_full_models_channels(base_model: Path) -> None:
    from subcell.image import VoxelSize
    from subcell.labelfree import NetworkConfig

    full = LabelFreeModel.create(NetworkConfig(depth=1, base_channels=4), input_channel="bf",
                                 targets=["a", "b", "c"], voxel_size=VoxelSize(1, 1, 1))  # fmt: skip
    full.network.eval()
    x = torch.randn(1, 1, 4, 16, 16)
    sub = full.select(["c", "a"])
    assert sub.targets == ["c", "a"]
    with torch.no_grad():
        y, ys = full.network(x), sub.network(x)
    torch.testing.assert_close(ys, y[:, [2, 0]])
    with pytest.raises(ValueError, match="no \\['z'\\]"):
        full.select(["z"])


def test_shipped_model_lookup_checks_names_and_checksums(
    base_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from subcell.labelfree import pretrained

    shutil.copytree(base_model, tmp_path / "m")
    digest = __import__("hashlib").sha256((tmp_path / "m" / "weights.safetensors").read_bytes()).hexdigest()
    index = {"models": {"toy": {"folder": "m", "targets": ["dna"], "description": "a test", "sha256": digest}}}
    (tmp_path / "index.json").write_text(json.dumps(index))
    monkeypatch.setattr(pretrained, "HERE", tmp_path)
    monkeypatch.setattr(pretrained, "INDEX", tmp_path / "index.json")
    assert [r["name"] for r in pretrained.list_models()] == ["toy"]
    model = pretrained.load_model("toy")
    assert model.targets == ["dna"] and model.training["shipped_name"] == "toy"
    with pytest.raises(InputFileError, match="shipped models: toy"):
        pretrained.load_model("dnaa")
    # whether a model takes the cells, from model.json alone: a batch asks before it schedules anything
    assert pretrained.takes_cells("toy") is False and pretrained.takes_cells(tmp_path / "m") is False
    with pytest.raises(InputFileError, match="shipped models: toy"):
        pretrained.takes_cells("dnaa")
    with pytest.raises(InputFileError, match="model not found"):  # a bioimage.io package that is not there
        pretrained.takes_cells(tmp_path / "missing.zip")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    shutil.copytree(tmp_path / "m", tmp_path / "c")
    (tmp_path / "c" / "model.json").write_text(json.dumps({**meta, "input_channels": ["bf", "cell_depth"]}))
    assert pretrained.takes_cells(tmp_path / "c") is True
    (tmp_path / "c" / "model.json").write_text(json.dumps({**meta, "input_channels": "bf"}))
    with pytest.raises(InputFileError, match="input_channels 'bf': expected one image channel"):
        pretrained.takes_cells(tmp_path / "c")
    weights = tmp_path / "m" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)  # a damaged install
    with pytest.raises(InputFileError, match="corrupted"):
        pretrained.load_model("toy")
