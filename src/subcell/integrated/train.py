"""Training of the integrated-cell models: the reference β-VAE first, then the conditional β-VAE, each through
the shared training loop (checkpoints with exact resume, mixed precision, DDP, time budget), each keeping the
weights with the best validation ELBO."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from subcell.integrated.config import ModelPart, TrainConfig
from subcell.integrated.data import CellData, load_cells, split_cells
from subcell.integrated.model import IntegratedModel, likelihood_of
from subcell.integrated.objective import beta_at
from subcell.train import DistributedContext, autocast_dtype, fit
from subcell.train.history import History, StepInfo
from subcell.train.run import checkpoint_dir, isolated_torch_state, run_key, start_run

__all__ = ["TrainResult", "train_integrated"]


class _Phase(nn.Module):
    """The part of the model one phase trains; ``forward`` returns (log-likelihood (N,), KL per dim (N, D))."""

    def __init__(self, model: IntegratedModel, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.model = [model]  # not a submodule: the phase owns only the parameters below
        if kind == "reference":
            self.vae: nn.Module = model.net.reference
            self.log_sigma = model.net.ref_log_sigma
        else:
            self.vae = model.net.conditional
            self.log_sigma = model.net.struct_log_sigma

    def forward(self, *batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model[0]
        if self.kind == "reference":
            _, ll, kl = m.reference_terms(batch[0], fit_sigma=self.training)
        else:
            _, ll, kl = m.conditional_terms(batch[0], batch[1], batch[2], fit_sigma=self.training)
        return ll, kl


@dataclass
class TrainResult:
    model: IntegratedModel
    folder: Path | None
    histories: dict[str, History]
    data: CellData
    split: dict[str, np.ndarray]


def _batches(data: CellData, cells: np.ndarray, kind: str, batch: int) -> Callable[[np.random.Generator], tuple[torch.Tensor, ...]]:  # fmt: skip
    pairs = data.examples(cells)

    def draw(rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        if kind == "reference":
            idx = rng.integers(0, len(cells), batch)
            return (torch.from_numpy(data.reference[cells[idx]].astype(np.float32)),)
        pick = pairs[rng.integers(0, len(pairs), batch)]
        img = data.structure_images[pick[:, 0], pick[:, 1]][:, None].astype(np.float32)
        ref = data.reference[pick[:, 0]].astype(np.float32)
        sid = data.structure_ids[pick[:, 0], pick[:, 1]]
        return torch.from_numpy(img), torch.from_numpy(ref), torch.from_numpy(sid)

    return draw


def mean_elbo(model: IntegratedModel, data: CellData, cells: np.ndarray, kind: str, device: torch.device,
              dtype: torch.dtype | None, batch: int = 8) -> float:  # fmt: skip
    """Mean ELBO (nats per example, β = 1, one posterior sample) over the given cells."""
    if len(cells) == 0:
        return float("nan")
    total, n = 0.0, 0
    pairs = data.examples(cells)
    items = cells if kind == "reference" else np.arange(len(pairs))
    # the same posterior draws at every validation, and training's random streams (CPU and CUDA) untouched
    forked = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
    with forked, torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        torch.manual_seed(0)
        for s in range(0, len(items), batch):
            chunk = items[s : s + batch]
            if kind == "reference":
                ref = torch.from_numpy(data.reference[chunk].astype(np.float32)).to(device)
                _, ll, kl = model.reference_terms(ref)
            else:
                p = pairs[chunk]
                img = torch.from_numpy(data.structure_images[p[:, 0], p[:, 1]][:, None].astype(np.float32)).to(device)
                ref = torch.from_numpy(data.reference[p[:, 0]].astype(np.float32)).to(device)
                sid = torch.from_numpy(data.structure_ids[p[:, 0], p[:, 1]]).to(device)
                _, ll, kl = model.conditional_terms(img, ref, sid)
            total += float((ll - kl.sum(dim=1)).sum())
            n += len(chunk)
    return total / n


def _train_part(model: IntegratedModel, part: ModelPart, kind: str, data: CellData, split: dict[str, np.ndarray],
                cfg: TrainConfig, device: torch.device, dtype: torch.dtype | None, ctx: DistributedContext,
                rng: np.random.Generator, on_step: Callable[[str, StepInfo], None] | None,
                stop_after: int | None) -> tuple[History, dict[str, Any]]:  # fmt: skip
    phase = _Phase(model, kind).to(device)
    optimizer = torch.optim.Adam(phase.parameters(), lr=part.lr)
    voxels = float(np.prod(data.box)) * (len(data.reference_channels) if kind == "reference" else 1)
    best: dict[str, Any] = {"elbo": -math.inf, "step": 0, "state": None}

    def step_loss(m: nn.Module, batch: tuple[torch.Tensor, ...], step: int) -> torch.Tensor:
        ll, kl = m(*batch)
        beta, capacity = beta_at(part.beta, step)
        kl_sum = kl.sum(dim=1)
        reg = beta * (kl_sum - capacity).abs() if capacity is not None else beta * kl_sum
        return ((-ll + reg).mean()) / voxels

    def validate(_m: nn.Module) -> dict[str, float]:
        phase.eval()
        elbo = mean_elbo(model, data, split["val"] if len(split["val"]) else split["train"], kind, device, dtype)
        phase.train()
        if elbo > best["elbo"]:
            best.update(elbo=elbo, state=copy.deepcopy(phase.state_dict()), step=-1)
        return {"val_elbo_nats": elbo}

    def lr_at(step: int, _budget_used: float) -> float:  # warm-up, then constant
        warm = min(50, part.iterations // 10)
        return part.lr * min(1.0, step / max(1, warm))

    def hook(info: StepInfo) -> None:
        if best["step"] == -1:
            best["step"] = info.step
        if on_step is not None:
            on_step(kind, info)

    history = fit(
        phase, optimizer, sample_batch=_batches(data, split["train"], kind, cfg.batch_size), step_loss=step_loss,
        iterations=part.iterations, rng=rng, device=device, autocast=dtype,
        checkpoint_dir=checkpoint_dir(Path(cfg.output)) / kind, checkpoint_every=cfg.checkpoint_every,
        resume=cfg.resume, validate=validate, validate_every=cfg.validate_every, on_step=hook, ctx=ctx,
        stop_after=stop_after, lr_at=lr_at, max_seconds=part.max_minutes * 60 if part.max_minutes else None,
        run_key=run_key(cfg),
    )  # fmt: skip
    if best["state"] is not None:
        phase.load_state_dict(best["state"])
    summary = {
        "steps": history.train[-1]["step"] if history.train else 0,
        "seconds": history.train[-1]["seconds"] if history.train else 0.0,
        "best_val_elbo_nats": best["elbo"],
        "best_step": best["step"],
    }
    return history, summary


@isolated_torch_state
def train_integrated(
    config: TrainConfig,
    *,
    on_step: Callable[[str, StepInfo], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train both models as ``config`` says and save them as one model folder at ``config.output``."""
    out = Path(config.output)
    setup = start_run(out, overwrite=config.overwrite, threads=config.threads, device=config.device,
                      seed=config.seed, on_message=on_message)  # fmt: skip
    device, ctx, rng, say = setup.device, setup.ctx, setup.rng, setup.say
    t0 = time.perf_counter()
    data = load_cells(list(config.cells), reference_channels=config.reference_channels,
                      structures=config.structures, include_flagged=config.include_flagged)  # fmt: skip
    split = split_cells(len(data.reference), config.val_fraction, config.test_fraction, config.seed)
    say(f"loaded {len(data.reference)} cells ({len(split['train'])} train / {len(split['val'])} val / "
        f"{len(split['test'])} test), structures {data.structure_names}, box {data.box} at {data.voxel_um} µm "
        f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    all_masks = all(s.endswith("_mask") for s in config.structures)
    model = IntegratedModel.create(
        reference_channels=config.reference_channels, structures=data.structure_names, box=data.box,
        voxel_um=data.voxel_um, reference_config=config.reference.network,
        conditional_config=config.conditional.network,
        structure_likelihood=likelihood_of("x_mask") if all_masks else "gaussian",
    )  # fmt: skip
    model.net.to(device)
    dtype = autocast_dtype(device, config.precision)
    n_params = sum(p.numel() for p in model.net.parameters())
    say(
        f"{n_params / 1e6:.2f} M parameters; device {device}, precision {dtype or 'fp32'}, {ctx.world_size} process(es)"
    )
    histories, summaries = {}, {}
    for kind, part in (("reference", config.reference), ("conditional", config.conditional)):
        histories[kind], summaries[kind] = _train_part(model, part, kind, data, split, config, device, dtype, ctx,
                                                       rng, on_step, stop_after)  # fmt: skip
        if histories[kind].interrupted:
            break
        say(f"{kind}: {summaries[kind]['steps']} steps in {summaries[kind]['seconds']:.0f} s, best validation ELBO "
            f"{summaries[kind]['best_val_elbo_nats']:.1f} nats at step {summaries[kind]['best_step']}")  # fmt: skip
    model.training = {
        **summaries, "device": str(device), "precision": str(dtype or "fp32"), "world_size": ctx.world_size,
        "split": {k: [_cell_key(data, i) for i in v] for k, v in split.items()},
    }  # fmt: skip
    model.config = config.model_dump(mode="json")
    folder = None
    interrupted = any(h.interrupted for h in histories.values())
    if ctx.is_main and not interrupted:
        files = {f"{k}_metrics.csv": h.to_csv().encode() for k, h in histories.items()}
        folder = model.save(out, overwrite=config.overwrite, extra_files=files)
    ctx.barrier()
    ctx.close()
    model.net.eval()
    return TrainResult(model, folder, histories, data, split)


def _cell_key(data: CellData, i: int) -> str:
    r = data.table.iloc[int(i)]
    return f"{r['store']}#{int(r['crop_index'])}"
