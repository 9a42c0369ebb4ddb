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

``--recompute N`` then recomputes the batch-norm running statistics of each interpolated model from N batches of
its fine-tune's own training patches (``recompute_norm_statistics``, as ``recompute_norm_statistics: N`` in a
training config does), instead of interpolating the two sets of statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from pretrained_real import _allen_scores  # noqa: E402
from real_data import ALLEN  # noqa: E402

from subcell.labelfree import TrainConfig  # noqa: E402
from subcell.labelfree.data import load_volumes, pad_to_patch, split_rows  # noqa: E402
from subcell.labelfree.pretrained import load_model  # noqa: E402
from subcell.labelfree.train import interpolate_weights, training_sampler  # noqa: E402
from subcell.train import autocast_dtype  # noqa: E402
from subcell.train.norm import recompute_norm_statistics  # noqa: E402

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
CPU = torch.device("cpu")


def interpolated(initial: object, tuned: object, a: float) -> object:
    """``tuned`` with every floating-point tensor of its network's state at ``(1 - a) * initial + a * tuned``."""
    start = initial.network.state_dict()  # type: ignore[attr-defined]
    tuned.network.load_state_dict(interpolate_weights(start, tuned.network.state_dict(), a))  # type: ignore[attr-defined]
    tuned.network.eval()  # type: ignore[attr-defined]
    return tuned


def training_inputs(tuned: object, n: int, seed: int = 0) -> list[torch.Tensor]:
    """``n`` batches of input patches drawn as the fine-tune of ``tuned`` drew its training patches (its saved
    config: manifest, split, loss mask, patch, batch, augmentation)."""
    from subcell.io import read_manifest

    cfg = TrainConfig.model_validate(tuned.config)  # type: ignore[attr-defined]
    rows, _ = split_rows(list(read_manifest(cfg.manifest)), val_fraction=cfg.val_fraction,
                         rng=np.random.default_rng(cfg.seed))  # fmt: skip
    volumes, _, _, _ = load_volumes(rows, input_channel=cfg.input_channel, targets=cfg.targets,
                                     voxel_size=tuned.voxel_size, mask_column=cfg.loss_mask,  # type: ignore[attr-defined]
                                     binarize_targets=cfg.binarize_targets)  # fmt: skip
    sampler = training_sampler([pad_to_patch(v, cfg.patch_size) for v in volumes], cfg, tuned.voxel_size)  # type: ignore[attr-defined]
    r = np.random.default_rng(seed)
    return [torch.from_numpy(sampler.batch(r, cfg.batch_size)[0]) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("arms", nargs="*", default=["finetune"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_labelfree_pretrained"))
    ap.add_argument("--tag", default="")
    ap.add_argument("--recompute", type=int, default=0, help="recompute batch-norm statistics from N training batches")
    args = ap.parse_args()
    data = Path(os.environ.get("SUBCELL_TEST_DATA", "../shared/data")).resolve()
    out: dict[str, object] = {"alphas": ALPHAS, "recompute_norm_statistics": args.recompute}
    for arm in args.arms:
        rows: dict[str, object] = {}
        for test in ALLEN:
            folder = args.work / f"allen_{arm}_{test}"
            batches = training_inputs(load_model(folder), args.recompute) if args.recompute else []
            rows[test] = {}
            for a in ALPHAS:
                model = interpolated(load_model("nucleus"), load_model(folder), a)
                if batches:
                    recompute_norm_statistics(model.network, batches, device=CPU, autocast=autocast_dtype(CPU, "auto"))  # type: ignore[attr-defined]
                rows[test][str(a)] = _allen_scores(model, data, test)  # type: ignore[index]
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
