"""Cell state: stored models equal scikit-learn's, grouped cross-validation cannot leak, smoothing along tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from subcell.state import (
    StateConfig,
    cross_validate,
    fit_state_model,
    load_state_model,
    save_state_model,
    smooth_tracks,
    transitions_table,
    viterbi,
)
from subcell.state.model import make_classifier


def _data(n: int = 120, k: int = 3, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, 6)) + y[:, None] * np.array([1.5, -1.0, 0.5, 0, 0, 0])
    x[rng.random(x.shape) < 0.03] = np.nan  # missing features are imputed, as in training
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]), np.array([f"S{v}" for v in y])


@pytest.mark.parametrize("classifier", ["gradient_boosting", "logistic"])
@pytest.mark.parametrize("k", [2, 3])
def test_stored_model_predicts_like_scikit_learn(tmp_path: Path, classifier: str, k: int) -> None:
    x, y = _data(k=k)
    cfg = StateConfig(classifier=classifier)
    model = fit_state_model(x, y, cfg)
    save_state_model(model, tmp_path / "m")
    loaded = load_state_model(tmp_path / "m")
    reference = make_classifier(cfg).fit(x.to_numpy(float), y).predict_proba(x.to_numpy(float))
    assert np.allclose(loaded.predict_proba(x), reference, atol=1e-10)
    assert loaded.classes == sorted(set(y))


def test_grouped_cross_validation_does_not_leak() -> None:
    """Each group has one state and a feature that names the group: ungrouped folds learn the group (high
    accuracy); folds grouped by it cannot, and score at most chance."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(8), 15)
    y = np.array(["A", "B"])[groups % 2]
    x = pd.DataFrame({"group_code": groups + rng.normal(0, 0.01, groups.size), "noise": rng.normal(size=groups.size)})
    free = cross_validate(x, y, StateConfig(classifier="gradient_boosting"))
    grouped = cross_validate(x, y, StateConfig(classifier="gradient_boosting", groups="g", folds=4), groups=groups)
    assert free["accuracy"] > 0.8
    assert grouped["accuracy"] <= 0.6
    assert np.asarray(grouped["confusion"]).sum() == groups.size


def test_too_few_classes_is_an_error() -> None:
    x, _ = _data()
    with pytest.raises(ValueError, match="at least two classes"):
        fit_state_model(x, np.array(["A"] * len(x)), StateConfig())


def test_viterbi_never_goes_back_and_fixes_noisy_frames() -> None:
    truth = np.array([0] * 6 + [1] * 5 + [2] * 6)
    rng = np.random.default_rng(0)
    p = np.full((truth.size, 3), 0.1)
    p[np.arange(truth.size), truth] = 0.8
    flips = rng.choice(truth.size, 4, replace=False)
    p[flips] = p[flips][:, ::-1]  # frame-wise errors, some of them backward jumps
    allowed = np.eye(3, dtype=bool) | np.eye(3, k=1, dtype=bool)
    path = viterbi(np.log(p), allowed, switch_cost=2.0)
    assert (np.diff(path) >= 0).all()
    assert (path == truth).mean() > (p.argmax(axis=1) == truth).mean()


def test_smoothing_along_tracks_restarts_daughters() -> None:
    tracks = pd.DataFrame(
        {"track_id": [1] * 4 + [2] * 3, "t": [0, 1, 2, 3, 4, 5, 6], "parent_track": [0] * 4 + [1] * 3}
    )
    classes = ["G1", "M"]
    # the daughter's first frame looks mitotic (a noisy classifier), but daughters start in G1
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.4, 0.6], [0.8, 0.2], [0.9, 0.1]])
    states = smooth_tracks(tracks, proba, classes, order=["G1", "M"], cyclic=True)
    assert states.tolist() == ["G1", "G1", "M", "M", "G1", "G1", "G1"]
    visits = transitions_table(tracks.assign(state=states), time_interval_s=300)
    first = visits[visits.track_id == 1]
    assert first[["state", "entry_frame", "frames"]].values.tolist() == [["G1", 0, 2], ["M", 2, 2]]
    assert first.duration_min.tolist() == [10.0, 10.0]
    # the mother's G1 began before the movie (entry unseen); its M ended in the division: entered, left, complete;
    # the daughter's G1 began at its birth but is still going when the movie ends
    assert visits[["entry_seen", "exit_seen", "complete"]].values.tolist() == [[False, True, False],
                                                                              [True, True, True],
                                                                              [True, False, False]]  # fmt: skip


