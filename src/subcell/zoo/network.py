"""The network a bioimage.io package of a label-free model carries: subcell's U-Net plus what prediction does
after it, so a package's outputs are the folder model's outputs.

Described for the ``pytorch_state_dict`` weight format as ``subcell.zoo.network.PackagedUNet`` with keyword
arguments (an architecture any bioimage.io runner can build where subcell is installed), and traced for
``torchscript`` (which needs nothing but torch).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from subcell.labelfree.model import with_std
from subcell.labelfree.network import NetworkConfig, UNet, build_network

__all__ = ["PackagedUNet"]


class PackagedUNet(nn.Module):
    """``(B, 1, Z, Y, X)`` z-scored bright-field → ``(B, C, Z, Y, X)`` predictions.

    For an uncertainty model the second half of the channels is the predicted standard deviation
    (``exp(½ log σ²)``), as ``subcell labelfree predict`` writes it.
    """

    def __init__(self, network: dict[str, Any], out_channels: int, uncertainty: bool = False) -> None:
        super().__init__()
        self.net: UNet = build_network(
            NetworkConfig.model_validate(network), in_channels=1, out_channels=out_channels, uncertainty=uncertainty
        )
        self.n_targets = int(out_channels)
        self.uncertainty = bool(uncertainty)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x).float()
        return with_std(y, self.n_targets) if self.uncertainty else y
