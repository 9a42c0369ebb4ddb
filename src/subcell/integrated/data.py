"""Training examples from cell stores: reference images, structure images and structure identities.

Each cell's intensities are scaled between their own background and robust maximum (5th and 99.9th percentiles inside the cell), so the
models learn where a structure is and its relative brightness, not the day's laser power. Masks stay 0/1.
All crops are held in memory as float16 (a 32×48×48 crop of 5 channels is 0.7 MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import ChannelError, ValueRangeError

__all__ = ["CellData", "load_cells", "normalize_crop", "split_cells"]

STRUCTURE_CHANNEL = "structure"


def normalize_crop(crop: np.ndarray, names: list[str], cell: np.ndarray) -> np.ndarray:
    """Map each intensity channel's 5th → 99.9th percentile inside ``cell`` to 0 → 1 (clipped to [0, 2]): the
    low percentile is the cell's background (camera offset, out-of-focus haze). Mask channels unchanged."""
    out = np.asarray(crop, dtype=np.float32).copy()
    inside = cell > 0.5
    for c, name in enumerate(names):
        if name.endswith("_mask"):
            continue
        vals = out[c][inside] if inside.any() else out[c].ravel()
        low, top = (float(v) for v in np.percentile(vals, [5, 99.9])) if vals.size else (0.0, 0.0)
        out[c] = np.clip((out[c] - low) / (top - low), 0, 2) * inside if top > low else 0.0
    return out


@dataclass
class CellData:
    """In-memory cells: reference (N, R, Z, Y, X), structures per cell (N, S_max, Z, Y, X) with their ids."""

    reference: np.ndarray
    structure_images: np.ndarray
    structure_ids: np.ndarray  # (N, S_max) int, −1 where a cell has fewer structures
    structure_names: list[str]
    table: Any  # one row per cell (source columns + store path)
    box: tuple[int, int, int]
    voxel_um: float
    reference_channels: list[str]

    def examples(self, cells: np.ndarray) -> np.ndarray:
        """(cell, slot) pairs of the given cells that hold a structure."""
        pairs = [
            (int(i), s) for i in cells for s in range(self.structure_ids.shape[1]) if self.structure_ids[i, s] >= 0
        ]
        return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def load_cells(
    stores: list[Path], *, reference_channels: list[str], structures: list[str], include_flagged: bool = True,
    known_structures: list[str] | None = None,
) -> CellData:  # fmt: skip
    """Read every extracted cell of the stores into memory (normalized)."""
    import pandas as pd

    from subcell.io import read_cell_store

    refs, imgs, ids, rows = [], [], [], []
    names: list[str] = list(known_structures or [])
    box = voxel = None
    for path in stores:
        store = read_cell_store(path)
        if box is None:
            box, voxel = store.box, store.voxel_um
        elif store.box != box or abs(store.voxel_um - voxel) > 1e-9:  # type: ignore[operator]
            raise ValueRangeError(f"box {store.box} / voxel {store.voxel_um} µm differ from the first store's "
                                  f"{box} / {voxel} µm", path=path)  # fmt: skip
        for ch in [*reference_channels, *structures]:
            if ch not in store.channel_names:
                raise ChannelError(f"no channel {ch!r}; the store has {store.channel_names}", path=path)
        table = store.extracted
        if not include_flagged and "touches_border" in table:
            table = table[~table.touches_border.astype(bool)]
        if STRUCTURE_CHANNEL in structures and STRUCTURE_CHANNEL not in table:
            raise ValueRangeError("channel 'structure' needs a 'structure' column in the cell table", path=path)
        cell_c = store.channel_index("cell_mask") if "cell_mask" in store.channel_names else None
        for _, r in table.iterrows():
            crop = store.crop(r.crop_index)
            cell = crop[cell_c] if cell_c is not None else np.ones(crop.shape[1:], np.float32)
            chans = [*reference_channels, *structures]
            norm = normalize_crop(crop[[store.channel_index(c) for c in chans]], chans, cell)
            refs.append(norm[: len(reference_channels)].astype(np.float16))
            imgs.append(norm[len(reference_channels) :].astype(np.float16).reshape(len(structures), *store.box))
            slot_ids = []
            for ch in structures:
                name = str(r["structure"]) if ch == STRUCTURE_CHANNEL else ch
                if name not in names:
                    if known_structures is not None:
                        raise ValueRangeError(f"structure {name!r} is unknown to the model ({names})", path=path)
                    names.append(name)
                slot_ids.append(names.index(name))
            ids.append(slot_ids)
            rows.append({**r.to_dict(), "store": str(path)})
    if not refs:
        raise ValueRangeError("the cell stores hold no extracted cells", path=stores[0])
    return CellData(
        reference=np.stack(refs), structure_images=np.stack(imgs),
        structure_ids=np.asarray(ids, np.int64).reshape(len(refs), len(structures)),
        structure_names=names, table=pd.DataFrame(rows), box=tuple(box), voxel_um=float(voxel),  # type: ignore[arg-type]
        reference_channels=list(reference_channels),
    )  # fmt: skip


def split_cells(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Random train / val / test cell indices (at least one train cell; val/test may be empty for tiny sets)."""
    order = np.random.default_rng([seed, 0x1C]).permutation(n)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if n - n_test - n_val < 1:
        raise ValueRangeError(f"{n} cells leave none to train on with these fractions", field="val_fraction")
    return {
        "test": np.sort(order[:n_test]),
        "val": np.sort(order[n_test : n_test + n_val]),
        "train": np.sort(order[n_test + n_val :]),
    }
