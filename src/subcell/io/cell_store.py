"""Single-cell stores: aligned crops of many cells in one chunked Zarr array, plus one table row per cell.

Layout of ``cells.zarr/``::

    crops            (N, C, Z, Y, X) float32, one chunk per cell, isotropic voxels
    cells.parquet    one row per extracted (or rejected) cell; ``crop_index`` points into ``crops`` (−1: none)
    zarr.json        attributes: ``subcell_cells`` = {version, channel_names, voxel_size_um, box, provenance}

Written under a temporary name and renamed when complete, like every other output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import InputFileError
from subcell.io._atomic import check_output, commit, discard, temporary_sibling

__all__ = ["CellStore", "CellStoreWriter", "read_cell_store"]

FORMAT = "subcell-cells/1"
TABLE = "cells.parquet"


class CellStoreWriter:
    """Append aligned crops one cell at a time; ``close()`` writes the table and moves the store into place.

    Examples
    --------
    >>> with CellStoreWriter("cells.zarr", channel_names=["dna"], box=(8, 8, 8), voxel_um=0.5) as w:  # doctest: +SKIP
    ...     w.append(crop, {"label_id": 3})
    """

    def __init__(
        self,
        path: str | Path,
        *,
        channel_names: list[str],
        box: tuple[int, int, int],
        voxel_um: float,
        overwrite: bool = False,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        import zarr

        self.path = check_output(path, overwrite=overwrite)
        self.tmp = temporary_sibling(self.path)
        self.channel_names = list(channel_names)
        self.box = tuple(int(b) for b in box)
        self.rows: list[dict[str, Any]] = []
        self.count = 0
        group = zarr.open_group(str(self.tmp), mode="w")
        c = len(self.channel_names)
        self.crops = group.create_array(
            "crops", shape=(0, c, *self.box), chunks=(1, c, *self.box), dtype="float32", fill_value=0.0
        )
        group.attrs["subcell_cells"] = {
            "format": FORMAT,
            "channel_names": self.channel_names,
            "voxel_size_um": [float(voxel_um)] * 3,
            "box": list(self.box),
            **(attrs or {}),
        }
        self._done = False

    def append(self, crop: np.ndarray | None, row: dict[str, Any]) -> int:
        """Add one cell: its crop (C, Z, Y, X) or ``None`` for a rejected cell (table row only); returns its index."""
        row = dict(row)
        if crop is None:
            row["crop_index"] = -1
        else:
            if crop.shape != (len(self.channel_names), *self.box):
                raise ValueError(
                    f"crop shape {crop.shape} differs from the store's {(len(self.channel_names), *self.box)}"
                )
            self.crops.resize((self.count + 1, *self.crops.shape[1:]))
            self.crops[self.count] = crop.astype(np.float32, copy=False)
            row["crop_index"] = self.count
            self.count += 1
        self.rows.append(row)
        return int(row["crop_index"])

    def close(self) -> Path:
        """Write the table and rename the store into place."""
        import pandas as pd

        if self._done:
            return self.path
        pd.DataFrame(self.rows).to_parquet(self.tmp / TABLE, index=False)
        commit(self.tmp, self.path)
        self._done = True
        return self.path

    def abort(self) -> None:
        discard(self.tmp)
        self._done = True

    def __enter__(self) -> CellStoreWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@dataclass
class CellStore:
    """An opened single-cell store: lazy crops, the table, and what the channels and voxels mean."""

    path: Path
    crops: Any  # zarr.Array (N, C, Z, Y, X)
    table: Any  # pandas.DataFrame
    channel_names: list[str]
    voxel_um: float
    box: tuple[int, int, int]
    attrs: dict[str, Any]

    def channel_index(self, name: str) -> int:
        from subcell.errors import ChannelError

        if name not in self.channel_names:
            raise ChannelError(f"no channel {name!r}; the store has {self.channel_names}", path=self.path)
        return self.channel_names.index(name)

    def crop(self, index: int) -> np.ndarray:
        return np.asarray(self.crops[int(index)])

    @property
    def extracted(self) -> Any:
        """Table rows that have a crop."""
        return self.table[self.table.crop_index >= 0].reset_index(drop=True)


def read_cell_store(path: str | Path) -> CellStore:
    """Open a store written by :class:`CellStoreWriter` (or its ``cells.parquet``); one-line errors otherwise."""
    import pandas as pd
    import zarr

    p = Path(path)
    if p.name == TABLE:
        p = p.parent
    if not p.exists():
        raise InputFileError("cell store not found", path=p)
    try:
        group = zarr.open_group(str(p), mode="r")
        meta: dict[str, Any] = dict(group.attrs["subcell_cells"])  # type: ignore[arg-type]
        crops = group["crops"]
    except Exception:
        raise InputFileError("not a subcell cell store (made by `subcell cells extract`)", path=p) from None
    if meta.get("format") != FORMAT:
        raise InputFileError(f"unsupported cell store format {meta.get('format')!r}; expected {FORMAT}", path=p)
    if not (p / TABLE).is_file():
        raise InputFileError(f"cell store has no {TABLE}", path=p)
    table = pd.read_parquet(p / TABLE)
    return CellStore(
        path=p,
        crops=crops,
        table=table,
        channel_names=list(meta["channel_names"]),
        voxel_um=float(meta["voxel_size_um"][0]),
        box=tuple(meta["box"]),  # type: ignore[arg-type]
        attrs=meta,
    )
