"""Pretraining on a stream of domain-randomized synthetic fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from subcell.labelfree import LabelFreeModel
from subcell.labelfree.config import PretrainConfig
from subcell.labelfree.pretrain import FieldStream, pretrain_labelfree, synthetic_volume

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# config fields that say how a run trains, not which fields it generates
_NOT_THE_FIELDS = {"output", "overwrite", "iterations", "max_minutes", "stop_at", "lr", "lr_schedule", "average_from",
                   "validate_every", "checkpoint_every", "resume", "field_workers", "prefetch", "threads"}  # fmt: skip
_MADE: dict[tuple[str, tuple[int, ...]], object] = {}


@pytest.fixture
def fields_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """For the tests that run the same few tiny pretrainings several times over to compare them (stopped, averaged,
    resumed): making their fields is most of their time. A field is a pure function of the generator's part of the
    config and its key (the first two tests check that on the real function, so they do not use this), so the fields
    made in this process are kept and handed out as copies. Worker processes still make their own, which the worker
    test compares with these."""
    import copy
    import functools

    import subcell.labelfree.pretrain as pretrain

    real = pretrain.synthetic_volume

    # wraps: pickled for a worker process by its module and name, which there is the real function
    @functools.wraps(real)
    def once(cfg: PretrainConfig, key: tuple[int, ...]) -> object:
        k = (cfg.model_dump_json(exclude=_NOT_THE_FIELDS), tuple(key))
        if k not in _MADE:
            _MADE[k] = real(cfg, key)
        return copy.deepcopy(_MADE[k])

    monkeypatch.setattr(pretrain, "synthetic_volume", once)


def _cfg(tmp_path: Path, **kw: object) -> PretrainConfig:
    base: dict[str, object] = {
        "output": tmp_path / "pre", "targets": ["dna", "nucleus"], "field_um": (8.0, 24.0, 24.0),
        "voxel_size": (0.5, 0.4, 0.4), "network": {"preset": "resunet", "depth": 1, "base_channels": 4},
        "patch_size": (8, 16, 16), "batch_size": 2, "iterations": 4, "fields_every": 2, "pool": 2,
        "val_fields": 1, "val_patches": 2, "validate_every": 2, "checkpoint_every": 2, "precision": "fp32",
        "threads": 1,
    }  # fmt: skip
    base.update(kw)
    return PretrainConfig.model_validate(base)


def test_each_field_key_is_one_reproducible_new_field(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    a, b, again = synthetic_volume(cfg, (0,)), synthetic_volume(cfg, (1,)), synthetic_volume(cfg, (0,))
    np.testing.assert_array_equal(a.input, again.input)
    np.testing.assert_array_equal(a.target, again.target)
    assert a.input.shape != b.input.shape or not np.array_equal(a.input, b.input)
    # targets: z-scored noise-free DNA and the nucleus mask, which agree where the nucleus is
    dna, nucleus = a.target
    assert abs(float(dna.mean())) < 1e-4 and abs(float(dna.std()) - 1) < 1e-3
    inside = nucleus > nucleus.mean()
    assert dna[inside].mean() > dna[~inside].mean() + 0.5
    assert a.foreground.size > 0


def test_the_stream_is_a_function_of_the_step(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    s1 = FieldStream(cfg, (8, 16, 16))
    batches = [s1.batch(np.random.default_rng(i)) for i in range(5)]
    assert s1.generated == 3 and sorted(s1.cache) == [1, 2]  # steps 0-1 → field 0, 2-3 → 1, 4 → 2; pool of 2
    s2 = FieldStream(cfg, (8, 16, 16), start=4)  # a resumed run at step 4 sees the same fields
    again = s2.batch(np.random.default_rng(4))
    for x, y in zip(batches[4], again, strict=True):
        assert np.array_equal(x.numpy(), y.numpy())


@pytest.mark.usefixtures("fields_made_once")
def test_fields_made_by_worker_processes_make_the_same_run(tmp_path: Path) -> None:
    serial = FieldStream(_cfg(tmp_path), (8, 16, 16))
    with FieldStream(_cfg(tmp_path, field_workers=2), (8, 16, 16), last=2) as parallel:
        for step in range(5):
            for x, y in zip(serial.batch(np.random.default_rng(step)), parallel.batch(np.random.default_rng(step)),
                            strict=True):  # fmt: skip
                assert np.array_equal(x.numpy(), y.numpy())
        assert parallel.generated == serial.generated == 3 and parallel.from_workers == 3 and serial.from_workers == 0
        assert parallel.pending == {}  # every field asked of the workers was used; none beyond the last
    assert parallel.workers is None  # closed with the block
    # the whole run, validation fields included, is the same with workers, and they are gone at its end
    a = pretrain_labelfree(_cfg(tmp_path / "a"))
    b = pretrain_labelfree(_cfg(tmp_path / "b", field_workers=2))
    # every field of the run with workers came from them: 2 training fields and 1 validation field
    assert a.summary["fields_from_workers"] == 0 and b.summary["fields_from_workers"] == 3
    sa, sb = a.model.network.state_dict(), b.model.network.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.summary["validation"] == b.summary["validation"]
    import multiprocessing

    assert multiprocessing.active_children() == []


def test_closing_the_stream_ends_a_worker_in_the_middle_of_a_field(tmp_path: Path) -> None:
    """A run that ends (time budget, error, interrupt) while a worker makes a field it will never use does not
    wait for that field (a large one takes a minute): the worker is terminated, none is left behind."""
    import multiprocessing

    cfg = _cfg(tmp_path, field_workers=1, field_um=(16.0, 96.0, 96.0), voxel_size=(0.29, 0.29, 0.29))
    stream = FieldStream(cfg, (8, 16, 16))  # the worker starts on field 0 at once
    (field,) = stream.pending.values()
    stream.close()
    assert multiprocessing.active_children() == []
    # the field was not made (waiting for it, as before, leaves it finished)
    assert not field.done() or field.cancelled() or field.exception() is not None
    assert stream.workers is None and stream.pending == {}


def test_workers_that_cannot_start_give_a_one_line_error(tmp_path: Path) -> None:
    """A script without the ``__main__`` guard: each spawned worker re-runs it and dies while starting."""
    import subprocess
    import sys

    cfg = _cfg(tmp_path, field_workers=1)
    script = tmp_path / "no_guard.py"
    script.write_text(
        "from subcell.labelfree.config import PretrainConfig\n"
        "from subcell.labelfree.pretrain import pretrain_labelfree\n"
        f"pretrain_labelfree(PretrainConfig.model_validate_json({cfg.model_dump_json()!r}))\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("subcell.errors.SubcellError: field_workers: a field-generating worker process ended")
    assert not (tmp_path / "pre").exists()  # no model folder written


def test_pretrain_writes_a_model_that_records_its_synthetic_origin(tmp_path: Path) -> None:
    res = pretrain_labelfree(_cfg(tmp_path))
    assert res.folder is not None and res.summary["steps"] == 4
    model = LabelFreeModel.load(res.folder)
    assert model.targets == ["dna", "nucleus"] and model.input_channel == "brightfield"
    assert "synthetic" in model.training["data"] and model.training["fields_generated"] >= 2
    assert model.config["pretrain"]["seed"] == 0
    assert {"val_r_dna", "val_r_nucleus"} <= set(res.summary["validation"])


@pytest.mark.usefixtures("fields_made_once")
def test_stop_at_ends_a_run_where_a_time_budget_did_without_changing_its_schedule(tmp_path: Path) -> None:
    """The shipped recipes pin the step a 15-minute budget reached: a faster machine must not train further."""
    stopped = pretrain_labelfree(_cfg(tmp_path / "a", iterations=4, stop_at=2, validate_every=1))
    short = pretrain_labelfree(_cfg(tmp_path / "b", iterations=2, validate_every=1))
    full = pretrain_labelfree(_cfg(tmp_path / "c", iterations=4, validate_every=1))
    assert stopped.summary["steps"] == 2 and full.summary["steps"] == 4
    a, b, c = (r.model.network.state_dict() for r in (stopped, short, full))
    # the rates follow the 4-step cosine: the weights equal a 4-step run killed after step 2, not a 2-step run
    mid = pretrain_labelfree(_cfg(tmp_path / "d", iterations=4, validate_every=1), stop_after=2)
    m = mid.model.network.state_dict()
    assert all(torch.equal(a[k], m[k]) for k in a)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    assert c.keys() == a.keys()
    with pytest.raises(ValueError, match="beyond iterations"):
        _cfg(tmp_path, iterations=4, stop_at=5)


@pytest.mark.usefixtures("fields_made_once")
def test_weight_averaging_ends_with_the_mean_of_the_steps_weights_and_survives_a_resume(tmp_path: Path) -> None:
    """``average_from``: the model is the mean of the weights after each step from that one on (batch-norm
    statistics included), found here from the same 5-step run stopped at each step; a killed run resumes to it."""
    runs = [pretrain_labelfree(_cfg(tmp_path / f"s{k}", iterations=5, stop_at=k)) for k in (3, 4, 5)]
    states = [r.model.network.state_dict() for r in runs]
    averaged = pretrain_labelfree(_cfg(tmp_path / "avg", iterations=5, average_from=3))
    avg = averaged.model.network.state_dict()
    floating = [k for k in avg if avg[k].is_floating_point()]
    assert any("running_var" in k for k in floating)
    for k in floating:
        torch.testing.assert_close(avg[k], sum(s[k] for s in states) / 3, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(avg[k], states[-1][k]) for k in floating)  # not the last step's weights
    saved = LabelFreeModel.load(averaged.folder).network.state_dict()
    assert all(torch.equal(saved[k], avg[k]) for k in floating)
    assert averaged.summary["validation"]["step"] == 5  # the last validation is the average's
    assert averaged.summary["validation"]["val_loss"] != runs[-1].summary["validation"]["val_loss"]
    assert averaged.summary["averaged"] == {"from": 3, "steps": 3}
    assert LabelFreeModel.load(averaged.folder).training["averaged"] == {"from": 3, "steps": 3}
    assert runs[-1].summary["averaged"] is None
    killed = _cfg(tmp_path / "k", iterations=5, average_from=3, checkpoint_every=1)
    pretrain_labelfree(killed, stop_after=4)  # its checkpoint holds the average of steps 3 and 4
    resumed = pretrain_labelfree(killed).model.network.state_dict()
    assert all(torch.equal(resumed[k], avg[k]) for k in floating)
    with pytest.raises(ValueError, match="nothing would be averaged"):
        _cfg(tmp_path, iterations=4, average_from=5)


@pytest.mark.usefixtures("fields_made_once")
def test_a_time_budget_that_ends_a_run_before_averaging_starts_says_so(tmp_path: Path) -> None:
    """A run stopped by ``max_minutes`` before ``average_from`` keeps the last step's weights: it warns and its
    summary records that no step was averaged, instead of passing the last weights off as an average."""
    with pytest.warns(UserWarning, match="before average_from=3"):
        early = pretrain_labelfree(
            _cfg(tmp_path / "b", iterations=5, average_from=3, max_minutes=1e-9, lr_schedule="constant")
        )  # (a constant rate: a spent budget would otherwise set the end-of-run rate for that one step)
    assert early.summary["steps"] == 1 and early.summary["averaged"] == {"from": 3, "steps": 0}
    one = pretrain_labelfree(_cfg(tmp_path / "one", iterations=5, stop_at=1, lr_schedule="constant"))
    one = one.model.network.state_dict()
    got = early.model.network.state_dict()
    assert all(torch.equal(got[k], one[k]) for k in got)  # the last (only) step's weights


@pytest.mark.usefixtures("fields_made_once")
def test_average_from_a_fraction_starts_where_the_run_is_that_far_along(tmp_path: Path) -> None:
    """``average_from: 0.5`` of a 4-step run averages steps 2-4, the weights ``average_from: 2`` gives; a run killed
    after averaging began resumes to them (the start is kept, not found again at the resumed step). Under a time
    budget the start is the share of the budget: one spent at the first step averages that step alone, with no
    "ended before averaging" warning (a step number there would have averaged nothing)."""
    import warnings

    by_step = pretrain_labelfree(_cfg(tmp_path / "s", iterations=4, average_from=2)).model.network.state_dict()
    half = pretrain_labelfree(_cfg(tmp_path / "f", iterations=4, average_from=0.5))
    assert half.summary["averaged"] == {"from": 2, "steps": 3}
    got = half.model.network.state_dict()
    assert all(torch.equal(got[k], by_step[k]) for k in got)
    killed = _cfg(tmp_path / "k", iterations=4, average_from=0.5, checkpoint_every=1)
    pretrain_labelfree(killed, stop_after=3)  # averaging began at step 2
    resumed = pretrain_labelfree(killed)
    assert resumed.summary["averaged"] == {"from": 2, "steps": 3}
    assert all(torch.equal(resumed.model.network.state_dict()[k], got[k]) for k in got)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spent = pretrain_labelfree(
            _cfg(tmp_path / "b", iterations=5, average_from=0.5, max_minutes=1e-9, lr_schedule="constant")
        )
    assert spent.summary["steps"] == 1 and spent.summary["averaged"] == {"from": 1, "steps": 1}
    assert not [w for w in caught if "average_from" in str(w.message)]
    for bad in (1.5, 0.0, 0):
        with pytest.raises(ValueError, match=r"must be a step .* or a fraction of the run in"):
            _cfg(tmp_path, average_from=bad)


def test_a_2d_pretrain_trains_on_planes(tmp_path: Path) -> None:
    res = pretrain_labelfree(_cfg(tmp_path, two_d=True, patch_size=(1, 16, 16), iterations=2))
    assert res.model.is_2d and res.model.patch_size == (1, 16, 16)


def test_bad_pretrain_configs_are_one_line_errors(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown pretraining target"):
        _cfg(tmp_path, targets=["dna", "nuclei"])
    with pytest.raises(ValidationError, match="unknown randomization factor"):
        _cfg(tmp_path, randomization={"blur": False})


def test_inverted_input_augmentation_negates_half_the_inputs_and_leaves_other_streams_alone() -> None:
    from subcell.labelfree.config import AugmentConfig
    from subcell.labelfree.data import PatchSampler, Volume

    rng0 = np.random.default_rng(0)
    vol = Volume("v", rng0.normal(size=(1, 8, 16, 16)).astype(np.float32), rng0.random((1, 8, 16, 16), np.float32),
                 None, np.arange(0), np.zeros(1), np.ones(1))  # fmt: skip
    plain = PatchSampler([vol], (4, 8, 8), augment=AugmentConfig(input_gain=0, input_offset=0))
    inv = PatchSampler([vol], (4, 8, 8), augment=AugmentConfig(input_gain=0, input_offset=0, invert_input=True))
    draws = [inv.draw(np.random.default_rng([1, k])) for k in range(200)]
    assert 70 < sum(d.invert for d in draws) < 130
    d = next(d for d in draws if d.invert)
    x_inv, y_inv, _ = inv.apply(d)
    x, y, _ = plain.apply(dataclasses.replace(d, invert=False))
    np.testing.assert_array_equal(x_inv, -x)  # the input's sign flips; the target stays
    np.testing.assert_array_equal(y_inv, y)
    # drawn last: every other parameter of a patch is the same with and without it (older streams are kept)
    for k in range(20):
        a, b = plain.draw(np.random.default_rng([2, k])), inv.draw(np.random.default_rng([2, k]))
        assert dataclasses.replace(b, invert=False) == a


@pytest.mark.usefixtures("fields_made_once")
def test_a_pretraining_with_batches_drawn_ahead_resumes_to_the_run_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``prefetch: true`` (the default on a GPU): the stream is asked for the next batch while the step computes,
    one call ahead of the step. Killed after step 4 (checkpoint at step 3, when the batch of step 4 has been drawn
    from a field already made: a draw of milliseconds beside a step) and resumed, the run ends with the weights of
    an uninterrupted run without it; a checkpoint that stored the generator after the batch drawn ahead would not.
    (The same, independent of the threads' timing, is tested in tests/train/test_prefetch.py.)"""
    from subcell.train.batches import Batches

    asked: list[bool] = []
    init = Batches.__init__

    def record(self: object, *a: object, ahead: bool) -> None:
        asked.append(ahead)
        init(self, *a, ahead=ahead)  # type: ignore[arg-type]

    monkeypatch.setattr(Batches, "__init__", record)
    plain = pretrain_labelfree(_cfg(tmp_path / "plain", iterations=6)).model.network.state_dict()
    killed = _cfg(tmp_path / "k", iterations=6, prefetch=True, checkpoint_every=3)
    pretrain_labelfree(killed, stop_after=4)
    resumed = pretrain_labelfree(killed).model.network.state_dict()
    assert asked == [False, True, True]  # the option reaches the loop (off by default on a CPU)
    assert all(torch.equal(resumed[k], plain[k]) for k in plain)
