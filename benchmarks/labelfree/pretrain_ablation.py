"""Which domain randomizations matter on real bright-field: one short pretraining per factor switched off (issue 16).

    SUBCELL_TEST_DATA=../shared/data python benchmarks/labelfree/pretrain_ablation.py --steps 300 --tag cpu300

Each arm pretrains the shipped 3D recipe (``src/subcell/labelfree/pretrained/recipes/hipsc_bf_3d.yaml``) for
``--steps`` steps with one factor of :data:`subcell.synth.randomize.FACTORS` held at the generator default
(``randomization: {FACTOR: false}``); arm ``all`` switches nothing off. The learning-rate schedule runs over the
``--steps`` (a complete short run, not the first part of a long one). Every arm is then scored zero-shot on the
three Allen stacks as ``pretrained_real.py``'s zero-shot arm scores the shipped model: the ``nucleus`` output, r
with the nucleus mask and Dice of its Otsu threshold, inside the segmented cells. ``--seeds`` repeats the
``all`` arm with other seeds (field stream and weights): the spread between those is the noise a factor's effect
must exceed. Fixed step counts (no time budget), so the result does not depend on the machine's load.

Runs resume: an arm whose model folder is complete is scored again without retraining (``--work``).
Nothing is tuned on the real files: they are only scored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from pretrained_real import _allen_scores  # noqa: E402
from real_data import ALLEN  # noqa: E402

from subcell.config import load_validated  # noqa: E402
from subcell.labelfree.config import PretrainConfig  # noqa: E402
from subcell.labelfree.pretrain import pretrain_labelfree  # noqa: E402
from subcell.labelfree.pretrained import HERE as PACKAGE  # noqa: E402
from subcell.labelfree.pretrained import load_model  # noqa: E402
from subcell.synth.randomize import FACTORS  # noqa: E402

RECIPE = PACKAGE / "recipes" / "hipsc_bf_3d.yaml"
SCORES = ("pearson_r_in_cells", "dice_in_cells")


def arm_config(arm: str, seed: int, steps: int, work: Path) -> PretrainConfig:
    """The shipped recipe, ``steps`` long, with ``arm``'s factor switched off (``all``: none); an unknown factor
    is refused by the config's own validation, which lists the factors."""
    overrides: dict[str, object] = {
        "output": str(work / f"{arm}_seed{seed}"), "seed": seed, "iterations": steps, "resume": True,
        "validate_every": steps, "checkpoint_every": min(50, steps),
        "randomization": None if arm == "all" else {arm: False},
    }  # fmt: skip
    return load_validated(PretrainConfig, RECIPE, overrides=overrides)


def run_arm(arm: str, seed: int, steps: int, work: Path, data: Path) -> dict[str, object]:
    cfg = arm_config(arm, seed, steps, work)
    if not (Path(cfg.output) / "model.json").exists():  # a finished arm is scored again, not retrained
        pretrain_labelfree(cfg, on_message=print)
    model = load_model(cfg.output).select(["nucleus"])
    model.network.eval()
    folds = {test: _allen_scores(model, data, test) for test in ALLEN}
    row: dict[str, object] = {
        "arm": arm, "seed": seed, "steps": model.training.get("steps"),
        "pretrain_s": model.training.get("seconds"),  # the run's own record (a rescored arm keeps it)
        "synthetic_validation": model.training.get("validation"), "folds": folds,
        **{f"mean_{k}": float(np.mean([f[k] for f in folds.values()])) for k in SCORES},
    }  # fmt: skip
    print(arm, seed, {k: v for k, v in row.items() if k.startswith("mean_")}, flush=True)
    return row


def table(rows: list[dict[str, object]]) -> str:
    tests = list(ALLEN)
    head = (
        "| arm (factor held at default) | seed | " + " | ".join(f"{t} r / Dice" for t in tests) + " | mean r / Dice |"
    )
    out = [head, "|---|---:|" + "---|" * len(tests) + "---|"]
    for r in rows:
        folds = r["folds"]
        cells = [f"{folds[t]['pearson_r_in_cells']:.2f} / {folds[t]['dice_in_cells']:.2f}" for t in tests]  # type: ignore[index]
        mean = f"{r['mean_pearson_r_in_cells']:.2f} / {r['mean_dice_in_cells']:.2f}"
        out.append(f"| {r['arm']} | {r['seed']} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="pretraining steps per arm (the recipe's 800 takes ~20 min)")
    ap.add_argument("--arms", default=",".join(["all", *FACTORS]))
    ap.add_argument(
        "--seeds", default="0", help="seeds of the 'all' arm (the noise between runs); others use the first"
    )
    ap.add_argument("--tag", default="")
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_pretrain_ablation"))
    args = ap.parse_args()
    data = Path(os.environ.get("SUBCELL_TEST_DATA", "../shared/data")).resolve()
    seeds = [int(s) for s in args.seeds.split(",")]
    out = HERE / "results" / f"pretrain_ablation{'_' + args.tag if args.tag else ''}.json"
    out.parent.mkdir(exist_ok=True)
    rows: list[dict[str, object]] = []
    arms = args.arms.split(",")
    plan = [(a, seeds[0]) for a in arms] + [("all", s) for s in seeds[1:] if "all" in arms]  # factors before repeats
    for arm, seed in plan:
        rows.append(run_arm(arm, seed, args.steps, args.work, data))
        out.write_text(json.dumps({"steps": args.steps, "recipe": str(RECIPE.name), "rows": rows}, indent=1,
                                  default=float))  # fmt: skip
    print(table(rows))


if __name__ == "__main__":
    main()
