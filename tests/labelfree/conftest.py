"""Tiny paired bright-field / fluorescence volumes where the target is a local function of the input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from subcell import Image

VOXEL = (0.5, 0.25, 0.25)


def paired_volume(seed: int, shape: tuple[int, int, int] = (16, 48, 48), frames: int = 1) -> Image:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    bf = ndimage.gaussian_filter(rng.normal(size=(frames, *shape)), (0, 1, 2, 2)).astype(np.float32)
    bf = (bf - bf.mean()) / bf.std()
    dna = ndimage.gaussian_filter(np.maximum(bf, 0) ** 2, (0, 0.7, 1, 1)).astype(np.float32) * 100 + 10
    data = np.stack([bf * 50 + 500, dna], axis=1)  # TCZYX
    return Image(data, voxel_size=VOXEL, channel_names=["brightfield", "dna"])


def write_dataset(folder: Path, images: list[Image], target: str, prefix: str) -> Path:
    """The images as OME-Zarr (train, train, val, test) with a manifest: brightfield → ``target``."""
    from subcell import io

    rows = []
    for i, (image, split) in enumerate(zip(images, ["train", "train", "val", "test"], strict=True)):
        path = folder / f"{prefix}{i}.ome.zarr"
        io.write(image, path)
        rows.append([f"{prefix}{i}", path.name, "brightfield", path.name, target, split])
    with (folder / "manifest.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "source", "source_channel", "target", "target_channel", "split"])
        w.writerows(rows)
    return folder / "manifest.csv"


@pytest.fixture(scope="session")
def paired_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three OME-Zarr pairs (train, train, val) and a test field, with a manifest."""
    return write_dataset(tmp_path_factory.mktemp("paired"), [paired_volume(i) for i in range(4)], "dna", "p")


def tiny_config(manifest: Path, output: Path, **kw: object) -> object:
    from subcell.labelfree import TrainConfig

    base: dict[str, object] = {
        "manifest": manifest,
        "output": output,
        "network": {"preset": "resunet", "depth": 1, "base_channels": 4},
        "patch_size": (8, 16, 16),
        "batch_size": 2,
        "iterations": 12,
        "validate_every": 6,
        "checkpoint_every": 4,
        "precision": "fp32",
        "threads": 1,
    }
    base.update(kw)
    return TrainConfig.model_validate(base)
