"""Integrated cell and shape space on real Allen data (../shared/data; never copied into the repo).

    SUBCELL_TEST_DATA=../shared/data python benchmarks/integrated/real_data.py mitotic --ref-minutes 5 --cond-minutes 10
    SUBCELL_TEST_DATA=../shared/data python benchmarks/integrated/real_data.py fov

``mitotic``: 84 single mitotic hiPSCs (12 tagged structures × stages M1–M7; membrane dye, DNA dye, the tagged
structure, and masks). Cells are extracted with their cell mask and chromatin mask (the "nucleus" of a mitotic
cell) into a cell store, a shape space is built, both models are trained on a random 65 % of the cells and
evaluated on the held-out 25 % (held-out ELBO per structure, true vs shuffled reference), and a mitotic-stage
classifier (standardized features → logistic regression, 6-fold stratified cross-validation) is scored on
shape features, on the reference model's latent codes, and on both. The VAE never sees stage labels (it is
unsupervised), but its latent codes for the classifier come from one model trained on the training split.

``fov``: 30 cells of one Allen field (real cell + nucleus instance labels) → cell store → shape space (SH
reconstruction error, modes).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from subcell import Image, io
from subcell.cells import ExtractConfig, extract_to_store, shape_space_of_store

OUT = Path(__file__).parent / "results"
MITOTIC_VS = (0.29, 0.30, 0.33)  # approximate, from the data's README
CHANNELS = ["membrane", "dna", "structure", "seg_cell", "seg_dna", "seg_struct"]


def data_root() -> Path:
    root = os.environ.get("SUBCELL_TEST_DATA")
    if not root:
        raise SystemExit("set SUBCELL_TEST_DATA to the shared data folder")
    return Path(root)


def mitotic_fields(root: Path) -> list:
    from scipy import ndimage as ndi

    index = pd.read_csv(root / "aics_mitotic_cells" / "cells" / "index.csv")
    fields = []
    for r in index.itertuples():
        img = io.read(root / "aics_mitotic_cells" / "cells" / r.file, voxel_size=MITOTIC_VS, channel_names=CHANNELS)
        arr = img.numpy()[0]
        cell = arr[3] >= 128
        lab, n = ndi.label(cell)
        if n > 1:  # the largest component is the cell
            cell = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
        chromatin = (arr[4] >= 128) & cell
        fields.append((img, cell.astype(np.int32), chromatin.astype(np.int32),
                       {"source": r.file, "structure": r.structure, "state": r.mitotic_stage}))  # fmt: skip
    return fields


def classify(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=5000))
    cv = StratifiedKFold(n_splits=6, shuffle=True, random_state=seed)
    pred = cross_val_predict(clf, features, labels, cv=cv)
    classes = sorted(set(labels))
    return {"accuracy": float(np.mean(pred == labels)), "chance": 1 / len(classes), "classes": classes,
            "confusion": confusion_matrix(labels, pred, labels=classes).tolist()}  # fmt: skip


def run_mitotic(args: argparse.Namespace) -> dict:
    from subcell.integrated import TrainConfig, encode, evaluate_model, train_integrated

    root = data_root()
    work = Path(tempfile.mkdtemp(prefix="mitotic-"))
    t0 = time.time()
    cfg = ExtractConfig(channels=["membrane", "dna", "structure"], box=tuple(args.box), voxel_um=args.voxel_um,
                        border="flag", oversize="rescale", margin_um=0.3)  # fmt: skip
    table = extract_to_store(mitotic_fields(root), work / "cells.zarr", cfg)
    print(f"extracted {int((table.crop_index >= 0).sum())} cells in {time.time() - t0:.0f} s; "
          f"rescaled {int(table.status.str.startswith('rescaled').sum())}")  # fmt: skip
    shape = shape_space_of_store(io.read_cell_store(work / "cells.zarr"), lmax=8, n_modes=8)
    print(
        f"shape space: SH error cell {shape.table.cell_sh_error_um.mean():.3f} µm, chromatin "
        f"{shape.table.nucleus_sh_error_um.mean():.3f} µm; modes {shape.modes.explained_variance_ratio.round(3).tolist()}"
    )
    part = lambda minutes: {"iterations": 100000, "max_minutes": minutes, "lr": 5e-4,  # noqa: E731
                            "network": {"latent_dim": 32, "depth": 3, "base_channels": 16},
                            "beta": {"kind": "warmup", "warmup_steps": 300}}  # fmt: skip
    tc = TrainConfig(cells=[work / "cells.zarr"], output=work / "model", structures=["structure"], batch_size=4,
                     reference=part(args.ref_minutes), conditional=part(args.cond_minutes), val_fraction=0.1,
                     test_fraction=0.25, validate_every=50, checkpoint_every=100000, seed=args.seed)  # fmt: skip
    res = train_integrated(tc, on_message=print)
    ev = evaluate_model(res.model, res.data, res.split["test"], samples=4)
    print(ev.summary.to_string())
    # stage classifier on every cell: shape features, latent codes, both
    latent = encode(res.model, res.data)
    merged = latent.merge(shape.table, on="crop_index", suffixes=("", "_shape"))
    stage = merged["state"].to_numpy()
    shape_cols = [c for c in merged.columns if c.startswith(("cell_", "nucleus_")) and not c.startswith(
        ("cell_sh_", "nucleus_sh_")) and merged[c].dtype.kind == "f"] + [c for c in merged if c.startswith("shape_mode_")]  # fmt: skip
    lat_cols = [c for c in merged if c.startswith("ref_z")]
    results = {
        name: classify(merged[cols].to_numpy(np.float64), stage, args.seed)
        for name, cols in (("shape_features", shape_cols), ("latent", lat_cols), ("both", shape_cols + lat_cols))
    }
    for k, v in results.items():
        print(f"stage classifier on {k}: accuracy {v['accuracy']:.3f} (chance {v['chance']:.3f})")
    return {
        "cells": len(res.data.reference), "box": args.box, "voxel_um": args.voxel_um,
        "shape_space": {"cell_sh_error_um": float(shape.table.cell_sh_error_um.mean()),
                        "chromatin_sh_error_um": float(shape.table.nucleus_sh_error_um.mean()),
                        "explained_variance_ratio": shape.modes.explained_variance_ratio.tolist()},
        "training": res.model.training | {"split": {k: len(v) for k, v in res.split.items()}},
        "evaluation": ev.summary.to_dict(orient="records"),
        "evaluation_per_cell": ev.conditional.to_dict(orient="records"),
        "stage_classifier": results, "shape_columns": shape_cols, "seconds": time.time() - t0,
    }  # fmt: skip


def run_fov(args: argparse.Namespace) -> dict:
    root = data_root() / "aics_fov_cell_nucleus_labels"
    vs = (0.29, 0.108, 0.108)  # not stored in the files; the Allen 2017 pipeline's nominal size (unverified)
    cells = io.read(root / "input_1_cellWholeIndex.tiff", voxel_size=vs, axes="ZYX").numpy()[0, 0].astype(np.int32)
    nuclei = io.read(root / "input_2_nucWholeIndex.tiff", voxel_size=vs, axes="ZYX").numpy()[0, 0].astype(np.int32)
    image = Image((cells > 0).astype(np.uint8)[None, None], voxel_size=vs, channel_names=["foreground"])
    work = Path(tempfile.mkdtemp(prefix="fov-"))
    cfg = ExtractConfig(box=(48, 64, 64), voxel_um=0.5, border="flag", oversize="rescale")
    table = extract_to_store([(image, cells, nuclei, {"source": "aics_fov"})], work / "cells.zarr", cfg)
    shape = shape_space_of_store(io.read_cell_store(work / "cells.zarr"), lmax=8, n_modes=6)
    (OUT / "fov_shape_modes.png").write_bytes(shape.figure_png)
    out = {
        "cells": int((table.crop_index >= 0).sum()), "flagged_border": int(table.touches_border.sum()),
        "rescaled": int(table.status.str.startswith("rescaled").sum()),
        "cell_sh_error_um": float(shape.table.cell_sh_error_um.mean()),
        "nucleus_sh_error_um": float(shape.table.nucleus_sh_error_um.mean()),
        "explained_variance_ratio": shape.modes.explained_variance_ratio.tolist(),
        "cell_volume_um3_median": float(table.cell_volume_um3.median()),
    }  # fmt: skip
    print(json.dumps(out, indent=1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["mitotic", "fov"])
    ap.add_argument("--ref-minutes", type=float, default=5)
    ap.add_argument("--cond-minutes", type=float, default=10)
    ap.add_argument("--box", type=int, nargs=3, default=(48, 64, 64))
    ap.add_argument("--voxel-um", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    result = run_mitotic(args) if args.what == "mitotic" else run_fov(args)
    (OUT / f"real_{args.what}.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {OUT / f'real_{args.what}.json'}")


if __name__ == "__main__":
    main()
