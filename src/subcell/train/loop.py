"""The training loop: iterations of sample → forward (autocast) → loss → step, with checkpoints that resume
exactly, validation, DDP, and a progress hook.

Exact resume: a checkpoint stores the model, the optimizer, the step, the history, and every random state the
loop consumes (torch's and the NumPy generator that draws patches and augmentations), one random-state file
per rank. Killing a run and restarting it from its last checkpoint therefore continues the same loss
trajectory as an uninterrupted run on the same machine.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from subcell.errors import InputFileError
from subcell.io._atomic import atomic_output
from subcell.train.distributed import DistributedContext
from subcell.train.host import tune_allocator
from subcell.train.norm import batch_norm_layers

__all__ = ["History", "StepInfo", "fit"]


@dataclass
class StepInfo:
    """What the progress hook receives after each step."""

    step: int
    total: int
    loss: float
    elapsed_s: float
    validation: dict[str, float] | None = None


@dataclass
class History:
    """Per-step training loss and periodic validation metrics."""

    train: list[dict[str, float]] = field(default_factory=list)
    validation: list[dict[str, float]] = field(default_factory=list)
    in_sync: bool = True
    interrupted: bool = False  # stopped by ``stop_after`` (as if killed): no final checkpoint, not finished
    best: dict[str, float] | None = None  # with ``keep_best``: the validation row whose weights the model ends with
    # with ``average_from``: {"from": first step averaged, "steps": how many steps' weights the model ends with the
    # mean of (0 when the run ended before that step: the model has the last step's weights)}
    averaged: dict[str, int] | None = None
    average_start: int | None = None  # with a fractional ``average_from``: the step averaging began at, once fixed

    def to_json(self) -> dict[str, Any]:
        return {"train": self.train, "validation": self.validation, "best": self.best, "averaged": self.averaged,
                "average_start": self.average_start}  # fmt: skip

    def to_csv(self) -> str:
        """One line per step: loss, seconds, learning rate (of the schedule, before layer-wise scales) and the
        validation metrics where they were computed."""
        val = {v["step"]: v for v in self.validation}
        keys = sorted({k for v in self.validation for k in v if k != "step"})
        lines = [",".join(["step", "loss", "seconds", "lr", *keys])]
        if 0 in val:  # the starting weights, validated before the first step (keep_best)
            lines.append(",".join(["0", "", "0.000", "", *(f"{val[0][k]:.6g}" if k in val[0] else "" for k in keys)]))
        for h in self.train:
            v = val.get(h["step"], {})
            cells = [
                str(int(h["step"])),
                f"{h['loss']:.6g}",
                f"{h['seconds']:.3f}",
                f"{h['lr']:.6g}" if "lr" in h else "",
            ]
            lines.append(",".join([*cells, *(f"{v[k]:.6g}" if k in v else "" for k in keys)]))
        return "\n".join(lines) + "\n"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> History:
        return cls(
            train=list(d.get("train", [])),
            validation=list(d.get("validation", [])),
            best=d.get("best"),
            averaged=d.get("averaged"),
            average_start=d.get("average_start"),
        )


def _write_atomic(path: Path, data: bytes) -> None:
    """``path`` replaced by ``data`` in one rename (the package's atomic writer)."""
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_bytes(data)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in state["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optimizer.{idx}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optimizer."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for key, v in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    folder: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    history: History,
    rng: np.random.Generator,
    ctx: DistributedContext,
    run_key: str | None = None,
    kept: dict[str, dict[str, torch.Tensor]] | None = None,
    rng_state: dict[str, Any] | None = None,
) -> None:
    """Write ``folder/checkpoint-STEP.safetensors`` + ``checkpoint.json`` (rank 0) and ``rng-rank{r}-STEP.json``
    (each rank).

    Every file but ``checkpoint.json`` is named by its step, and ``checkpoint.json`` (which names the step) is
    written last, once every rank's files are in place: a save that fails or is killed at any point leaves the
    previous checkpoint whole and still the one a resume loads. The previous step's files go only after that.

    ``kept``: further weights the run holds, by name (``best``: those ``keep_best`` keeps; ``average``: the running
    average of ``average_from``), stored beside the model's under ``NAME.``, so a resumed run keeps them."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    rng_state = {
        "numpy": rng_state if rng_state is not None else rng.bit_generator.state,
        "torch": torch.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "step": step,
    }
    weights, rng_file = _step_files(folder, step, ctx.rank)
    fresh = [p for p in (weights, rng_file) if not p.exists()]  # what a failed save must not leave behind

    def write_step_files() -> dict[str, Any] | None:
        _write_atomic(rng_file, json.dumps(rng_state).encode())
        if ctx.is_main:
            tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
            opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
            tensors.update(opt_tensors)
            for name, state in (kept or {}).items():
                tensors.update({f"{name}.{k}": v.contiguous() for k, v in state.items()})
            meta = {"step": step, "optimizer": opt_meta, "history": history.to_json(), "world_size": ctx.world_size,
                    "run_key": run_key}  # fmt: skip
            with atomic_output(weights, overwrite=True) as tmp:
                save_file(tensors, str(tmp))
            return meta
        return None

    # Each phase ends with every rank learning whether every rank succeeded (a collective), so a rank whose write
    # failed does not leave the others waiting at a barrier for it: all of them remove this step's files and raise.
    for phase in ("step files", "pointer"):
        error: BaseException | None = None
        try:
            if phase == "step files":
                meta = write_step_files()
            elif ctx.is_main:  # every rank's files of this step exist before the pointer names it
                _write_atomic(folder / "checkpoint.json", json.dumps(meta).encode())
        except BaseException as exc:  # re-raised below, once the other ranks know
            error = exc
        if not ctx.all_true(error is None):
            for p in fresh:
                p.unlink(missing_ok=True)
            if error is not None:
                raise error
            raise OSError(f"checkpoint of step {step} not saved: another rank failed writing its {phase} in {folder}")
    # the previous checkpoint's files (and those of the unnamed layout before step-named files), each rank its own
    keep = {weights.name, rng_file.name}
    mine = [*folder.glob(f"rng-rank{ctx.rank}-*.json"), folder / f"rng-rank{ctx.rank}.json"]
    if ctx.is_main:
        mine += [*folder.glob("checkpoint-*.safetensors"), folder / "checkpoint.safetensors"]
    for old_file in mine:
        if old_file.name not in keep:
            old_file.unlink(missing_ok=True)


def _step_files(folder: Path, step: int, rank: int) -> tuple[Path, Path]:
    """The weights and the rank's random state of the checkpoint of ``step``."""
    return folder / f"checkpoint-{step}.safetensors", folder / f"rng-rank{rank}-{step}.json"


def load_checkpoint(
    folder: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    ctx: DistributedContext,
    run_key: str | None = None,
    kept: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[int, History]:
    """Restore model, optimizer and random states; returns (step, history). A checkpoint written by a run with
    another ``run_key`` (another configuration) is refused. Each dict of ``kept`` receives the weights stored under
    its name (see :func:`save_checkpoint`) if the checkpoint holds any."""
    from safetensors.torch import load_file

    meta_path = folder / "checkpoint.json"
    try:
        meta = json.loads(meta_path.read_text())
        weights, rng_file = _step_files(folder, int(meta["step"]), ctx.rank)
        if not weights.exists() and (folder / "checkpoint.safetensors").exists():  # subcell before step-named files
            weights, rng_file = folder / "checkpoint.safetensors", folder / f"rng-rank{ctx.rank}.json"
        tensors = load_file(str(weights))
        rng_state = json.loads(rng_file.read_text())
    except FileNotFoundError as exc:
        raise InputFileError(f"incomplete checkpoint: {Path(exc.filename).name} is missing", path=folder) from None
    except Exception as exc:
        raise InputFileError(f"corrupted checkpoint ({exc.__class__.__name__}: {exc})", path=folder) from None
    if meta.get("world_size", 1) != ctx.world_size:
        raise InputFileError(
            f"checkpoint was written by {meta.get('world_size')} processes, this run has {ctx.world_size}",
            path=meta_path,
            field="world_size",
        )
    if run_key is not None and meta.get("run_key") not in (None, run_key):
        raise InputFileError(
            "checkpoint was written by a run with another configuration; resume: false (resume=false) starts "
            "over, or delete the checkpoint folder", path=folder, field="resume",
        )  # fmt: skip
    if rng_state.get("step") != meta["step"]:
        raise InputFileError("checkpoint files are from different steps (interrupted save)", path=folder)
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state)
    except RuntimeError as exc:
        raise InputFileError(f"checkpoint does not fit this model ({str(exc).splitlines()[0]})", path=folder) from None
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    for name, state in (kept or {}).items():
        state.update({k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(f"{name}.")})
    rng.bit_generator.state = rng_state["numpy"]
    torch.set_rng_state(torch.tensor(rng_state["torch"], dtype=torch.uint8))
    if rng_state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in rng_state["cuda"]])
    return int(meta["step"]), History.from_json(meta["history"])


