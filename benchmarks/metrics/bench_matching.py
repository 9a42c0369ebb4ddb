"""True positives of the instance matcher, old vs new, on the shared real cases (cells3d, MCF7).

The old matcher (kept here only as the baseline) assigned predictions to true objects once, by maximum total IoU
(Hungarian on the dense objects × objects matrix), and reused that assignment at every threshold: a pair with
IoU 0.55 counted as a miss at 0.5 whenever the assignment had paired one of them with a higher-IoU partner. The
new one (``subcell.metrics.match_instances``) matches at each threshold among the pairs that reach it.
Run: ``SUBCELL_TEST_DATA=../shared/data python benchmarks/metrics/bench_matching.py`` → ``matching_results.md``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from subcell import io
from subcell.metrics import DEFAULT_THRESHOLDS, match_instances
from subcell.segment import load_workflow, run_workflow

HERE = Path(__file__).parent


def old_tp(pred: np.ndarray, truth: np.ndarray) -> list[int]:
    """The previous matcher: one best-total-IoU assignment, thresholded afterwards."""
    from scipy.optimize import linear_sum_assignment

    p, t = pred.ravel(), truth.ravel()
    p_ids, p_inv = np.unique(p, return_inverse=True)
    t_ids, t_inv = np.unique(t, return_inverse=True)
    counts = np.bincount(t_inv * len(p_ids) + p_inv, minlength=len(t_ids) * len(p_ids)).reshape(len(t_ids), -1)
    inter = counts[np.ix_(t_ids != 0, p_ids != 0)]
    union = counts.sum(1)[t_ids != 0][:, None] + counts.sum(0)[p_ids != 0][None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    if not iou.size:
        return [0] * len(DEFAULT_THRESHOLDS)
    r, c = linear_sum_assignment(-iou)
    return [int((iou[r, c] >= th).sum()) for th in DEFAULT_THRESHOLDS]


def cases(root: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    vs = (0.29, 0.26, 0.26)
    img = io.read(root / "cells3d_nuclei/nuclei.tif", voxel_size=vs).numpy(squeeze=True)
    truth = io.read(root / "cells3d_nuclei/nuclei_label.tif", voxel_size=vs).numpy(squeeze=True).astype(np.int64)
    out.append(("cells3d nuclei (nucleus)", run_workflow(load_workflow("nucleus"), {"dna": img}, voxel_size=vs), truth))
    tiles = sorted(p for p in (root / "mcf7_brightfield_hoechst_2d/tiles").glob("*.tif") if "_labelled" not in p.name)
    vs2 = (1.0, 0.3112, 0.3112)
    for t in tiles:
        idx = json.loads(t.with_suffix(".json").read_text())["channels"].index("live_nuclei_channel")
        hoechst = io.read(t, voxel_size=vs2).numpy()[0, idx, 0]
        truth = io.read(t.with_name(t.stem + "_labelled.tif"), voxel_size=vs2).numpy(squeeze=True).astype(np.int64)
        pred = run_workflow(load_workflow("nucleus_widefield"), {"dna": hoechst}, voxel_size=vs2)[0]
        out.append((f"MCF7 {t.stem} (nucleus_widefield)", pred, truth))
    return out


def main() -> None:
    root = Path(os.environ.get("SUBCELL_TEST_DATA", "../shared/data"))
    rows = []
    for name, pred, truth in cases(root):
        t0 = time.perf_counter()
        new = list(match_instances(pred, truth).tp)
        t_new = time.perf_counter() - t0
        t0 = time.perf_counter()
        old = old_tp(pred, truth)
        t_old = time.perf_counter() - t0
        rows.append((name, old, new, t_old, t_new))
        print(rows[-1], flush=True)
    mcf = [r for r in rows if r[0].startswith("MCF7")]
    lines = [
        "# Instance matching: old vs new true positives",
        "",
        "Command: `SUBCELL_TEST_DATA=../shared/data python benchmarks/metrics/bench_matching.py`.",
        "TP at IoU 0.5, 0.6, 0.7, 0.8, 0.9; the old matcher reused one best-total-IoU assignment at every threshold.",
        "",
        "| case | old TP | new TP | old time (s) | new time (s) |",
        "|---|---|---|---:|---:|",
    ]
    for name, old, new, t_old, t_new in rows:
        if not name.startswith("MCF7"):
            lines.append(f"| {name} | {old} | {new} | {t_old:.3f} | {t_new:.3f} |")
    if mcf:
        old_sum = np.sum([r[1] for r in mcf], axis=0).tolist()
        new_sum = np.sum([r[2] for r in mcf], axis=0).tolist()
        changed = sum(r[1] != r[2] for r in mcf)
        lines.append(
            f"| MCF7, all {len(mcf)} tiles summed ({changed} tiles differ) | {old_sum} | {new_sum} | "
            f"{sum(r[3] for r in mcf):.3f} | {sum(r[4] for r in mcf):.3f} |"
        )
    (HERE / "matching_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
