"""3D U-Nets for label-free prediction: the paper's ``fnet`` and a cheaper residual default (``resunet``).

One class, :class:`UNet`, covers both presets and 2D: a level is *anisotropic* when its z-kernel is 1 and it
does not downsample z (early levels of a stack whose z voxel is several times the xy voxel, or every level of a
2D model). Modules take plain arguments; :func:`build_network` turns a :class:`NetworkConfig` into one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from subcell.train.blocks import CL3D, Conv3d, ConvBlock, Planar, ReLU, conv_relu, norm_for, set_channels_last

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
    skip: Literal["concat", "add"] = Field(
        "concat",
        description="how a decoder level joins its encoder skip: concatenated channels (the U-Net's and fnet's, "
        "what every model saved before this field existed used) or added (half the decoder's input channels)",
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
    # Skips stay concatenated: adding them (`skip: "add"`) computes 24 % fewer FLOPs per voxel and trains 1.2-1.5x
    # more steps per second, but reached no better accuracy in the same training time (results.md, issue 17).
    "resunet": {"preset": "resunet", "depth": 3, "base_channels": 16, "block": "residual", "norm": "batch"},
}


def preset(name: str, **overrides: object) -> NetworkConfig:
    """A :class:`NetworkConfig` for a named preset with optional overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown network preset {name!r}; expected one of {sorted(PRESETS)}")
    return NetworkConfig.model_validate({**PRESETS[name], **overrides})


class _ConvNormReLU(nn.Module):
    """A resampling convolution + norm + ReLU (the down- and up-sampling steps of :class:`UNet`)."""

    def __init__(self, conv: nn.Module, norm: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.norm = norm
        self.act = ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.norm, nn.Identity):  # norm folded (or none): one kernel where there is one
            return conv_relu(self.conv, x)
        return self.act(self.norm(self.conv(x)))


class _Down(_ConvNormReLU):
    """Strided 2×2×2 (or 1×2×2) convolution + norm + ReLU."""

    def __init__(self, c_in: int, c_out: int, *, iso: bool, norm: str) -> None:
        bias = norm == "none"
        conv = (
            Conv3d(c_in, c_out, 2, stride=2, bias=bias)
            if iso
            else Planar(nn.Conv2d(c_in, c_out, 2, stride=2, bias=bias))
        )
        super().__init__(conv, norm_for(norm, c_out, iso))


