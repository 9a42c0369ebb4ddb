"""Put pretrained models into the package: float16 weights, checksums in ``index.json``, a model card each.

    subcell labelfree pretrain src/subcell/labelfree/pretrained/recipes/hipsc_bf_3d.yaml output=/tmp/pre/hipsc_bf_3d
    subcell labelfree pretrain src/subcell/labelfree/pretrained/recipes/hipsc_bf_2d.yaml output=/tmp/pre/hipsc_bf_2d
    python benchmarks/labelfree/ship_pretrained.py /tmp/pre/hipsc_bf_3d /tmp/pre/hipsc_bf_2d

The model card records the training data (generator version and the full pretraining config), the held-out
synthetic validation of the run, the shipped models' r per structure against the noise ceiling on new synthetic
fields (measured here), and the real-data numbers of ``benchmarks/labelfree/results/pretrained_*.json`` when
those exist.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
PACKAGE = HERE.parents[1] / "src" / "subcell" / "labelfree" / "pretrained"

NAMES = {
    "hipsc_bf_3d": {
        "hipsc-bf-3d": (None, "3D bright-field → DNA, membrane, nuclear envelope, nucleus mask (all outputs)"),
        "dna": (["dna"], "3D bright-field → DNA (Hoechst-like)"),
        "membrane": (["membrane"], "3D bright-field → plasma membrane"),
        "nuclear_envelope": (["nuclear_envelope"], "3D bright-field → nuclear envelope (lamin-like)"),
        "nucleus": (["nucleus"], "3D bright-field → nucleus mask (threshold the output, e.g. Otsu)"),
    },
    "hipsc_bf_3d_cells": {
        "hipsc-bf-3d-cells": (None, "3D bright-field + cell labels → DNA, membrane, nuclear envelope, nucleus mask"),
        "nucleus-in-cells": (
            ["nucleus"],
            "3D bright-field + cell labels → nucleus mask (fine-tune it on your stacks "
            "with cells: COLUMN; `labelfree nuclei`)",
        ),
    },
    "hipsc_bf_2d": {
        "dna-2d": (["dna"], "2D bright-field plane → DNA (Hoechst-like)"),
        "nucleus-2d": (["nucleus"], "2D bright-field plane → nucleus mask"),
    },
}


def synthetic_check(model: object, two_d: bool, seeds: range) -> dict[str, dict[str, float]]:
    """r per target on new synthetic fields at the default generator settings, and the noise ceiling."""
    from subcell.labelfree import PredictConfig, evaluate_prediction, predict_image
    from subcell.synth import synth_field

    per: dict[str, list[tuple[float, float]]] = {}
    for seed in seeds:
        field = synth_field(shape=(40, 256, 256), seed=50_000 + seed)
        image = field.image
        src = image.channel("brightfield")
        if two_d:
            z = int(np.flatnonzero(field.labels["nucleus"][0].any(axis=(1, 2))).mean())
            src = src.with_data(src.numpy()[:, :, z : z + 1], step="plane")
            image = image.with_data(image.numpy()[:, :, z : z + 1], step="plane")
        cells = None
        if getattr(model, "cell_conditioned", False):  # the field's own cells as the second input
            from subcell.image import Image

            cells = Image(np.asarray(field.labels["cell"])[:, None], voxel_size=image.voxel_size)
        pred = predict_image(model, src, PredictConfig(), cells=cells)  # type: ignore[arg-type]
        structures = [t for t in model.targets if t not in ("nucleus", "cell")]  # type: ignore[attr-defined]
        rows = evaluate_prediction(pred, image, channels=structures) if structures else []
        for r in rows:
            per.setdefault(str(r["structure"]), []).append((float(r["pearson_r"]), float(r["noise_ceiling"])))
    return {k: {"r": float(np.mean([a for a, _ in v])), "noise_ceiling": float(np.mean([b for _, b in v]))}
            for k, v in per.items()}  # fmt: skip


def _averaging_line(avg: dict | None) -> list[str]:
    if not avg or not avg["steps"]:
        return []
    last = avg["from"] + avg["steps"] - 1
    return [f"- **Weights**: the mean of the weights after each of steps {avg['from']}–{last} (weight averaging, "
            "`average_from`), batch-norm statistics included"]  # fmt: skip


def card(folder: str, meta: dict, names: dict, synthetic: dict, real: dict, code_commit: str) -> str:
    pre = meta["config"].get("pretrain", {})
    tr = meta["training"]
    lines = [
        f"# {folder}: pretrained label-free model (subcell)",
        "",
        f"- **Names**: {', '.join(f'`{n}`' for n in names)} (`subcell labelfree models`; `--model NAME`, `init=NAME`)",
        f"- **Input**: one bright-field (transmitted light) channel, {'2D planes' if pre.get('two_d') else 'z-stacks'}, "
        f"resampled to {tuple(meta['voxel_size_um'])} µm (z, y, x), z-scored per image"
        + (
            "; and the cell instance labels of the same field (second input: each voxel's depth in its cell, "
            f"{pre.get('drop_cells', 0):.0%} of the cells left out in training)"
            if pre.get("cells")
            else ""
        ),
        f"- **Outputs**: {', '.join(meta['targets'])} (z-scored; masks as a score to threshold)",
        f"- **Network**: {meta['network']['preset']}, depth {meta['network']['depth']}, "
        f"{meta['parameters'] / 1e6:.2f} M parameters, float16 weights",
        f"- **Training data**: synthetic only — `subcell.synth` version {tr.get('generator_version')}, "
        f"domain-randomized fields generated on the fly ({tr.get('fields_generated')} fields, none seen twice); "
        "no image data license applies (BSD-3, like the package)",
        f"- **Training**: {tr['steps']} steps in {tr['seconds'] / 60:.0f} min on {tr['device']} ({tr['precision']}); "
        f"reproduce with `subcell labelfree pretrain src/subcell/labelfree/pretrained/recipes/{folder}.yaml` "
        f"(seed {pre.get('seed')})",
        *_averaging_line(tr.get("averaged")),
        "",
        "## Validation on held-out synthetic fields",
        "",
        "Randomized validation fields of the run (patches): "
        + ", ".join(f"{k[6:]} r={v:.2f}" for k, v in (tr.get("validation") or {}).items() if k.startswith("val_r_")),
        "",
    ]
    if synthetic:
        lines += ["New fields at the generator's default settings (whole fields; r against the noisy target, and",
                  "the noise ceiling = r of the noise-free truth with it):", "",
                  "| structure | r | noise ceiling |", "|---|---:|---:|"]  # fmt: skip
        lines += [f"| {k} | {v['r']:.3f} | {v['noise_ceiling']:.3f} |" for k, v in synthetic.items()]
        lines.append("")
    lines += ["## Real data (shared development data; never trained or tuned on)", ""]
    if real:
        lines += [f"- {k}: {v}" for k, v in real.items()]
    else:
        lines.append("- not measured yet (run `benchmarks/labelfree/pretrained_real.py`)")
    lines += ["", "## Limits", "",
              "Trained on a simulator of hiPSC colonies under Köhler bright-field. The simulator is still told apart",
              "from real Allen bright-field by a texture classifier (`benchmarks/synth/domain_gap.py`), and the",
              "real-data scores above are far from a finished predictor (Dice near that of calling every cell voxel",
              "nucleus on some stacks): check the predictions on your data. Fine-tuning on a few real stacks",
              "(`labelfree train ... init=NAME`) adapts a model to them, but a few CPU-minutes of it did not beat",
              "these weights on every Allen stack (benchmarks/labelfree/results.md). Phase-contrast or DIC optics",
              "and very different cell types are outside what was simulated.",
              f"Code: the generator and recipe of subcell commit {code_commit} made these weights. The same seed",
              "gives the same run on the same kind of CPU; another CPU's kernels round differently and make another",
              "run of the same recipe (benchmarks/labelfree/results.md, 'Weight averaging').",
              ""]  # fmt: skip
    return "\n".join(lines)


def _real_numbers(tag: str = "") -> dict[str, str]:
    out = {}
    allen = HERE / "results" / f"pretrained_allen{'_' + tag if tag else ''}.json"
    if allen.exists():
        m = json.loads(allen.read_text())["mean"]
        out["Allen bright-field → nucleus, leave-one-stack-out (mean of 3)"] = "; ".join(
            f"{arm}: Dice {v['dice_in_cells']:.2f}, r {v['pearson_r_in_cells']:.2f}" for arm, v in m.items()
        )
    mcf7 = HERE / "results" / f"pretrained_mcf7{'_' + tag if tag else ''}.json"
    if mcf7.exists():
        a = json.loads(mcf7.read_text())["arms"]
        out["MCF7 2D bright-field → Hoechst (4 test tiles)"] = "; ".join(
            f"{arm}: r {v['mean_pearson_r']:.2f}, Dice {v['mean_dice_pred']:.2f}" for arm, v in a.items()
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", type=Path, help="pretraining output folders (named like the recipes)")
    ap.add_argument("--check-fields", type=int, default=2)
    ap.add_argument("--code-commit", default="2a1b03e", help="commit whose generator and recipes made the weights")
    ap.add_argument("--real-tag", default="", help="read results/pretrained_{allen,mcf7}_TAG.json")
    args = ap.parse_args()
    from subcell.labelfree import LabelFreeModel

    index_path = PACKAGE / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"models": {}}
    real = _real_numbers(args.real_tag)
    for run in args.runs:
        folder = run.name
        model = LabelFreeModel.load(run)
        dest = PACKAGE / folder
        synthetic = synthetic_check(model, model.is_2d, range(args.check_fields))
        model.save(dest, overwrite=True, half=True)
        meta = json.loads((dest / "model.json").read_text())
        meta["training"]["synthetic_check"] = synthetic
        pre = meta["config"].get("pretrain", {})
        if "averaged" not in meta["training"] and pre.get("average_from") and not pre.get("max_minutes"):
            # runs made before the summary recorded it: a run without a time budget averaged to its last step
            meta["training"]["averaged"] = {
                "from": pre["average_from"],
                "steps": meta["training"]["steps"] - pre["average_from"] + 1,
            }
        (dest / "model.json").write_text(json.dumps(meta, indent=2))
        for extra in ("training_curve.png",):
            if (run / extra).exists():
                (dest / extra).write_bytes((run / extra).read_bytes())
        digest = hashlib.sha256((dest / "weights.safetensors").read_bytes()).hexdigest()
        names = NAMES[folder]
        (dest / "README.md").write_text(card(folder, meta, names, synthetic, real, args.code_commit))
        for name, (targets, description) in names.items():
            index["models"][name] = {"folder": folder, "targets": targets or meta["targets"],
                                     "description": description, "sha256": digest}  # fmt: skip
        print(folder, f"{(dest / 'weights.safetensors').stat().st_size / 1e6:.2f} MB", synthetic)
    index_path.write_text(json.dumps(index, indent=1) + "\n")
    print(f"wrote {index_path}")


if __name__ == "__main__":
    main()
