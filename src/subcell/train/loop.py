"""The training loop: iterations of sample → forward (autocast) → loss → step, with checkpoints that resume
exactly, validation, DDP, and a progress hook.

Exact resume: a checkpoint stores the model, the optimizer, the step, the history, and every random state the
loop consumes (torch's and the NumPy generator that draws patches and augmentations), one random-state file
per rank. Killing a run and restarting it from its last checkpoint therefore continues the same loss
trajectory as an uninterrupted run on the same machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from subcell.train.average import WeightAverage
from subcell.train.batches import Batches
from subcell.train.checkpoint import load_checkpoint, save_checkpoint
from subcell.train.distributed import DistributedContext
from subcell.train.history import History, StepInfo
from subcell.train.host import tune_allocator
from subcell.train.norm import batch_norm_layers

__all__ = ["fit"]


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    sample_batch: Callable[[np.random.Generator], tuple[torch.Tensor, ...]],
    loss_fn: Callable[[torch.Tensor, tuple[torch.Tensor, ...]], torch.Tensor] | None = None,
    iterations: int,
    rng: np.random.Generator,
    device: torch.device,
    autocast: torch.dtype | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    validate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    validate_every: int = 0,
    on_step: Callable[[StepInfo], None] | None = None,
    ctx: DistributedContext | None = None,
    stop_after: int | None = None,
    lr_at: Callable[[int, float], float] | None = None,
    max_seconds: float | None = None,
    step_loss: Callable[[torch.nn.Module, tuple[torch.Tensor, ...], int], torch.Tensor] | None = None,
    run_key: str | None = None,
    keep_best: str | None = None,
    average_from: int | float | None = None,
    freeze_norm_statistics: bool = False,
    prefetch: bool | None = None,
) -> History:
    """Train ``model`` for ``iterations`` optimizer steps.

    Parameters
    ----------
    sample_batch : callable
        ``sample_batch(rng) -> (input, target, ...)`` on the CPU; must draw all randomness from ``rng`` (with
        ``prefetch`` it runs on a background thread, one call at a time, in step order).
    loss_fn : callable
        ``loss_fn(output, batch) -> scalar`` (batch already on ``device``), output = ``model(batch[0])``.
    step_loss : callable, optional
        Instead of ``loss_fn``: ``step_loss(model, batch, step) -> scalar`` runs the forward pass itself (models
        with several inputs or outputs, losses that change with the step); called under autocast.
    autocast : torch dtype, optional
        Mixed-precision dtype (bf16 / fp16); fp16 uses a gradient scaler.
    checkpoint_dir, checkpoint_every, resume
        Checkpoint every N steps (and at the end); ``resume`` continues from ``checkpoint_dir`` if it holds one.
    validate, validate_every
        ``validate(model) -> metrics`` every N steps and at the end (rank 0 only).
    ctx : DistributedContext
        Rank / world size; with ``world_size > 1`` the model is wrapped in DDP.
    stop_after : int, optional
        Stop (as if killed) after this many steps of *this* run, without a final checkpoint (tests resume).
    lr_at : callable, optional
        ``lr_at(step, budget_used)`` sets the learning rate of every parameter group before each step (a schedule
        that needs no state of its own, so resuming is exact), times the group's ``lr_scale`` if it has one.
        ``budget_used`` is the fraction of ``max_seconds`` spent before the step (0 without a time budget; the mean
        over ranks, so every rank sets the same rate), for schedules that end with the time budget.
    max_seconds : float, optional
        Training-time budget: training stops (with validation and a checkpoint) once it is spent. A resumed run
        continues the clock of its checkpoint (``History.train``'s seconds), so the budget, the seconds recorded and
        a schedule that follows the budget count the whole run, not each process separately.
    run_key : str, optional
        Fingerprint of the run's configuration (:func:`subcell.train.run.run_key`), stored in checkpoints; resuming
        from a checkpoint with another key is an error.
    keep_best : str, optional
        A validation metric to minimise (e.g. ``"val_loss"``): the starting weights are validated before the first
        step of a fresh run (a fine-tuning's initial model is a candidate too), and the model ends with the weights
        of the best validation, not the last (``history.best`` names its step). Needs ``validate``; on rank 0 (the
        one that validates and saves); kept in checkpoints, so resuming keeps it.
    average_from : int or float, optional
        End with the uniform average of the weights after every step from this one on (stochastic weight
        averaging; batch-norm running statistics averaged alike) instead of the last step's. A float in (0, 1) is
        a fraction of the run, by steps or by ``max_seconds``, whichever ends it first (:class:`WeightAverage`). The last validation
        and checkpoint see the average; the running average is kept in checkpoints, so resuming ends the same.
        Not with ``keep_best``.
    freeze_norm_statistics : bool
        Keep every batch-norm layer in eval mode while training: it normalises with the starting running statistics
        and never updates them (fine-tuning a model whose statistics should not follow a few new images); the
        weights, affine parameters included, still train.
    prefetch : bool, optional
        Draw the next batch on a background thread while the step computes (:class:`~subcell.train.batches.Batches`); the same batches
        and the same run either way. Default: on for a CUDA device, where the host would otherwise leave the GPU
        idle while it draws; off on a CPU, where the drawing thread takes a core from the step.
    """
    ctx = ctx or DistributedContext()
    if device.type == "cpu":
        tune_allocator()
    if keep_best is not None and validate is None:
        raise ValueError("keep_best needs validate (validation data)")
    if keep_best is not None and average_from is not None:
        raise ValueError("keep_best and average_from exclude each other (the best weights or their average)")
    history = History()
    start = 0
    best_state: dict[str, torch.Tensor] = {}
    average = WeightAverage(average_from, iterations)
    kept = {"best": best_state, "average": average.state}
    if resume and checkpoint_dir is not None and (checkpoint_dir / "checkpoint.json").exists():
        start, history = load_checkpoint(checkpoint_dir, model=model, optimizer=optimizer, rng=rng, ctx=ctx,
                                         run_key=run_key, kept=kept)  # fmt: skip
        if average.fraction is not None:  # the step a fractional start was fixed at, if the run got that far
            average.start = history.average_start

    def consider(val: dict[str, float], step: int) -> None:
        """Keep the weights if this validation is the best so far (rank 0, ``keep_best``)."""
        if keep_best is None or not ctx.is_main:
            return
        if keep_best not in val:
            raise ValueError(f"keep_best={keep_best!r} is not a validation metric (got {sorted(val)})")
        if history.best is None or val[keep_best] < history.best[keep_best]:
            history.best = {"step": step, keep_best: val[keep_best]}
            best_state.clear()
            best_state.update({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})

    if keep_best is not None and start == 0 and ctx.is_main:
        assert validate is not None
        val0 = validate(model)
        history.validation.append({"step": 0, **val0})
        consider(val0, 0)
    train_model: torch.nn.Module = model
    if ctx.active:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler(device.type) if autocast == torch.float16 else None
    spent = history.train[-1]["seconds"] if history.train else 0.0  # resumed: its clock goes on
    t0 = time.perf_counter() - spent
    # a checkpoint written when the budget ran out is the run's end: rerunning the command trains no further step
    first = iterations + 1 if max_seconds is not None and spent > max_seconds else start + 1
    batches = Batches(sample_batch, rng, device, ahead=device.type == "cuda" if prefetch is None else prefetch)
    try:
        for done_here, step in enumerate(range(first, iterations + 1), start=1):
            train_model.train()
            if freeze_norm_statistics:
                for m in batch_norm_layers(model):
                    m.eval()
            rate = None
            if lr_at is not None:
                used = ctx.mean(time.perf_counter() - t0) / max_seconds if max_seconds else 0.0
                rate = lr_at(step, used)
                for group in optimizer.param_groups:  # a group's "lr_scale" (layer-wise rates) multiplies the schedule
                    group["lr"] = rate * group.get("lr_scale", 1.0)
            batch = batches.next(more=step < iterations)
            with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                if step_loss is not None:
                    loss = step_loss(train_model, batch, step)
                else:
                    out = train_model(batch[0])
            if step_loss is None:
                assert loss_fn is not None, "fit needs loss_fn or step_loss"
                loss = loss_fn(out.float(), batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            value = ctx.mean(float(loss.detach()))
            elapsed = time.perf_counter() - t0
            if average.pending:  # (the elapsed time's mean over ranks is a collective: asked only until it is fixed)
                average.begin(step, ctx.mean(elapsed) / max_seconds if max_seconds else 0.0)
                history.average_start = average.start
            average.add(model, step)
            history.train.append(
                {"step": step, "loss": value, "seconds": elapsed, **({"lr": rate} if rate is not None else {})}
            )
            val = None
            out_of_time = max_seconds is not None and ctx.mean(float(elapsed > max_seconds)) > 0
            last = step == iterations or out_of_time
            if last:
                history.averaged = average.load_into(model, step)
            if validate is not None and ((validate_every and step % validate_every == 0) or last):
                val = validate(model) if ctx.is_main else {}
                if ctx.is_main:
                    history.validation.append({"step": step, **val})
                    consider(val, step)
            if checkpoint_dir is not None and ((checkpoint_every and step % checkpoint_every == 0) or last):
                save_checkpoint(
                    checkpoint_dir, model=model, optimizer=optimizer, step=step, history=history, rng=rng, ctx=ctx,
                    run_key=run_key, kept={k: v for k, v in kept.items() if v}, rng_state=batches.state,
                )  # fmt: skip
            if on_step is not None and ctx.is_main:
                on_step(StepInfo(step=step, total=iterations, loss=value, elapsed_s=elapsed, validation=val))
            if out_of_time:
                break
            if stop_after is not None and done_here >= stop_after and not last:
                history.interrupted = True
                break
    finally:
        batches.close()
    history.in_sync = ctx.parameters_in_sync(model)
    if best_state and not history.interrupted and history.best is not None:
        last_step = history.train[-1]["step"] if history.train else start
        if history.best["step"] != last_step:  # (checked after the sync check: only rank 0 holds them)
            model.load_state_dict(best_state)
    return history
