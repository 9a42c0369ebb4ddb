"""Batches drawn ahead on a thread (``fit(prefetch=True)``): the same run, exact resume, errors unchanged."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from subcell.train import fit


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1))


class _Sampler:
    """Random batches from the run's generator; records which thread drew each and can fail at a chosen draw."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.threads: list[str] = []
        self.fail_at = fail_at

    def __call__(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        self.threads.append(threading.current_thread().name)
        if self.fail_at is not None and len(self.threads) == self.fail_at:
            raise KeyError("field 7 is not in the manifest")
        x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
        return torch.from_numpy(x), torch.from_numpy(np.roll(x, 1, axis=-1))


def _run(
    prefetch: bool,
    rng: np.random.Generator,
    model: torch.nn.Module | None = None,
    sampler: _Sampler | None = None,
    **kw: object,
):
    model = model or _model()
    sampler = sampler or _Sampler()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    history = fit(model, opt, sample_batch=sampler, loss_fn=lambda o, b: ((o - b[1]) ** 2).mean(),
                  rng=rng, device=torch.device("cpu"), prefetch=prefetch, **kw)  # type: ignore[arg-type]  # fmt: skip
    return model, history, sampler


def _drawn_ahead(sampler: _Sampler, iterations: int):
    """A validation hook that returns once the batch of the next step has been drawn: a checkpoint saved after it
    finds the generator ahead of the step, whatever the threads' timing."""
    steps = iter(range(1, iterations + 1))

    def validate(model: torch.nn.Module) -> dict[str, float]:
        step = next(steps)
        for _ in range(2000):
            if len(sampler.threads) > min(step, iterations - 1):
                break
            threading.Event().wait(0.005)
        return {}

    return validate


@pytest.mark.parametrize("iterations", [6, 4])
def test_batches_drawn_ahead_give_the_same_run_and_leave_the_generator_after_the_last_batch_used(
    iterations: int,
) -> None:
    """Six steps run to the end, or stopped after four (the fifth batch drawn ahead and never used)."""
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    sampler_a = _Sampler()
    # each step waits until the next batch is drawn, so the stopped run has drawn exactly one ahead (under heavy CPU
    # load the thread could otherwise be stopped before it started the fifth draw)
    model_a, hist_a, _ = _run(True, rng_a, iterations=6, stop_after=iterations, sampler=sampler_a,
                              validate=_drawn_ahead(sampler_a, 6), validate_every=1)  # fmt: skip
    model_b, hist_b, sampler_b = _run(False, rng_b, iterations=6, stop_after=iterations)
    assert [h["loss"] for h in hist_a.train] == [h["loss"] for h in hist_b.train]
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    # drawn ahead on the background thread: one more than used when the run stops early, none at the last step
    assert all(t.startswith("subcell-batches") for t in sampler_a.threads)
    assert len(sampler_a.threads) == (6 if iterations == 6 else 5)
    assert sampler_b.threads == ["MainThread"] * iterations
    assert rng_a.bit_generator.state == rng_b.bit_generator.state
    assert not [t for t in threading.enumerate() if t.name.startswith("subcell-batches")]


@pytest.mark.parametrize("resume_ahead", [False, True])
def test_a_run_with_batches_drawn_ahead_resumes_on_the_same_trajectory(tmp_path: Path, resume_ahead: bool) -> None:
    """The checkpoint stores the generator as it was after the batches used, not after the one drawn ahead: a run
    killed after step 3 (checkpoint at step 2, batch 3 and 4 already drawn) and resumed, with or without drawing
    ahead, continues as the uninterrupted run."""
    _, whole, _ = _run(False, np.random.default_rng(5), iterations=6)
    sampler = _Sampler()
    model = _model()
    fit(model, torch.optim.Adam(model.parameters(), 1e-2), sample_batch=sampler,
        loss_fn=lambda o, b: ((o - b[1]) ** 2).mean(), rng=np.random.default_rng(5), device=torch.device("cpu"),
        prefetch=True, iterations=6, checkpoint_dir=tmp_path, checkpoint_every=2, stop_after=3,
        validate=_drawn_ahead(sampler, 6), validate_every=1)  # fmt: skip
    assert len(sampler.threads) == 4
    _, resumed, _ = _run(resume_ahead, np.random.default_rng(99), iterations=6, checkpoint_dir=tmp_path,
                         checkpoint_every=2, resume=True)  # fmt: skip
    assert [h["loss"] for h in resumed.train] == [h["loss"] for h in whole.train]


def test_an_error_while_drawing_ahead_reaches_the_caller_unchanged() -> None:
    sampler = _Sampler(fail_at=3)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    with pytest.raises(KeyError, match="field 7"):
        fit(model, opt, sample_batch=sampler, loss_fn=lambda o, b: ((o - b[1]) ** 2).mean(), iterations=6,
            rng=np.random.default_rng(0), device=torch.device("cpu"), prefetch=True)  # fmt: skip
    assert len(sampler.threads) == 3  # the third draw failed; nothing drawn after it
    assert not [t for t in threading.enumerate() if t.name.startswith("subcell-batches")]
