"""Stage drift: how well ``subcell drift`` measures it, and what it does to tracking, on a synthetic movie whose
drift is known exactly.

A synthetic colony (24 × 288 × 288 voxels of 0.5 × 0.4 × 0.4 µm, 16 frames of 5 min, seed 11) is seen through a
window of 16 × 192 × 192 voxels that moves with a known drift: a random walk of whole voxels (lateral steps of
``--step-um`` µm standard deviation, z steps of 0.3 µm) plus a steady creep of 0.2 µm per frame in x, as a stage
repositioning between frames and creeping does. Content leaves and enters at the window's faces as on a real
stage; image and truth labels are cut from the same window, so the truth stays exact.

Reported per channel and estimator (plain cross-correlation, the default, and phase correlation; each frame
against the previous one and against the first): the RMS error of the measured drift, lateral and axial, against
the window's drift plus the colony's own mean motion (the mean displacement of the truth cells, which the field
shows as drift too), and its consistency: the drift measured on the drifting window less that measured on the
still window, against the window's drift (what the colony's own motion cannot blur). Then tracking of the truth labels, as drifted and with the drift measured on the DNA
channel, on the labels' foreground (`track --drift auto`) or the true drift taken out when linking: TRA, division
F1, and the median per-track mean speed against that of the same window without drift. Also the estimator alone:
frame 0's colony, still, seen through the drifting window (no cell motion to tell from drift).

    python benchmarks/track/drift.py [--step-um 1.0] [--work DIR] [--out results_drift.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

SYNTH = ["synth", "colony.ome.zarr", "--shape", "24", "288", "288", "--voxel-size", "0.5", "0.4", "0.4",
         "--frames", "16", "--seed", "11"]  # fmt: skip
WINDOW = (16, 192, 192)


def colony(work: Path) -> Path:
    """The synthetic colony's store in ``work``, generated there the first time."""
    work.mkdir(parents=True, exist_ok=True)
    store = work / SYNTH[1]
    if not store.exists():
        subprocess.run([str(Path(sys.executable).parent / "subcell"), *SYNTH], cwd=work, check=True)
    return store


def window_drift(n_t: int, step_um: float, vs: np.ndarray, margin: np.ndarray, seed: int = 0) -> np.ndarray:
    """A drift of whole voxels (``(T, 3)``, voxels) that stays within ``margin`` of the window's centre."""
    rng = np.random.default_rng(seed)
    sd = np.array([0.3, step_um, step_um])
    drift = np.zeros((n_t, 3))
    for t in range(1, n_t):
        step = rng.normal(0.0, sd) + np.array([0.0, 0.0, 0.2])
        drift[t] = drift[t - 1] + step
        over = np.abs(drift[t] / vs) > margin
        drift[t][over] -= 2 * step[over]  # reflected at the margin
    return np.rint(drift / vs)


