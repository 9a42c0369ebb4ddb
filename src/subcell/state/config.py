"""The one validated config of ``subcell state``: which column, which features, which classifier."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CNNConfig", "StateConfig"]


class CNNConfig(BaseModel):
    """The crop CNN (``classifier: cnn``): trained through the shared engine on the store's crops."""

    model_config = ConfigDict(extra="forbid")

    two_d: bool = Field(False, description="classify maximum projections along z (2D crops) instead of 3D crops")
    iterations: int = Field(400, ge=1, description="optimizer steps (class-balanced batches)")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    base_channels: int = Field(16, ge=2, le=256)
    depth: int = Field(3, ge=1, le=6, description="conv blocks, each halving the crop")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    max_minutes: float | None = Field(None, gt=0, description="time budget of one training (stops early)")
    checkpoint_every: int = Field(100, ge=1, description="final model only: checkpoint beside the model folder")
    resume: bool = Field(True, description="continue an interrupted training of the final model from its checkpoint")


class StateConfig(BaseModel):
    """Cell-state classification from a cell store's table column (e.g. mitotic stage, cell-cycle phase).

    Features: the store's shape columns (volume, surface, sphericity, principal axes of cell and nucleus),
    rotation-invariant spherical-harmonic energy per degree of both shapes, and per channel the intensity
    statistics and texture inside the cell and inside the nucleus. Classifiers: ``gradient_boosting`` (the
    default, chosen by grouped cross-validation on real mitotic cells: benchmarks/state), ``logistic``, or
    ``cnn``: a small CNN on the crops themselves (3D, or 2D projections), settings under ``cnn``.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    column: str = Field("state", min_length=1, description="table column holding the state of each cell")
    classifier: Literal["logistic", "gradient_boosting", "cnn"] = "gradient_boosting"
    regularization: float = Field(0.3, gt=0, le=1000, description="inverse L2 strength C of the logistic model")
    sh_lmax: int = Field(8, ge=0, le=16, description="spherical-harmonic degree of the shape energy features")
    channels: list[str] | None = Field(None, description="image channels with intensity features (default: all)")
    groups: str | None = Field(None, description="cross-validation keeps each value of this column in one fold")
    folds: int = Field(6, ge=2, le=50, description="cross-validation folds (groups: at most one per group value)")
    seed: int = Field(0, ge=0)
    cnn: CNNConfig = CNNConfig()