def test_state_cli_evaluate_train_predict(store: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell.cli.main import run
    from subcell.io import read_cell_store

    states = read_cell_store(store).extracted.state
    assert {"mitotic", "interphase"} <= set(states)
    assert run(["state", "evaluate", str(store), str(tmp_path / "ev"), "--groups", "source"]) == 0
    out = capsys.readouterr().out
    assert "gradient_boosting: macro-F1" in out and "grouped by source" in out
    conf = pd.read_csv(tmp_path / "ev" / "confusion_gradient_boosting.csv")
    assert conf.drop(columns="true").to_numpy().sum() == len(states)
    assert (tmp_path / "ev" / "confusion_logistic.png").read_bytes()[:4] == b"\x89PNG"
    assert run(["state", "train", str(store), str(tmp_path / "model"), "--groups", "source"]) == 0
    assert run(["state", "predict", str(store), str(tmp_path / "pred.parquet"), "-m", str(tmp_path / "model")]) == 0
    pred = pd.read_parquet(tmp_path / "pred.parquet")
    # mitotic cells (rounded, condensed DNA) are told apart on the cells the model saw
    assert (pred.state.to_numpy() == states.to_numpy()).mean() > 0.9
    assert np.allclose(pred[["p_interphase", "p_mitotic"]].sum(axis=1), 1)
    # over a collection of stores: each item is the single command's table, all of them one dataset (the cells'
    # table has a source column of its own, so the item's id and source are batch_id and batch_source)
    pd.DataFrame({"id": ["a", "b"], "source": [str(store)] * 2}).to_csv(tmp_path / "stores.csv", index=False)
    batch = ["batch", "state", "predict", str(tmp_path / "stores.csv"), str(tmp_path / "states"), "-m",
             str(tmp_path / "model"), "--workers", "1", "--quiet"]  # fmt: skip
    assert run(batch) == 0
    gathered = pd.read_parquet(tmp_path / "states" / "states")
    for item in ("a", "b"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "states" / f"{item}.parquet"), pred)
        mine = gathered[gathered.batch_id == item].drop(columns=["batch_id", "batch_source"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, pred)
    capsys.readouterr()
    assert run([*batch, "--transitions", str(tmp_path / "visits.parquet")]) == 2  # one file for every item: refused
    assert "--transitions names one file, which every item would write" in capsys.readouterr().err


def test_state_cli_bad_inputs(store: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell.cli.main import run

    assert run(["state", "train", str(store), str(tmp_path / "m"), "--column", "phase"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no column 'phase'" in err and str(store) in err and len(err.splitlines()) == 1
    assert run(["state", "evaluate", str(store), str(tmp_path / "e"), "--groups", "nowhere"]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / "e").exists()


def test_state_predict_smooths_along_tracks(store: Path, tmp_path: Path) -> None:
    """Train on one store, classify the cells of a tracked time-lapse, smooth along its tracks: within a track
    the state never goes back from mitotic to interphase, and the visits table lists every track."""
    from subcell.cells import ExtractConfig, extract_to_store
    from subcell.cli.main import run
    from subcell.synth import synth_field, write_field

    timelapse: dict[str, float] = {"time.frames": 6, "time.division_probability": 0.15, "cells.mitotic_fraction": 0.3}
    f = synth_field(shape=(16, 160, 160), voxel_size=(0.5, 0.3, 0.3), seed=8, **timelapse)  # type: ignore[arg-type]
    movie = write_field(f, tmp_path / "tl.ome.zarr")
    cells = tmp_path / "tl_cells.zarr"
    nuclei = (f.labels["nucleus"] * (f.labels["cell"] > 0)).astype(np.int32)
    cfg = ExtractConfig(channels=["dna"], box=(24, 40, 40), voxel_um=0.5, border="flag", oversize="rescale",
                        missing_nucleus="skip")  # fmt: skip
    extract_to_store([(f.image, f.labels["cell"], nuclei, {"source": "tl"})], cells, cfg)
    assert run(["state", "train", str(store), str(tmp_path / "model")]) == 0
    assert run(["track", str(movie), str(tmp_path / "tracks"), "--label", "nucleus"]) == 0
    assert run(["state", "predict", str(cells), str(tmp_path / "s.parquet"), "-m", str(tmp_path / "model"),
                "--tracks", str(tmp_path / "tracks"), "--order", "interphase,mitotic",
                "--transitions", str(tmp_path / "visits.csv")]) == 0  # fmt: skip
    pred = pd.read_parquet(tmp_path / "s.parquet")
    on = pred.dropna(subset=["track_id"])
    assert len(on) > 0.9 * len(pred)
    for _, part in on.sort_values("frame").groupby("track_id"):
        code = (part.state_smoothed == "mitotic").to_numpy().astype(int)
        assert (np.diff(code) >= 0).all()  # not cyclic: never back to interphase within a track
    visits = pd.read_csv(tmp_path / "visits.csv")
    assert set(visits.track_id) == set(on.track_id.astype(int))
    assert (visits.duration_min == visits.frames * 5.0).all()  # the tracks' 300 s frames
    assert (visits.complete == (visits.entry_seen & visits.exit_seen)).all() and not visits.complete.all()
