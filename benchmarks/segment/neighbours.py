"""Neighbours and colony position from segmentations, against the generator's cells.

Synthetic hiPSC colonies (``subcell synth``, ``--set cells.colony_fill=0.6``: a colony inside the field with
its edge in view) at 0.29 × 0.216 × 0.216 µm. The reference is the measurement on the generator's exact cell
labels (cells sharing walls): neighbours touching face to face (``distance_um=0``), the colony as the exact
union of the cells (``gap_um=0``). The geometry itself is checked by the unit tests on layouts with known answers
(``tests/metrics/test_neighbours.py``); what this measures is how much of the reference survives what real
segmentations do to labels, at the defaults (neighbours within 1 µm, colony gaps of 1 µm closed) unless said:

- ``lines``: the exact cells with a one-voxel line of background between touching cells (a watershed line);
  also with neighbours within 0.5 µm, and with colony gaps of 5 µm closed;
- ``cells``: the built-in ``cells`` workflow on the synthetic DNA and membrane channels (matched to the truth
  at IoU ≥ 0.5; unmatched cells are left out of the comparisons and counted);
- ``nuclei D``: only the generator's nucleus labels (what a user with a nuclear stain alone has), neighbours
  within D µm and colony gaps of 15 µm closed: which D gives the cells' neighbours.

Per arm, over matched cells: precision and recall of the neighbour pairs, the share of cells with the right
number of neighbours, edge-cell precision and recall, the mean absolute error and Spearman's ρ of the distance
to the colony's edge (µm, cells uncensored in both), the mean absolute error of the nearest-neighbour distance
(µm) and of the contact fraction, and the time of ``neighbour_table`` per cell.

    python benchmarks/segment/neighbours.py [--fields 4] [--out benchmarks/segment/neighbours_results.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from subcell.metrics import match_instances
from subcell.metrics.neighbours import neighbour_table
from subcell.segment import load_workflow, run_workflow
from subcell.synth import synth_field

SHAPE = (32, 512, 512)
VOXEL = (0.29, 0.216, 0.216)
NUCLEUS_DISTANCES = (4.0, 8.0, 16.0)


def watershed_lines(lab: np.ndarray) -> np.ndarray:
    """``lab`` with a line of background between touching cells: of two laterally face-adjacent voxels of
    different labels, the one of the higher label is cleared."""
    out = lab.copy()
    for axis in (1, 2):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        a, b = lab[tuple(lo)], lab[tuple(hi)]
        differ = (a != b) & (a != 0) & (b != 0)
        out[tuple(lo)][differ & (a > b)] = 0
        out[tuple(hi)][differ & (b > a)] = 0
    return out


def _pairs(table: Any, to_truth: dict[int, int]) -> set[tuple[int, int]]:
    pairs = set()
    for i, ids in zip(table["label"], table["neighbour_ids"], strict=True):
        for j in filter(None, str(ids).split(";")):
            a, b = to_truth.get(int(i)), to_truth.get(int(j))
            if a is not None and b is not None:
                pairs.add((min(a, b), max(a, b)))
    return pairs


def _mae(a: Any, b: Any, where: Any) -> float:
    return float(np.mean(np.abs(a.to_numpy()[where] - b.to_numpy()[where])))


def compare(ref: Any, got: Any, to_truth: dict[int, int]) -> dict[str, float]:
    """The arm's table ``got`` against the reference ``ref`` on the cells ``to_truth`` maps (arm id → truth id)."""
    g = got[got["label"].isin(to_truth)].copy()
    g["truth"] = g["label"].map(to_truth)
    r = ref.set_index("label").loc[g["truth"]]
    g = g.set_index("truth")
    truth_pairs = {p for p in _pairs(ref, {i: i for i in ref["label"]}) if p[0] in g.index and p[1] in g.index}
    found = _pairs(got, to_truth)
    both = ~r["colony_edge_censored"].to_numpy() & ~g["colony_edge_censored"].to_numpy()
    edge_t, edge_g = r["colony_edge"].to_numpy(bool), g["colony_edge"].to_numpy(bool)
    nn = np.isfinite(r["nearest_neighbour_um"].to_numpy()) & np.isfinite(g["nearest_neighbour_um"].to_numpy())
    return {
        "cells": len(g),
        "pair_precision": len(found & truth_pairs) / max(len(found), 1),
        "pair_recall": len(found & truth_pairs) / max(len(truth_pairs), 1),
        "count_exact": float(np.mean(r["neighbours"].to_numpy() == g["neighbours"].to_numpy())),
        "edge_precision": float((edge_t & edge_g).sum() / max(edge_g.sum(), 1)),
        "edge_recall": float((edge_t & edge_g).sum() / max(edge_t.sum(), 1)),
        "edge_distance_mae_um": _mae(r["colony_edge_distance_um"], g["colony_edge_distance_um"], both),
        "edge_distance_spearman": float(
            spearmanr(r["colony_edge_distance_um"].to_numpy()[both], g["colony_edge_distance_um"].to_numpy()[both])[0]
        ),
        "edge_distance_cells": int(both.sum()),
        "nearest_mae_um": _mae(r["nearest_neighbour_um"], g["nearest_neighbour_um"], nn),
        "contact_mae": _mae(r["contact_fraction"], g["contact_fraction"], slice(None)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fields", type=int, default=4)
    ap.add_argument("--out", default=str(Path(__file__).with_name("neighbours_results.json")))
    args = ap.parse_args()
    arms: dict[str, list[dict[str, float]]] = {}
    seconds: dict[str, list[float]] = {}
    unmatched = []
    ref_stats = []
    wf = load_workflow("cells")
    for seed in range(101, 101 + args.fields):
        f = synth_field(shape=SHAPE, voxel_size=VOXEL, seed=seed, **{"cells.colony_fill": 0.6})
        cells = f.labels["cell"][0].astype(np.int32)
        ref = neighbour_table(cells, voxel_size=VOXEL, distance_um=0.0, gap_um=0.0)
        ref_stats.append({
            "cells": len(ref), "edge_cells": int(ref["colony_edge"].sum()),
            "neighbours_mean": float(ref["neighbours"].mean()),
            "edge_distance_max_um": float(np.nanmax(ref["colony_edge_distance_um"])),
        })  # fmt: skip
        ids = {int(i): int(i) for i in ref["label"]}
        lines = watershed_lines(cells)
        inputs: dict[str, tuple[np.ndarray, dict[int, int], dict[str, float]]] = {
            "lines": (lines, ids, {}),
            "lines, neighbours 0.5": (lines, ids, {"distance_um": 0.5}),
            "lines, colony gap 5": (lines, ids, {"gap_um": 5.0}),
        }
        seg = np.asarray(run_workflow(wf, {k: f.image.channel(k).numpy()[0, 0] for k in wf.inputs},
                                      voxel_size=VOXEL)).astype(np.int32)  # fmt: skip
        match = match_instances(seg, cells)
        to_truth = {p: t for t, p, iou in match.pairs if p and iou >= 0.5}
        unmatched.append(len(ref) - len(to_truth))
        inputs["cells"] = (seg, to_truth, {})
        nuclei = f.labels["nucleus"][0].astype(np.int32)
        nuc_ids = {int(i): int(i) for i in np.unique(nuclei) if i and i in ids}
        for d in NUCLEUS_DISTANCES:
            inputs[f"nuclei {d:g}"] = (nuclei, nuc_ids, {"distance_um": d, "gap_um": 15.0})
        for name, (lab, mapping, opts) in inputs.items():
            start = time.perf_counter()
            got = neighbour_table(lab, voxel_size=VOXEL, **opts)
            seconds.setdefault(name, []).append((time.perf_counter() - start) / max(len(got), 1))
            arms.setdefault(name, []).append(compare(ref, got, mapping))
        print(seed, {k: v[-1] for k, v in arms.items()}, flush=True)
    summary: dict[str, Any] = {
        "command": f"python benchmarks/segment/neighbours.py --fields {args.fields}",
        "fields": {
            "shape": SHAPE,
            "voxel_um": VOXEL,
            "colony_fill": 0.6,
            "seeds": list(range(101, 101 + args.fields)),
            "reference": ref_stats,
            "cells_unmatched": unmatched,
        },
        "arms": {},
    }
    for name, rows in arms.items():
        cells = np.array([r["cells"] for r in rows], dtype=np.float64)
        merged = {k: float(np.average([r[k] for r in rows], weights=cells)) for k in rows[0] if k != "cells"}
        merged["cells"] = int(cells.sum())
        merged["seconds_per_cell"] = float(np.mean(seconds[name]))
        summary["arms"][name] = merged
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary["arms"], indent=1))


if __name__ == "__main__":
    main()
