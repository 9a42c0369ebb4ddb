"""Scratch vs zero-shot vs fine-tuned on the shared real data, at equal training time (issue 16).

    SUBCELL_TEST_DATA=../shared/data python benchmarks/labelfree/pretrained_real.py allen --minutes 5
    SUBCELL_TEST_DATA=../shared/data python benchmarks/labelfree/pretrained_real.py mcf7 --minutes 5

``allen``: bright-field z-stack → nucleus mask, leave-one-stack-out over the three Allen stacks (loss inside the
segmented cells). Arms: *scratch* (random init, default preset), *zero-shot* (the shipped ``nucleus`` model, no
training), *fine-tuned* (``init=nucleus``), the two trained arms with the same minutes, batch, patch and model voxel
size; fine-tuning variants (``FINETUNE``): *finetune_invariant* keeps the pretraining's z flips and input sign
inversion on (``augment: {flip_z: true, invert_input: true}``), *finetune_lr1e-4* uses a 10× lower learning rate,
*finetune_enc0.1* a 10× lower rate for the encoder only (layer-wise rates), *finetune_frozen* trains the decoder only
(``freeze_encoder``; the encoder's batch-norm statistics still adapt to the new data), *finetune_best* ends with
the weights of the lowest validation loss, the initial model's included (``keep: best``; mcf7, which has validation
tiles), *finetune_average* and *scratch_average* end with the mean of the weights from step ``AVERAGE_FROM`` on
(``average_from``, stochastic weight averaging), *finetune_bn_frozen* keeps the initial model's batch-norm
statistics (``norm_statistics: frozen``), *finetune_cosine* and *scratch_cosine* warm up and decay the rate by a
cosine that ends with the time budget (``lr_schedule: cosine``; the other arms keep ``lr`` constant),
*finetune_cosine_bn_frozen* both, *finetune_interp* and *finetune_bn_frozen_interp* end with the mean of the
initial and the fine-tuned weights (``interpolate_init: 0.5``, WiSE-FT), *finetune_interp_recompute* then recomputes
the blend's batch-norm statistics from training batches (``recompute_norm_statistics``); *finetune_aug*,
*finetune_bn_frozen_interp_aug* and *scratch_aug* add zoom, blur and noise to the patches (``DEGRADE``); *scratch_seg*,
*finetune_seg* and *finetune_bn_frozen_interp_seg* train with the segmentation loss (``loss: bce_dice``: binary
cross-entropy + soft Dice on logits, the model predicts probabilities; a fine-tune takes the initial model's
z-scored output as its logits). ``--init`` starts the
zero-shot and fine-tuned arms from another model (a folder with a ``nucleus`` output; default the shipped one). Scores inside
the segmented cells of the held-out stack: Pearson r between prediction and mask, and Dice of the prediction
thresholded by Otsu inside the cells (the same rule for every arm, no threshold fitted to labels). The arm
*shape_prior* uses no image: each cell's voxels deepest inside it (distance to the cell boundary), as many as the
nucleus share of the cell volume on the two training stacks; every model arm is also scored with that depth
averaged into its z-scored prediction (``*_with_shape_prior``, equal weights fixed beforehand), and thresholded by
that share instead of Otsu (``dice_training_share*``: each cell's highest-scoring voxels); ``dice_nuclei_in_cells``
scores what ``subcell labelfree nuclei`` makes with its defaults (that average, Otsu, one object per cell). The arm
*pixel_classifier* is the classical answer (ilastik's pixel classification): scikit-image's default multiscale
features (intensity, edges, texture at σ 1–16 voxels) of the z-scored bright-field on the same 0.29 µm grid, a
random forest (100 trees, leaves of ≥ 5) fitted to 60 000 voxels sampled inside the cells of each training stack,
its nucleus probability scored like every arm; no time budget (fitting takes about a minute).

``--cells`` (allen): the trained arms take the cell labels as a second input (``cells: mask_cell``, each voxel's
depth in its cell), and every model conditioned on them (``--init nucleus-in-cells``, zero-shot too) predicts with
the held-out stack's cell labels, the labels the scores are computed inside anyway.
``--tta`` (allen): every model arm predicts with the flips in y and x averaged (``PredictConfig.tta``); with
``--rescore`` it scores saved models that way without training.

``mcf7``: 2D bright-field → Hoechst, 18 train / 2 val / 4 test tiles (the split of ``real_data.py``). Arms as above
with the shipped ``dna-2d`` model. Scores per test tile: Pearson r with Hoechst and Dice of the Otsu-thresholded
prediction against the nucleus labels. The row *labels* scores the nucleus labels themselves as the prediction: the
r a perfect nucleus segmentation would reach against Hoechst (nuclei differ in brightness; the labels cover only
the MCF7 nuclei, not the NK cells'), the scale against which the r of the other arms reads.

Nothing here is tuned on these files: the arms use defaults and the shipped models as they are.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from real_data import ALLEN, _allen_manifest  # noqa: E402

from subcell import io  # noqa: E402
from subcell.labelfree import PredictConfig, TrainConfig, predict_image, train_labelfree  # noqa: E402
from subcell.labelfree.cell_prior import cell_depth, deepest_in_cells, nuclei_from_score, nucleus_score  # noqa: E402
from subcell.labelfree.evaluate import mask_scores  # noqa: E402
from subcell.labelfree.pretrained import load_model  # noqa: E402
from subcell.metrics import dice  # noqa: E402
from subcell.metrics.intensity import pearson  # noqa: E402
from subcell.transforms.align import align_to  # noqa: E402
from subcell.transforms.normalize import zscore  # noqa: E402

# *_average arms end with the mean of the weights from this step on (``average_from``): about the second half of a
# 5-minute run on a 2-core CPU with bf16 (~420 steps of batch 4), where the training loss of the fine-tune (on the
# training stacks) stops falling steadily; a slower machine that does not reach it keeps the last weights and warns.
AVERAGE_FROM = 200
# *_aug arms: zoom, blur and noise of the patches (``AugmentConfig.scale/blur/noise``) on top of the default flips,
# turns, gain and offset; the ranges of nnU-Net's defaults (zoom 0.7-1.4, blur σ 0.5-1.5 voxels, noise variance up to
# 0.1), not chosen on these files.
DEGRADE = {"scale": 0.4, "blur": 1.5, "noise": 0.3}
# Fine-tuning variants: arm name -> TrainConfig overrides (the base fine-tuning recipe is the same for every one).
FINETUNE: dict[str, dict[str, object]] = {
    "finetune": {},
    "finetune_invariant": {"augment": {"flip_z": True, "invert_input": True}},
    "finetune_lr1e-4": {"lr": 1e-4},
    "finetune_enc0.1": {"encoder_lr_scale": 0.1},
    "finetune_frozen": {"freeze_encoder": True},
    "finetune_best": {"keep": "best"},  # needs validation images: mcf7 only (allen trains on every other stack)
    "finetune_average": {"average_from": AVERAGE_FROM},
    "finetune_bn_frozen": {"norm_statistics": "frozen"},
    # the same voxels per step in one patch 2x wider in y and x: the default network reaches ~44 voxels, so no voxel
    # of a 64-px patch sees its whole lateral context in training (prediction trims tiles to full context)
    "finetune_bn_frozen_wide": {"norm_statistics": "frozen", "patch_size": (32, 128, 128), "batch_size": 1},
    # the mean of the weights over the second half of the run (by steps or by the time budget, whichever ends it)
    "finetune_bn_frozen_average": {"norm_statistics": "frozen", "average_from": 0.5},
    "finetune_cosine": {"lr_schedule": "cosine"},  # warm-up, then cosine decay that ends with the time budget
    "finetune_cosine_bn_frozen": {"lr_schedule": "cosine", "norm_statistics": "frozen"},
    "finetune_interp": {"interpolate_init": 0.5},  # WiSE-FT at its authors' default share
    "finetune_bn_frozen_interp": {"norm_statistics": "frozen", "interpolate_init": 0.5},
    # the blend's batch-norm statistics recomputed from training batches (32 x 4 patches, ~10 steps' forward time)
    "finetune_interp_recompute": {"interpolate_init": 0.5, "recompute_norm_statistics": 32},
    "finetune_aug": {"augment": DEGRADE},
    "finetune_bn_frozen_interp_aug": {"norm_statistics": "frozen", "interpolate_init": 0.5, "augment": DEGRADE},
    "finetune_seg": {"loss": "bce_dice"},
    "finetune_bn_frozen_interp_seg": {"norm_statistics": "frozen", "interpolate_init": 0.5, "loss": "bce_dice"},
}
# Scratch variants: arm name -> TrainConfig overrides on top of the scratch arm's.
SCRATCH: dict[str, dict[str, object]] = {
    "scratch": {},
    "scratch_average": {"average_from": AVERAGE_FROM},
    "scratch_cosine": {"lr_schedule": "cosine"},
    "scratch_aug": {"augment": DEGRADE},
    "scratch_seg": {"loss": "bce_dice"},
}


def _arm_options(arm: str, init: str, scratch: dict[str, object]) -> dict[str, object]:
    """TrainConfig overrides of a trained arm: ``scratch`` or one of ``FINETUNE`` starting from ``init``."""
    if arm in SCRATCH:
        return {**scratch, **SCRATCH[arm]}
    if arm not in FINETUNE:
        raise SystemExit(f"unknown arm {arm!r}; expected zeroshot or one of {sorted({*SCRATCH, *FINETUNE})}")
    return {"init": init, **FINETUNE[arm]}


def _nucleus_fraction(data: Path, stack: str) -> float:
    """The nucleus share of the labelled cells' volume in one stack (its labels, as training data)."""
    folder, _, dna, cell, vs = ALLEN[stack]
    nuc = io.read(data / folder / dna, voxel_size=vs).numpy()[0, 0] > 0
    cells = io.read(data / folder / cell, voxel_size=vs).numpy()[0, 0] > 0
    return float((nuc & cells).sum() / cells.sum())


