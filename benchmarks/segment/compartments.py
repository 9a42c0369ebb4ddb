"""Nuclear / cytoplasmic ratios per cell against the truth: how well ``measure --nuclei`` recovers a reporter's
N/C ratio from exact and from segmented cells and nuclei, with and without the margin along the boundaries.

Synthetic fields (``subcell synth``, 32×512×512 voxels of 0.29 × 0.108 × 0.108 µm) give each cell and its
nucleus. A reporter is built with a known ratio per cell (drawn log-uniformly from 1/4 to 4): the cytoplasm at
``level`` photons, the nucleus at ratio × level, nothing outside the cells; blurred by a Gaussian PSF (σ 0.35 µm
along z, 0.11 µm laterally: FWHM 0.8 / 0.25 µm), imaged with Poisson photons over a background of 20 photons, a
camera offset of 100 and read noise of 2 counts, at a high and a low ``level`` (200 and 20 photons).

Arms: the generator's exact cell and nucleus labels, and the built-in ``cells`` and ``nucleus`` workflows'
segmentations of the synthetic DNA and membrane channels (cells matched to the truth at IoU ≥ 0.5), each at
margins of 0, 0.3 (the default) and 0.6 µm, with each cell's local background (the default) and with the known
one (offset + background photons: what a user measures where there is no cell). Per arm: the median and 90th percentile of |log2(measured / true)|,
the share of cells within 10 % of their ratio, Spearman's ρ with the truth, and the cells without a (positive)
ratio.

    python benchmarks/segment/compartments.py [--fields 6] [--out benchmarks/segment/compartments_results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import spearmanr

from subcell.metrics import match_instances
from subcell.metrics.compartments import nc_ratios
from subcell.segment import load_workflow, measure_frames, run_workflow
from subcell.synth import synth_field

SHAPE = (32, 512, 512)
VOXEL = (0.29, 0.108, 0.108)
PSF_SIGMA_UM = (0.35, 0.11, 0.11)
LEVELS = {"high": 200.0, "low": 20.0}
MARGINS = (0.0, 0.3, 0.6)
OFFSET, BACKGROUND, READ = 100.0, 20.0, 2.0


def reporter(cells: np.ndarray, nuclei: np.ndarray, ratio: dict[int, float], level: float, seed: int) -> np.ndarray:
    """The imaged reporter: ``level`` photons in each cell's cytoplasm, ratio × level in its nucleus, blurred."""
    rng = np.random.default_rng(seed)
    clean = np.zeros(cells.shape)
    clean[cells > 0] = level
    for i, r in ratio.items():
        clean[(cells == i) & (nuclei > 0)] = level * r
    blurred = ndi.gaussian_filter(clean, [s / v for s, v in zip(PSF_SIGMA_UM, VOXEL, strict=True)])
    photons = rng.poisson(blurred + BACKGROUND).astype(np.float64)
    return OFFSET + photons + rng.normal(0, READ, cells.shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fields", type=int, default=6)
    ap.add_argument("--out", default=str(Path(__file__).with_name("compartments_results.json")))
    args = ap.parse_args()
    found: dict[str, list[tuple[float, float]]] = {}
    missing: dict[str, int] = {}
    wf_cells, wf_nuclei = load_workflow("cells"), load_workflow("nucleus")
    for seed in range(201, 201 + args.fields):
        f = synth_field(shape=SHAPE, seed=seed)
        cells, nuclei = f.labels["cell"][0].astype(np.int32), f.labels["nucleus"][0].astype(np.int32)
        rng = np.random.default_rng(seed)
        ratio = {int(i): float(2 ** rng.uniform(-2, 2)) for i in np.unique(cells) if i}
        inputs = {k: f.image.channel(k).numpy()[0, 0] for k in {*wf_cells.inputs, *wf_nuclei.inputs}}
        seg_cells = np.asarray(run_workflow(wf_cells, {k: inputs[k] for k in wf_cells.inputs}, voxel_size=VOXEL))
        seg_nuclei = np.asarray(run_workflow(wf_nuclei, {k: inputs[k] for k in wf_nuclei.inputs}, voxel_size=VOXEL))
        match = match_instances(seg_cells.astype(np.int32), cells)
        to_truth = {p: t for t, p, iou in match.pairs if p and iou >= 0.5}
        labels = {"exact": (cells, nuclei, {i: i for i in ratio}), "segmented": (seg_cells, seg_nuclei, to_truth)}
        for level_name, level in LEVELS.items():
            img = reporter(cells, nuclei, ratio, level, seed)
            for lab_name, (lab, nuc, mapping) in labels.items():
                for margin in MARGINS:
                    t = measure_frames(lab[None], voxel_size=VOXEL, intensity={"rep": img[None]}, nuclei=nuc[None],
                                       nc_margin_um=margin)  # fmt: skip
                    known = nc_ratios(t, ["rep"], {"rep": OFFSET + BACKGROUND})["rep_nc_ratio"]
                    for bg, ratios in (("local", t["rep_nc_ratio"]), ("known", known)):
                        arm = f"{lab_name}, {level_name}, margin {margin:g}, {bg} background"
                        for label, measured in zip(t["label"], ratios, strict=True):
                            if int(label) not in mapping:
                                continue
                            truth = ratio[mapping[int(label)]]
                            if np.isfinite(measured) and measured > 0:
                                found.setdefault(arm, []).append((truth, float(measured)))
                            else:
                                missing[arm] = missing.get(arm, 0) + 1
        print(seed, {k: len(v) for k, v in found.items()}, flush=True)
    summary: dict[str, Any] = {
        "command": f"python benchmarks/segment/compartments.py --fields {args.fields}",
        "fields": {
            "shape": SHAPE,
            "voxel_um": VOXEL,
            "psf_sigma_um": PSF_SIGMA_UM,
            "levels": LEVELS,
            "seeds": list(range(201, 201 + args.fields)),
        },
        "arms": {},
    }
    for arm, pairs in found.items():
        truth, measured = np.array(pairs).T
        err = np.abs(np.log2(measured / truth))
        summary["arms"][arm] = {
            "cells": len(pairs),
            "no_ratio": missing.get(arm, 0),
            "median_abs_log2": float(np.median(err)),
            "p90_abs_log2": float(np.percentile(err, 90)),
            "within_10_percent": float(np.mean(np.abs(measured / truth - 1) <= 0.1)),
            "spearman": float(spearmanr(truth, measured)[0]),
            "median_measured_over_true": float(np.median(measured / truth)),
        }
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    for arm, v in summary["arms"].items():
        print(arm, {k: round(x, 3) if isinstance(x, float) else x for k, x in v.items()})


if __name__ == "__main__":
    main()
