"""Synthetic-field generation before and after the lockstep walks (``subcell.synth.cell_points``): time per field
and a hash of every output array (image + labels), which must be equal (the change is for speed only).

    python benchmarks/synth/bench_walks.py --before 1e5515c [--repeats 2]

Each arm and case runs in a fresh interpreter (imports excluded from the time; best of ``--repeats``); before = a
git worktree of ``--before``. Results: ``benchmarks/synth/results/walks.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "labelfree"))
from bench_speed import REPO, worktree  # noqa: E402

CASES = {
    "field 48x384x384 (the demo's)": {"shape": [48, 384, 384], "seed": 0},
    "time-lapse 6 x 16x160x160, 0.3 µm": {"shape": [16, 160, 160], "voxel_size": [0.5, 0.3, 0.3], "seed": 8,
                                          "time.frames": 6, "time.division_probability": 0.15,
                                          "cells.mitotic_fraction": 0.3},
    "pretraining draw 32x256x256": {"randomized": 3, "shape": [32, 256, 256]},
}  # fmt: skip

CHILD = r"""
import hashlib, json, sys, time
import numpy as np
import scipy.ndimage, scipy.fft, scipy.spatial  # noqa: F401  (imports are not what we time)
from subcell.synth import synth_field
kw = json.loads(sys.argv[1])
if "randomized" in kw:
    from subcell.synth.randomize import randomized_config
    k = kw.pop("randomized")
    cfg = randomized_config(np.random.default_rng([7, k]), shape=tuple(kw["shape"]), voxel_size=(0.29, 0.15, 0.15),
                            seed=1000 + k)
    make = lambda: synth_field(cfg)
else:
    make = lambda: synth_field(**kw)
t = time.perf_counter()
f = make()
dt = time.perf_counter() - t
h = hashlib.sha256(f.image.numpy().tobytes())
for name in sorted(f.labels):
    h.update(np.ascontiguousarray(f.labels[name]).tobytes())
print(json.dumps({"seconds": dt, "hash": h.hexdigest(), "cells": len(f.cells)}))
"""


def run(src: Path, case: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(case)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", required=True)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "subcell_bench_walks")
    args = ap.parse_args()
    arms = {"before": worktree(args.before, args.work), "after": REPO / "src"}
    rows = []
    for name, case in CASES.items():
        res = {}
        for arm, src in arms.items():
            runs = [run(src, dict(case)) for _ in range(args.repeats)]
            res[arm] = min(runs, key=lambda r: r["seconds"])
        same = res["before"]["hash"] == res["after"]["hash"]
        rows.append({"case": name, "before_s": res["before"]["seconds"], "after_s": res["after"]["seconds"],
                     "speedup": res["before"]["seconds"] / res["after"]["seconds"], "identical": same,
                     "cells": res["after"]["cells"]})  # fmt: skip
        print(rows[-1], flush=True)
    out = HERE / "results" / "walks.json"
    out.write_text(json.dumps({"before_rev": args.before, "rows": rows}, indent=1))
    print("| case | cells | before (s) | after (s) | speed-up | outputs identical |\n|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['case']} | {r['cells']} | {r['before_s']:.1f} | {r['after_s']:.1f} | {r['speedup']:.2f}× | "
              f"{'yes' if r['identical'] else 'NO'} |")  # fmt: skip


if __name__ == "__main__":
    main()
