"""Multi-process runs: a checkpoint save that fails on one rank fails on every rank, none waits forever, and closing
the process group ends its worker threads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# One rank of a gloo process group, started as torchrun would (RANK, WORLD_SIZE, MASTER_ADDR/PORT): saves a
# checkpoint at step 4 on every rank, then one at step 8 where rank FAIL's write fails (a full disk).
WORKER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import numpy as np, torch
    import subcell.train.artifact as artifact
    import subcell.train.checkpoint as checkpoint
    from subcell.train.history import History
    from subcell.train.distributed import DistributedContext

    folder, fail = Path(sys.argv[1]), int(sys.argv[2])
    ctx = DistributedContext.from_env(torch.device("cpu"))
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    args = dict(model=net, optimizer=opt, history=History(), rng=np.random.default_rng(0), ctx=ctx)
    checkpoint.save_checkpoint(folder, step=4, **args)
    if ctx.rank == fail:
        def no_space(*a, **k):
            raise OSError("No space left on device")
        if fail == 0:
            artifact.save_tensors = no_space  # the weights, written by rank 0 only
        else:
            checkpoint._write_atomic = no_space  # this rank's random state
    try:
        checkpoint.save_checkpoint(folder, step=8, **args)
    except OSError as exc:
        print(f"rank {ctx.rank}: {exc}", flush=True)
        ctx.close()
        sys.exit(3)
    ctx.close()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_ranks(code: str, *args: str) -> tuple[list[int], list[str]]:
    """Run ``code`` as both ranks of a two-process gloo group; their return codes and outputs."""
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=120)[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail("a rank still waits for the other")
    return [p.returncode for p in procs], outs


@pytest.mark.parametrize("failing_rank", [0, 1])
def test_a_save_failing_on_one_rank_raises_on_every_rank_and_keeps_the_previous_checkpoint(
    tmp_path: Path, failing_rank: int
) -> None:
    folder = tmp_path / "run.checkpoint"
    codes, outs = _run_ranks(WORKER, str(folder), str(failing_rank))
    assert codes == [3, 3], outs  # every rank raised, none finished as if saved
    assert "No space left on device" in outs[failing_rank]
    assert "another rank failed" in outs[1 - failing_rank]
    assert sorted(p.name for p in folder.iterdir()) == [  # step 4 whole, nothing of step 8
        "checkpoint-4.safetensors",
        "checkpoint.json",
        "rng-rank0-4.json",
        "rng-rank1-4.json",
    ]
    assert '"step": 4' in (folder / "checkpoint.json").read_text()


# One rank that makes an optimizer after joining the group (its first use imports torch._dynamo, which imports
# torch.distributed.nn), makes a collective call, closes the context and counts gloo's threads still running.
CLOSER = textwrap.dedent(
    """
    import os, torch
    from subcell.train.distributed import DistributedContext

    ctx = DistributedContext.from_env(torch.device("cpu"))
    torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    assert ctx.all_true(True)
    ctx.close()
    names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    print("gloo threads left:", sum("gloo" in n for n in names), flush=True)
    """
)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc (Linux)")
def test_closing_the_context_ends_the_process_groups_threads() -> None:
    # Threads left running after close() may release a collective's tensors while the interpreter shuts down,
    # which aborts the process ("terminate called without an active exception") in a few runs out of ten.
    codes, outs = _run_ranks(CLOSER)
    assert codes == [0, 0], outs
    assert all("gloo threads left: 0" in out for out in outs), outs
