"""Integrated cell on synthetic cells: does the conditional model reproduce the generator's placement rules?

Generates fields with `subcell.synth`, extracts aligned cells (structures: mitochondria, nucleoli, golgi; their
noise-free channels, so the statistics measure placement rather than camera noise), trains both models for a CPU time budget, then on
held-out cells compares placement statistics (subcell.cells.placement, computed on each image's Otsu mask
inside the cell) of generated structures (sampled from the prior given each cell's true reference) with those
of the real crops of the same cells, and reports the held-out ELBO
with the true vs a shuffled reference.

    python benchmarks/integrated/synthetic_rules.py --fields 16 --ref-minutes 5 --cond-minutes 12

Tolerance: a generated statistic agrees when |mean_gen − mean_real| ≤ 0.5 · sd_real over the held-out cells,
i.e. the model's error is smaller than half the natural cell-to-cell variation of that statistic.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from subcell import io
from subcell.cells import ExtractConfig, extract_to_store
from subcell.cells.placement import placement_stats
from subcell.integrated import TrainConfig, evaluate_model, sample_structure, train_integrated
from subcell.integrated.figures import grid_png
from subcell.synth.generate import synth_field

STRUCTURES = ["mitochondria_noise_free", "nucleoli_noise_free", "golgi_noise_free"]
RULES = {
    "mitochondria": ["radial_0_1.5um", "radial_1.5_3um", "radial_3_4.5um", "inside_nucleus_fraction"],
    "nucleoli": ["inside_nucleus_fraction", "object_count", "apical_offset_um"],
    "golgi": ["apical_offset_um", "inside_nucleus_fraction", "radial_0_1.5um"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fields", type=int, default=16)
    ap.add_argument("--shape", type=int, nargs=3, default=(48, 512, 512))
    ap.add_argument("--ref-minutes", type=float, default=5)
    ap.add_argument("--cond-minutes", type=float, default=12)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--cells", type=Path, default=None, help="reuse a cell store of an earlier run")
    ap.add_argument("--beta", type=float, default=0.2)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="integrated-bench-"))
    t0 = time.time()
    store = args.cells or work / "cells.zarr"
    if args.cells is None:  # generate and extract (or reuse a store made by an earlier run: --cells)
        fields = []
        for s in range(args.fields):
            f = synth_field(shape=tuple(args.shape), seed=100 + s)
            fields.append((f.image, f.labels["cell"][0], f.labels["nucleus"][0], {"source": f"synth-{100 + s}"}))
        cfg = ExtractConfig(channels=STRUCTURES, box=(32, 48, 48), voxel_um=0.5, border="flag", oversize="rescale")
        extract_to_store(fields, store, cfg)
        del fields
    table = io.read_cell_store(store).table
    t_data = time.time() - t0
    print(f"{int((table.crop_index >= 0).sum())} cells extracted in {t_data:.0f} s")
    tc = TrainConfig(
        cells=[store], output=work / "model", structures=STRUCTURES, batch_size=8,
        reference={"iterations": 100000, "max_minutes": args.ref_minutes, "lr": args.lr,
                   "beta": {"kind": "warmup", "beta": args.beta, "warmup_steps": 300}},
        conditional={"iterations": 100000, "max_minutes": args.cond_minutes, "lr": args.lr,
                     "beta": {"kind": "warmup", "beta": args.beta, "warmup_steps": 300}},
        validate_every=100, checkpoint_every=100000,
    )  # fmt: skip
    res = train_integrated(tc, on_message=print)
    model, data, test = res.model, res.data, res.split["test"]
    ev = evaluate_model(model, data, test, samples=4)
    print(ev.summary.to_string())
    rows = []
    cell_c, nuc_c = data.reference_channels.index("cell_mask"), data.reference_channels.index("nucleus_mask")
    examples = []
    for i in test:
        ref = data.reference[i].astype(np.float32)
        cell, nuc = ref[cell_c], ref[nuc_c]
        for slot, name in enumerate(STRUCTURES):
            real = data.structure_images[i, slot].astype(np.float32)
            gen = sample_structure(model, ref, name, args.samples, seed=int(i))
            rows.append({"cell": int(i), "structure": name, "source": "real",
                         **placement_stats(real, cell, nuc, data.voxel_um, segmented=True)})  # fmt: skip
            for k in range(args.samples):
                rows.append({"cell": int(i), "structure": name, "source": "generated", "sample": k,
                             **placement_stats(gen[k], cell, nuc, data.voxel_um, segmented=True)})  # fmt: skip
            if len(examples) < 3 * len(STRUCTURES):
                examples.append((name, real, gen[0]))
    stats = pd.DataFrame(rows)
    # mitotic cells have no nucleoli: statistics of an empty structure are NaN and left out (nanmean / dropna)
    gen_mean = stats[stats.source == "generated"].groupby(["cell", "structure"]).mean(numeric_only=True).reset_index()
    real = stats[stats.source == "real"]
    comp = []
    for short, cols in RULES.items():
        name = f"{short}_noise_free"
        r = real[real.structure == name]
        g = gen_mean[gen_mean.structure == name]
        for col in cols:
            mr, sr, mg, sg = r[col].mean(), r[col].std(ddof=1), g[col].mean(), g[col].std(ddof=1)
            comp.append({"structure": short, "statistic": col, "real_mean": mr, "real_sd": sr, "generated_mean": mg,
                         "generated_sd": sg, "difference_in_sd": (mg - mr) / sr if sr > 0 else float("nan"),
                         "agrees": bool(abs(mg - mr) <= 0.5 * sr) if sr > 0 else bool(abs(mg - mr) < 1e-6)})  # fmt: skip
    comp_df = pd.DataFrame(comp)
    print(comp_df.to_string())
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "cells": len(data.reference),
        "test_cells": len(test),
        "data_seconds": t_data,
        "training": model.training,
        "evaluation": ev.summary.to_dict(orient="records"),
        "rules": comp_df.to_dict(orient="records"),
    }
    (args.out / "synthetic_rules.json").write_text(json.dumps(summary, indent=1, default=str))
    rows_img = [[real, gen] for _, real, gen in examples[: 2 * len(STRUCTURES)]]
    titles = [f"{n}: real | generated" for n, _, _ in examples[: 2 * len(STRUCTURES)]]
    (args.out / "synthetic_samples.png").write_bytes(grid_png(rows_img, titles))
    print(f"wrote {args.out / 'synthetic_rules.json'} in {time.time() - t0:.0f} s total")


if __name__ == "__main__":
    main()
