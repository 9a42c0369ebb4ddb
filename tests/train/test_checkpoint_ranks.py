"""A checkpoint save that fails on one rank of a multi-process run fails on every rank, none waits forever."""

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
    import safetensors.torch
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
            safetensors.torch.save_file = no_space  # the weights, written by rank 0 only
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


@pytest.mark.parametrize("failing_rank", [0, 1])
def test_a_save_failing_on_one_rank_raises_on_every_rank_and_keeps_the_previous_checkpoint(
    tmp_path: Path, failing_rank: int
) -> None:
    folder = tmp_path / "run.checkpoint"
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(folder), str(failing_rank)],
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
        pytest.fail("a rank still waits for the one whose save failed")
    assert [p.returncode for p in procs] == [3, 3], outs  # every rank raised, none finished as if saved
    assert "No space left on device" in outs[failing_rank]
    assert "another rank failed" in outs[1 - failing_rank]
    assert sorted(p.name for p in folder.iterdir()) == [  # step 4 whole, nothing of step 8
        "checkpoint-4.safetensors",
        "checkpoint.json",
        "rng-rank0-4.json",
        "rng-rank1-4.json",
    ]
    assert '"step": 4' in (folder / "checkpoint.json").read_text()