def _on_grid(image: object, grid: tuple[float, float, float] = (0.29, 0.29, 0.29)) -> object:
    """``image`` on the grid the shipped models (and scratch arms) predict on."""
    from subcell.transforms.resample import resample

    return image.with_data(resample(image.numpy(), voxel_size=image.voxel_size, target_voxel_size=grid),  # type: ignore[attr-defined]
                           step="resample", voxel_size=grid)  # fmt: skip


def _pixel_classifier(data: Path, train: list[str], test: str, seed: int) -> object:
    """The *pixel_classifier* arm's nucleus probability on the held-out stack (an :class:`Image` on the 0.29 µm
    grid): multiscale features of each z-scored stack, a random forest fitted on voxels inside the training cells."""
    from skimage.feature import multiscale_basic_features
    from sklearn.ensemble import RandomForestClassifier

    def stack(key: str) -> tuple[object, np.ndarray, np.ndarray, np.ndarray]:
        folder, bf, dna, cell, vs = ALLEN[key]
        image = _on_grid(io.read(data / folder / bf, voxel_size=vs))
        nuc = align_to(io.read(data / folder / dna, voxel_size=vs), image, labels=True)[0, 0] > 0  # type: ignore[arg-type]
        cells = align_to(io.read(data / folder / cell, voxel_size=vs), image, labels=True)[0, 0] > 0  # type: ignore[arg-type]
        x = zscore(image.numpy()[0, 0].astype(np.float32), mask=cells)  # type: ignore[attr-defined]
        return image, multiscale_basic_features(x, sigma_min=1, sigma_max=16), nuc, cells

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for key in train:
        _, feats, nuc, cells = stack(key)
        idx = np.flatnonzero(cells.ravel())
        idx = rng.choice(idx, min(idx.size, 60_000), replace=False)
        xs.append(feats.reshape(-1, feats.shape[-1])[idx])
        ys.append(nuc.ravel()[idx])
    forest = RandomForestClassifier(n_estimators=100, min_samples_leaf=5, n_jobs=2, random_state=seed)
    forest.fit(np.concatenate(xs), np.concatenate(ys))
    image, feats, _, cells = stack(test)
    p = np.zeros(cells.size, np.float32)
    p[cells.ravel()] = forest.predict_proba(feats.reshape(-1, feats.shape[-1])[cells.ravel()])[:, 1]
    return image.with_data(p.reshape(cells.shape), step="pixel_classifier", dims="ZYX", channel_names=["nucleus"])  # type: ignore[attr-defined]