class _Batches:
    """The training batches, each drawn (and, for a GPU, put in pinned memory) on a background thread while the
    previous step computes, when ``ahead``; otherwise drawn when asked.

    Drawing a batch is host work (patch extraction, augmentation in NumPy, which releases the GIL): on a GPU it
    took 5 of the 22 ms of a step, idle time for the device. The batches are the same either way: one thread draws
    them in order from the one generator; ``state`` is the generator's state after the batches handed out so far,
    which is what a checkpoint stores and what the generator is set back to when the loop ends, so a run with
    batches drawn ahead resumes, and continues, exactly as one without. A thread, not a ``DataLoader`` worker
    process: the batches depend on the order of draws from one generator (and a pretraining stream's own state),
    which worker processes would split.
    """

    def __init__(self, sample_batch: Callable[[np.random.Generator], tuple[torch.Tensor, ...]],
                 rng: np.random.Generator, device: torch.device, *, ahead: bool) -> None:  # fmt: skip
        self.sample_batch, self.rng, self.device = sample_batch, rng, device
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="subcell-batches") if ahead else None
        self.pending: Future[tuple[tuple[torch.Tensor, ...], dict[str, Any]]] | None = None
        self.state: dict[str, Any] = dict(rng.bit_generator.state)

    def _draw(self) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
        batch = self.sample_batch(self.rng)
        if self.device.type == "cuda":
            batch = tuple(b.pin_memory() for b in batch)
        return batch, dict(self.rng.bit_generator.state)

    def next(self, *, more: bool) -> tuple[torch.Tensor, ...]:
        """The next batch on the device; ``more``: another will be asked for (so start drawing it now)."""
        if self.pool is None:
            batch, self.state = self._draw()
        else:
            batch, self.state = (self.pending or self.pool.submit(self._draw)).result()
            self.pending = self.pool.submit(self._draw) if more else None
        return tuple(b.to(self.device, non_blocking=True) for b in batch)

    def close(self) -> None:
        """Wait for a batch being drawn, end the thread, and set the generator to the state after the batches
        used (a batch drawn ahead and never used leaves no trace)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.pending = None
        self.rng.bit_generator.state = self.state


class WeightAverage:
    """Uniform running average of a model's floating-point state from step ``start`` on (``fit(average_from=)``).

    ``start`` is a step (int >= 1) or a fraction of the run (float in (0, 1)): averaging then begins at the first
    step at which the run is that far along, by its steps or by its time budget, whichever ends it first (as the
    cosine schedule follows it): a time-budgeted run makes a machine-dependent number of steps, so a fixed step
    averages most of the run on a fast machine and none of it on a slow one. The step it began at is recorded
    (``History.average_start``), so a resumed run averages the same steps.

    A dict of tensors rather than ``torch.optim.swa_utils.AveragedModel``: that one deep-copies the module and keeps
    its count in a buffer, while the checkpoint already stores named dicts of tensors (as for ``keep_best``) and the
    count follows from the step, so resuming needs nothing else. Integer buffers (batch counts) keep the last value.
    """

    def __init__(self, start: int | float | None, iterations: int = 0) -> None:
        fraction = isinstance(start, float)
        if start is not None and not (0 < start < 1 if fraction else start >= 1):
            raise ValueError(f"average_from must be a step >= 1 or a fraction of the run in (0, 1), got {start}")
        self.requested = start  # as given: a step, a fraction, or None (no averaging)
        self.fraction = start if isinstance(start, float) else None
        self.start = None if isinstance(start, float) else start
        self.iterations = iterations
        self.state: dict[str, torch.Tensor] = {}

    @property
    def pending(self) -> bool:
        """A fractional start not fixed yet (:meth:`begin` is asked after each step until it is)."""
        return self.fraction is not None and self.start is None

    def begin(self, step: int, budget_used: float) -> None:
        """Fix a pending fractional start at ``step`` once the run is that far along (``budget_used``: the fraction
        of a time budget spent, the same on every rank)."""
        assert self.fraction is not None
        if max(step / max(1, self.iterations), budget_used) >= self.fraction:
            self.start = step

    def add(self, model: torch.nn.Module, step: int) -> None:
        if self.start is None or step < self.start:
            return
        n = step - self.start + 1  # weights averaged so far, this step's included
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if n == 1 or k not in self.state or not v.is_floating_point():
                    self.state[k] = v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype,
                                                  copy=True)  # fmt: skip
                else:
                    self.state[k] += (v.detach().to("cpu", torch.float32) - self.state[k]) / n

    def load_into(self, model: torch.nn.Module, step: int) -> dict[str, int] | None:
        """Put the average of the steps up to ``step`` into ``model``; returns ``{"from", "steps"}`` (what
        ``History.averaged`` records), ``None`` without averaging. A run that ended before ``start`` keeps its last
        weights, with a warning: a time budget can end a run early, and the weights must not change meaning silently.
        """
        if self.requested is None:
            return None
        if not self.state:
            warnings.warn(f"the run ended at step {step}, before average_from={self.requested}: the model has the "
                          "last step's weights, not an average", stacklevel=3)  # fmt: skip
            return {"from": self.start or 0, "steps": 0}
        assert self.start is not None
        model.load_state_dict(self.state)
        return {"from": self.start, "steps": step - self.start + 1}


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
        Draw the next batch on a background thread while the step computes (:class:`_Batches`); the same batches
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
    batches = _Batches(sample_batch, rng, device, ahead=device.type == "cuda" if prefetch is None else prefetch)
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
