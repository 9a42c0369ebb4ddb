"""The VAE objective: per-channel likelihoods, KL to the standard normal prior, β schedules, and the ELBO.

Likelihoods (per voxel, summed over the cell): ``bernoulli`` for mask channels (decoder gives logits) and
``gaussian`` for intensities (decoder gives the mean; one learned log σ per channel). The ELBO is
``E_q[log p(x|z)] − KL(q(z|x) ‖ N(0, I))`` in nats per cell; bits per voxel = −ELBO / (voxels · ln 2). For
Gaussian channels these are continuous densities (differential entropy), so values depend on the intensity
scale; they compare models and conditions on the same data, not datasets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.nn import functional as F

__all__ = ["BetaSchedule", "beta_at", "kl_per_dim", "log_likelihood", "predicted_mean"]

Likelihood = Literal["bernoulli", "gaussian"]
_LOG_2PI = math.log(2 * math.pi)


class BetaSchedule(BaseModel):
    """β over training steps.

    * ``constant`` — β throughout.
    * ``warmup`` — linear 0 → β over ``warmup_steps`` (avoids posterior collapse early).
    * ``cyclic`` — cycles of ``cycle_steps``: linear 0 → β over the first half, β for the second (Fu et al. 2019).
    * ``capacity`` — loss = recon + β·|KL − C(t)|, C rising linearly to ``capacity_nats`` over
      ``capacity_steps`` (Burgess et al. 2018).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["constant", "warmup", "cyclic", "capacity"] = "warmup"
    beta: float = Field(1.0, ge=0, le=1000)
    warmup_steps: int = Field(500, ge=1)
    cycle_steps: int = Field(1000, ge=2)
    capacity_nats: float = Field(50.0, ge=0)
    capacity_steps: int = Field(2000, ge=1)


def beta_at(schedule: BetaSchedule, step: int) -> tuple[float, float | None]:
    """(β, capacity C or None) at a 1-based step."""
    s = schedule
    if s.kind == "constant":
        return s.beta, None
    if s.kind == "warmup":
        return s.beta * min(1.0, step / s.warmup_steps), None
    if s.kind == "cyclic":
        phase = ((step - 1) % s.cycle_steps) / s.cycle_steps
        return s.beta * min(1.0, 2 * phase), None
    return s.beta, s.capacity_nats * min(1.0, step / s.capacity_steps)


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) per sample and latent dimension (nats), shape (N, D)."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_likelihood(
    out: torch.Tensor, x: torch.Tensor, likelihoods: Sequence[Likelihood], log_sigma: torch.Tensor | None
) -> torch.Tensor:
    """log p(x | decoder output) per sample (nats, summed over voxels and channels), shape (N,).

    ``log_sigma``: (C,) one σ per channel, or (N, C) one per sample and channel (e.g. per structure).
    """
    out, x = out.float(), x.float()
    total = torch.zeros(out.shape[0], device=out.device)
    for c, kind in enumerate(likelihoods):
        o, t = out[:, c], x[:, c]
        if kind == "bernoulli":
            ll = -F.binary_cross_entropy_with_logits(o, t.clamp(0, 1), reduction="none")
        else:
            assert log_sigma is not None
            ls = (log_sigma[c] if log_sigma.ndim == 1 else log_sigma[:, c].view(-1, *([1] * (t.ndim - 1)))).float()
            ll = -0.5 * ((t - o) * torch.exp(-ls)).pow(2) - ls - 0.5 * _LOG_2PI
        total = total + ll.flatten(1).sum(dim=1)
    return total


def predicted_mean(out: torch.Tensor, likelihoods: Sequence[Likelihood]) -> torch.Tensor:
    """Expected image under the likelihood: sigmoid(logits) for Bernoulli channels, the mean for Gaussian."""
    out = out.float()
    parts = [torch.sigmoid(out[:, c]) if k == "bernoulli" else out[:, c] for c, k in enumerate(likelihoods)]
    return torch.stack(parts, dim=1)