def _allen_scores(
    model: object, data: Path, test: str, prediction: object = None, tta: bool = False
) -> dict[str, float]:
    """r and Dice inside the cells of the held-out stack, of the model's ``nucleus`` output: Otsu's threshold
    inside the cells (every arm), also with one object per cell kept (each cell's largest piece, holes filled:
    :func:`~subcell.labelfree.cell_prior.nuclei_from_score`), and for a
    model that predicts probabilities (``loss: bce_dice``) the plain 0.5 threshold. ``*_with_shape_prior``: the same
    for the mean of the z-scored prediction and the z-scored cell depth (``cell_depth``), equal weights fixed
    beforehand. ``model=None`` (the *shape_prior* arm) scores the depth alone: r of the depth, and Dice of each
    cell's deepest voxels in the nucleus share of the cell volume measured on the two training stacks."""
    folder, bf, dna, cell, vs = ALLEN[test]
    image = io.read(data / folder / bf, voxel_size=vs)
    if prediction is not None:  # made by the arm itself (the pixel classifier)
        pred = prediction
    elif model is None:  # no prediction: the grid the shipped models (and scratch arms) predict on, 0.29 µm
        pred = _on_grid(image)
    else:  # a model conditioned on the cell outlines gets the stack's cell labels as its second input
        cells_in = io.read(data / folder / cell, voxel_size=vs) if getattr(model, "cell_conditioned", False) else None
        pred = predict_image(model, image, PredictConfig(tta=tta), cells=cells_in)  # type: ignore[arg-type]
    nuc = align_to(io.read(data / folder / dna, voxel_size=vs), pred, labels=True)[0, 0] > 0
    cell_labels = align_to(io.read(data / folder / cell, voxel_size=vs), pred, labels=True)[0, 0].astype(np.int32)
    cells = cell_labels > 0
    g = pred.voxel_size
    fraction = float(np.mean([_nucleus_fraction(data, k) for k in ALLEN if k != test]))
    if model is None and prediction is None:
        depth = cell_depth(cell_labels, (g.z, g.y, g.x))
        return {
            "pearson_r_in_cells": pearson(depth, nuc.astype(np.float32), mask=cells),
            "dice_in_cells": dice(deepest_in_cells(depth, cell_labels, fraction), nuc & cells),
            "nucleus_fraction_of_training_stacks": fraction,
            "dice_all_nucleus": dice(cells, nuc & cells),
        }
    p = pred.channel("nucleus").numpy()[0, 0]
    masked = mask_scores(p, nuc, cells)  # what `labelfree evaluate --mask-target --cells` reports
    both = nucleus_score(p, cell_labels, g, prior_weight=0.5)  # what `labelfree nuclei` thresholds
    scores = {
        "pearson_r_in_cells": pearson(p, nuc.astype(np.float32), mask=cells),
        "dice_in_cells": masked["dice_otsu"],
        # Otsu on the prediction, then each cell's largest piece with its holes filled
        "dice_one_per_cell": dice(nuclei_from_score(p, cell_labels) > 0, nuc & cells),
        "pearson_r_with_shape_prior": pearson(both, nuc.astype(np.float32), mask=cells),
        "dice_with_shape_prior": mask_scores(both, nuc, cells)["dice_otsu"],
        # `subcell labelfree nuclei` with its defaults: the prior averaged in (not for a model that took the cells
        # as input: it has used them), Otsu, one object per cell
        "dice_nuclei_in_cells": dice(
            nuclei_from_score(p if getattr(model, "cell_conditioned", False) else both, cell_labels) > 0, nuc & cells
        ),
        # the threshold from the training stacks instead of Otsu: each cell's highest-scoring voxels, as many as the
        # nucleus share of the cell volume there (the prior's volume rule, applied to the prediction)
        "dice_training_share": dice(deepest_in_cells(p, cell_labels, fraction), nuc & cells),
        "dice_training_share_with_shape_prior": dice(deepest_in_cells(both, cell_labels, fraction), nuc & cells),
        "dice_all_nucleus": dice(cells, nuc & cells),  # calling every cell voxel "nucleus"
    }
    if prediction is not None or getattr(model, "predicts_probability", False):
        scores["dice_p50_in_cells"] = masked["dice_p50"]
    return scores


