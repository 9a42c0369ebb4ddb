"""Weight interpolation between the shipped model and its fine-tunes on the Allen stacks (WiSE-FT, issue 16).

    SUBCELL_TEST_DATA=../shared/data python benchmarks/labelfree/interpolate_real.py [ARM ...]

Fine-tuning the shipped ``nucleus`` model on two Allen stacks and predicting the third (another cell line and
microscope) moves that stack's r by up to 0.9 between seeds of one recipe (``results.md``). Wortsman et al. (2022,
"Robust fine-tuning of zero-shot models", CVPR) found that the weights ``(1 - a) * initial + a * fine-tuned``
keep the fine-tune's gain where the data are like the training data and the initial model's robustness where
they are not; ``a = 0.5`` is their default. This reads the fine-tuned models that ``pretrained_real.py allen`` left
in ``--work`` (``allen_ARM_STACK``, trained without the held-out stack), interpolates every floating-point tensor
of the state (weights and batch-norm running statistics) for ``a`` in 0, 0.25, 0.5, 0.75, 1 (0 = zero-shot, 1 =
the fine-tune) and scores each held-out stack as ``pretrained_real.py`` does (r and Dice of the Otsu threshold
inside the cells). Nothing is trained here and nothing is tuned on these files: ``a`` is read off a fixed grid.
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

from subcell.labelfree.pretrained import load_model  # noqa: E402
from subcell.labelfree.train import interpolate_weights  # noqa: E402

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def interpolated(initial: object, tuned: object, a: float) -> object:
    """``tuned`` with every floating-point tensor of its network's state at ``(1 - a) * initial + a * tuned``."""
    start = initial.network.state_dict()  # type: ignore[attr-defined]
    tuned.network.load_state_dict(interpolate_weights(start, tuned.network.state_dict(), a))  # type: ignore[attr-defined]
    tuned.network.eval()  # type: ignore[attr-defined]
    return tuned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("arms", nargs="*", default=["finetune"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_labelfree_pretrained"))
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    data = Path(os.environ.get("SUBCELL_TEST_DATA", "../shared/data")).resolve()
    out: dict[str, object] = {"alphas": ALPHAS}
    for arm in args.arms:
        rows: dict[str, object] = {}
        for test in ALLEN:
            folder = args.work / f"allen_{arm}_{test}"
            rows[test] = {
                str(a): _allen_scores(interpolated(load_model("nucleus"), load_model(folder), a), data, test)
                for a in ALPHAS
            }
            print(arm, test, {a: [round(v, 3) for v in s.values()][:2] for a, s in rows[test].items()}, flush=True)  # type: ignore[union-attr]
        rows["mean"] = {
            str(a): [
                float(np.mean([rows[t][str(a)][k] for t in ALLEN])) for k in ("pearson_r_in_cells", "dice_in_cells")
            ]  # type: ignore[index]
            for a in ALPHAS
        }
        print(arm, "mean", rows["mean"], flush=True)
        out[arm] = rows
    name = f"interpolate_allen{'_' + args.tag if args.tag else ''}.json"
    (HERE / "results" / name).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
