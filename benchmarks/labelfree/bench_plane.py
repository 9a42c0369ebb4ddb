"""2D prediction of one large plane, before and after (issue 17): the shipped ``dna-2d`` model, default 2 GB
budget, fp32, a fresh interpreter per arm (before = a git worktree of ``--before``).

    python benchmarks/labelfree/bench_plane.py --before 15d2c6b --size 4096

Writes ``results/plane2d.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from bench_speed import REPO, child, worktree  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="commit of the 'before' arm")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_speed"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    arms = {"before": worktree(args.before, args.work), "after": REPO / "src"}
    res: dict[str, object] = {"before_rev": args.before, "size": args.size}
    outs = {}
    for arm, src in arms.items():
        out = args.work / f"plane_{arm}.npy"
        res[arm] = child("plane", {"size": args.size, "out": str(out)}, src)
        outs[arm] = np.load(out)
        print(arm, res[arm], flush=True)
    res["max_abs_diff"] = float(np.abs(outs["after"] - outs["before"]).max())
    res["speedup"] = res["before"]["seconds"] / res["after"]["seconds"]  # type: ignore[index]
    print(res, flush=True)
    (HERE / "results" / "plane2d.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
