"""Bright-field → structures on synthetic fields: train a preset under a CPU time budget, evaluate held-out fields.

    python benchmarks/labelfree/synthetic_accuracy.py --preset resunet --minutes 15 --targets dna membrane ...

Writes ``benchmarks/labelfree/results/<name>.json`` (per-structure Pearson r vs the noisy target and vs the
noise-free truth, the noise ceiling, SSIM, per-cell r) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from subcell import io, synth
from subcell.labelfree import (
    LabelFreeModel,
    PredictConfig,
    TrainConfig,
    evaluate_prediction,
    predict_image,
    train_labelfree,
)

HERE = Path(__file__).parent


def make_fields(folder: Path, n_train: int, n_val: int, n_test: int, shape: tuple[int, int, int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    for i, split in enumerate(splits):
        p = folder / f"field{i:02d}.ome.zarr"
        if not p.exists():
            synth.write_field(synth.synth_field(shape=shape, seed=1000 + i), p)
        rows.append([f"field{i:02d}", p.name, "brightfield", p.name, split, f"{p.name}/labels/cell"])
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "source", "source_channel", "target", "split", "mask_cell"])
        w.writerows(rows)
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="resunet")
    ap.add_argument("--skip", choices=["concat", "add"], default=None, help="override the preset's decoder skip")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--targets", nargs="+", default=list(synth.STRUCTURES))
    ap.add_argument("--voxel-size", nargs=3, type=float, default=(0.29, 0.29, 0.29))
    ap.add_argument("--data", type=Path, default=Path("/tmp/subcell_labelfree_bench"))
    ap.add_argument("--fields", nargs=3, type=int, default=(10, 1, 2), metavar=("TRAIN", "VAL", "TEST"))
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    name = args.name or f"{args.preset}_{int(args.minutes)}min_{len(args.targets)}targets"
    t0 = time.perf_counter()
    manifest = make_fields(args.data, *args.fields, shape=(48, 384, 384))
    gen_s = time.perf_counter() - t0
    cfg = TrainConfig(
        manifest=manifest, output=args.data / f"model_{name}", overwrite=True, targets=args.targets,
        voxel_size=tuple(args.voxel_size),
        network={"preset": args.preset, **({"skip": args.skip} if args.skip else {})}, iterations=args.iterations,
        max_minutes=args.minutes, batch_size=args.batch_size, validate_every=250, checkpoint_every=500, resume=False,
    )  # fmt: skip
    result = train_labelfree(cfg, on_message=print)
    model = LabelFreeModel.load(result.folder)
    rows = []
    for r in io.read_manifest(manifest).split("test"):
        image = io.read(r.source)
        pred = predict_image(model, image.channel("brightfield"), PredictConfig())
        cells = io.read_labels(r.source, "cell")
        for row in evaluate_prediction(pred, image, cells=cells):
            rows.append({"field": r.id, **row})
    per = {}
    for t in args.targets:
        sel = [x for x in rows if x["structure"] == t]
        per[t] = {
            k: float(np.mean([x[k] for x in sel]))
            for k in ("pearson_r", "pearson_r_truth", "noise_ceiling", "ssim", "pearson_r_cell_mean")
        }
    out = {
        "preset": args.preset, "network": model.network_config.model_dump(), "minutes": args.minutes, "steps": result.summary["steps"],
        "train_seconds": result.summary["seconds"], "precision": result.summary["precision"],
        "parameters": sum(p.numel() for p in model.network.parameters()), "generate_seconds": gen_s,
        "fields": args.fields, "voxel_size": args.voxel_size, "per_structure": per, "rows": rows,
    }  # fmt: skip
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{name}.json").write_text(json.dumps(out, indent=1, default=float))
    print(
        f"\n{name}: {out['steps']} steps in {out['train_seconds']:.0f} s ({out['precision']}), {out['parameters'] / 1e6:.2f} M params"
    )
    print("| structure | Pearson r (noisy target) | r vs noise-free truth | noise ceiling | SSIM | mean r per cell |")
    print("|---|---|---|---|---|---|")
    for t, m in per.items():
        print(
            f"| {t} | {m['pearson_r']:.3f} | {m['pearson_r_truth']:.3f} | {m['noise_ceiling']:.3f} | {m['ssim']:.3f} | {m['pearson_r_cell_mean']:.3f} |"
        )


if __name__ == "__main__":
    main()
