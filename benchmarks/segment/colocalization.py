"""Colocalization per cell against the truth: how well ``measure --colocalize`` recovers the fraction of one
channel's signal that lies where another has signal, with Costes', Otsu's or known thresholds, and how often
Costes' randomization test calls a cell significant when nothing is shared.

Synthetic fields (``subcell synth``, 100× voxels 0.29 × 0.108 × 0.108 µm) give each cell's mitochondria as
channel a. Channel b is built per cell with a known overlap: a random share ``f`` (drawn per cell from 0–1, and
exactly 0 for 40 % of the cells) of the cell's mitochondria (its connected pieces of the truth mask, and the
blurred signal within 2 voxels of them) at 0.8 of their brightness, plus the Golgi of every cell (a structure of
its own). The truth M1 is the share of a's noise-free signal (above the generator's offset of 200) in the
chosen pieces' reach; M2 the share of b's in them. Both channels are then imaged: Poisson photons of
``signal × gain + 20`` over a camera offset of 100 with read noise of 2 counts, at a high and a low gain
(the mitochondria's brightest voxels ~500 and ~60 photons).

Accuracy, per gain and threshold method (costes, otsu, and the thresholds a user who measured the background
would give: offset + 20 photons + 3 of its standard deviations): over cells, the mean absolute error of M1 and
M2 and Spearman's ρ of M1 with the truth (on the cells where M1 is defined: Costes' thresholds leave none for a
pair that does not correlate; the largest truth M1 among those is reported).

Costes' test (high gain, 100 shuffles): the share of cells with P < 0.05 among those sharing nothing and among
those sharing at least 30 % (the power), for blocks as long as each cell's texture (the default) and of
1.0 × 0.4 × 0.4 µm (about the PSF, Costes' choice), measured in whole cells and in their cytoplasm (cell minus nucleus), with b's Golgi
the cells' own (the synthetic Golgi and mitochondria both keep out of the nucleus and gather near it: a shared
placement the test detects, though no object is shared) or another field's (placed independently: a true null,
where 5 % is the calibrated rate). Also the time per cell of the colocalization against the rest of
``measure_objects`` in the same run.

    python benchmarks/segment/colocalization.py [--fields 4] [--out benchmarks/segment/colocalization_results.json]
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import spearmanr

from subcell.metrics.colocalization import ColocalizationSpec
from subcell.segment import measure_objects
from subcell.synth import synth_field

OFFSET, BACKGROUND, READ = 100.0, 20.0, 2.0
GAINS = {"high": 2.0, "low": 0.25}  # photons per noise-free count: mitochondria peaks ~500 and ~60 photons
SHAPE = (32, 384, 384)
BLOCKS = (None, (1.0, 0.4, 0.4))  # from each cell's texture (the default), and about the PSF (Costes' choice)


def _signal(f: Any, name: str) -> np.ndarray:
    names = list(f.image.channel_names)
    return np.clip(f.image.numpy()[0, names.index(f"{name}_noise_free")].astype(np.float64) - 200, 0, None)


def field(seed: int, golgi_of: int | None = None) -> dict[str, Any]:
    """One field's cells, noise-free channels a and b, and each cell's truth M1 / M2; ``golgi_of``: b's Golgi
    taken from that other field (placed independently of this field's cells) instead of this one's."""
    f = synth_field(shape=SHAPE, seed=seed)
    mito = _signal(f, "mitochondria")
    golgi = _signal(f if golgi_of is None else synth_field(shape=SHAPE, seed=golgi_of), "golgi")
    cells = f.labels["cell"][0]
    pieces, n = ndi.label(f.labels["mitochondria"][0] > 0)
    rng = np.random.default_rng([seed, 7])
    ids = [int(i) for i in np.unique(cells) if i > 0]
    share = {i: (0.0 if rng.random() < 0.4 else float(rng.random())) for i in ids}
    # each piece belongs to the cell holding most of it; it is shared with probability f of that cell
    owner = np.zeros(n + 1, np.int64)
    if n:
        votes = np.bincount(
            pieces[pieces > 0] * (cells.max() + 1) + cells[pieces > 0], minlength=(n + 1) * (cells.max() + 1)
        )
        owner = votes.reshape(n + 1, cells.max() + 1).argmax(axis=1)
    chosen = np.array([False] + [owner[p] > 0 and rng.random() < share[int(owner[p])] for p in range(1, n + 1)])
    reach = ndi.binary_dilation(chosen[pieces], structure=np.ones((3, 5, 5), bool))
    shared = mito * reach * 0.8
    b = shared + golgi
    truth = {}
    for i in ids:
        inside = cells == i
        sa, sb = mito[inside].sum(), b[inside].sum()
        truth[i] = {"share": share[i], "m1": float((mito * reach)[inside].sum() / sa) if sa else np.nan,
                    "m2": float(shared[inside].sum() / sb) if sb else np.nan}  # fmt: skip
    cytoplasm = np.where(f.labels["nucleus"][0] > 0, 0, cells)
    return {"cells": cells, "cytoplasm": cytoplasm, "a": mito, "b": b, "truth": truth,
            "voxel_size": f.image.voxel_size.as_tuple()}  # fmt: skip


def imaged(signal: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    photons = rng.poisson(signal * gain + BACKGROUND).astype(np.float64)
    return np.round(photons + OFFSET + rng.normal(0, READ, signal.shape))


def main() -> None:
    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fields", type=int, default=6)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("colocalization_results.json"))
    args = p.parse_args()
    known = OFFSET + BACKGROUND + 3 * np.sqrt(BACKGROUND + READ**2)
    methods: dict[str, Any] = {"costes": "costes", "otsu": "otsu", "known background": (known, known)}
    rows: list[dict[str, Any]] = []
    tests: list[dict[str, Any]] = []
    timing = {"plain_s": 0.0, "coloc_s": 0.0, "randomized_s": 0.0, "cells": 0}
    for seed in range(args.fields):
        for golgi in ("own", "other field's"):
            fld = field(seed, None if golgi == "own" else seed + 1000)
            for gain_name, gain in GAINS.items():
                if golgi != "own" and gain_name != "high":
                    continue
                rng = np.random.default_rng([seed, int(gain * 100)])
                chans = {"a": imaged(fld["a"], gain, rng), "b": imaged(fld["b"], gain, rng)}
                measure = partial(measure_objects, voxel_size=fld["voxel_size"], intensity=chans, surface=False)
                if golgi == "own":
                    for method, thresholds in methods.items():
                        for r in measure(
                            fld["cells"], colocalize=ColocalizationSpec((("a", "b"),), thresholds)
                        ).itertuples():
                            rows.append({"gain": gain_name, "method": method, **fld["truth"][int(r.label)],
                                         "est_m1": r.coloc_a_b_m1, "est_m2": r.coloc_a_b_m2,
                                         "pearson": r.coloc_a_b_pearson})  # fmt: skip
                if gain_name != "high":
                    continue
                if golgi == "own":  # the cost of the coefficients against the rest of measure, back to back
                    t0 = time.perf_counter()
                    n = len(measure_objects(fld["cells"], voxel_size=fld["voxel_size"], intensity=chans, surface=False))
                    timing["plain_s"] += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    measure(fld["cells"], colocalize=ColocalizationSpec((("a", "b"),)))
                    timing["coloc_s"] += time.perf_counter() - t0
                    timing["cells"] += n
                for region in ("cell", "cytoplasm"):
                    for block in BLOCKS:
                        spec = ColocalizationSpec((("a", "b"),), randomizations=100, block_um=block)
                        t0 = time.perf_counter()
                        table = measure(fld[region if region == "cytoplasm" else "cells"], colocalize=spec)
                        if golgi == "own" and region == "cell" and block is None:
                            timing["randomized_s"] += time.perf_counter() - t0
                        for r in table.itertuples():
                            tests.append({"golgi": golgi, "region": region, "block_um": str(block),
                                          "share": fld["truth"][int(r.label)]["share"], "p": r.coloc_a_b_p_value,
                                          "pearson": r.coloc_a_b_pearson})  # fmt: skip
        print(f"field {seed} done", flush=True)
    d = pd.DataFrame(rows)
    summary: dict[str, Any] = {}
    for (gain, method), g in d.groupby(["gain", "method"]):
        ok = g.dropna(subset=["est_m1"])
        summary[f"{gain} gain, {method}"] = {
            "cells": len(g), "undefined_m1": int(g.est_m1.isna().sum()),
            "undefined_truth_m1_max": float(g[g.est_m1.isna()].m1.max()) if g.est_m1.isna().any() else None,
            "m1_mae": float((ok.est_m1 - ok.m1).abs().mean()), "m2_mae": float((ok.est_m2 - ok.m2).abs().mean()),
            "m1_spearman": float(spearmanr(ok.est_m1, ok.m1).statistic),
            "pearson_spearman_with_m1": float(spearmanr(g.pearson, g.m1).statistic),
        }  # fmt: skip
    randomization: dict[str, Any] = {}
    for (golgi, region, block), g in pd.DataFrame(tests).groupby(["golgi", "region", "block_um"]):
        null, some = g[g.share == 0], g[g.share >= 0.3]
        randomization[f"{golgi} Golgi, {region}, blocks {block} µm"] = {
            "null_cells": len(null), "p_below_0.05_null": float((null.p < 0.05).mean()),
            "null_pearson_median": float(null.pearson.median()),
            "power_cells": len(some), "p_below_0.05_shared_0.3_or_more": float((some.p < 0.05).mean()),
        }  # fmt: skip
    timing["per_cell_plain_s"] = timing["plain_s"] / max(timing["cells"], 1)
    timing["coloc_over_plain"] = timing["coloc_s"] / timing["plain_s"]
    timing["randomized_over_plain"] = timing["randomized_s"] / timing["plain_s"]
    result = {"fields": args.fields, "shape": SHAPE, "accuracy": summary, "randomization": randomization,
              "timing": timing}  # fmt: skip
    for part in ("accuracy", "randomization"):
        for k, v in result[part].items():
            print(k, {kk: round(vv, 3) if isinstance(vv, float) else vv for kk, vv in v.items()})
    print("timing", {k: round(v, 3) for k, v in timing.items()})
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
