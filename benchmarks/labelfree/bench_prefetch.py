"""Batches drawn ahead on a thread (``fit(prefetch=True)``) against drawn in the step, on this machine's CPU.

    PYTHONPATH=src:benchmarks/labelfree python benchmarks/labelfree/bench_prefetch.py [--steps 12] [--rounds 2]

The default preset, batch 4 × 32×64×64 (the real-data fine-tuning arms' batch) from a ``PatchSampler`` over three
synthetic volumes, with the default augmentation and with zoom/blur/noise added (``{scale: 0.4, blur: 1.5, noise:
0.3}``, the costliest draws: ~50 ms per patch on one core). Steps per second of ``fit`` end to end over the last
three quarters of each run (``gpu_speed.fit_rate``, the GPU table's ``fit`` rows); the two ways alternate over ``--rounds`` (ratios within a round, same machine
state). Checks the default (prefetch off on a CPU): the drawing thread shares the cores with the step's threads.
"""

from __future__ import annotations

import argparse

import torch
from gpu_speed import fit_rate

from subcell.labelfree.config import AugmentConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32")
    print("| augmentation | round | in the step, steps/s | drawn ahead, steps/s | ratio | draw ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, aug in (
        ("default", AugmentConfig()),
        ("+ zoom/blur/noise", AugmentConfig(scale=0.4, blur=1.5, noise=0.3)),
    ):
        for rnd in range(args.rounds):
            order = (False, True) if rnd % 2 == 0 else (True, False)
            got = {p: fit_rate(torch.device("cpu"), prefetch=p, batch=4, steps=args.steps, autocast=None, augment=aug)
                   for p in order}  # fmt: skip
            off, on = got[False][0], got[True][0]
            print(f"| {name} | {rnd + 1} | {off:.3f} | {on:.3f} | {on / off:.2f} | {got[False][1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
