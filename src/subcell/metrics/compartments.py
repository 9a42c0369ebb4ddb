"""Each cell's nucleus and cytoplasm from a cell and a nucleus segmentation: sizes, nucleus count, intensities and
the nuclear / cytoplasmic (N/C) ratio of each channel.

The N/C ratio is what translocation assays read (a transcription factor entering the nucleus: YAP, NF-κB,
NFAT, a cell-cycle sensor), and a cell's nuclei count finds the binucleate and the cells whose nucleus was not
found. The nucleus of a cell is where the nucleus segmentation lies inside it (ids need not match: a nucleus is
the cell's whatever its number), its cytoplasm the rest of the cell. Voxels within ``margin_um`` of the nuclear
boundary are left out of both: the microscope's blur mixes the two compartments there, and a segmentation's
boundary is uncertain by about as much (CellProfiler's translocation pipelines shrink the nucleus and ring the
cytoplasm for the same reason); so are those within ``margin_um`` of the cell's own edge, where the neighbour or
the background blurs in. The ratio is of the compartments' means above the cell's local background.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize
from subcell.metrics._zyx import depth_um, mask_components, zyx

__all__ = ["compartment_table", "nc_ratios"]


def compartment_table(
    cells: np.ndarray,
    nuclei: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    intensity: Mapping[str, np.ndarray] | None = None,
    margin_um: float = 0.3,
) -> Any:
    """One row per cell: its nucleus and cytoplasm.

    Parameters
    ----------
    cells : (Z, Y, X) integer array
        Cell instance labels, 0 = background.
    nuclei : (Z, Y, X) array
        Nucleus instance labels, or a mask (any non-zero voxel is nucleus; a mask's connected pieces are counted as
        its nuclei).
    intensity : mapping of channel name → (Z, Y, X) array, optional
        Adds ``<name>_nucleus_mean`` and ``<name>_cytoplasm_mean`` (over the compartments less the margin).
    margin_um : float
        The band each side of the nuclear boundary, and inside the cell's edge, left out of the compartments'
        intensities (µm; 0: none).
        Sizes are of the whole compartments.

    Returns
    -------
    pandas.DataFrame
        ``label``, ``nuclei`` (nuclei with more than half their voxels in the cell), ``nucleus_volume_um3`` (in a
        single plane ``nucleus_area_um2``), ``cytoplasm_volume_um3`` (``cytoplasm_area_um2``), ``nucleus_fraction``
        (of the cell's volume or area), and the intensity columns (NaN where a compartment has no voxel beyond
        the margin: a cell without a nucleus, a nucleus filling its cell).
    """
    import pandas as pd

    if not margin_um >= 0:
        raise ValueRangeError(f"the compartments' margin must be >= 0 µm, got {margin_um}", field="nc_margin_um")
    lab = zyx(cells, "cells", labels=True)
    nuc_all = zyx(nuclei, "nuclei", like=lab.shape)
    chans = {name: zyx(a, "intensity", like=lab.shape) for name, a in (intensity or {}).items()}
    vs = VoxelSize.of(voxel_size).as_tuple()
    flat = lab.shape[0] == 1
    voxel = vs[1] * vs[2] if flat else vs[0] * vs[1] * vs[2]
    ids = nuc_all if np.issubdtype(nuc_all.dtype, np.integer) else nuc_all > 0
    pieces = mask_components(ids)  # a mask: its pieces are the nuclei
    ids = np.asarray(ids, np.int64) if pieces is None else pieces
    boxes = ndi.find_objects(ids)
    sizes: dict[int, int] = {}

    def size(j: int) -> int:  # a nucleus's voxels, counted in its box when a cell first holds some of it
        if j not in sizes:
            sizes[j] = int(np.count_nonzero(ids[boxes[j - 1]] == j))
        return sizes[j]

    unit = "area_um2" if flat else "volume_um3"
    rows = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        cell = lab[sl] == i
        held, counts = np.unique(ids[sl][cell], return_counts=True)
        nuc = cell & (ids[sl] > 0)
        n_nuc, n_cell = int(nuc.sum()), int(cell.sum())
        row: dict[str, Any] = {
            "label": i,
            "nuclei": sum(1 for j, n in zip(held, counts, strict=True) if j and 2 * n > size(int(j))),
            f"nucleus_{unit}": n_nuc * voxel,
            f"cytoplasm_{unit}": (n_cell - n_nuc) * voxel,
            "nucleus_fraction": n_nuc / n_cell,
        }
        if chans:
            core, ring = _compartments(cell, nuc, vs, margin_um)
            for name, a in chans.items():
                vals = a[sl]
                row[f"{name}_nucleus_mean"] = float(vals[core].mean(dtype=np.float64)) if core.any() else np.nan
                row[f"{name}_cytoplasm_mean"] = float(vals[ring].mean(dtype=np.float64)) if ring.any() else np.nan
        rows.append(row)
    columns = ["label", "nuclei", f"nucleus_{unit}", f"cytoplasm_{unit}", "nucleus_fraction"]
    columns += [f"{n}_{c}_mean" for n in chans for c in ("nucleus", "cytoplasm")]
    dtypes: dict[str, Any] = {c: np.float64 for c in columns}
    dtypes.update(label=np.int64, nuclei=np.int64)
    return pd.DataFrame(rows, columns=columns).astype(dtypes)


def _compartments(
    cell: np.ndarray, nuc: np.ndarray, voxel_size: Sequence[float], margin_um: float
) -> tuple[np.ndarray, np.ndarray]:
    """The nucleus and cytoplasm of one cell (its box) less the band of ``margin_um`` along every boundary: the
    nucleus's and the cell's own (where blur mixes in the neighbour or the background)."""
    cytoplasm = cell & ~nuc
    if margin_um == 0:
        return nuc, cytoplasm
    return nuc & (depth_um(nuc, voxel_size) > margin_um), cytoplasm & (depth_um(cytoplasm, voxel_size) > margin_um)


def nc_ratios(table: Any, channels: Sequence[str], background: Mapping[str, float] | None = None) -> Any:
    """``<channel>_nc_ratio`` columns: (nucleus mean − background) / (cytoplasm mean − background). The
    background is the channel's in ``background`` (a camera offset plus the medium's, measured where there is no
    cell) or else each cell's local ``<channel>_background`` (as ``measure`` gives it; 0 where the table has
    none). NaN where the cytoplasm is not above the background (the ratio would be meaningless or of the wrong
    sign).

    The local background is the unlabelled voxels around the cell: where the labels leave part of the cells out
    (a segmentation tighter than the cells, cells not segmented) it is partly cytoplasm and the ratios blow up
    (``benchmarks/segment/compartments.py``: while the built-in ``cells`` workflow's labels covered 60–75 % of the
    synthetic cells, a third of their ratios came out undefined with the local background, none with the known
    one). Give the background where the cells are confluent or the labels tight."""
    import pandas as pd

    ratios = {}
    for name in channels:
        bg = (background or {}).get(name, table.get(f"{name}_background", 0.0))
        nucleus = table[f"{name}_nucleus_mean"] - bg
        cytoplasm = table[f"{name}_cytoplasm_mean"] - bg
        ratios[f"{name}_nc_ratio"] = (nucleus / cytoplasm.where(cytoplasm > 0)).astype(np.float64)
    # the columns joined at once (one added per channel in turn fragments the frame); ratios already there (of
    # another background) are replaced
    kept = table.drop(columns=[c for c in ratios if c in table.columns])
    return pd.concat([kept, pd.DataFrame(ratios, index=table.index)], axis=1)
