"""A trained integrated-cell model: reference β-VAE + conditional β-VAE + what their channels mean, as one
model folder (safetensors + JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from subcell.errors import ValueRangeError
from subcell.integrated.network import ConditionalVAE, ReferenceVAE, VAEConfig, VAEOutput
from subcell.integrated.objective import Likelihood, kl_per_dim, log_likelihood
from subcell.train.artifact import load_artifact, save_artifact
from subcell.train.blocks import set_channels_last

__all__ = ["KIND", "IntegratedModel", "IntegratedNet"]

KIND = "integrated-cell"


def likelihood_of(name: str) -> Likelihood:
    """Masks are modelled as Bernoulli, intensities as Gaussian."""
    return "bernoulli" if name.endswith("_mask") else "gaussian"


class IntegratedNet(nn.Module):
    """Both VAEs and the log σ of their Gaussian likelihoods (per reference channel; per structure)."""

    def __init__(self, n_ref: int, n_structures: int, box: tuple[int, int, int], ref_cfg: VAEConfig,
                 cond_cfg: VAEConfig) -> None:  # fmt: skip
        super().__init__()
        self.reference = ReferenceVAE(n_ref, box, ref_cfg)
        self.conditional = ConditionalVAE(n_ref, n_structures, box, cond_cfg)
        # σ of the Gaussian likelihoods: set during training to the maximum-likelihood value (the running RMS
        # reconstruction error; "optimal σ-VAE", Rybkin et al. 2021) rather than learned by gradient, which is
        # far too slow for sparse structures and leaves reconstructions blurry
        self.ref_log_sigma = nn.Parameter(torch.full((n_ref,), -1.5), requires_grad=False)
        self.struct_log_sigma = nn.Parameter(torch.full((n_structures,), -1.5), requires_grad=False)
        # channels-last: oneDNN's and cuDNN's fast convolution layout; a training step of the default network on
        # 64x96x96 crops, 2-core CPU fp32: reference 1.54x, conditional 1.39x (benchmarks/integrated/throughput.py)
        set_channels_last(self)


def fit_log_sigma(log_sigma: torch.Tensor, index: torch.Tensor, recon: torch.Tensor, x: torch.Tensor,
                  momentum: float = 0.8, floor: float = -5.0) -> None:  # fmt: skip
    """Move ``log_sigma[index]`` towards log RMS(recon − x) of the samples with that index (in place).

    ``index``: (N,) which entry of ``log_sigma`` each sample's single channel uses. Averaged over DDP ranks.
    """
    with torch.no_grad():
        err = (recon.float() - x.float()).pow(2).flatten(1).mean(dim=1)
        sums = torch.zeros_like(log_sigma, dtype=torch.float32).index_add_(0, index, err)
        counts = torch.zeros_like(sums).index_add_(0, index, torch.ones_like(err))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
            torch.distributed.all_reduce(counts)
        seen = counts > 0
        target = 0.5 * torch.log((sums[seen] / counts[seen]).clamp_min(1e-12))
        log_sigma[seen] = (momentum * log_sigma[seen] + (1 - momentum) * target).clamp_min(floor)


@dataclass
class IntegratedModel:
    """The networks plus channel meanings, box and voxel size; ``structures`` name the conditional classes."""

    net: IntegratedNet
    reference_channels: list[str]
    structures: list[str]
    box: tuple[int, int, int]
    voxel_um: float
    reference_config: VAEConfig
    conditional_config: VAEConfig
    structure_likelihood: Likelihood = "gaussian"
    training: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, *, reference_channels: list[str], structures: list[str], box: tuple[int, int, int],
               voxel_um: float, reference_config: VAEConfig, conditional_config: VAEConfig,
               structure_likelihood: Likelihood = "gaussian") -> IntegratedModel:  # fmt: skip
        for cfg in (reference_config, conditional_config):
            d = 2**cfg.depth
            if any(b % d for b in box):
                raise ValueRangeError(f"box {box} must be divisible by {d} for depth {cfg.depth}", field="depth")
        net = IntegratedNet(len(reference_channels), len(structures), box, reference_config, conditional_config)
        return cls(net, list(reference_channels), list(structures), tuple(box), float(voxel_um),  # type: ignore[arg-type]
                   reference_config, conditional_config, structure_likelihood)  # fmt: skip

    @property
    def ref_likelihoods(self) -> list[Likelihood]:
        return [likelihood_of(c) for c in self.reference_channels]

    def structure_index(self, name: str) -> int:
        if name not in self.structures:
            raise ValueRangeError(f"unknown structure {name!r}; the model knows {self.structures}", field="structure")
        return self.structures.index(name)

    # -- the two ELBO terms ------------------------------------------------------------------------------------
    def reference_terms(self, ref: torch.Tensor, *, sample: bool = True, fit_sigma: bool = False
                        ) -> tuple[VAEOutput, torch.Tensor, torch.Tensor]:  # fmt: skip
        """(output, log-likelihood (N,), KL per dim (N, D)) of reference images; ``fit_sigma`` in training."""
        out = self.net.reference(ref, sample=sample)
        if fit_sigma:
            for c, kind in enumerate(self.ref_likelihoods):
                if kind == "gaussian":
                    idx = torch.full((ref.shape[0],), c, dtype=torch.long, device=ref.device)
                    fit_log_sigma(self.net.ref_log_sigma, idx, out.recon[:, c], ref[:, c])
        ll = log_likelihood(out.recon, ref, self.ref_likelihoods, self.net.ref_log_sigma)
        return out, ll, kl_per_dim(out.mu, out.logvar)

    def conditional_terms(self, x: torch.Tensor, ref: torch.Tensor, sid: torch.Tensor, *, sample: bool = True,
                          fit_sigma: bool = False) -> tuple[VAEOutput, torch.Tensor, torch.Tensor]:  # fmt: skip
        out = self.net.conditional(x, ref, sid, sample=sample)
        if fit_sigma and self.structure_likelihood == "gaussian":
            fit_log_sigma(self.net.struct_log_sigma, sid.long(), out.recon, x)
        ll = log_likelihood(out.recon, x, [self.structure_likelihood], self.net.struct_log_sigma[sid.long()][:, None])
        return out, ll, kl_per_dim(out.mu, out.logvar)

    # -- persistence ---------------------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "reference_channels": self.reference_channels,
            "structures": self.structures,
            "box": list(self.box),
            "voxel_size_um": [self.voxel_um] * 3,
            "reference_network": self.reference_config.model_dump(mode="json"),
            "conditional_network": self.conditional_config.model_dump(mode="json"),
            "structure_likelihood": self.structure_likelihood,
            "normalization": "intensities: (x − p5) / (p99.9 − p5) inside the cell, clipped to [0, 2], 0 outside; masks 0/1",
            "training": self.training,
            "config": self.config,
        }

    def save(self, folder: str | Path, *, overwrite: bool = False, extra_files: dict[str, bytes] | None = None) -> Path:
        return save_artifact(folder, self.net.state_dict(), self.metadata(), extra_files=extra_files,
                             overwrite=overwrite)  # fmt: skip

    @classmethod
    def load(cls, folder: str | Path, *, device: str | torch.device = "cpu") -> IntegratedModel:
        from subcell.errors import InputFileError

        state, meta = load_artifact(folder, kind=KIND)
        try:
            model = cls.create(
                reference_channels=meta["reference_channels"], structures=meta["structures"], box=tuple(meta["box"]),
                voxel_um=meta["voxel_size_um"][0], reference_config=VAEConfig(**meta["reference_network"]),
                conditional_config=VAEConfig(**meta["conditional_network"]),
                structure_likelihood=meta.get("structure_likelihood", "gaussian"),
            )  # fmt: skip
            model.net.load_state_dict(state)
        except (KeyError, TypeError, RuntimeError, ValueError) as exc:
            raise InputFileError(f"model.json / weights do not describe an integrated-cell model ({exc})",
                                 path=folder) from None  # fmt: skip
        model.training = meta.get("training", {})
        model.config = meta.get("config", {})
        model.net.to(device).eval()
        return model
