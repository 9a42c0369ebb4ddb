"""Label-free prediction: bright-field (transmitted light) → fluorescence of subcellular structures.

``train_labelfree`` (manifest + :class:`TrainConfig` → model folder), :class:`LabelFreeModel` (load/save),
``predict_image`` / ``predict_to_zarr`` (tiled, any size, bounded memory) and ``evaluate_prediction``
(Pearson r against the noise ceiling, SSIM, PSNR, NRMSE). Needs torch (the ``dl`` extra).
"""

from __future__ import annotations

from subcell.labelfree.config import PredictConfig, TrainConfig
from subcell.labelfree.evaluate import evaluate_prediction
from subcell.labelfree.model import LabelFreeModel
from subcell.labelfree.network import PRESETS, NetworkConfig, UNet, build_network, preset
from subcell.labelfree.predict import predict_image, predict_to_zarr
from subcell.labelfree.train import train_labelfree

__all__ = [
    "PRESETS",
    "LabelFreeModel",
    "NetworkConfig",
    "PredictConfig",
    "TrainConfig",
    "UNet",
    "build_network",
    "evaluate_prediction",
    "predict_image",
    "predict_to_zarr",
    "preset",
    "train_labelfree",
]
