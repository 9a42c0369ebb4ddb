"""What the tiled predictor asks of a model (:class:`Predictor`) and the row callables it reads and writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from subcell.image import VoxelSize

__all__ = ["Predictor", "RowSink", "RowSource", "output_channel_names"]


class Predictor(Protocol):
    """What the tiled predictor asks of a model: :class:`~subcell.labelfree.LabelFreeModel` and a bioimage.io
    package (:class:`~subcell.zoo.package.PackagedModel`) both answer it."""

    network: Any  # .to(), .eval(), .fused(), .activation_bytes_per_voxel()
    input_channel: str
    targets: list[str]
    voxel_size: VoxelSize
    uncertainty: bool
    percentiles: Any
    voxel_size_known: bool
    cell_conditioned: bool  # takes the cell labels' depth as a second input (predict_input.cell_depth_input)

    @property
    def halo(self) -> tuple[int, int, int]: ...  # output voxels unreliable at tile edges
    @property
    def divisor(self) -> tuple[int, int, int]: ...
    @property
    def patch_size(self) -> tuple[int, int, int]: ...
    @property
    def is_2d(self) -> bool: ...
    @property
    def tile_rule(self) -> str: ...
    def valid_tile(self, tile: tuple[int, ...]) -> tuple[int, int, int]: ...
    def preprocess(self, rows: np.ndarray, stats: dict[str, Any]) -> np.ndarray: ...
    def postprocess(self, rows: np.ndarray) -> np.ndarray: ...


# (z0, z1[, ys, xs]) → normalised input rows (C_in, z1 - z0, Y, X), or their (ys, xs) part
RowSource = Callable[..., np.ndarray]
RowSink = Callable[..., None]  # (z0, rows (C_out, n, Y, X)[, y0: a band of rows starting at row y0])


def output_channel_names(model: Predictor) -> list[str]:
    """Prediction channels: one per target, plus ``<target>_std`` per target for uncertainty models."""
    names = list(model.targets)
    if model.uncertainty:
        names += [f"{t}_std" for t in model.targets]
    return names