class _Up(_ConvNormReLU):
    """Transposed 2×2×2 (or 1×2×2) convolution + norm + ReLU."""

    def __init__(self, c_in: int, c_out: int, *, iso: bool, norm: str) -> None:
        bias = norm == "none"
        conv = (
            nn.ConvTranspose3d(c_in, c_out, 2, stride=2, bias=bias)
            if iso
            else Planar(nn.ConvTranspose2d(c_in, c_out, 2, stride=2, bias=bias))
        )
        super().__init__(conv, norm_for(norm, c_out, iso))


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
    skip : {"concat", "add"}
        A decoder level's input: the skip and the upsampled features concatenated (2c channels) or added (c).
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
        skip: str = "concat",
    ) -> None:
        super().__init__()
        depth = len(channels) - 1
        self.skip = skip
        # level i (0 = top) is isotropic when it lies among the last z_levels downsampling steps;
        # the bottleneck convolves in z whenever any level does
        iso = [i >= depth - z_levels for i in range(depth)] + [z_levels > 0]
        residual = block == "residual"
        self.depth = depth
        self.in_channels = in_channels
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
            c_in = 2 * channels[i] if skip == "concat" else channels[i]
            self.decoders.append(ConvBlock(c_in, channels[i], iso=iso[i], norm=norm, residual=residual))
        self.head = Planar(nn.Conv2d(channels[0], out_channels * (2 if uncertainty else 1), 1))  # 1×1×1
        set_channels_last(self)
        self.channels_last = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=CL3D)
        if not torch.is_grad_enabled():
            return self._infer(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, dec in zip(self.ups, self.decoders, strict=True):
            skip, x = skips.pop(), up(x)
            if self.skip == "add":
                x = dec(skip + x)
                continue
            # training: no concatenated tensor, forward or backward; inference: one convolution over the
            # concatenation (what TorchScript traces)
            x = (
                cast(ConvBlock, dec).forward_concat(skip, x)
                if torch.is_grad_enabled()
                else dec(torch.cat([skip, x], dim=1))
            )
        return self.head(x).contiguous()  # callers get the usual layout (a copy of the few output channels)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """The forward pass without gradients, holding no tensor longer than it is needed: the encoder's outputs
        (the skips) and, per block, what :meth:`ConvBlock.forward_consuming` holds. Same arithmetic as training's
        forward (written by hand: no library frees a U-Net's intermediates early)."""
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            x = cast(ConvBlock, enc).forward_consuming([x])
            skips.append(x)
            x = down(x)
        x = cast(ConvBlock, self.bottleneck).forward_consuming([x])
        for up, dec in zip(self.ups, self.decoders, strict=True):
            parts = [skips.pop(), up(x)]
            del x
            if self.skip == "add":
                parts[0] = parts[0] + parts.pop()  # a new tensor: the skip is the encoder's output, not to overwrite
            x = cast(ConvBlock, dec).forward_consuming(parts)
        return self.head(x).contiguous()

    def set_channels_last(self, enabled: bool = True) -> UNet:
        """Run in channels-last (the default, faster) or channels-first layout; the same numbers either way."""
        set_channels_last(self, enabled)
        self.channels_last = enabled
        return self

    def fused(self) -> UNet:
        """An inference copy with every batch norm folded into the convolution before it (eval statistics).

        The same function of the input as ``eval()`` up to rounding, without the normalization passes over
        the activations (measured in ``benchmarks/labelfree/bench_speed.py``). Other norms are kept as they are.
        """
        import copy

        from torch.nn.utils.fusion import fuse_conv_bn_eval

        net = copy.deepcopy(self).eval()
        for mod in net.modules():
            for c_name, n_name in (("conv1", "norm1"), ("conv2", "norm2"), ("conv", "norm")):
                conv, norm = getattr(mod, c_name, None), getattr(mod, n_name, None)
                if conv is None or norm is None:
                    continue
                planar = isinstance(conv, Planar)
                c, n = (conv.inner, norm.inner) if planar and isinstance(norm, Planar) else (conv, norm)
                if not isinstance(n, nn.BatchNorm2d | nn.BatchNorm3d):
                    continue
                transpose = isinstance(c, nn.ConvTranspose2d | nn.ConvTranspose3d)
                folded = fuse_conv_bn_eval(c, n, transpose=transpose)  # type: ignore[arg-type]
                if planar:
                    conv.inner = folded
                else:
                    setattr(mod, c_name, folded)
                setattr(mod, n_name, nn.Identity())
        return net.set_channels_last(self.channels_last)

    def activation_bytes_per_voxel(self, *, batch: int = 1, itemsize: int = 4) -> float:
        """Peak activation memory of inference per input voxel (for choosing a tile size).

        Inference (:meth:`_infer`) holds the encoder's outputs until their decoder level and, inside a block, at
        most three tensors of its width (a residual block: shortcut, first and second convolution; a plain block
        two) or, at a decoder level, the concatenation and its two inputs (four). The peak is the largest of those
        stages plus the skips held at the time, plus the input and the output (and its contiguous copy). Measured
        against the peak RSS of one forward pass (``benchmarks/labelfree/bench_speed.py`` and
        ``tests/labelfree/test_speed_paths.py``); ``itemsize`` is 2 for bf16/fp16 autocast, whose activations are
        half precision.
        """
        block = 3 if getattr(self.encoders[0], "residual", False) else 2
        stages: list[float] = []
        held = 0.0  # skips kept for the decoder, in channels per input voxel
        widths = []
        scale = 1.0
        for enc, down in zip(self.encoders, self.downs, strict=True):
            c = int(enc.conv1.out_channels) * scale  # type: ignore[union-attr,arg-type]
            stages.append(block * c + held)
            held += c
            widths.append(c)
            stride: tuple[int, int, int] = down.conv.stride  # type: ignore[union-attr,assignment]
            scale /= float(stride[0] * stride[1] * stride[2])
        stages.append(block * int(self.bottleneck.conv1.out_channels) * scale + held)  # type: ignore[union-attr,arg-type]
        for c in reversed(widths):
            held -= c
            stages.append(max(4, block) * c + held)
        ends = self.in_channels + 2 * self.out_channels * (2 if self.uncertainty else 1)
        return (max(stages) + ends) * batch * itemsize


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
        skip=config.skip,
    )
