"""What every training command does before its first step: refuse an existing output, pick threads and device,
join the DDP group (torchrun), seed every rank, and route messages to rank 0 only."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from subcell.errors import OutputExistsError
from subcell.train.distributed import DistributedContext
from subcell.train.precision import resolve_device

__all__ = ["RunSetup", "checkpoint_dir", "isolated_torch_state", "run_key", "start_run"]

# config fields that do not change what a training step computes: a run may resume with other values
_RUN_ONLY = frozenset({"output", "overwrite", "resume", "threads", "device", "precision", "max_minutes", "stop_at",
                       "validate_every", "checkpoint_every", "field_workers", "prefetch"})  # fmt: skip


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


F = TypeVar("F", bound=Callable[..., Any])


def isolated_torch_state(fn: F) -> F:
    """Run ``fn`` with torch's global random state and thread count restored afterwards.

    Training seeds the global generators and may set the thread count (``threads:`` in a config); a library
    call must not leave that behind in the caller's process (a notebook, a test, a second in-process run).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads = torch.get_num_threads()
        cuda = (
            list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []
        )
        try:
            with torch.random.fork_rng(devices=cuda):
                return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper  # type: ignore[return-value]


def run_key(config: Any) -> str:
    """A fingerprint of what a training run computes (its pydantic config without :data:`_RUN_ONLY` fields): a
    checkpoint written under another key is refused on resume instead of continuing a different run."""
    from subcell.config import config_hash

    def keep(v: Any) -> Any:  # nested parts (e.g. each model of the integrated cell) have their own budgets
        return {k: keep(x) for k, x in v.items() if k not in _RUN_ONLY} if isinstance(v, dict) else v

    return config_hash(keep(config.model_dump(mode="json")))


def checkpoint_dir(output: Path) -> Path:
    """Where training checkpoints live: beside the model folder, ``<output>.checkpoint``."""
    return Path(output).with_name(Path(output).name + ".checkpoint")