def allen(data: Path, work: Path, minutes: float, arms: list[str],
          voxel_size: tuple[float, float, float] = (0.29, 0.29, 0.29), seed: int = 0,
          init: str = "nucleus", rescore: bool = False, cells: bool = False, tta: bool = False) -> dict[str, object]:  # fmt: skip
    results: dict[str, object] = {}
    for test in ALLEN:
        train = [k for k in ALLEN if k != test]
        manifest = work / f"allen_test_{test}.csv"
        _allen_manifest(data, manifest, train, test)
        fold: dict[str, object] = {"train": train}
        for arm in arms:
            t0 = time.perf_counter()
            if arm == "zeroshot":
                model = load_model(init)
                info: dict[str, object] = {}
            elif arm == "shape_prior":  # no model: the cell-depth prior alone
                model, info = None, {}
            elif arm == "pixel_classifier":  # classical: features + random forest, scored on its own prediction
                pred = _pixel_classifier(data, train, test, seed)
                fold[arm] = {**_allen_scores(None, data, test, pred), "wall_s": time.perf_counter() - t0}
                print(test, arm, fold[arm], flush=True)
                continue
            elif rescore:  # the model this arm's last run saved
                from subcell.labelfree import LabelFreeModel

                model = LabelFreeModel.load(work / f"allen_{arm}_{test}")
                info = {"steps": model.training["steps"], "seconds": model.training["seconds"], "rescored": True}
            else:
                base = dict(
                    manifest=manifest, output=work / f"allen_{arm}_{test}", overwrite=True, targets=["nucleus"],
                    binarize_targets=True, loss_mask="mask_cell", patch_size=(32, 64, 64), batch_size=4,
                    iterations=100_000, max_minutes=minutes, val_fraction=0.0, resume=False, lr=1e-3,
                    lr_schedule="constant", threads=2, seed=seed, cells="mask_cell" if cells else None,
                )  # fmt: skip
                cfg = TrainConfig(**{**base, **_arm_options(arm, init, {"voxel_size": voxel_size})})
                res = train_labelfree(cfg, on_message=print)
                model = res.model
                model.network.eval()
                info = {"steps": res.summary["steps"], "seconds": res.summary["seconds"]}
            fold[arm] = {**info, **_allen_scores(model, data, test, tta=tta), "wall_s": time.perf_counter() - t0}
            print(test, arm, fold[arm], flush=True)
        results[test] = fold
    summary = {
        arm: {
            k: float(np.mean([results[t][arm][k] for t in ALLEN]))  # type: ignore[index]
            for k in results[next(iter(ALLEN))][arm]  # type: ignore[index]
            if k not in ("steps", "seconds", "wall_s", "rescored")
        }
        for arm in arms
    }
    return {"folds": results, "mean": summary, "minutes_per_trained_arm": minutes, "scratch_voxel_size": voxel_size,
            "seed": seed, "init": init, "cells_as_input": cells, "tta": tta}  # fmt: skip


