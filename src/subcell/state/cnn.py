"""A small CNN that classifies cell states from the crops of a cell store, in 3D or on 2D max projections,
trained through the shared engine (:func:`subcell.train.loop.fit`: checkpoints with exact resume, bf16 autocast,
DDP under torchrun) and saved as a safetensors model folder.

It plugs into the same cross-validation as the feature models: :class:`CNNClassifier` is a scikit-learn-style
estimator whose ``x`` is the row index of each cell in an in-memory :class:`Crops` array, so folds, scores and
the confusion matrix are computed by one implementation for every kind of model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from subcell.train.blocks import ConvBlock

__all__ = ["KIND", "CNNClassifier", "CNNStateModel", "Crops", "StateCNN", "load_crops"]

KIND = "state-cnn"


@dataclass
class Crops:
    """Normalised crops of the labelled cells, ``(N, C, Z, Y, X)`` float32 (``Z = 1`` for 2D projections)."""

    data: np.ndarray
    channels: list[str]
    two_d: bool


def load_crops(store: Any, rows: Any, channels: list[str] | None, *, two_d: bool) -> Crops:
    """The crops of ``rows`` (table rows with ``crop_index``), intensities mapped inside each cell as the
    integrated cell maps them (5th → 99.9th percentile → 0 → 1), masks kept; 2D: maximum projection along z."""
    from subcell.integrated.data import normalize_crop

    names = channels or list(store.channel_names)
    idx = [store.channel_index(c) for c in names]
    cell_c = store.channel_index("cell_mask") if "cell_mask" in store.channel_names else None
    out = []
    for ci in rows["crop_index"].to_numpy():
        crop = store.crop(int(ci))
        cell = crop[cell_c] if cell_c is not None else np.ones(crop.shape[1:], np.float32)
        norm = normalize_crop(crop[idx], names, cell)
        out.append(norm.max(axis=1, keepdims=True) if two_d else norm)
    return Crops(np.stack(out).astype(np.float32), names, two_d)


class StateCNN(nn.Module):
    """``depth`` conv blocks (3×3×3, or 1×3×3 for 2D inputs folded into 2D convolutions), each followed by 2×
    pooling, global average pooling, dropout and a linear layer to the class logits."""

    def __init__(self, in_channels: int, n_classes: int, *, base_channels: int = 16, depth: int = 3,
                 two_d: bool = False, dropout: float = 0.2) -> None:  # fmt: skip
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = in_channels
        for i in range(depth):
            c = base_channels * 2**i
            blocks += [ConvBlock(c_in, c, iso=not two_d, norm="batch", residual=False),
                       nn.MaxPool3d((1, 2, 2) if two_d else 2, ceil_mode=True)]  # fmt: skip
            c_in = c
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random 90° rotations and flips in the plane (cells have no preferred in-plane orientation), and z flips
    for 3D crops."""
    out = np.empty_like(batch)
    for i, x in enumerate(batch):
        x = np.rot90(x, k=int(rng.integers(4)), axes=(-2, -1))
        if rng.random() < 0.5:
            x = x[..., ::-1]
        if x.shape[1] > 1 and rng.random() < 0.5:
            x = x[:, ::-1]
        out[i] = x
    return out


