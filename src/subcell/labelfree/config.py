"""Validated configs of ``subcell labelfree train`` and ``predict`` (one pydantic model per command)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from subcell.labelfree.network import PRESETS, NetworkConfig, preset

__all__ = ["AugmentConfig", "NucleiConfig", "PredictConfig", "PretrainConfig", "TrainConfig"]

CONFIG_VERSION = 1


PREFETCH = (
    "draw the next batch on a background thread while the step computes; the same batches and the same run "
    "either way (default: on for a CUDA device, off on a CPU, where the thread takes a core from the step)"
)


class AugmentConfig(BaseModel):
    """Augmentations, sampled per patch from the run's random stream and then applied."""

    model_config = ConfigDict(extra="forbid")

    flip_xy: bool = True
    rotate90_xy: bool = Field(True, description="quarter turns in the YX plane (only when y and x voxels agree)")
    flip_z: bool = False
    input_gain: float = Field(0.1, ge=0, le=1, description="input multiplied by 1 ± U(0, gain)")
    input_offset: float = Field(0.1, ge=0, le=2, description="input shifted by ± U(0, offset) (z-score units)")
    invert_input: bool = Field(
        False, description="negate the (z-scored) input of half the patches: bright-field contrast of a structure "
        "reverses with the side of focus and between microscopes, so a pretrained model must not rely on its sign",
    )  # fmt: skip
    # The three below are off by default (runs without them keep their random stream). They make a model trained
    # on a few real images meet what another microscope or cell line changes: the size of cells and voxels, the
    # resolution, the noise.
    scale: float = Field(
        0.0, ge=0, le=1, description="zoom each patch by a factor drawn log-uniformly in [1/(1+s), 1+s], the same "
        "along every axis the patch spans (other cell and nucleus sizes, other voxel sizes); 0 = off",
    )  # fmt: skip
    blur: float = Field(
        0.0, ge=0, le=4, description="Gaussian blur of the input with a σ drawn in U(0, blur) voxels of the model "
        "grid, along every axis the patch spans (lower NA, defocus, coarser sampling); 0 = off",
    )  # fmt: skip
    noise: float = Field(
        0.0, ge=0, le=2, description="Gaussian noise added to the (z-scored) input, its std drawn in U(0, noise); "
        "0 = off",
    )  # fmt: skip


def _check_average_from(average_from: int | float | None, last_step: int) -> None:
    """``average_from`` of a training or pretraining config: a step the run reaches, or a fraction of the run."""
    if average_from is None:
        return
    fraction = isinstance(average_from, float)
    if not (0 < average_from < 1 if fraction else average_from >= 1):
        raise ValueError(f"average_from {average_from} must be a step (an integer >= 1) or a fraction of the run in "
                         "(0, 1)")  # fmt: skip
    if not fraction and average_from > last_step:
        raise ValueError(f"average_from {average_from} is beyond the run's last step {last_step}: nothing would be "
                         "averaged")  # fmt: skip


