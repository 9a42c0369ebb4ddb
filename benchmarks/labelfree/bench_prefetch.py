"""Batches drawn ahead on a thread (``fit(prefetch=True)``) against drawn in the step, on this machine's CPU.

    PYTHONPATH=src:benchmarks/labelfree python benchmarks/labelfree/bench_prefetch.py [--steps 12] [--rounds 2]

The default preset, batch 4 × 32×64×64 (the real-data fine-tuning arms' batch) from a ``PatchSampler`` over three
synthetic volumes, with the default augmentation and with zoom/blur/noise added (``{scale: 0.4, blur: 1.5, noise:
0.3}``, the costliest draws: ~50 ms per patch on one core). Steps per second of ``fit`` end to end, the first two
steps of each run not counted; the two ways alternate over ``--rounds`` (ratios within a round, same machine
state). Checks the default (prefetch off on a CPU): the drawing thread shares the cores with the step's threads.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from gpu_check import volume

from subcell.image import VoxelSize
from subcell.labelfree import LabelFreeModel, preset
from subcell.labelfree.config import AugmentConfig
from subcell.labelfree.data import PatchSampler
from subcell.train import fit


def rate(prefetch: bool, augment: AugmentConfig, steps: int) -> tuple[float, float]:
    """(steps/s after the first two, median ms to draw a batch)."""
    torch.manual_seed(0)
    model = LabelFreeModel.create(preset("resunet"), input_channel="bf", targets=["y"],
                                  voxel_size=VoxelSize(0.29, 0.29, 0.29))  # fmt: skip
    sampler = PatchSampler([volume(i, (40, 96, 96)) for i in range(3)], (32, 64, 64), augment=augment)
    stamps: list[float] = []
    draws: list[float] = []

    def sample(r: np.random.Generator) -> tuple[torch.Tensor, ...]:
        t = time.perf_counter()
        b = tuple(torch.from_numpy(a) for a in sampler.batch(r, 4))
        draws.append(time.perf_counter() - t)
        return b

    opt = torch.optim.Adam(model.network.parameters(), 1e-3)
    fit(model.network, opt, sample_batch=sample, loss_fn=lambda o, b: ((o - b[1]) ** 2).mean(), iterations=steps,
        rng=np.random.default_rng(0), device=torch.device("cpu"), prefetch=prefetch,
        on_step=lambda info: stamps.append(time.perf_counter()))  # fmt: skip
    return (len(stamps) - 3) / (stamps[-1] - stamps[2]), float(np.median(draws) * 1e3)


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
            got = {p: rate(p, aug, args.steps) for p in order}
            off, on = got[False][0], got[True][0]
            print(f"| {name} | {rnd + 1} | {off:.3f} | {on:.3f} | {on / off:.2f} | {got[False][1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
