"""3D convolutional β-VAEs of single cells: a reference model (cell + nucleus) and a conditional structure model.

* :class:`ReferenceVAE` — encoder/decoder over the reference channels.
* :class:`ConditionalVAE` — encodes one structure channel *given* the reference image and the structure's
  identity; its decoder sees the latent code, the identity (one-hot) and the reference image at every scale
  (average-pooled to that scale), so where a structure sits can be expressed relative to the cell and
  nucleus. Sampling the latent from the prior for a reference it was never imaged in answers "where would
  structure S be in cell C".

Both use residual blocks (:class:`~subcell.train.blocks.ConvBlock`, group norm) with strided downsampling and
nearest-neighbour upsampling followed by a convolution; the box must be divisible by ``2**depth``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

from subcell.train.blocks import Conv3d, ConvBlock

__all__ = ["ConditionalVAE", "ReferenceVAE", "VAEConfig", "VAEOutput"]


class VAEConfig(BaseModel):
    """Architecture of one VAE (stored in the model artifact)."""

    model_config = ConfigDict(extra="forbid")

    latent_dim: int = Field(32, ge=1, le=2048)
    depth: int = Field(3, ge=1, le=6, description="number of 2× downsamplings")
    base_channels: int = Field(16, ge=4, le=256)
    max_channels: int = Field(256, ge=4, le=1024)

    def channels(self) -> list[int]:
        return [min(self.base_channels * 2**i, self.max_channels) for i in range(self.depth + 1)]


@dataclass
class VAEOutput:
    """Decoder output (per-channel means or logits), posterior mean and log-variance, and the sample z."""

    recon: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class _Encoder(nn.Module):
    def __init__(self, c_in: int, box: tuple[int, int, int], cfg: VAEConfig, extra: int = 0) -> None:
        super().__init__()
        ch = cfg.channels()
        self.stem = Conv3d(c_in, ch[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        for i in range(cfg.depth):
            self.blocks.append(nn.Sequential(
                ConvBlock(ch[i], ch[i], iso=True, norm="group", residual=True),
                Conv3d(ch[i], ch[i + 1], 2, stride=2),
            ))  # fmt: skip
        self.bottom = tuple(b // 2**cfg.depth for b in box)
        flat = ch[-1] * self.bottom[0] * self.bottom[1] * self.bottom[2]
        self.head = nn.Linear(flat + extra, 2 * cfg.latent_dim)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        h = h.flatten(1)
        if extra is not None:
            h = torch.cat([h, extra.to(h.dtype)], dim=1)
        mu, logvar = self.head(h).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)


class _Decoder(nn.Module):
    def __init__(self, c_out: int, box: tuple[int, int, int], cfg: VAEConfig, extra: int = 0, cond: int = 0) -> None:
        super().__init__()
        ch = cfg.channels()
        self.bottom = tuple(b // 2**cfg.depth for b in box)
        self.c_bottom = ch[-1]
        self.fc = nn.Linear(cfg.latent_dim + extra, ch[-1] * self.bottom[0] * self.bottom[1] * self.bottom[2])
        self.cond = cond
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for i in reversed(range(cfg.depth)):
            # nearest-neighbour upsampling + 3×3×3 conv: no checkerboard artefacts of stride-2 transposed convs
            self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                          Conv3d(ch[i + 1] + cond, ch[i], 3, padding=1)))  # fmt: skip
            self.blocks.append(ConvBlock(ch[i] + cond, ch[i], iso=True, norm="group", residual=True))
        self.out = Conv3d(ch[0], c_out, 3, padding=1)

    def forward(self, z: torch.Tensor, extra: torch.Tensor | None = None, reference: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        if extra is not None:
            z = torch.cat([z, extra.to(z.dtype)], dim=1)
        h = F.silu(self.fc(z)).view(z.shape[0], self.c_bottom, *self.bottom)
        for up, block in zip(self.ups, self.blocks, strict=True):
            if reference is not None:
                h = torch.cat([h, _pool(reference, h)], dim=1)
            h = up(h)
            if reference is not None:
                h = torch.cat([h, _pool(reference, h)], dim=1)
            h = block(h)
        return self.out(h)


def _pool(reference: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The reference image average-pooled to the spatial size of ``like``."""
    size = (int(like.shape[2]), int(like.shape[3]), int(like.shape[4]))
    return F.adaptive_avg_pool3d(reference, size).to(like.dtype)


def _reparameterize(mu: torch.Tensor, logvar: torch.Tensor, sample: bool) -> torch.Tensor:
    if not sample:
        return mu
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


class ReferenceVAE(nn.Module):
    """β-VAE over the reference channels (e.g. cell and nucleus masks)."""

    def __init__(self, channels: int, box: tuple[int, int, int], cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = _Encoder(channels, box, cfg)
        self.decoder = _Decoder(channels, box, cfg)

    def forward(self, x: torch.Tensor, sample: bool = True) -> VAEOutput:
        mu, logvar = self.encoder(x)
        z = _reparameterize(mu, logvar, sample)
        return VAEOutput(self.decoder(z), mu, logvar, z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class ConditionalVAE(nn.Module):
    """β-VAE over one structure channel, conditioned on the reference image and the structure identity."""

    def __init__(self, ref_channels: int, n_structures: int, box: tuple[int, int, int], cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_structures = n_structures
        self.encoder = _Encoder(1 + ref_channels, box, cfg, extra=n_structures)
        # the decoder sees the reference and the identity (as constant maps) at every scale
        self.decoder = _Decoder(1, box, cfg, extra=n_structures, cond=ref_channels + n_structures)

    def onehot(self, structure: torch.Tensor) -> torch.Tensor:
        return F.one_hot(structure.long(), self.n_structures).float()

    def _condition(self, reference: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        maps = code[:, :, None, None, None].to(reference.dtype).expand(-1, -1, *reference.shape[2:])
        return torch.cat([reference, maps], dim=1)

    def forward(self, x: torch.Tensor, reference: torch.Tensor, structure: torch.Tensor, sample: bool = True) -> VAEOutput:  # fmt: skip
        code = self.onehot(structure)
        mu, logvar = self.encoder(torch.cat([x, reference], dim=1), code)
        z = _reparameterize(mu, logvar, sample)
        return VAEOutput(self.decoder(z, code, self._condition(reference, code)), mu, logvar, z)

    def decode(self, z: torch.Tensor, reference: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        code = self.onehot(structure)
        return self.decoder(z, code, self._condition(reference, code))
