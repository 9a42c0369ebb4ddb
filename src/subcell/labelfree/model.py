"""A trained label-free model: the network plus everything needed to use it (channels, voxel size,
normalization), saved as a model folder (safetensors + JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from subcell.errors import InputFileError
from subcell.image import VoxelSize
from subcell.labelfree.network import NetworkConfig, UNet, build_network
from subcell.train.artifact import load_artifact, save_artifact

__all__ = ["KIND", "LabelFreeModel"]

KIND = "labelfree"


@dataclass
class LabelFreeModel:
    """Network + metadata. ``targets`` name the output channels, ``input_channel`` the expected input."""

    network: UNet
    network_config: NetworkConfig
    input_channel: str
    targets: list[str]
    voxel_size: VoxelSize
    uncertainty: bool = False
    patch_size: tuple[int, int, int] = (32, 64, 64)
    normalization: dict[str, Any] = field(
        default_factory=lambda: {"input": "zscore_per_image", "target": "zscore_per_image"}
    )
    training: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        network_config: NetworkConfig,
        *,
        input_channel: str,
        targets: list[str],
        voxel_size: VoxelSize,
        uncertainty: bool = False,
        patch_size: tuple[int, int, int] = (32, 64, 64),
    ) -> LabelFreeModel:
        net = build_network(network_config, in_channels=1, out_channels=len(targets), uncertainty=uncertainty)
        return cls(net, network_config, input_channel, list(targets), voxel_size, uncertainty, patch_size)

    @property
    def divisor(self) -> tuple[int, int, int]:
        """Tile sizes must be multiples of this (z, y, x)."""
        return self.network_config.divisor()

    @property
    def is_2d(self) -> bool:
        return self.network_config.z_levels == 0

    def metadata(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "network": self.network_config.model_dump(mode="json"),
            "input_channels": [self.input_channel],
            "targets": self.targets,
            "voxel_size_um": list(self.voxel_size.as_tuple()),
            "uncertainty": self.uncertainty,
            "patch_size": list(self.patch_size),
            "normalization": self.normalization,
            "training": self.training,
            "config": self.config,
            "parameters": sum(p.numel() for p in self.network.parameters()),
        }

    def save(self, folder: str | Path, *, overwrite: bool = False, extra_files: dict[str, bytes] | None = None) -> Path:
        """Write the model folder (atomic)."""
        return save_artifact(
            folder, self.network.state_dict(), self.metadata(), extra_files=extra_files, overwrite=overwrite
        )

    @classmethod
    def load(cls, folder: str | Path, *, device: str | torch.device = "cpu") -> LabelFreeModel:
        """Load a model folder (never unpickles); errors name the file and the problem."""
        state, meta = load_artifact(folder, kind=KIND)
        meta_path = Path(folder) / "model.json"
        try:
            net_cfg = NetworkConfig.model_validate(meta["network"])
            targets = [str(t) for t in meta["targets"]]
            model = cls.create(
                net_cfg,
                input_channel=str(meta["input_channels"][0]),
                targets=targets,
                voxel_size=VoxelSize(*meta["voxel_size_um"]),
                uncertainty=bool(meta.get("uncertainty", False)),
                patch_size=tuple(meta.get("patch_size", (32, 64, 64))),  # type: ignore[arg-type]
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InputFileError(f"model.json is missing or has an invalid entry ({exc})", path=meta_path) from None
        try:
            model.network.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise InputFileError(f"weights do not match the network in model.json ({first})", path=folder) from None
        model.normalization = dict(meta.get("normalization", model.normalization))
        model.training = dict(meta.get("training", {}))
        model.config = dict(meta.get("config", {}))
        model.network.to(device).eval()
        return model
