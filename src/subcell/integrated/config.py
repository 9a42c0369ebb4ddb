"""Validated config of ``subcell integrated train`` (one pydantic model; saved resolved in the model folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from subcell.integrated.network import VAEConfig
from subcell.integrated.objective import BetaSchedule

__all__ = ["ModelPart", "TrainConfig"]

CONFIG_VERSION = 1


class ModelPart(BaseModel):
    """Architecture, β schedule and iteration budget of one of the two models."""

    model_config = ConfigDict(extra="forbid")

    network: VAEConfig = Field(default_factory=VAEConfig)
    beta: BetaSchedule = Field(default_factory=BetaSchedule)
    iterations: int = Field(2000, ge=1)
    max_minutes: float | None = Field(None, gt=0)
    lr: float = Field(5e-4, gt=0, le=1)


class TrainConfig(BaseModel):
    """Everything ``subcell integrated train`` needs.

    ``structures``: channels of the cell store to model as structures. The channel named ``structure`` is
    special: it holds a different structure in each cell, named by the table's ``structure`` column (Allen
    data: one tagged structure per cell line). Other channel names are the structure's name.
    """

    model_config = ConfigDict(extra="forbid")

    version: int = CONFIG_VERSION
    seed: int = 0
    cells: list[Path] = Field(min_length=1, description="cell stores made by `subcell cells extract`")
    output: Path
    overwrite: bool = False
    reference_channels: list[str] = Field(default_factory=lambda: ["cell_mask", "nucleus_mask"], min_length=1)
    structures: list[str] = Field(min_length=1)
    include_flagged: bool = Field(True, description="also train on cells flagged as touching the field border")
    reference: ModelPart = Field(default_factory=ModelPart)
    conditional: ModelPart = Field(default_factory=ModelPart)
    batch_size: int = Field(8, ge=1, le=1024)
    val_fraction: float = Field(0.15, ge=0, lt=1, description="cells held out for validation-ELBO selection")
    test_fraction: float = Field(0.15, ge=0, lt=1, description="cells held out for `integrated evaluate`")
    validate_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(200, ge=1)
    resume: bool = True
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    threads: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _cross(self) -> TrainConfig:
        if self.version != CONFIG_VERSION:
            raise ValueError(f"config version {self.version} is not supported (expected {CONFIG_VERSION})")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave cells to train on (< 0.9)")
        clash = set(self.reference_channels) & set(self.structures)
        if clash:
            raise ValueError(f"channels {sorted(clash)} are both reference and structure")
        return self
