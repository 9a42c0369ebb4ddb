"""The one validated config of ``subcell state``: which column, which features, which classifier."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["StateConfig"]


class StateConfig(BaseModel):
    """Cell-state classification from a cell store's table column (e.g. mitotic stage, cell-cycle phase).

    Features: the store's shape columns (volume, surface, sphericity, principal axes of cell and nucleus),
    rotation-invariant spherical-harmonic energy per degree of both shapes, and per channel the intensity
    statistics and texture inside the cell and inside the nucleus. Classifiers: ``gradient_boosting`` (the
    default, chosen by grouped cross-validation on real mitotic cells: benchmarks/state) or ``logistic``.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    column: str = Field("state", min_length=1, description="table column holding the state of each cell")
    classifier: Literal["logistic", "gradient_boosting"] = "gradient_boosting"
    regularization: float = Field(0.3, gt=0, le=1000, description="inverse L2 strength C of the logistic model")
    sh_lmax: int = Field(8, ge=0, le=16, description="spherical-harmonic degree of the shape energy features")
    channels: list[str] | None = Field(None, description="image channels with intensity features (default: all)")
    groups: str | None = Field(None, description="cross-validation keeps each value of this column in one fold")
    folds: int = Field(6, ge=2, le=50, description="cross-validation folds (groups: at most one per group value)")
    seed: int = Field(0, ge=0)
