"""The integrated cell: a reference β-VAE of cell + nucleus and a conditional β-VAE of where each structure sits
given that reference (Johnson et al. 2017; Donovan-Maiye et al. 2022), trained on cell stores."""

from __future__ import annotations

from subcell.integrated.config import ModelPart, TrainConfig
from subcell.integrated.data import CellData, load_cells, split_cells
from subcell.integrated.evaluate import Evaluation, evaluate_model
from subcell.integrated.model import IntegratedModel
from subcell.integrated.network import VAEConfig
from subcell.integrated.objective import BetaSchedule, beta_at
from subcell.integrated.train import TrainResult, train_integrated
from subcell.integrated.uses import encode, latent_walk, predict_unobserved, sample_reference, sample_structure

__all__ = [
    "BetaSchedule",
    "CellData",
    "Evaluation",
    "IntegratedModel",
    "ModelPart",
    "TrainConfig",
    "TrainResult",
    "VAEConfig",
    "beta_at",
    "encode",
    "evaluate_model",
    "latent_walk",
    "load_cells",
    "predict_unobserved",
    "sample_reference",
    "sample_structure",
    "split_cells",
    "train_integrated",
]
