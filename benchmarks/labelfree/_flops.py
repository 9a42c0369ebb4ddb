"""Convolution FLOP counting shared by the label-free benchmarks."""

from __future__ import annotations

import warnings

import numpy as np
import torch


def conv_flops(net: torch.nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds ×2 of every (transposed) convolution in one forward pass of ``net`` on ``x``."""
    total = [0.0]
    kinds = (torch.nn.Conv3d, torch.nn.ConvTranspose3d, torch.nn.Conv2d, torch.nn.ConvTranspose2d)

    def hook(mod: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        k = float(np.prod(mod.kernel_size))  # type: ignore[arg-type]
        if isinstance(mod, torch.nn.ConvTranspose3d | torch.nn.ConvTranspose2d):
            total[0] += 2 * inp[0].numel() * mod.out_channels * k
        else:
            total[0] += 2 * out.numel() * mod.in_channels * k

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, kinds)]
    # oneDNN off: inference then calls every convolution module (the fused convolution + ReLU kernels of
    # subcell.train.blocks.conv_relu call the operator directly, past the hooks); the same convolutions either way
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # mkldnn.flags' note on Intel-GPU TF32
        with torch.inference_mode(), torch.backends.mkldnn.flags(enabled=False):
            net(x)
    for h in hs:
        h.remove()
    return total[0]