class TrainConfig(BaseModel):
    """Everything ``subcell labelfree train`` needs; saved resolved inside the model folder.

    Examples
    --------
    >>> TrainConfig(manifest="data/manifest.csv", output="models/dna", targets=["dna"]).network.preset
    'resunet'
    """

    model_config = ConfigDict(extra="forbid")

    version: int = CONFIG_VERSION
    seed: int = 0
    manifest: Path
    output: Path
    overwrite: bool = False
    input_channel: str | None = Field(None, description="channel of `source`; default the manifest's source_channel")
    targets: list[str] | None = Field(
        None, min_length=1, description="channels of `target` to predict; default the manifest's target_channel"
    )
    binarize_targets: bool = Field(
        False, description="train on target > 0 (segmentation masks or labels as targets, e.g. nucleus masks)"
    )
    voxel_size: tuple[float, float, float] | None = Field(
        None, description="model voxel size (z, y, x) µm; images are resampled to it (default: the data's)"
    )
    network: NetworkConfig = Field(default_factory=lambda: preset("resunet"))
    init: str | None = Field(
        None,
        description="start from this model (a shipped name such as dna, or a model folder): fine-tuning; the "
        "network, voxel size and normalization come from it",
    )
    freeze_encoder: bool = Field(False, description="with init: train only the decoder (the encoder's weights stay)")
    norm_statistics: Literal["adapt", "frozen"] = Field(
        "adapt", description="with init: batch-norm running statistics follow the training images (adapt) or stay "
        "the initial model's, used as they are while training (frozen)"
    )  # fmt: skip
    interpolate_init: float | None = Field(
        None, gt=0, lt=1, description="with init: end with the weights (1 - a) × initial + a × fine-tuned for this a "
        "(WiSE-FT): keeps more of the initial model where images differ from the training ones; 0.5 is the usual a"
    )  # fmt: skip
    recompute_norm_statistics: int = Field(
        0, ge=0, le=10_000, description="after the final weights are set (the last step's, an average or a blend), "
        "recompute every batch-norm layer's running statistics from this many training batches (0: keep them as "
        "they are); averaged or blended weights otherwise carry a mix of other weights' statistics"
    )  # fmt: skip
    encoder_lr_scale: float = Field(
        1.0, ge=0, le=10, description="learning rate of the encoder relative to the decoder (layer-wise rates)"
    )
    uncertainty: bool = Field(False, description="also predict a log-variance per voxel (Gaussian NLL loss)")
    loss: Literal["mse", "bce_dice"] = Field(
        "mse", description="mse: regression of the z-scored targets (intensities); bce_dice: segmentation of masks "
        "(targets binarized at > 0, not z-scored): binary cross-entropy + soft Dice on the network's logits, and the "
        "model predicts probabilities in [0, 1]"
    )  # fmt: skip
    patch_size: tuple[int, int, int] = (32, 64, 64)
    batch_size: int = Field(8, ge=1, le=1024)
    iterations: int = Field(2000, ge=1)
    max_minutes: float | None = Field(None, gt=0, description="stop early when this much training time is spent")
    lr: float = Field(1e-3, gt=0, le=1)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    loss_mask: str | None = Field(
        None, description="manifest mask column (e.g. mask_cell): the loss only counts voxels inside the mask"
    )
    cells: str | None = Field(
        None, description="manifest mask column of cell instance labels (e.g. mask_cell) that the model also takes "
        "as input, as each voxel's depth in its cell: a model conditioned on the cell outlines, which then needs the "
        "cells to predict (`labelfree predict --cells`, `labelfree nuclei`). Fine-tuning such a model needs it"
    )  # fmt: skip
    foreground_fraction: float = Field(0.5, ge=0, le=1, description="share of patches centred on target foreground")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    val_fraction: float = Field(0.2, ge=0, lt=1, description="images held out when the manifest has no val rows")
    keep: Literal["last", "best"] = Field(
        "last",
        description="weights the model ends with: the last step's, or those of the lowest validation loss (the "
        "starting weights included, so a fine-tune that only got worse keeps its initial model); best needs "
        "validation images",
    )
    average_from: int | float | None = Field(
        None, description="end with the average of the weights of every step from this one on (stochastic weight "
        "averaging) instead of the last step's; a step (integer), or a fraction of the run in (0, 1) by steps or by "
        "max_minutes, whichever ends it first (a time budget makes a machine-dependent number of steps); a time "
        "budget that ends the run before a step keeps the last weights, with a warning"
    )  # fmt: skip
    val_patches: int = Field(8, ge=1)
    validate_every: int = Field(200, ge=1)
    checkpoint_every: int = Field(200, ge=1)
    resume: bool = Field(True, description="continue from the checkpoint in OUTPUT.checkpoint if there is one")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: torch's choice)")
    prefetch: bool | None = Field(None, description=PREFETCH)

    @field_validator("network", mode="before")
    @classmethod
    def _preset(cls, v: object) -> object:
        if isinstance(v, str):
            if v not in PRESETS:
                raise ValueError(f"unknown preset {v!r}; expected one of {sorted(PRESETS)}")
            return preset(v)
        if isinstance(v, dict) and "preset" in v and v["preset"] in PRESETS:
            return {**PRESETS[v["preset"]], **v}
        return v

    @field_validator("voxel_size")
    @classmethod
    def _vs(cls, v: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if v is not None and min(v) <= 0:
            raise ValueError(f"voxel sizes must be positive µm, got {v}")
        return v

    @field_validator("patch_size")
    @classmethod
    def _patch(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(v) < 1:
            raise ValueError(f"patch sizes must be positive, got {v}")
        return v

    @model_validator(mode="after")
    def _cross(self) -> TrainConfig:
        if self.version != CONFIG_VERSION:
            raise ValueError(f"config version {self.version} is not supported (expected {CONFIG_VERSION})")
        if self.betas[0] >= 1 or self.betas[1] >= 1 or min(self.betas) < 0:
            raise ValueError(f"betas must lie in [0, 1), got {self.betas}")
        _check_average_from(self.average_from, self.iterations)
        if self.norm_statistics == "frozen" and self.init is None:
            raise ValueError("norm_statistics: frozen needs init (a model whose statistics to keep)")
        if self.recompute_norm_statistics and self.norm_statistics == "frozen":
            raise ValueError("recompute_norm_statistics would replace the statistics norm_statistics: frozen keeps; "
                             "use one of them")  # fmt: skip
        if self.interpolate_init is not None and self.init is None:
            raise ValueError("interpolate_init needs init (a model to interpolate the fine-tuned weights with)")
        if self.loss == "bce_dice" and self.uncertainty:
            raise ValueError("loss: bce_dice predicts probabilities; uncertainty (a log-variance per voxel) goes with "
                             "loss: mse")  # fmt: skip
        if self.average_from is not None and self.keep == "best":
            raise ValueError("keep: best and average_from exclude each other (the best weights or their average)")
        return self


class PredictConfig(BaseModel):
    """Options of ``subcell labelfree predict``."""

    model_config = ConfigDict(extra="forbid")

    overlap: float = Field(0.25, ge=0.25, lt=0.9, description="overlap between neighbouring tiles (fraction)")
    tile: tuple[int, int, int] | None = Field(None, description="tile size (z, y, x); default from memory_limit")
    memory_limit_gb: float = Field(2.0, gt=0, description="budget for tiles, activations and row buffers")
    batch_size: int | None = Field(None, ge=1, description="tiles per forward pass (default from memory_limit)")
    trim: int | None = Field(
        None, ge=0, description="voxels dropped at inner tile edges (default: a quarter of the overlap)"
    )
    tta: bool = Field(False, description="average over flips in y and x (4× the compute)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    allow_resample: bool = Field(True, description="resample inputs whose voxel size differs from the model's")
    output_grid: Literal["model", "input"] = Field(
        "model", description="grid of the prediction: the model's voxel size (what the network computes), or the "
        "input's voxel size and shape (the prediction resampled back, linear and anti-aliased, row by row)"
    )  # fmt: skip
    timepoints: list[int] | None = None


class NucleiConfig(BaseModel):
    """Options of ``subcell labelfree nuclei``: nucleus instances from a prediction inside segmented cells."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field("nucleus", description="the prediction's output to use (a nucleus mask model's, or dna)")
    prior_weight: float | None = Field(
        None, ge=0, le=1, description="weight of the cell depth (1 at a cell's centre, 0 at its edge) against the "
        "prediction, both z-scored inside the cells: 0 the prediction alone, 1 the cell outlines alone; default 0.5, "
        "or 0 for a model that takes the cell outlines as input (it has used them already)"
    )  # fmt: skip
    share: float | None = Field(
        None, gt=0, lt=1, description="the nucleus share of each cell's volume (e.g. measured on training stacks): "
        "each cell's highest-scoring share; default Otsu's threshold over all cell voxels"
    )  # fmt: skip


PRETRAIN_TARGETS = ("dna", "membrane", "nuclear_envelope", "nucleus")


class PretrainConfig(BaseModel):
    """Everything ``subcell labelfree pretrain`` needs: a model trained on a stream of new synthetic fields.

    Every ``fields_every`` steps a new field is generated (seed ``(seed, k)``, never the same field twice) with
    its optics, camera, cells and refractive indices drawn by the domain randomization; batches mix the
    ``pool`` most recent fields. Targets are structure names of the generator (their noise-free fluorescence)
    or ``nucleus`` / ``cell`` (the ground-truth masks).
    """

    model_config = ConfigDict(extra="forbid")

    version: int = CONFIG_VERSION
    seed: int = 0
    output: Path
    overwrite: bool = False
    targets: list[str] = Field(default_factory=lambda: list(PRETRAIN_TARGETS), min_length=1)
    two_d: bool = Field(False, description="a 2D model trained on single planes (for 2D bright-field images)")
    cells: bool = Field(
        False, description="condition the model on the cell outlines: a second input, each voxel's depth in its "
        "generated cell (the model then needs the user's cell labels to predict)"
    )  # fmt: skip
    drop_cells: float = Field(
        0.3, ge=0, lt=1, description="with cells: share of the generated cells left out of that input (users' "
        "segmentations label some cells of a field, not all)"
    )  # fmt: skip
    voxel_size: tuple[float, float, float] = Field(
        (0.29, 0.29, 0.29), description="model voxel size (z, y, x) µm; fields are resampled to it"
    )
    field_um: tuple[float, float, float] = Field((14.0, 40.0, 40.0), description="physical size of each field")
    randomization: dict[str, bool] = Field(
        default_factory=dict, description="factors to switch off, e.g. {haze: false} (see subcell.synth.randomize)"
    )
    fields_every: int = Field(4, ge=1, description="steps between two new fields")
    pool: int = Field(6, ge=1, description="recent fields that batches are drawn from")
    val_fields: int = Field(2, ge=1)
    field_workers: int = Field(
        0, ge=0, le=256, description="processes that generate the coming fields while the network trains (0: made "
        "in the training process when first needed); the fields, and so the run, are the same either way"
    )  # fmt: skip
    network: NetworkConfig = Field(default_factory=lambda: preset("resunet"))
    patch_size: tuple[int, int, int] = (32, 64, 64)
    batch_size: int = Field(8, ge=1, le=1024)
    iterations: int = Field(4000, ge=1)
    max_minutes: float | None = Field(None, gt=0)
    stop_at: int | None = Field(
        None, ge=1, description="end at this step (validated, saved) with the learning-rate schedule still over "
        "`iterations`: reproduces, step for step, a run that a time budget ended there"
    )  # fmt: skip
    lr: float = Field(2e-3, gt=0, le=1)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    average_from: int | float | None = Field(
        None, description="end with the average of the weights of every step from this one on (stochastic weight "
        "averaging) instead of the last step's; a step (integer), or a fraction of the run in (0, 1)"
    )  # fmt: skip
    foreground_fraction: float = Field(0.7, ge=0, le=1)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    val_patches: int = Field(16, ge=1)
    validate_every: int = Field(200, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    resume: bool = True
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    threads: int | None = Field(None, ge=1)
    prefetch: bool | None = Field(None, description=PREFETCH)

    _net = field_validator("network", mode="before")(TrainConfig._preset.__func__)  # type: ignore[attr-defined]

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        from subcell.synth.config import STRUCTURES

        known = {*STRUCTURES, "nucleus", "cell"}
        bad = [t for t in v if t not in known]
        if bad:
            raise ValueError(f"unknown pretraining target(s) {bad}; expected some of {sorted(known)}")
        return v

    @model_validator(mode="after")
    def _stop(self) -> PretrainConfig:
        if self.stop_at is not None and self.stop_at > self.iterations:
            raise ValueError(f"stop_at {self.stop_at} is beyond iterations {self.iterations}")
        _check_average_from(self.average_from, self.stop_at or self.iterations)
        if self.cells and self.two_d:
            # a field's depth is measured in 3D; a single plane's cells would give another depth at prediction
            raise ValueError("cells: true is for 3D models; a 2D model cannot be conditioned on the cell outlines")
        return self

    @field_validator("randomization")
    @classmethod
    def _factors(cls, v: dict[str, bool]) -> dict[str, bool]:
        from subcell.synth.randomize import FACTORS

        bad = sorted(set(v) - set(FACTORS))
        if bad:
            raise ValueError(f"unknown randomization factor(s) {bad}; expected some of {list(FACTORS)}")
        return v
