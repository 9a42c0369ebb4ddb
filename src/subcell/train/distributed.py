"""torch DDP set-up from the environment ``torchrun`` provides (gloo on CPU, NCCL on GPUs)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext"]


@dataclass
class DistributedContext:
    """Rank and world size of this process; ``world_size == 1`` when not launched by ``torchrun``."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    initialized_here: bool = False

    @classmethod
    def from_env(cls, device: torch.device) -> DistributedContext:
        """Join the process group that ``torchrun`` describes in the environment (no-op when absent)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", "0"))
        created = False
        if not dist.is_initialized():
            _bind_collective_defaults_before_the_group()
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            created = True
        return cls(rank=rank, local_rank=local, world_size=world, initialized_here=created)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean(self, value: float) -> float:
        """Average a scalar over ranks."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def all_true(self, flag: bool) -> bool:
        """True when ``flag`` is true on every rank (a collective call: every rank must make it)."""
        if not self.active:
            return flag
        t = torch.tensor([int(flag)], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def parameters_in_sync(self, module: torch.nn.Module) -> bool:
        """True when every rank holds the same parameters (a DDP sanity check at the end of training)."""
        if not self.active:
            return True
        with torch.no_grad():
            s = torch.stack([p.detach().double().sum().cpu() for p in module.parameters()]).sum().reshape(1)
        lo, hi = s.clone(), s.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        return bool(torch.allclose(lo, hi, rtol=0, atol=1e-9 * max(1.0, abs(float(s.item())))))

    def close(self) -> None:
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()


def _bind_collective_defaults_before_the_group() -> None:
    """Import ``torch.distributed.nn.functional`` while no process group exists.

    That module binds ``group.WORLD`` as a default argument when it is first imported (torch 2.13), and the first
    optimizer imports it on the way (through ``torch._dynamo``). Imported after the group exists, the default keeps
    the group alive past ``destroy_process_group``: gloo's worker threads outlive :meth:`DistributedContext.close`
    and may drop the last collective's tensors while the interpreter shuts down, which aborts the process
    ("terminate called without an active exception") instead of exiting with its status. Imported first, the
    default is ``None`` and ``close`` joins the threads.
    """
    import torch.distributed.nn.functional  # noqa: F401