def crop(movie: np.ndarray, drift_vox: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The window at ``start`` moved by each frame's drift: the content appears to move by minus the drift of the
    window, so the window is moved by minus the field's drift."""
    out = []
    for t in range(movie.shape[0]):
        z, y, x = (start - drift_vox[t]).astype(int)
        out.append(movie[t, ..., z : z + WINDOW[0], y : y + WINDOW[1], x : x + WINDOW[2]])
    return np.stack(out)


def common_motion(cells: Any, vs: np.ndarray) -> np.ndarray:
    """The colony's own mean motion (µm, ``(T, 3)``): the cumulative mean step of the truth cells."""
    cols = ["centroid_z_um", "centroid_y_um", "centroid_x_um"]
    steps = [cells.pivot_table(index="cell_id", columns="frame", values=c).diff(axis=1).mean().fillna(0.0)
             for c in cols]  # fmt: skip
    return np.stack([s.cumsum().to_numpy() for s in steps], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--step-um", type=float, default=1.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_drift_bench"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from subcell.io import read, read_labels, store_table
    from subcell.track import TrackConfig, track_timelapse, tracks_from_lineage
    from subcell.track.evaluate import evaluate_tracks
    from subcell.transforms.drift import DRIFT_COLUMNS, estimate_drift

    store = colony(args.work)
    image = read(store)
    vs = np.array(image.voxel_size.as_tuple())
    interval = float(image.time_interval)
    full = {c: image.channel(c).numpy()[:, 0] for c in ("dna", "membrane", "brightfield")}
    labels = read_labels(store, "nucleus").numpy()[:, 0]
    parents = dict(zip(*(store_table(store, "lineage")[c] for c in ("track_id", "parent_id")), strict=True))
    n_t = labels.shape[0]
    start = (np.array(labels.shape[1:]) - np.array(WINDOW)) // 2
    drift_vox = window_drift(n_t, args.step_um, vs, margin=start - 1)
    drift_um = drift_vox * vs
    common = common_motion(store_table(store, "cells"), vs)
    truth_drift = drift_um + common  # what the field shows as moving as one
    result: dict[str, Any] = {"synth": " ".join(SYNTH), "window": WINDOW, "step_um": args.step_um,
                              "applied_drift_um_max": np.abs(drift_um).max(axis=0).round(2).tolist(),
                              "largest_step_um": float(np.linalg.norm(np.diff(drift_um, axis=0), axis=1).max().round(2)),
                              "colony_motion_um_max": np.abs(common).max(axis=0).round(2).tolist(), "estimates": []}  # fmt: skip
    moved = {c: crop(v, drift_vox, start) for c, v in full.items()}
    unmoved = {c: crop(v, np.zeros_like(drift_vox), start) for c, v in full.items()}
    for channel, movie in moved.items():
        for method in ("cross", "phase"):
            for reference in ("previous", "first"):
                est = estimate_drift(movie, voxel_size=vs, reference=reference, method=method)[DRIFT_COLUMNS]
                err = est.to_numpy() - truth_drift
                base = estimate_drift(unmoved[channel], voxel_size=vs, reference=reference, method=method)
                diff = est.to_numpy() - base[DRIFT_COLUMNS].to_numpy() - drift_um
                row = {"channel": channel, "method": method, "reference": reference,
                       "rms_lateral_um": round(float(np.sqrt((err[:, 1:] ** 2).sum(axis=1).mean())), 3),
                       "rms_z_um": round(float(np.sqrt((err[:, 0] ** 2).mean())), 3),
                       "max_um": round(float(np.abs(err).max()), 3),
                       "consistency_rms_lateral_um": round(float(np.sqrt((diff[:, 1:] ** 2).sum(axis=1).mean())), 3),
                       "consistency_rms_z_um": round(float(np.sqrt((diff[:, 0] ** 2).mean())), 3)}  # fmt: skip
                print(row, flush=True)
                result["estimates"].append(row)

    # the estimator alone: frame 0's colony, still, seen through the drifting window
    for channel, movie in full.items():
        est = estimate_drift(crop(np.repeat(movie[:1], n_t, axis=0), drift_vox, start), voxel_size=vs)
        err = est[DRIFT_COLUMNS].to_numpy() - drift_um
        row = {"channel": channel, "method": "cross", "reference": "previous", "field": "still colony",
               "rms_lateral_um": round(float(np.sqrt((err[:, 1:] ** 2).sum(axis=1).mean())), 3),
               "rms_z_um": round(float(np.sqrt((err[:, 0] ** 2).mean())), 3)}  # fmt: skip
        print(row, flush=True)
        result["estimates"].append(row)

    # tracking the truth labels: without drift, drifted, and drifted with the drift taken out when linking
    cfg = TrackConfig()
    lab_win = crop(labels, drift_vox, start)
    still = crop(labels, np.zeros_like(drift_vox), start)
    on_dna = estimate_drift(moved["dna"], voxel_size=vs)[DRIFT_COLUMNS].to_numpy()
    on_labels = estimate_drift((lab_win > 0).astype(np.float32), voxel_size=vs)[DRIFT_COLUMNS].to_numpy()
    arms = {"no drift": (still, None), "drifted": (lab_win, None), "drifted, --drift measured on dna":
            (lab_win, on_dna), "drifted, --drift auto (labels' foreground)": (lab_win, on_labels),
            "drifted, the true drift taken out": (lab_win, drift_um)}  # fmt: skip
    result["tracking"] = []
    for name, (lab, drift) in arms.items():
        truth = tracks_from_lineage(lab, parents, voxel_size=vs, time_interval_s=interval)
        pred = track_timelapse(lab, voxel_size=vs, time_interval_s=interval, config=cfg, drift_um=drift)
        scores, _ = evaluate_tracks(pred, truth, frame_tolerance=1)
        row = {"arm": name, "TRA": round(scores["TRA"], 4), "division_f1": round(scores["division_f1"], 3),
               "true_divisions": scores["true_divisions"], "tracks": len(pred.lineage), "true_tracks":
               len(truth.lineage), "median_track_speed_um_per_min":
               round(float(pred.lineage["mean_speed_um_per_min"].median()), 4)}  # fmt: skip
        print(row, flush=True)
        result["tracking"].append(row)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
