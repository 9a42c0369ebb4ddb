"""Photobleaching: how well ``subcell bleach`` brings a dimming movie back, on a synthetic colony bleached by a
known amount.

The synthetic colony of ``benchmarks/track/drift.py`` (16 frames of 5 min; generated there, or here if missing):
its DNA channel, above the camera offset (frame 0's 1st percentile), is multiplied by ``exp(-k·t)`` (``--rate``
per frame; default 0.05, a half-life of 69 min), then rounded back to uint16 as a camera would. Reported per
method: the largest error of the factors against ``exp(k·t)``, and per truth nucleus (its mean DNA intensity in
each frame it is in) the median over nuclei of the slope of the log trace (the bleaching the nuclei still show,
per frame; the unbleached movie's own is the reference) and of its coefficient of variation.

    python benchmarks/track/bleach.py [--rate 0.05] [--work DIR] [--out results_bleach.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from drift import SYNTH, colony  # (the same colony)


def traces(movie: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Median over nuclei of the log-slope (per frame) and the CV of their mean intensity over the frames."""
    from scipy.ndimage import mean as label_mean

    rows: dict[int, list[tuple[int, float]]] = {}
    for t in range(movie.shape[0]):
        ids = np.unique(labels[t])
        ids = ids[ids > 0]
        for i, m in zip(ids, label_mean(movie[t], labels[t], ids), strict=True):
            rows.setdefault(int(i), []).append((t, float(m)))
    slopes, cvs = [], []
    for points in rows.values():
        if len(points) >= 5:
            t, m = np.array(points).T
            slopes.append(np.polyfit(t, np.log(np.maximum(m, 1e-6)), 1)[0])
            cvs.append(m.std() / m.mean())
    return {"nuclei": len(slopes), "median_log_slope_per_frame": round(float(np.median(slopes)), 4),
            "median_cv": round(float(np.median(cvs)), 4)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_drift_bench"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from subcell.image import Image
    from subcell.io import read, read_labels
    from subcell.transforms.bleach import bleach_curve, bleach_factors, correct_bleach

    store = colony(args.work)
    image = read(store)
    dna = image.channel("dna").numpy()[:, 0].astype(np.float64)
    labels = read_labels(store, "nucleus").numpy()[:, 0]
    n_t = dna.shape[0]
    offset = float(np.percentile(dna[0], 1))
    true = np.exp(args.rate * np.arange(n_t))
    bleached = np.rint((dna - offset) / true[:, None, None, None] + offset).clip(0, 65535).astype(np.uint16)
    result: dict[str, Any] = {"synth": " ".join(SYNTH), "rate_per_frame": args.rate, "offset": offset,
                              "unbleached": traces(dna, labels), "bleached": traces(bleached, labels)}  # fmt: skip
    img = Image(bleached[:, None], voxel_size=image.voxel_size, dims="TCZYX")
    curve = bleach_curve(bleached)
    for method in ("exponential", "ratio", "histogram"):
        factors, info = (np.ones(n_t), {}) if method == "histogram" else bleach_factors(curve, method)
        fixed = correct_bleach(img, factors[:, None], background=curve["background"].iloc[0], method=method)
        row = traces(fixed.numpy()[:, 0], labels)
        if method != "histogram":
            row["factor_error_max"] = round(float(np.abs(factors / true - 1).max()), 4)
        row |= {k: round(v, 3) for k, v in info.items()}
        result[method] = row
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
