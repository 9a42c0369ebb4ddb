"""What every training command does before its first step: refuse an existing output, pick threads and device,
join the DDP group (torchrun), seed every rank, and route messages to rank 0 only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from subcell.errors import OutputExistsError
from subcell.train.distributed import DistributedContext
from subcell.train.precision import resolve_device

__all__ = ["RunSetup", "checkpoint_dir", "start_run"]


@dataclass
class RunSetup:
    device: torch.device
    ctx: DistributedContext
    rng: np.random.Generator
    say: Callable[[str], None]


def start_run(output: Path, *, overwrite: bool, threads: int | None, device: str, seed: int,
              on_message: Callable[[str], None] | None = None) -> RunSetup:  # fmt: skip
    """Checks and set-up shared by the training commands (see the module docstring)."""
    out = Path(output)
    if out.exists() and not overwrite:
        raise OutputExistsError("model folder exists; set overwrite: true (or overwrite=true) to replace it", path=out)
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    ctx = DistributedContext.from_env(dev)
    if dev.type == "cuda" and ctx.active:
        dev = torch.device("cuda", ctx.local_rank)
    say = on_message if (on_message is not None and ctx.is_main) else (lambda _m: None)
    torch.manual_seed(seed + ctx.rank)
    return RunSetup(dev, ctx, np.random.default_rng(seed + 1000 * ctx.rank), say)


def checkpoint_dir(output: Path) -> Path:
    """Where training checkpoints live: beside the model folder, ``<output>.checkpoint``."""
    return Path(output).with_name(Path(output).name + ".checkpoint")
