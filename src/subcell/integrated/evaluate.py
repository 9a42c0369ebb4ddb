"""Held-out evaluation of an integrated-cell model.

* Reference model: ELBO (nats per cell, bits per voxel), reconstruction error, KL per latent dimension.
* Conditional model, per structure: ELBO with the cell's true reference vs a *shuffled* reference (another
  held-out cell's), the paired difference, its effect size (mean / sd of the per-cell differences) and a
  Wilcoxon signed-rank p-value: how much the reference tells about where the structure is.

ELBOs are averaged over ``samples`` posterior draws per cell (a lower-variance estimate than one draw).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from subcell.errors import ValueRangeError
from subcell.integrated.data import CellData
from subcell.integrated.model import IntegratedModel
from subcell.integrated.objective import predicted_mean
from subcell.train.run import isolated_torch_state

__all__ = ["Evaluation", "evaluate_model"]


@dataclass
class Evaluation:
    reference: Any  # per cell: elbo_nats, bits_per_voxel, recon_mse, kl_nats
    reference_kl_per_dim: np.ndarray
    conditional: Any  # per (cell, structure): elbo true / shuffled, difference, recon_mse
    summary: Any  # per structure (+ "reference"): means, effect size, p


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    if n < 2:
        raise ValueRangeError("the shuffled-reference comparison needs at least 2 held-out cells", field="cells")
    while True:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p


@isolated_torch_state
@torch.no_grad()
def evaluate_model(model: IntegratedModel, data: CellData, cells: np.ndarray, *, samples: int = 4, seed: int = 0,
                   batch: int = 8) -> Evaluation:  # fmt: skip
    """Evaluate on the given cell indices of ``data`` (normally the held-out test cells)."""
    import pandas as pd
    from scipy.stats import wilcoxon

    cells = np.asarray(cells, dtype=np.int64)
    if len(cells) == 0:
        raise ValueRangeError("no cells to evaluate", field="cells")
    model.net.eval()
    dev = next(model.net.parameters()).device
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ln2 = math.log(2)
    n_ref_vox = float(np.prod(model.box)) * len(model.reference_channels)
    ref_rows, kls = [], []
    for s in range(0, len(cells), batch):
        idx = cells[s : s + batch]
        ref = torch.from_numpy(data.reference[idx].astype(np.float32)).to(dev)
        elbo = torch.zeros(len(idx), device=dev)
        for _ in range(samples):
            _, ll, kl = model.reference_terms(ref)
            elbo += (ll - kl.sum(dim=1)) / samples
        out, _, kl = model.reference_terms(ref, sample=False)
        mse = ((predicted_mean(out.recon, model.ref_likelihoods) - ref) ** 2).flatten(1).mean(dim=1)
        kls.append(kl.cpu().numpy())
        for j, i in enumerate(idx):
            ref_rows.append({"cell": int(i), "elbo_nats": float(elbo[j]), "kl_nats": float(kl[j].sum()),
                             "bits_per_voxel": -float(elbo[j]) / (n_ref_vox * ln2), "recon_mse": float(mse[j])})  # fmt: skip
    kl_dim = np.concatenate(kls).mean(axis=0)
    shuffled = cells[_derangement(len(cells), rng)]
    vox = float(np.prod(model.box))
    cond_rows = []
    for slot in range(data.structure_ids.shape[1]):
        for s in range(0, len(cells), batch):
            idx, other = cells[s : s + batch], shuffled[s : s + batch]
            sid_np = data.structure_ids[idx, slot]
            ok = sid_np >= 0
            if not ok.any():
                continue
            idx, other, sid_np = idx[ok], other[ok], sid_np[ok]
            x = torch.from_numpy(data.structure_images[idx, slot][:, None].astype(np.float32)).to(dev)
            sid = torch.from_numpy(sid_np).to(dev)
            res = {}
            for name, refs in (("true", idx), ("shuffled", other)):
                ref = torch.from_numpy(data.reference[refs].astype(np.float32)).to(dev)
                elbo = torch.zeros(len(idx), device=dev)
                for _ in range(samples):
                    _, ll, kl = model.conditional_terms(x, ref, sid)
                    elbo += (ll - kl.sum(dim=1)) / samples
                res[name] = elbo.cpu().numpy()
                if name == "true":
                    out, _, _ = model.conditional_terms(x, ref, sid, sample=False)
                    mse = ((predicted_mean(out.recon, [model.structure_likelihood]) - x) ** 2).flatten(1).mean(dim=1)
                    res["mse"] = mse.cpu().numpy()
            for j, i in enumerate(idx):
                cond_rows.append({
                    "cell": int(i), "structure": model.structures[int(sid_np[j])],
                    "elbo_nats": float(res["true"][j]), "elbo_shuffled_nats": float(res["shuffled"][j]),
                    "elbo_gain_nats": float(res["true"][j] - res["shuffled"][j]),
                    "bits_per_voxel": -float(res["true"][j]) / (vox * ln2), "recon_mse": float(res["mse"][j]),
                })  # fmt: skip
    reference = pd.DataFrame(ref_rows)
    conditional = pd.DataFrame(cond_rows)
    summary: list[dict[str, Any]] = [{
        "model": "reference", "structure": "", "cells": len(reference),
        "elbo_nats": reference.elbo_nats.mean(), "bits_per_voxel": reference.bits_per_voxel.mean(),
        "recon_mse": reference.recon_mse.mean(), "kl_nats": reference.kl_nats.mean(),
    }]  # fmt: skip
    groups = list(conditional.groupby("structure", sort=False)) if len(conditional) else []
    for structure, g in groups:
        gain = g.elbo_gain_nats.to_numpy()
        sd = gain.std(ddof=1) if len(gain) > 1 else float("nan")
        p = float(wilcoxon(gain).pvalue) if len(gain) >= 2 and np.any(gain != 0) else float("nan")
        summary.append({
            "model": "conditional", "structure": structure, "cells": len(g), "elbo_nats": g.elbo_nats.mean(),
            "elbo_shuffled_nats": g.elbo_shuffled_nats.mean(), "elbo_gain_nats": gain.mean(),
            "effect_size": gain.mean() / sd if sd and sd > 0 else float("nan"), "wilcoxon_p": p,
            "bits_per_voxel": g.bits_per_voxel.mean(), "recon_mse": g.recon_mse.mean(),
        })  # fmt: skip
    return Evaluation(reference, kl_dim, conditional, pd.DataFrame(summary))
