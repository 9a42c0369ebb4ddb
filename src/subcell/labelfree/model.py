"""A trained label-free model: the network plus everything needed to use it (channels, voxel size,
normalization), saved as a model folder (safetensors + JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from subcell.errors import InputFileError
from subcell.image import VoxelSize
from subcell.labelfree.network import NetworkConfig, UNet, build_network
from subcell.train.artifact import load_artifact, save_artifact

__all__ = ["CELL_DEPTH", "KIND", "PROBABILITY", "LabelFreeModel", "takes_cell_depth", "with_std"]

# ``normalization["target"]`` of a model trained with a segmentation loss: its network's outputs are logits, and
# what it predicts is their sigmoid (a probability per voxel)
PROBABILITY = "probability"

KIND = "labelfree"

# the name of the second input of a model conditioned on the cell outlines: each voxel's depth in its cell
# (:func:`subcell.labelfree.cell_prior.cell_depth`: 1 at a cell's centre, towards 0 at its edge, 0 outside the cells)
CELL_DEPTH = "cell_depth"


def with_std(y: torch.Tensor, n_targets: int) -> torch.Tensor:
    """An uncertainty network's raw output (targets, then log σ² per target) as predictions: the targets, then
    σ = exp(½ log σ²) (log σ² clamped to ±20)."""
    return torch.cat([y[:, :n_targets], torch.exp(0.5 * y[:, n_targets:].clamp(-20.0, 20.0))], dim=1)


def takes_cell_depth(input_channels: Any) -> bool:
    """Whether a model with these ``input_channels`` (its ``model.json``) takes :data:`CELL_DEPTH` as a second
    input: one image channel, optionally then the cell depth; anything else is a ``ValueError``."""
    inputs = [str(c) for c in input_channels] if isinstance(input_channels, list) else []
    if not inputs or inputs[1:] not in ([], [CELL_DEPTH]):
        raise ValueError(f"input_channels {input_channels!r}: expected one image channel, optionally then "
                         f"{CELL_DEPTH!r}")  # fmt: skip
    return inputs[1:] == [CELL_DEPTH]


@dataclass
class LabelFreeModel:
    """Network + metadata. ``targets`` name the output channels, ``input_channel`` the expected input;
    ``cell_conditioned``: the network also takes :data:`CELL_DEPTH` of the user's cell labels as a second input."""

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
    measured_halo: tuple[int, int, int] | None = field(default=None, repr=False)
    cell_conditioned: bool = False

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
        cell_conditioned: bool = False,
    ) -> LabelFreeModel:
        net = build_network(network_config, in_channels=1 + cell_conditioned, out_channels=len(targets),
                            uncertainty=uncertainty)  # fmt: skip
        return cls(net, network_config, input_channel, list(targets), voxel_size, uncertainty, patch_size,
                   cell_conditioned=cell_conditioned)  # fmt: skip

    @property
    def input_channels(self) -> list[str]:
        """What the network's input channels are: the image channel, then :data:`CELL_DEPTH` when conditioned."""
        return [self.input_channel, *([CELL_DEPTH] if self.cell_conditioned else [])]

    @property
    def divisor(self) -> tuple[int, int, int]:
        """Tile sizes must be multiples of this (z, y, x)."""
        return self.network_config.divisor()

    # -- what the tiled predictor asks of a model (a bioimage.io package answers the same questions) ------------
    @property
    def halo(self) -> tuple[int, int, int]:
        """Output voxels from a tile edge that differ (by more than :data:`subcell.labelfree.halo.TOLERANCE`)
        from a whole-volume pass: the trim tiled prediction needs. Measured on the weights
        (:func:`subcell.labelfree.halo.edge_reach`) once, stored in the model folder when saved."""
        if self.measured_halo is None:
            from subcell.labelfree.halo import edge_reach

            self.measured_halo = edge_reach(self.network, self.patch_size, self.divisor,
                                            in_channels=len(self.input_channels))  # fmt: skip
        return self.measured_halo

    percentiles: tuple[float, ...] = ()  # input percentiles preprocessing needs (z-scoring needs none)
    voxel_size_known = True

    @property
    def tile_rule(self) -> str:
        return f"a multiple of {self.divisor}"

    def valid_tile(self, tile: tuple[int, ...]) -> tuple[int, int, int]:
        """The smallest tile this network accepts at or above ``tile``: multiples of the divisor, per axis."""
        return tuple(max(d, -(-t // d) * d) for t, d in zip(tile, self.divisor, strict=True))  # type: ignore[return-value]

    def preprocess(self, rows: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
        """Input rows z-scored with the whole stack's mean and standard deviation (in place)."""
        rows -= np.float32(stats["mean"])
        rows /= np.float32(stats["std"] or 1.0)
        return rows

    @property
    def predicts_probability(self) -> bool:
        """Trained with a segmentation loss (``loss: bce_dice``): the outputs are probabilities."""
        return self.normalization.get("target") == PROBABILITY

    def postprocess(self, rows: np.ndarray) -> np.ndarray:
        """Point-wise, after the tiles are blended: the sigmoid of a probability model's logits."""
        if self.predicts_probability:
            from scipy.special import expit

            return expit(rows).astype(np.float32, copy=False)
        return rows

    @property
    def is_2d(self) -> bool:
        """A model of single planes (trained on patches one plane deep), not merely one whose levels are all
        in-plane (a strongly anisotropic 3D model has z_levels 0 too)."""
        return self.patch_size[0] == 1

    def select(self, targets: list[str]) -> LabelFreeModel:
        """The same model predicting only ``targets`` (a subset, in any order): the 1×1×1 output layer is sliced,
        so the predictions are exactly those of the full model's channels."""
        missing = [t for t in targets if t not in self.targets]
        if missing:
            raise ValueError(f"model predicts {self.targets}; it has no {missing}")
        import copy

        idx = [self.targets.index(t) for t in targets]
        if self.uncertainty:
            idx += [len(self.targets) + i for i in idx]
        net = copy.deepcopy(self.network)
        conv = net.head.inner
        assert isinstance(conv, torch.nn.Conv2d) and conv.bias is not None
        new = torch.nn.Conv2d(conv.in_channels, len(idx), 1).to(conv.weight.device)
        with torch.no_grad():
            new.weight.copy_(conv.weight[idx])
            new.bias.copy_(conv.bias[idx])  # type: ignore[union-attr]
        net.head.inner = new
        net.out_channels = len(targets)
        training = dict(self.training)
        for key in ("target_mean", "target_std"):
            if key in training and len(training[key]) == len(self.targets):
                training[key] = [training[key][i] for i in idx[: len(targets)]]
        return LabelFreeModel(
            net, self.network_config, self.input_channel, list(targets), self.voxel_size, self.uncertainty,
            self.patch_size, dict(self.normalization), training, dict(self.config), self.measured_halo,
            self.cell_conditioned,
        )  # fmt: skip

    def metadata(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "network": self.network_config.model_dump(mode="json"),
            "input_channels": self.input_channels,
            "targets": self.targets,
            "voxel_size_um": list(self.voxel_size.as_tuple()),
            "uncertainty": self.uncertainty,
            "patch_size": list(self.patch_size),
            "halo": list(self.halo),
            "normalization": self.normalization,
            "training": self.training,
            "config": self.config,
            "parameters": sum(p.numel() for p in self.network.parameters()),
        }

    def save(
        self,
        folder: str | Path,
        *,
        overwrite: bool = False,
        extra_files: dict[str, bytes] | None = None,
        half: bool = False,
    ) -> Path:
        """Write the model folder (atomic). ``half`` stores float weights as float16 (half the size; shipped
        models), loaded back into float32 parameters."""
        state = self.network.state_dict()
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        return save_artifact(folder, state, self.metadata(), extra_files=extra_files, overwrite=overwrite)

    @classmethod
    def load(cls, folder: str | Path, *, device: str | torch.device = "cpu") -> LabelFreeModel:
        """Load a model folder (never unpickles); errors name the file and the problem."""
        state, meta = load_artifact(folder, kind=KIND)
        meta_path = Path(folder) / "model.json"
        try:
            net_cfg = NetworkConfig.model_validate(meta["network"])
            targets = [str(t) for t in meta["targets"]]
            conditioned = takes_cell_depth(meta["input_channels"])
            model = cls.create(
                net_cfg,
                input_channel=str(meta["input_channels"][0]),
                targets=targets,
                voxel_size=VoxelSize(*meta["voxel_size_um"]),
                uncertainty=bool(meta.get("uncertainty", False)),
                patch_size=tuple(meta.get("patch_size", (32, 64, 64))),  # type: ignore[arg-type]
                cell_conditioned=conditioned,
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
        if "halo" in meta:  # models saved before it was measured get it measured when first tiled
            halo = meta["halo"]
            if not (isinstance(halo, list) and len(halo) == 3 and all(isinstance(h, int) and h >= 0 for h in halo)):
                raise InputFileError(f"model.json: halo must be three voxel counts >= 0, got {halo!r}", path=meta_path)
            model.measured_halo = (halo[0], halo[1], halo[2])
        model.network.to(device).eval()
        return model
