"""What a trained integrated-cell model is for: encode cells, sample reference cells, sample where a structure
would sit in a given cell, predict every structure for one cell, and walk the latent space.

Inputs and outputs are normalized crops (see :mod:`subcell.integrated.data`): references (R, Z, Y, X),
structures (Z, Y, X). Outputs are expected images under the likelihood (probabilities for masks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from subcell.errors import ValueRangeError
from subcell.integrated.data import CellData
from subcell.integrated.model import IntegratedModel
from subcell.integrated.objective import kl_per_dim, predicted_mean

__all__ = ["encode", "latent_walk", "predict_unobserved", "sample_reference", "sample_structure"]


def _device(model: IntegratedModel) -> torch.device:
    return next(model.net.parameters()).device


def _check_reference(model: IntegratedModel, reference: np.ndarray) -> torch.Tensor:
    ref = np.asarray(reference, dtype=np.float32)
    want = (len(model.reference_channels), *model.box)
    if ref.shape != want:
        raise ValueRangeError(f"reference has shape {ref.shape}, the model expects {want} "
                              f"({model.reference_channels})", field="reference")  # fmt: skip
    return torch.from_numpy(ref)[None].to(_device(model))


@torch.no_grad()
def encode(model: IntegratedModel, data: CellData, *, batch: int = 8) -> Any:
    """Posterior means of every cell's reference (``ref_z*``) and KL per cell; one row per cell (pandas)."""

    model.net.eval()
    mus, kls = [], []
    for s in range(0, len(data.reference), batch):
        ref = torch.from_numpy(data.reference[s : s + batch].astype(np.float32)).to(_device(model))
        mu, logvar = model.net.reference.encoder(ref)
        mus.append(mu.float().cpu().numpy())
        kls.append(kl_per_dim(mu, logvar).sum(dim=1).cpu().numpy())
    mu = np.concatenate(mus)
    table = data.table.reset_index(drop=True).copy()
    keep = [c for c in ("store", "crop_index", "source", "label_id", "structure", "state", "frame") if c in table]
    out = table[keep].copy()
    for d in range(mu.shape[1]):
        out[f"ref_z{d}"] = mu[:, d]
    out["ref_kl_nats"] = np.concatenate(kls)
    return out


@torch.no_grad()
def sample_reference(model: IntegratedModel, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` new reference cells drawn from the prior, (n, R, Z, Y, X)."""
    if n < 1:
        raise ValueRangeError(f"number of samples must be ≥ 1, got {n}", field="n")
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.reference_config.latent_dim, generator=g).to(_device(model))
    return predicted_mean(model.net.reference.decode(z), model.ref_likelihoods).cpu().numpy()


@torch.no_grad()
def sample_structure(model: IntegratedModel, reference: np.ndarray, structure: str, n: int = 1, *, seed: int = 0
                     ) -> np.ndarray:  # fmt: skip
    """``n`` samples of where ``structure`` would be in the cell with this reference, (n, Z, Y, X)."""
    sid = model.structure_index(structure)
    if n < 1:
        raise ValueRangeError(f"number of samples must be ≥ 1, got {n}", field="n")
    ref = _check_reference(model, reference).expand(n, -1, -1, -1, -1)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.conditional_config.latent_dim, generator=g).to(ref.device)
    ids = torch.full((n,), sid, dtype=torch.long, device=ref.device)
    out = model.net.conditional.decode(z, ref, ids)
    return predicted_mean(out, [model.structure_likelihood])[:, 0].cpu().numpy()


def predict_unobserved(model: IntegratedModel, reference: np.ndarray, *, structures: Sequence[str] | None = None,
                       samples: int = 8, seed: int = 0) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """Every structure (or the named ones) in one cell: mean over ``samples`` prior samples, (S, Z, Y, X).

    This is the "integrated cell": structures imaged in different cells, predicted together in this one.
    """
    names = list(structures or model.structures)
    out = [sample_structure(model, reference, s, samples, seed=seed + i).mean(axis=0) for i, s in enumerate(names)]
    return np.stack(out), names


@torch.no_grad()
def latent_walk(model: IntegratedModel, *, dims: Sequence[int] | None = None, data: CellData | None = None,
                steps: int = 7, span: float = 2.5, top: int = 3) -> tuple[np.ndarray, list[int]]:  # fmt: skip
    """Reference cells decoded along latent dimensions (others at 0), (len(dims), steps, R, Z, Y, X).

    Without ``dims``: the ``top`` dimensions with the largest mean KL over ``data`` (the ones the model uses).
    """
    d_lat = model.reference_config.latent_dim
    if dims is None:
        if data is None:
            dims = list(range(min(top, d_lat)))
        else:
            kl = []
            for s in range(0, len(data.reference), 8):
                ref = torch.from_numpy(data.reference[s : s + 8].astype(np.float32)).to(_device(model))
                kl.append(kl_per_dim(*model.net.reference.encoder(ref)).cpu().numpy())
            dims = [int(i) for i in np.argsort(-np.concatenate(kl).mean(axis=0))[:top]]
    bad = [d for d in dims if not 0 <= d < d_lat]
    if bad:
        raise ValueRangeError(f"latent dimensions {bad} outside 0..{d_lat - 1}", field="dims")
    values = np.linspace(-span, span, steps)
    out = []
    for d in dims:
        z = torch.zeros(steps, d_lat)
        z[:, d] = torch.from_numpy(values).float()
        out.append(
            predicted_mean(model.net.reference.decode(z.to(_device(model))), model.ref_likelihoods).cpu().numpy()
        )
    return np.stack(out), list(dims)
