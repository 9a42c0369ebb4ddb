"""3D U-Nets for label-free prediction: the paper's ``fnet`` and a cheaper residual default (``resunet``).

One class, :class:`UNet`, covers both presets and 2D: a level is *anisotropic* when its z-kernel is 1 and it
does not downsample z (early levels of a stack whose z voxel is several times the xy voxel, or every level of a
2D model). Modules take plain arguments; :func:`build_network` turns a :class:`NetworkConfig` into one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from subcell.train.blocks import ConvBlock, Planar, norm_for

__all__ = ["PRESETS", "NetworkConfig", "UNet", "build_network", "preset"]


class NetworkConfig(BaseModel):
    """Architecture of a :class:`UNet` (validated; stored in every model artifact)."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["fnet", "resunet", "custom"] = "resunet"
    depth: int = Field(3, ge=1, le=6, description="number of downsampling steps")
    base_channels: int = Field(16, ge=1, le=256)
    channel_multiplier: float = Field(2.0, ge=1.0, le=4.0)
    block: Literal["plain", "residual"] = "residual"
    norm: Literal["batch", "group", "none"] = "batch"
    z_levels: int | None = Field(
        None, ge=0, description="levels that convolve and downsample z (None: all; 0: a 2D network)"
    )

    @model_validator(mode="after")
    def _z(self) -> NetworkConfig:
        if self.z_levels is not None and self.z_levels > self.depth:
            self.z_levels = self.depth
        return self

    def channels(self) -> list[int]:
        """Channels per level, from the top level to the bottleneck (``depth + 1`` entries)."""
        return [max(1, round(self.base_channels * self.channel_multiplier**i)) for i in range(self.depth + 1)]

    def divisor(self) -> tuple[int, int, int]:
        """Patch / tile sizes must be multiples of this (z, y, x)."""
        zl = self.depth if self.z_levels is None else self.z_levels
        return (2**zl, 2**self.depth, 2**self.depth)


PRESETS: dict[str, dict[str, object]] = {
    # Ounkomol et al. 2018: depth 4, 32 channels doubling, batch norm + ReLU, strided conv down, transposed conv up
    "fnet": {"preset": "fnet", "depth": 4, "base_channels": 32, "block": "plain", "norm": "batch", "z_levels": None},
    # our default, chosen by measurement (benchmarks/labelfree/results.md): residual blocks, 16 base channels,
    # depth 3; z_levels is set from the voxel anisotropy at training time. Batch norm, not group norm: in eval mode
    # it uses running statistics, so a voxel's prediction does not depend on which tile it was predicted in
    # (group/instance norm normalise over the tile and make tiled prediction differ from whole-volume prediction).
    "resunet": {"preset": "resunet", "depth": 3, "base_channels": 16, "block": "residual", "norm": "batch"},
}


def preset(name: str, **overrides: object) -> NetworkConfig:
    """A :class:`NetworkConfig` for a named preset with optional overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown network preset {name!r}; expected one of {sorted(PRESETS)}")
    return NetworkConfig.model_validate({**PRESETS[name], **overrides})


class _Down(nn.Module):
    """Strided 2×2×2 (or 1×2×2) convolution + norm + ReLU."""

    def __init__(self, c_in: int, c_out: int, *, iso: bool, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv: nn.Module = (
            nn.Conv3d(c_in, c_out, 2, stride=2, bias=bias)
            if iso
            else Planar(nn.Conv2d(c_in, c_out, 2, stride=2, bias=bias))
        )
        self.norm = norm_for(norm, c_out, iso)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class _Up(nn.Module):
    """Transposed 2×2×2 (or 1×2×2) convolution + norm + ReLU."""

    def __init__(self, c_in: int, c_out: int, *, iso: bool, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv: nn.Module = (
            nn.ConvTranspose3d(c_in, c_out, 2, stride=2, bias=bias)
            if iso
            else Planar(nn.ConvTranspose2d(c_in, c_out, 2, stride=2, bias=bias))
        )
        self.norm = norm_for(norm, c_out, iso)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class UNet(nn.Module):
    """A 3D U-Net mapping ``(N, in_channels, Z, Y, X)`` to ``(N, out_channels, Z, Y, X)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Output channels are the targets; with ``uncertainty`` each target gets a second (log-variance) channel.
    channels : sequence of int
        Channels per level from the top to the bottleneck (``depth + 1`` entries).
    z_levels : int
        How many of the deepest levels convolve and downsample along z; the first
        ``depth - z_levels`` levels use 1×3×3 kernels and 1×2×2 downsampling. ``0`` makes a 2D network.
    block : {"plain", "residual"}
    norm : {"batch", "group", "none"}
    uncertainty : bool
        Also predict a per-voxel log-variance (train with Gaussian NLL).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        channels: Sequence[int],
        z_levels: int,
        block: str = "residual",
        norm: str = "group",
        uncertainty: bool = False,
    ) -> None:
        super().__init__()
        depth = len(channels) - 1
        # level i (0 = top) is isotropic when it lies among the last z_levels downsampling steps;
        # the bottleneck convolves in z whenever any level does
        iso = [i >= depth - z_levels for i in range(depth)] + [z_levels > 0]
        residual = block == "residual"
        self.depth = depth
        self.out_channels = out_channels
        self.uncertainty = uncertainty
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        # as in fnet: a level's first convolution raises the channels, the strided down-convolution keeps them
        c_prev = in_channels
        for i in range(depth):
            self.encoders.append(ConvBlock(c_prev, channels[i], iso=iso[i], norm=norm, residual=residual))
            self.downs.append(_Down(channels[i], channels[i], iso=iso[i], norm=norm))
            c_prev = channels[i]
        self.bottleneck = ConvBlock(c_prev, channels[depth], iso=iso[depth], norm=norm, residual=residual)
        for i in reversed(range(depth)):
            self.ups.append(_Up(channels[i + 1], channels[i], iso=iso[i], norm=norm))
            self.decoders.append(ConvBlock(2 * channels[i], channels[i], iso=iso[i], norm=norm, residual=residual))
        self.head = Planar(nn.Conv2d(channels[0], out_channels * (2 if uncertainty else 1), 1))  # 1×1×1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, dec in zip(self.ups, self.decoders, strict=True):
            x = dec(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)

    def activation_bytes_per_voxel(self, *, batch: int = 1, itemsize: int = 4) -> float:
        """Rough peak activation memory of inference per input voxel (for choosing a tile size)."""
        total = 0.0
        scale = 1.0
        for enc, down in zip(self.encoders, self.downs, strict=True):
            c = int(enc.conv1.out_channels)  # type: ignore[union-attr,arg-type]
            total += 4 * c * scale  # input, two conv outputs and the kept skip
            stride: tuple[int, int, int] = down.conv.stride  # type: ignore[union-attr,assignment]
            scale /= float(stride[0] * stride[1] * stride[2])
        total += 4 * int(self.bottleneck.conv1.out_channels) * scale  # type: ignore[union-attr,arg-type]
        return total * batch * itemsize


def build_network(config: NetworkConfig, *, in_channels: int, out_channels: int, uncertainty: bool = False) -> UNet:
    """Build a :class:`UNet` from its config (``z_levels=None`` means every level is isotropic)."""
    zl = config.depth if config.z_levels is None else config.z_levels
    return UNet(
        in_channels,
        out_channels,
        channels=config.channels(),
        z_levels=zl,
        block=config.block,
        norm=config.norm,
        uncertainty=uncertainty,
    )
