"""The crop CNN state classifier: trained through the shared engine (checkpoint beside the model folder,
resume), the same grouped cross-validation as the feature models, 3D and 2D crops, a safetensors model folder
that predicts the same probabilities after loading, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from subcell.cli.main import run  # noqa: E402
from subcell.io import read_cell_store  # noqa: E402
from subcell.state import StateConfig, load_state_model  # noqa: E402
from subcell.state.cnn import CNNClassifier, CNNStateModel, load_crops  # noqa: E402

FAST = ["--set", "cnn.two_d=true", "--set", "cnn.batch_size=8", "--set", "cnn.base_channels=8", "--set",
        "cnn.precision=fp32", "--set", "folds=2"]  # fmt: skip


@pytest.mark.parametrize(("two_d", "iterations"), [(True, 80), (False, 12)])
def test_cnn_learns_and_its_folder_predicts_the_same(store: Path, tmp_path: Path, two_d: bool, iterations: int) -> None:
    st = read_cell_store(store)
    rows = st.extracted
    y = rows.state.astype(str).to_numpy()
    cfg = StateConfig(classifier="cnn", cnn={"iterations": iterations, "batch_size": 8, "base_channels": 8,
                                             "two_d": two_d, "precision": "fp32"})  # fmt: skip
    crops = load_crops(st, rows, None, two_d=two_d)
    assert crops.data.shape[2] == (1 if two_d else st.box[0])
    clf = CNNClassifier(cfg, crops, checkpoint=tmp_path / "m.checkpoint").fit(np.arange(len(y))[:, None], y)
    assert clf.model is not None
    if two_d:  # long enough to learn: mitotic cells have condensed, rounded DNA
        assert (clf.model.predict(crops) == y).mean() > 0.85
    clf.model.save(tmp_path / "m")
    loaded = load_state_model(tmp_path / "m")
    assert isinstance(loaded, CNNStateModel) and loaded.classes == sorted(set(y)) and loaded.two_d == two_d
    np.testing.assert_allclose(loaded.predict_proba(crops), clf.model.predict_proba(crops), atol=1e-6)
    assert json.loads((tmp_path / "m.checkpoint" / "checkpoint.json").read_text())["step"] == iterations


def test_cnn_cli_train_resume_predict_evaluate(store: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "cnn"
    args = ["state", "train", str(store), str(model), "--groups", "source", "--set", "classifier=cnn", *FAST]
    assert run([*args, "--set", "cnn.iterations=15"]) == 0
    meta = json.loads((model / "model.json").read_text())
    assert meta["kind"] == "state-cnn" and meta["training"]["steps"] == 15
    assert meta["metrics"]["folds"] == 2 and meta["metrics"]["grouped_by"] == "source"  # the shared grouped CV
    # a longer run continues the final model's training from its checkpoint (15 → 30 steps), not from scratch
    assert run([*args, "--set", "cnn.iterations=30", "--overwrite"]) == 0
    assert json.loads((tmp_path / "cnn.checkpoint" / "checkpoint.json").read_text())["step"] == 30
    history = json.loads((tmp_path / "cnn.checkpoint" / "checkpoint.json").read_text())["history"]
    assert [h["step"] for h in history["train"]] == list(range(1, 31))  # steps 1–15 kept, 16–30 added
    assert run(["state", "predict", str(store), str(tmp_path / "p.parquet"), "-m", str(model)]) == 0
    pred = pd.read_parquet(tmp_path / "p.parquet")
    assert len(pred) == len(read_cell_store(store).extracted)
    assert np.allclose(pred[["p_interphase", "p_mitotic"]].sum(axis=1), 1)
    capsys.readouterr()
    assert run(["state", "evaluate", str(store), str(tmp_path / "ev"), "--groups", "source", "--classifiers",
                "logistic,cnn", "--set", "sh_lmax=2", "--set", "cnn.iterations=15", *FAST]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "logistic: macro-F1" in out and "cnn: macro-F1" in out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(metrics) == {"logistic", "cnn"} and metrics["cnn"]["folds"] == metrics["logistic"]["folds"]
    assert run(["state", "evaluate", str(store), str(tmp_path / "ev2"), "--classifiers", "svm"]) == 2
    assert "svm" in capsys.readouterr().err and not (tmp_path / "ev2").exists()