@dataclass
class CNNStateModel:
    network: StateCNN
    classes: list[str]
    channels: list[str]
    two_d: bool
    box: tuple[int, ...]
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    kind: str = "cnn"

    @torch.no_grad()
    def predict_proba(self, crops: Crops, *, batch: int = 32) -> np.ndarray:
        """(N, K) class probabilities; the crops must have the model's channels and 2D/3D form."""
        from subcell.errors import ValueRangeError

        if crops.channels != self.channels or crops.two_d != self.two_d:
            raise ValueRangeError(f"crops have channels {crops.channels} (2D {crops.two_d}); the model was trained on "
                                  f"{self.channels} (2D {self.two_d})", field="channels")  # fmt: skip
        self.network.eval()
        dev = next(self.network.parameters()).device
        out = [torch.softmax(self.network(torch.from_numpy(crops.data[i : i + batch]).to(dev)).float(), dim=1)
               for i in range(0, len(crops.data), batch)]  # fmt: skip
        return torch.cat(out).cpu().numpy().astype(np.float64)

    def predict(self, crops: Crops) -> np.ndarray:
        return np.asarray(self.classes)[self.predict_proba(crops).argmax(axis=1)]

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        from subcell.train.artifact import save_artifact

        meta = {"kind": KIND, "classes": self.classes, "channels": self.channels, "two_d": self.two_d,
                "box": list(self.box), "config": self.config, "metrics": self.metrics, "training": self.training}  # fmt: skip
        return save_artifact(folder, self.network.state_dict(), meta, overwrite=overwrite)

    @classmethod
    def load(cls, folder: str | Path) -> CNNStateModel:
        from subcell.errors import InputFileError
        from subcell.state.config import CNNConfig
        from subcell.train.artifact import load_artifact

        state, meta = load_artifact(folder, kind=KIND)
        try:
            cnn = CNNConfig.model_validate(meta["config"].get("cnn", {}))
            net = StateCNN(len(meta["channels"]), len(meta["classes"]), base_channels=cnn.base_channels,
                           depth=cnn.depth, two_d=bool(meta["two_d"]))  # fmt: skip
            net.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise InputFileError(f"unreadable state CNN ({str(exc).splitlines()[0]})", path=folder) from None
        return cls(net.eval(), list(meta["classes"]), list(meta["channels"]), bool(meta["two_d"]),
                   tuple(meta["box"]), dict(meta["config"]), dict(meta.get("metrics", {})),
                   dict(meta.get("training", {})))  # fmt: skip


class CNNClassifier:
    """scikit-learn-style estimator over :class:`Crops`: ``fit(x, y)`` with ``x[:, 0]`` the row of each cell."""

    def __init__(self, config: Any, crops: Crops, *, checkpoint: Path | None = None, on_message: Any = None) -> None:
        self.config = config
        self.crops = crops
        self.checkpoint = checkpoint
        self.on_message = on_message
        self.model: CNNStateModel | None = None
        self.history: Any = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> CNNClassifier:
        from subcell.train.loop import fit
        from subcell.train.precision import autocast_dtype
        from subcell.train.run import start_run

        cnn = self.config.cnn
        rows = np.asarray(x)[:, 0].astype(np.int64)
        classes = sorted(np.unique(y).tolist())
        target = np.searchsorted(classes, y)
        # device, DDP group (under torchrun) and seeds; the caller has checked the model folder already
        setup = start_run(self.checkpoint or Path("."), overwrite=True, threads=None, device=cnn.device,
                          seed=self.config.seed, on_message=self.on_message)  # fmt: skip
        torch.manual_seed(self.config.seed)
        data = self.crops.data
        net = StateCNN(data.shape[1], len(classes), base_channels=cnn.base_channels, depth=cnn.depth,
                       two_d=self.crops.two_d).to(setup.device)  # fmt: skip
        # classes are balanced by sampling: every batch draws classes uniformly, then a cell of that class
        by_class = [np.flatnonzero(target == k) for k in range(len(classes))]

        def sample_batch(rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
            ks = rng.integers(len(classes), size=cnn.batch_size)
            pick = np.array([by_class[k][rng.integers(len(by_class[k]))] for k in ks])
            xb = _augment(data[rows[pick]], rng)
            return torch.from_numpy(np.ascontiguousarray(xb)), torch.from_numpy(ks.astype(np.int64))

        opt = torch.optim.AdamW(net.parameters(), lr=cnn.lr, weight_decay=1e-4)
        loss = nn.CrossEntropyLoss(label_smoothing=0.05)
        self.history = fit(
            net, opt, sample_batch=sample_batch, loss_fn=lambda out, b: loss(out, b[1]), iterations=cnn.iterations,
            rng=setup.rng, device=setup.device, autocast=autocast_dtype(setup.device, cnn.precision),
            checkpoint_dir=self.checkpoint, checkpoint_every=cnn.checkpoint_every if self.checkpoint else 0,
            resume=cnn.resume and self.checkpoint is not None, ctx=setup.ctx,
            max_seconds=cnn.max_minutes * 60 if cnn.max_minutes else None,
        )  # fmt: skip
        steps = self.history.train[-1]["step"] if self.history.train else 0
        self.model = CNNStateModel(net.eval(), [str(c) for c in classes], self.crops.channels, self.crops.two_d,
                                   tuple(data.shape[2:]), self.config.model_dump(mode="json"),
                                   training={"steps": steps, "cells": len(rows)})  # fmt: skip
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert self.model is not None, "fit first"
        rows = np.asarray(x)[:, 0].astype(np.int64)
        sub = Crops(self.crops.data[rows], self.crops.channels, self.crops.two_d)
        return self.model.predict(sub)
