"""Built-in workflows against the synthetic ground truth, over several fields (seeds).

Nucleus and cells: instance F1 at IoU 0.5 and the Dice of their foreground (how much of the objects' volume is
found: F1 counts a cell found at half its volume as found); structures: Dice of the mask against the generator's
mask. Run: ``python benchmarks/segment/evaluate_synthetic.py [--seeds 31 32 …] [--shape Z Y X] [--only cells …]
[--out NAME.md]``;
writes ``benchmarks/segment/synthetic_results.md`` by default. Seeds 21–25 are the ones the built-in parameters
were chosen on; evaluate on others to see how they generalise.
"""

from __future__ import annotations

import numpy as np

from subcell.metrics import dice, match_instances
from subcell.segment import load_workflow, run_workflow
from subcell.synth import synth_field

SEEDS = (21, 22, 23, 24, 25)
SHAPE = (48, 384, 384)
WORKFLOWS = {"nucleus": "nucleus", "cells": "cell", "nucleoli": "nucleoli", "mitochondria": "mitochondria",
             "microtubules": "microtubules", "golgi": "golgi", "nuclear_envelope": "nuclear_envelope", "er": "er"}  # fmt: skip


def main() -> None:
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--shape", type=int, nargs=3, default=list(SHAPE))
    ap.add_argument("--voxel-um", type=float, nargs=3, default=None, help="(z, y, x) µm; the generator's default")
    ap.add_argument("--only", nargs="+", choices=list(WORKFLOWS), help="these workflows only")
    ap.add_argument("--out", default="synthetic_results.md")
    args = ap.parse_args()
    shape = tuple(args.shape)
    chosen = {w: t for w, t in WORKFLOWS.items() if not args.only or w in args.only}
    scores: dict[tuple[str, str], list[float]] = {}
    for seed in args.seeds:
        f = synth_field(shape=shape, seed=seed, **({"voxel_size": tuple(args.voxel_um)} if args.voxel_um else {}))
        for wf, truth in chosen.items():
            w = load_workflow(wf)
            out = run_workflow(
                w, {k: f.image.channel(k).numpy()[0, 0] for k in w.inputs}, voxel_size=f.config.voxel_size
            )
            gt = f.labels[truth][0]
            if w.kind == "instance":
                scores.setdefault((wf, "F1@0.5"), []).append(match_instances(out, gt).f1(0.5))
                scores.setdefault((wf, "foreground Dice"), []).append(dice(out > 0, gt > 0))
            else:
                scores.setdefault((wf, "Dice"), []).append(dice(out, gt))
    vox = "×".join(f"{v:g}" for v in (args.voxel_um or (0.29, 0.108, 0.108)))
    extra = (" --voxel-um " + " ".join(map(str, args.voxel_um)) if args.voxel_um else "") + (
        " --only " + " ".join(args.only) if args.only else ""
    )
    lines = [
        "# Built-in workflows on synthetic fields",
        "",
        f"Fields {shape} (Z, Y, X) at {vox} µm, seeds {args.seeds}; command: "
        f"`python benchmarks/segment/evaluate_synthetic.py --seeds {' '.join(map(str, args.seeds))} "
        f"--shape {' '.join(map(str, shape))}{extra} --out {args.out}`.",
        "",
        "| workflow | metric | per seed | mean |",
        "|---|---|---|---:|",
    ]
    for (wf, metric), vals in scores.items():
        lines.append(f"| {wf} | {metric} | {', '.join(f'{v:.3f}' for v in vals)} | {np.mean(vals):.3f} |")
    (Path(__file__).parent / args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
