"""Label-free prediction on the shared real data (never copied into the repository).

    SUBCELL_TEST_DATA=../shared/data python benchmarks/labelfree/real_data.py allen --minutes 6
    SUBCELL_TEST_DATA=../shared/data python benchmarks/labelfree/real_data.py mcf7 --minutes 6

``allen``: bright-field z-stack → nucleus mask on the Allen hiPSC stacks (only some cells are segmented, so the
loss is restricted to the segmented cells). Leave-one-out over the three stacks: train on two, test on the third;
Pearson r inside the segmented cells and Dice of the prediction thresholded at the midpoint between the
(normalised) background and nucleus values.

``mcf7``: 2D bright-field → Hoechst on the MCF7 tiles: 18 train, 2 validation, 4 held-out test tiles; Pearson r
against the Hoechst image and Dice of the Otsu-thresholded prediction vs the nucleus labels (next to the Dice of
the Otsu-thresholded real Hoechst image, the reference for what thresholding can reach).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np

from subcell import io
from subcell.labelfree import LabelFreeModel, PredictConfig, TrainConfig, predict_image, train_labelfree
from subcell.metrics import dice
from subcell.metrics.intensity import pearson

HERE = Path(__file__).parent

ALLEN = {
    "12-881": ("aics_fov_12-881_brightfield_labels", "AICS-12_881_c3_Bright_100.tif",
               "AICS-12_881_c6_SEG_DNA_labels_clean.tif", "AICS-12_881_c5_SEG_Memb_labels_clean.tif", (0.29, 0.3314, 0.2935)),
    "11-409": ("aics_fov_11-409_brightfield_labels", "AICS-11_409_c3_Bright_100X.tif",
               "AICS-11_409_c6_SEG_DNA_labels_clean.tif", "AICS-11_409_c5_SEG_Memb_labels_clean.tif", (0.29, 0.331, 0.343)),
    "10-5-5": ("aics_cell_10-5-5_brightfield_labels", "AICS-10_5_5_c3_TL_Brightfield.tif",
               "AICS-10_5_5_c6_SEG_DNA_mask.tif", "AICS-10_5_5_c5_SEG_Memb_mask.tif", (0.29, 0.110, 0.0975)),
}  # fmt: skip


def _allen_manifest(data: Path, path: Path, train: list[str], test: str) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "source", "target", "mask_cell", "split", "voxel_size_z", "voxel_size_y", "voxel_size_x"])
        for key in [*train, test]:
            folder, bf, dna, cell, vs = ALLEN[key]
            d = data / folder
            w.writerow([key, d / bf, d / dna, d / cell, "test" if key == test else "train", *vs])


def allen(data: Path, work: Path, minutes: float, iterations: int) -> dict[str, object]:
    results = {}
    for test in ALLEN:
        train = [k for k in ALLEN if k != test]
        manifest = work / f"allen_test_{test}.csv"
        _allen_manifest(data, manifest, train, test)
        cfg = TrainConfig(
            manifest=manifest, output=work / f"allen_model_{test}", overwrite=True, targets=["nucleus"],
            binarize_targets=True, loss_mask="mask_cell", voxel_size=(0.29, 0.33, 0.33), patch_size=(32, 56, 56),
            batch_size=4, iterations=iterations, max_minutes=minutes, val_fraction=0.0, resume=False,
        )  # fmt: skip
        res = train_labelfree(cfg, on_message=print)
        model = LabelFreeModel.load(res.folder)
        folder, bf, dna, cell, vs = ALLEN[test]
        image = io.read(data / folder / bf, voxel_size=vs)
        pred = predict_image(model, image, PredictConfig())
        from subcell.transforms.align import align_to

        nuc = align_to(io.read(data / folder / dna, voxel_size=vs), pred, labels=True)[0, 0] > 0
        cells = align_to(io.read(data / folder / cell, voxel_size=vs), pred, labels=True)[0, 0] > 0
        p = pred.numpy()[0, 0]
        m, s = model.training["target_mean"][0], model.training["target_std"][0]
        thr = (0.5 - m) / s  # midpoint between background (0) and nucleus (1) in the training normalisation
        results[test] = {
            "train": train, "steps": res.summary["steps"], "seconds": res.summary["seconds"],
            "pearson_r_in_cells": pearson(p, nuc.astype(np.float32), mask=cells),
            "dice_in_cells": dice((p > thr) & cells, nuc & cells),
        }  # fmt: skip
        print(test, results[test], flush=True)
    return results


def mcf7(data: Path, work: Path, minutes: float, iterations: int) -> dict[str, object]:
    from skimage.filters import threshold_otsu

    tiles = data / "mcf7_brightfield_hoechst_2d" / "tiles"
    with (tiles / "index.csv").open() as fh:
        index = list(csv.DictReader(fh))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(index))
    split = {int(i): ("test" if k < 4 else "val" if k < 6 else "train") for k, i in enumerate(order)}
    manifest = work / "mcf7.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "id",
                "source",
                "source_channel",
                "target",
                "target_channel",
                "split",
                "voxel_size_z",
                "voxel_size_y",
                "voxel_size_x",
            ]
        )
        for i, row in enumerate(index):
            chans = row["channels"].split("|")
            hoechst = f"c{chans.index('live_nuclei_channel')}"
            bf = f"c{chans.index('brightfield_channel')}"
            f = tiles / f"{row['tile']}.tif"
            w.writerow([row["tile"], f, bf, f, hoechst, split[i], 1.0, 0.3112, 0.3112])
    cfg = TrainConfig(
        manifest=manifest, output=work / "mcf7_model", overwrite=True, input_channel="brightfield", targets=["hoechst"],
        patch_size=(1, 128, 128), batch_size=8, iterations=iterations, max_minutes=minutes, resume=False,
        network={"preset": "resunet", "depth": 4, "base_channels": 16},
    )  # fmt: skip
    res = train_labelfree(cfg, on_message=print)
    model = LabelFreeModel.load(res.folder)
    rows = []
    for r in io.read_manifest(manifest).split("test"):
        image = io.read(r.source, voxel_size=r.voxel_size)
        pred = predict_image(model, image.channel(r.source_channel), PredictConfig()).numpy()[0, 0, 0]
        target = image.channel(r.target_channel).numpy()[0, 0, 0].astype(np.float32)
        labels = io.read(tiles / f"{r.id}_labelled.tif", voxel_size=r.voxel_size).numpy()[0, 0, 0] > 0
        rows.append({
            "tile": r.id, "pearson_r": pearson(pred, target),
            "dice_pred_otsu": dice(pred > threshold_otsu(pred), labels),
            "dice_hoechst_otsu": dice(target > threshold_otsu(target), labels),
        })  # fmt: skip
        print(rows[-1], flush=True)
    return {
        "steps": res.summary["steps"], "seconds": res.summary["seconds"], "tiles": rows,
        "mean_pearson_r": float(np.mean([r["pearson_r"] for r in rows])),
        "mean_dice_pred": float(np.mean([r["dice_pred_otsu"] for r in rows])),
        "mean_dice_hoechst": float(np.mean([r["dice_hoechst_otsu"] for r in rows])),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["allen", "mcf7"])
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--iterations", type=int, default=800)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_labelfree_real"))
    args = ap.parse_args()
    data = Path(os.environ.get("SUBCELL_TEST_DATA", "../shared/data")).resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    out = (
        allen(data, args.work, args.minutes, args.iterations)
        if args.which == "allen"
        else mcf7(data, args.work, args.minutes, args.iterations)
    )
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"real_{args.which}.json").write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