def _mcf7_manifest(data: Path, path: Path) -> Path:
    tiles = data / "mcf7_brightfield_hoechst_2d" / "tiles"
    with (tiles / "index.csv").open() as fh:
        index = list(csv.DictReader(fh))
    order = np.random.default_rng(0).permutation(len(index))
    split = {int(i): ("test" if k < 4 else "val" if k < 6 else "train") for k, i in enumerate(order)}
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "source", "source_channel", "target", "target_channel", "split",
                    "voxel_size_z", "voxel_size_y", "voxel_size_x"])  # fmt: skip
        for i, row in enumerate(index):
            chans = row["channels"].split("|")
            f = tiles / f"{row['tile']}.tif"
            w.writerow([row["tile"], f, f"c{chans.index('brightfield_channel')}", f,
                        f"c{chans.index('live_nuclei_channel')}", split[i], 1.0, 0.3112, 0.3112])  # fmt: skip
    return tiles


def mcf7(data: Path, work: Path, minutes: float, arms: list[str], init: str = "dna-2d",
         voxel_size: tuple[float, float, float] = (1.0, 0.3, 0.3), seed: int = 0) -> dict[str, object]:  # fmt: skip
    from skimage.filters import threshold_otsu

    manifest = work / "mcf7.csv"
    tiles = _mcf7_manifest(data, manifest)
    out: dict[str, object] = {}
    for arm in arms:
        t0 = time.perf_counter()
        model = None
        info: dict[str, object] = {}
        if arm == "zeroshot":
            model = load_model(init)
        elif arm != "labels":
            base = dict(
                manifest=manifest, output=work / f"mcf7_{arm}", overwrite=True, input_channel="brightfield",
                targets=["dna"], patch_size=(1, 128, 128), batch_size=8, iterations=100_000, max_minutes=minutes,
                resume=False, lr=1e-3, lr_schedule="constant", threads=2, seed=seed,
            )  # fmt: skip
            cfg = TrainConfig(**{**base, **_arm_options(arm, init, {"voxel_size": voxel_size})})
            res = train_labelfree(cfg, on_message=print)
            model = res.model
            model.network.eval()
            info = {"steps": res.summary["steps"], "seconds": res.summary["seconds"]}
        rows = []
        for r in io.read_manifest(manifest).split("test"):
            image = io.read(r.source, voxel_size=r.voxel_size)
            target = image.channel(r.target_channel).numpy()[0, 0, 0].astype(np.float32)
            labels = io.read(tiles / f"{r.id}_labelled.tif", voxel_size=r.voxel_size).numpy()[0, 0, 0] > 0
            if model is None:  # the labels as the prediction: what a perfect nucleus segmentation scores
                pred = labels.astype(np.float32)
            else:
                pred = predict_image(model, image.channel(r.source_channel), PredictConfig()).numpy()[0, 0, 0]
            if pred.shape != target.shape:
                from skimage.transform import resize

                pred = resize(pred, target.shape, order=1, preserve_range=True)
            rows.append({"tile": r.id, "pearson_r": pearson(pred, target),
                         "dice_pred_otsu": dice(pred > threshold_otsu(pred), labels),
                         "dice_hoechst_otsu": dice(target > threshold_otsu(target), labels)})  # fmt: skip
        out[arm] = {
            **info, "tiles": rows, "wall_s": time.perf_counter() - t0,
            "mean_pearson_r": float(np.mean([r["pearson_r"] for r in rows])),
            "mean_dice_pred": float(np.mean([r["dice_pred_otsu"] for r in rows])),
            "mean_dice_hoechst": float(np.mean([r["dice_hoechst_otsu"] for r in rows])),
        }  # fmt: skip
        print(arm, {k: v for k, v in out[arm].items() if k != "tiles"}, flush=True)  # type: ignore[union-attr]
    return {"arms": out, "minutes_per_trained_arm": minutes, "scratch_voxel_size": voxel_size, "seed": seed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("which", choices=["allen", "mcf7"])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--arms", default="zeroshot,finetune,scratch")
    ap.add_argument("--tag", default="")
    ap.add_argument("--voxel-size", default=None,
                    help="the scratch arms' model voxel size z,y,x µm (default 0.29,0.29,0.29 allen; 1,0.3,0.3 mcf7)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="the trained arms' seed (weights, patches)")
    ap.add_argument(
        "--init", default=None, help="the model zero-shot and fine-tuned arms start from (its first output is scored "
        "for mcf7); default: nucleus (allen), dna-2d (mcf7)"
    )  # fmt: skip
    ap.add_argument("--cells", action="store_true", help="allen: the trained arms take the cell labels as a second "
                    "input (`cells: mask_cell`); use with --init nucleus-in-cells (a zero-shot model conditioned on "
                    "the cells always gets them)")  # fmt: skip
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_labelfree_pretrained"))
    ap.add_argument(
        "--rescore",
        action="store_true",
        help="allen: score the models the last run of these arms left in --work again (new scores), without training",
    )
    ap.add_argument("--tta", action="store_true", help="allen: every model arm predicts with test-time flips in y "
                    "and x (`PredictConfig.tta`, 4x the prediction time)")  # fmt: skip
    args = ap.parse_args()
    if args.which != "allen" and (args.cells or args.tta or args.rescore):
        ap.error("--cells, --tta and --rescore apply to allen only")
    data = Path(os.environ.get("SUBCELL_TEST_DATA", "../shared/data")).resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    arms = args.arms.split(",")
    grid: tuple[float, float, float] | None = None
    if args.voxel_size:
        gz, gy, gx = (float(v) for v in args.voxel_size.split(","))
        grid = (gz, gy, gx)
    if args.which == "allen":
        out = allen(
            data,
            args.work,
            args.minutes,
            arms,
            grid or (0.29, 0.29, 0.29),
            args.seed,
            args.init or "nucleus",
            args.rescore,
            args.cells,
            args.tta,
        )
    else:
        out = mcf7(data, args.work, args.minutes, arms, args.init or "dna-2d", grid or (1.0, 0.3, 0.3), args.seed)
    (HERE / "results").mkdir(exist_ok=True)
    name = f"pretrained_{args.which}{'_' + args.tag if args.tag else ''}.json"
    (HERE / "results" / name).write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps(out.get("mean", out), indent=1, default=float))


if __name__ == "__main__":
    main()
