"""Cell state: real mitotic stages (grouped cross-validation), and states along synthetic tracks before and after
smoothing.

    SUBCELL_TEST_DATA=../shared/data python benchmarks/state/bench_state.py [--sections mitotic synthetic]

- mitotic: ``aics_mitotic_cells`` (84 real Allen hiPSCs, 12 structures × stages M1–M7) extracted into a cell
  store; both classifiers cross-validated with folds grouped by structure (a structure's cells never in train and
  test at once), for the 7 stages and for Allen's groups (M1M2, M3, M4M5, M6M7; M0 is not in this set); macro-F1,
  accuracy against chance; prediction speed (cells/s, features included).
- synthetic: two synthetic time-lapses with divisions (truth: interphase / prophase / metaphase / anaphase /
  telophase per cell and frame, tracks and lineage). Cells extracted from the truth labels; the classifier
  trained on one time-lapse, applied to the other; frame-level accuracy before and after smoothing along the true
  tracks, and the error (frames) of each stage's entry time per track.

Writes ``benchmarks/state/results.md`` and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
ORDER = ["telophase", "interphase", "prophase", "metaphase", "anaphase"]  # daughters start in telophase
GROUPS = {"M1": "M1M2", "M2": "M1M2", "M3": "M3", "M4": "M4M5", "M5": "M4M5", "M6": "M6M7", "M7": "M6M7"}


def mitotic(root: Path, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(HERE.parent / "integrated"))
    from real_data import mitotic_fields  # the shared loader of the 84 cells (channels, masks, voxel size)

    from subcell import io
    from subcell.cells import ExtractConfig, extract_to_store
    from subcell.state import StateConfig, cross_validate, fit_state_model, store_features

    store = work / "mitotic_cells.zarr"
    cfg = ExtractConfig(channels=["membrane", "dna", "structure"], box=(48, 64, 64), voxel_um=0.4, border="flag",
                        oversize="rescale")  # fmt: skip
    extract_to_store(mitotic_fields(root), store, cfg, overwrite=True)
    st = io.read_cell_store(store)
    t0 = time.perf_counter()
    feats = store_features(st, channels=["membrane", "dna"])  # the tagged structure differs per cell: not a state cue
    feat_s = time.perf_counter() - t0
    table = st.extracted
    out: dict[str, Any] = {"cells": len(table), "features": feats.shape[1], "cv": []}
    for target, labels in (("7 stages", table.state.astype(str).to_numpy()),
                           ("Allen groups", table.state.map(GROUPS).to_numpy())):  # fmt: skip
        for clf in ("gradient_boosting", "logistic"):
            r = cross_validate(feats, labels, StateConfig(classifier=clf, groups="structure"),
                               groups=table.structure.to_numpy())  # fmt: skip
            out["cv"].append({"target": target, "classifier": clf, **{k: r[k] for k in (
                "accuracy", "macro_f1", "chance_accuracy", "uniform_chance", "folds", "per_class_recall",
                "classes", "confusion")}})  # fmt: skip
    model = fit_state_model(feats, table.state.astype(str).to_numpy(), StateConfig())
    t0 = time.perf_counter()
    for _ in range(20):
        model.predict_proba(feats)
    classify_s = (time.perf_counter() - t0) / 20
    out["speed"] = {"features_cells_per_s": round(len(table) / feat_s, 1),
                    "classifier_cells_per_s": round(len(table) / classify_s),
                    "end_to_end_cells_per_s": round(len(table) / (feat_s + classify_s), 1)}  # fmt: skip
    return out


def _timelapse_cells(seed: int, work: Path) -> tuple[Any, Any, Any, Any]:
    """Store features, truth states, and the truth tracks of one synthetic time-lapse."""
    from subcell import io
    from subcell.cells import ExtractConfig, extract_to_store
    from subcell.state import store_features
    from subcell.synth import synth_field
    from subcell.track import tracks_from_lineage

    over: dict[str, Any] = {
        "time.frames": 30,
        "time.division_probability": 0.03,
        "time.stage_frames": {"prophase": 2, "metaphase": 2, "anaphase": 1, "telophase": 1},
    }
    f = synth_field(shape=(16, 256, 256), voxel_size=(0.5, 0.25, 0.25), seed=seed, **over)
    store = work / f"tl{seed}.zarr"
    nuclei = (f.labels["nucleus"] * (f.labels["cell"] > 0)).astype(np.int32)
    cfg = ExtractConfig(channels=["dna", "membrane"], box=(32, 64, 64), voxel_um=0.4, border="flag",
                        oversize="rescale", missing_nucleus="skip")  # fmt: skip
    extract_to_store([(f.image, f.labels["cell"], nuclei, {"source": f"tl{seed}"})], store, cfg, overwrite=True)
    st = io.read_cell_store(store)
    feats = store_features(st)
    truth = f.cells.rename(columns={"cell_id": "label_id"})[["frame", "label_id", "stage"]]
    table = st.extracted.merge(truth, on=["frame", "label_id"], how="left")
    states = table.stage.fillna("interphase").astype(str).to_numpy()
    parents = dict(zip(f.lineage.track_id, f.lineage.parent_id, strict=True))
    tracks = tracks_from_lineage(f.labels["nucleus"], parents, voxel_size=f.image.voxel_size).table
    return feats, states, table, tracks


def synthetic(work: Path) -> dict[str, Any]:
    from subcell.state import StateConfig, fit_state_model, smooth_tracks

    x_train, y_train, _, _ = _timelapse_cells(11, work)
    x_test, y_test, table, tracks = _timelapse_cells(12, work)
    model = fit_state_model(x_train, y_train, StateConfig())
    proba = model.predict_proba(x_test)
    frame_pred = np.asarray(model.classes)[proba.argmax(axis=1)]
    keyed = table[["frame", "label_id"]].merge(tracks[["t", "label", "track_id", "parent_track"]],
                                               left_on=["frame", "label_id"], right_on=["t", "label"], how="left")  # fmt: skip
    on = keyed.track_id.notna().to_numpy()
    sel = keyed[on].astype({"track_id": int, "parent_track": int}).reset_index(drop=True)
    order = [c for c in ORDER if c in model.classes]
    smooth = smooth_tracks(sel, proba[on], model.classes, order=order, cyclic=True)
    truth = y_test[on]
    raw = frame_pred[on]
    # per track and stage: the entry frame, truth vs prediction (before and after smoothing)
    errors: dict[str, list[float]] = {"raw": [], "smoothed": []}
    for _, part in sel.assign(truth=truth, pred=smooth, raw=raw).groupby("track_id"):
        for stage in [s for s in order if s != "interphase"]:
            t_true = part.loc[part.truth == stage, "t"]
            if not len(t_true):
                continue
            for key, col in (("smoothed", "pred"), ("raw", "raw")):
                t_pred = part.loc[part[col] == stage, "t"]
                errors[key].append(abs(int(t_pred.min()) - int(t_true.min())) if len(t_pred) else np.nan)
    mitotic = truth != "interphase"
    # the synthetic stages are separable without error; to see what the decoder buys at real error rates, the
    # per-frame probabilities are corrupted: a share of frames gets a random (Dirichlet) vector instead
    noisy = []
    rng = np.random.default_rng(0)
    for err in (0.26, 0.4):
        p = proba[on].copy()
        hit = rng.random(len(p)) < err
        p[hit] = rng.dirichlet(np.ones(p.shape[1]), hit.sum())
        raw_n = np.asarray(model.classes)[p.argmax(axis=1)]
        smooth_n = smooth_tracks(sel, p, model.classes, order=order, cyclic=True)
        noisy.append({"frame_error": err, "stage_accuracy_raw": float(np.mean(raw_n[mitotic] == truth[mitotic])),
                      "stage_accuracy_smoothed": float(np.mean(smooth_n[mitotic] == truth[mitotic])),
                      "frame_accuracy_raw": float(np.mean(raw_n == truth)),
                      "frame_accuracy_smoothed": float(np.mean(smooth_n == truth))})  # fmt: skip
    out = {
        "noisy": noisy,
        "train_cells": len(y_train), "test_cells": int(on.sum()), "classes": order,
        "test_mitotic_fraction": float(np.mean(mitotic)),
        "frame_accuracy_raw": float(np.mean(raw == truth)),
        "frame_accuracy_smoothed": float(np.mean(smooth == truth)),
        "mitotic_stage_accuracy_raw": float(np.mean(raw[mitotic] == truth[mitotic])),
        "mitotic_stage_accuracy_smoothed": float(np.mean(smooth[mitotic] == truth[mitotic])),
    }  # fmt: skip
    for key, errs in errors.items():
        e = np.asarray(errs, dtype=float)
        out[f"stage_entries_{key}"] = len(e)
        out[f"entry_missed_{key}"] = int(np.isnan(e).sum())
        out[f"entry_error_frames_{key}"] = float(np.nanmean(e)) if np.isfinite(e).any() else float("nan")
        out[f"entry_exact_{key}"] = float(np.mean(e == 0)) if len(e) else float("nan")
    return out


def report(r: dict[str, Any]) -> str:
    lines = ["# Cell-state benchmark", "", f"`python benchmarks/state/bench_state.py` — {r.get('when', '')}", ""]
    if "mitotic" in r:
        m = r["mitotic"]
        lines += ["## Real mitotic stages (aics_mitotic_cells, folds grouped by structure)", "",
                  f"{m['cells']} cells, {m['features']} features (membrane and DNA channels; shape of cell and "
                  "chromatin).", "",
                  "| target | classifier | macro-F1 | accuracy | chance (majority) | folds |", "|---|---|---|---|---|---|"]  # fmt: skip
        for c in m["cv"]:
            lines.append(f"| {c['target']} | {c['classifier']} | {c['macro_f1']:.3f} | {c['accuracy']:.3f} | "
                         f"{c['chance_accuracy']:.3f} | {c['folds']} |")  # fmt: skip
        lines += ["", "Per-class recall (7 stages, gradient boosting): " + ", ".join(
            f"{k} {v:.2f}" for k, v in m["cv"][0]["per_class_recall"].items()), "",
            f"Speed: features {m['speed']['features_cells_per_s']} cells/s, classifier "
            f"{m['speed']['classifier_cells_per_s']} cells/s, end to end {m['speed']['end_to_end_cells_per_s']} "
            "cells/s (one core in use).", ""]  # fmt: skip
    if "synthetic" in r:
        s = r["synthetic"]
        lines += ["## Synthetic time-lapse: mitotic stages along tracks", "",
                  f"Trained on one 30-frame time-lapse ({s['train_cells']} cells), applied to another "
                  f"({s['test_cells']} cells, {s['test_mitotic_fraction']:.1%} in mitosis); states "
                  f"{', '.join(s['classes'])}; smoothing: Viterbi along the true tracks, stages in order, cyclic.", "",
                  "| | before smoothing | after smoothing |", "|---|---|---|",
                  f"| frame accuracy (all) | {s['frame_accuracy_raw']:.3f} | {s['frame_accuracy_smoothed']:.3f} |",
                  f"| stage accuracy (mitotic frames) | {s['mitotic_stage_accuracy_raw']:.3f} | "
                  f"{s['mitotic_stage_accuracy_smoothed']:.3f} |",
                  f"| stage entry error (frames, mean) | {s['entry_error_frames_raw']:.2f} | "
                  f"{s['entry_error_frames_smoothed']:.2f} |",
                  f"| stage entries exact | {s['entry_exact_raw']:.0%} | {s['entry_exact_smoothed']:.0%} |",
                  f"| stage entries missed (of {s['stage_entries_raw']}) | {s['entry_missed_raw']} | "
                  f"{s['entry_missed_smoothed']} |", "",
                  "Per-frame errors on the synthetic stages are few. To see the decoder at real error rates, a share "
                  "of frames is given random probabilities (the real 7-stage error rate is 0.26):",
                  "", "| frames corrupted | stage accuracy (mitotic frames) raw → smoothed | all frames raw → smoothed |",
                  "|---|---|---|"]  # fmt: skip
        for n in s.get("noisy", []):
            lines.append(f"| {n['frame_error']:.0%} | {n['stage_accuracy_raw']:.3f} → {n['stage_accuracy_smoothed']:.3f} "
                         f"| {n['frame_accuracy_raw']:.3f} → {n['frame_accuracy_smoothed']:.3f} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="+", default=["mitotic", "synthetic"])
    args = ap.parse_args()
    path = HERE / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory() as tmp:
        for section in args.sections:
            if section == "mitotic":
                data = os.environ.get("SUBCELL_TEST_DATA")
                if not data:
                    raise SystemExit("the mitotic section needs SUBCELL_TEST_DATA")
                results["mitotic"] = mitotic(Path(data), Path(tmp))
            elif section == "synthetic":
                results["synthetic"] = synthetic(Path(tmp))
            path.write_text(json.dumps(results, indent=2, default=float))
            (HERE / "results.md").write_text(report(results))
    print(report(results))


if __name__ == "__main__":
    main()
