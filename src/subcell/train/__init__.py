"""Training engine shared by the deep-learning features: loop, checkpoints with exact resume, mixed precision,
DDP, and model artifacts (safetensors + JSON; loading never unpickles code)."""

from __future__ import annotations

from subcell.train.artifact import load_artifact, save_artifact
from subcell.train.distributed import DistributedContext
from subcell.train.history import History
from subcell.train.loop import fit
from subcell.train.precision import autocast_dtype, resolve_device

__all__ = [
    "DistributedContext",
    "History",
    "autocast_dtype",
    "fit",
    "load_artifact",
    "resolve_device",
    "save_artifact",
]
