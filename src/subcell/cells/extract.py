"""Cut single cells out of a segmented field: crop, mask neighbours, align, resample into a fixed isotropic box.

Pure compute: :func:`extract_cells` takes an :class:`~subcell.image.Image` and label arrays and yields one
:class:`CellCrop` per cell; :func:`extract_to_store` streams them into a cell store (see
:mod:`subcell.io.cell_store`). A cell's table row holds the transform that maps its crop back to the field
(``align_*`` columns, see :class:`~subcell.cells.align.Alignment`) and its shape features measured in the
field at the original voxel size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.cells.align import Alignment, fit_alignment
from subcell.cells.config import ExtractConfig
from subcell.errors import ValueRangeError
from subcell.image import Image, as_array, materialize
from subcell.metrics.shape import border_ids, shape_features

__all__ = ["MASK_CHANNELS", "CellCrop", "extract_cells", "extract_to_store", "match_nuclei"]

MASK_CHANNELS = ("cell_mask", "nucleus_mask")
READ_WHOLE_BYTES = 1 << 30  # a field's selected channels up to this size are read once, not cell by cell


@dataclass
class CellCrop:
    """One cell: its crop (C, Z, Y, X) float32 (``None`` when rejected) and its table row."""

    crop: np.ndarray | None
    row: dict[str, Any]


def match_nuclei(cells: np.ndarray, nuclei: np.ndarray) -> dict[int, int]:
    """For every cell id, the nucleus id with the largest overlap inside it (cells without one are left out)."""
    inside = (cells > 0) & (nuclei > 0)
    if not inside.any():
        return {}
    n_nuc = int(nuclei.max()) + 1
    pair = cells[inside].astype(np.int64) * n_nuc + nuclei[inside].astype(np.int64)
    ids, counts = np.unique(pair, return_counts=True)
    best: dict[int, tuple[int, int]] = {}
    for p, n in zip(ids.tolist(), counts.tolist(), strict=True):
        c, k = divmod(p, n_nuc)
        if n > best.get(c, (0, 0))[1]:
            best[c] = (k, n)
    return {c: k for c, (k, _) in best.items()}


def _check_inputs(image: Image, cells: np.ndarray, nuclei: np.ndarray) -> None:
    shape = image.shape[2:]
    for name, lab in (("cell labels", cells), ("nucleus labels", nuclei)):
        if lab.shape[-3:] != tuple(shape):
            raise ValueRangeError(
                f"{name} have shape {lab.shape[-3:]} but the image has (Z, Y, X) {tuple(shape)}", field=name
            )
        if not np.issubdtype(lab.dtype, np.integer) and lab.dtype != bool:
            raise ValueRangeError(f"{name} must be integer instance labels, got {lab.dtype}", field=name)
    if not cells.any():
        raise ValueRangeError("cell labels are empty (no cell)", field="cell labels")
    if not nuclei.any():
        raise ValueRangeError("nucleus labels are empty (no nucleus)", field="nucleus labels")


def _box_of(mask: np.ndarray, margin: Sequence[int]) -> tuple[slice, ...]:
    """The bounding box of a non-empty mask, widened by ``margin`` voxels per axis (clipped to the array)."""
    sl = ndi.find_objects(mask.astype(np.uint8, copy=False))[0]
    return tuple(slice(max(0, s.start - m), min(n, s.stop + m)) for s, m, n in zip(sl, margin, mask.shape, strict=True))


def _smoothed(mask: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Gaussian of a binary mask over its array, computed on the mask's bounding box plus the kernel's reach.

    The same values as filtering the whole array (beyond that reach the mask contributes nothing, and the
    reflected border of the box is zeros), at a fraction of the cost: a nucleus fills a small part of the region
    cut around its cell."""
    out = np.zeros(mask.shape, np.float32)
    if mask.any():
        box = _box_of(mask, [int(4.0 * s + 0.5) + 1 for s in sigma])
        out[box] = ndi.gaussian_filter(mask[box].astype(np.float32), sigma)
    return out


def _features(mask: np.ndarray, vs: np.ndarray, prefix: str) -> dict[str, float]:
    """:func:`shape_features` on the object's bounding box (4 voxels of margin: the surface's smoothing and
    padding see only zeros beyond the object, so the numbers are those of the whole region)."""
    return shape_features(mask[_box_of(mask, (4, 4, 4))] if mask.any() else mask, vs, prefix=prefix)


def _resample(region: np.ndarray, matrix: np.ndarray, offset: np.ndarray, box: tuple[int, ...], order: int) -> Any:
    return ndi.affine_transform(
        region.astype(np.float32, copy=False), matrix, offset=offset, output_shape=box, order=order, mode="constant"
    )


def extract_cells(
    image: Image,
    cells: np.ndarray,
    nuclei: np.ndarray,
    config: ExtractConfig | None = None,
    *,
    timepoint: int = 0,
    metadata: Mapping[str, Any] | None = None,
) -> Iterator[CellCrop]:
    """Yield every cell of one timepoint of a field, aligned and resampled into ``config.box``.

    Parameters
    ----------
    image : Image
        The field (any reader); its voxel size converts every length.
    cells, nuclei : (Z, Y, X) integer arrays
        Instance labels of cells and nuclei (ids need not match: each cell takes the nucleus it overlaps most).
    config : ExtractConfig
    metadata : mapping, optional
        Columns copied into every row (e.g. ``source``, ``structure``, ``state``).

    Yields
    ------
    CellCrop
        Channels are the selected image channels, then ``cell_mask`` and ``nucleus_mask`` (0–1).
    """
    cfg = config or ExtractConfig()
    cells = np.asarray(cells)
    nuclei = np.asarray(nuclei)
    cells = cells[None] if cells.ndim == 2 else cells
    nuclei = nuclei[None] if nuclei.ndim == 2 else nuclei
    _check_inputs(image, cells, nuclei)
    names = cfg.channels or list(image.channel_names)
    chan_idx = [image.channel_index(n) for n in names]
    vs = np.asarray(image.voxel_size.as_tuple(), dtype=np.float64)
    box = tuple(cfg.box)
    half_um = (np.asarray(box) - 1) / 2 * cfg.voxel_um
    nucleus_of = match_nuclei(cells, nuclei)
    objects = ndi.find_objects(cells.astype(np.int64, copy=False))
    border = border_ids(cells)
    reach = int(np.ceil(cfg.mask_dilation_um / vs.min())) + 1
    # the selected channels of this timepoint: read once when they fit in READ_WHOLE_BYTES, else region by
    # region. Reading a lazy image cell by cell and channel by channel ran its task graph hundreds of times and
    # cost more than all the compute (benchmarks/cells/results.md)
    source = image.data[timepoint][chan_idx]
    if source.nbytes <= READ_WHOLE_BYTES:
        source = np.asarray(source)
    for cid, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        row: dict[str, Any] = {**(metadata or {}), "frame": timepoint, "label_id": cid}
        row["touches_border"] = cid in border
        nid = nucleus_of.get(cid)
        if nid is None:
            if cfg.missing_nucleus == "error":
                raise ValueRangeError(
                    f"cell {cid} contains no nucleus (missing_nucleus='skip' / --skip-cells-without-nucleus "
                    "records it and goes on)",
                    field="nucleus labels",
                )
            yield CellCrop(None, {**row, "nucleus_id": 0, "status": "rejected: no nucleus"})
            continue
        row["nucleus_id"] = nid
        if row["touches_border"] and cfg.border == "skip":
            yield CellCrop(None, {**row, "status": "rejected: touches the field border"})
            continue
        # the cell's bounding box plus what masking and interpolation need
        lo = [max(s.start - reach, 0) for s in sl]
        hi = [min(s.stop + reach, n) for s, n in zip(sl, cells.shape, strict=True)]
        region = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        cell = cells[region] == cid
        nucleus = (nuclei[region] == nid) & cell
        volume = float(cell.sum() * vs.prod())
        if volume < cfg.min_cell_volume_um3:
            yield CellCrop(None, {**row, "status": f"rejected: cell volume {volume:.2f} µm³ below minimum"})
            continue
        row.update(_features(cell, vs, "cell_"))
        row.update(_features(nucleus, vs, "nucleus_"))
        origin = np.asarray(lo) * vs
        nuc_um = np.argwhere(nucleus) * vs + origin
        cell_um = np.argwhere(cell) * vs + origin
        centroid = nuc_um.mean(axis=0) if len(nuc_um) else cell_um.mean(axis=0)
        alignment = fit_alignment(cell_um, centroid, align=cfg.align)
        extent = np.abs(alignment.to_aligned(cell_um)).max(axis=0) + cfg.margin_um + vs / 2
        # the smallest box (voxels) this cell fits in, around its nucleus: what a collection's --box must reach
        row.update(zip(("fit_box_z", "fit_box_y", "fit_box_x"), (int(np.ceil(2 * e / cfg.voxel_um)) + 1 for e in extent),
                       strict=True))  # fmt: skip
        ratio = float((extent / half_um).max())
        if ratio > 1:
            if cfg.oversize == "reject":
                yield CellCrop(None, {**row, **alignment.as_row(), "status": f"rejected: {ratio:.2f}× the box"})
                continue
            alignment = Alignment(alignment.centroid_um, alignment.angle_rad, alignment.flip_y, ratio)
        # output voxel o → aligned q = (o − (box−1)/2)·voxel → field d = A q + centroid → region index
        a = alignment.matrix()
        matrix = (a * cfg.voxel_um) / vs[:, None]
        offset = (np.asarray(alignment.centroid_um) - origin) / vs - matrix @ ((np.asarray(box) - 1) / 2)
        keep = ndi.distance_transform_edt(~cell, sampling=vs) <= cfg.mask_dilation_um
        pixels = np.asarray(source[(slice(None), *region)], dtype=np.float32)
        channels = [_resample(data * keep, matrix, offset, box, order=1) for data in pixels]
        # a mask sampled between two source voxels (one in, one out) interpolates to exactly 0.5: smoothing
        # first (about half the output voxel) puts the 0.5 level on the object's boundary instead of a tie
        sigma = 0.5 * cfg.voxel_um * alignment.scale / vs
        for mask in (cell, nucleus):
            smooth = _smoothed(mask, sigma)
            channels.append((_resample(smooth, matrix, offset, box, order=1) > 0.5).astype(np.float32))
        row.update(alignment.as_row())
        row["status"] = "ok" if ratio <= 1 else f"rescaled ×{ratio:.2f}"
        yield CellCrop(np.stack(channels), row)


def extract_to_store(
    fields: Sequence[tuple[Image, np.ndarray, np.ndarray, Mapping[str, Any]]],
    out: str | Path,
    config: ExtractConfig | None = None,
    *,
    overwrite: bool = False,
    progress: Any = None,
) -> Any:
    """Extract the cells of several fields into one cell store; returns the table (pandas).

    ``fields``: (image, cell labels, nucleus labels, metadata) per field; labels may carry a leading T axis,
    in which case every timepoint is extracted.
    """
    from subcell.io.cell_store import CellStoreWriter
    from subcell.io.cell_store import read_cell_store as _read

    cfg = config or ExtractConfig()
    if not fields:
        raise ValueRangeError("no fields to extract", field="fields")
    first = fields[0][0]
    names = [*(cfg.channels or list(first.channel_names)), *MASK_CHANNELS]
    for image, *_ in fields:
        have = [*(cfg.channels or list(image.channel_names)), *MASK_CHANNELS]
        if have != names:
            raise ValueRangeError(f"fields have different channels: {have} vs {names}", field="channels")
    attrs = {"config": cfg.model_dump(mode="json")}
    with CellStoreWriter(out, channel_names=names, box=cfg.box, voxel_um=cfg.voxel_um, overwrite=overwrite,
                         attrs=attrs) as writer:  # fmt: skip
        for image, cells, nuclei, meta in fields:
            # stored labels (Dask, Zarr) stay where they are: one timepoint of each is read at a time
            cells_t, nuclei_t = as_array(cells), as_array(nuclei)
            frames = cells_t.shape[0] if len(cells_t.shape) == 4 else 1
            for t in range(frames):
                c = materialize(cells_t[t] if len(cells_t.shape) == 4 else cells_t)
                n = materialize(nuclei_t[t] if len(nuclei_t.shape) == 4 else nuclei_t)
                for item in extract_cells(image, c, n, cfg, timepoint=t, metadata=meta):
                    writer.append(item.crop, item.row)
                    if progress is not None:
                        progress(item.row)
        if writer.count == 0:
            too_big = [r for r in writer.rows if r["status"].endswith("× the box")]
            if too_big:
                fit = tuple(max(r[f"fit_box_{a}"] for r in too_big) for a in "zyx")
                raise ValueRangeError(
                    f"no cell fits the box {tuple(cfg.box)} at {cfg.voxel_um} µm ({len(too_big)} too large; the box "
                    f"{fit} holds them all); enlarge the box or the voxel, or rescale oversized cells "
                    f"(oversize='rescale'; CLI: --box {' '.join(map(str, fit))}, --voxel-um, --oversize rescale)",
                    field="box",
                )
            raise ValueRangeError(f"no cell was extracted: {len(writer.rows)} rejected, "
                                  f"{rejection_reasons(writer.rows)}", field="cells")  # fmt: skip
    return _read(out).table


_ADVICE = {  # what a rejection's status means, and the option that changes it
    "touches the field border": "touching the field border (--border flag keeps them, flagged)",
    "the box": "larger than the box (--box {fit} holds them all, or --oversize rescale)",
    "no nucleus": "without a nucleus (--nuclei FILE if nuclei are in another file)",
    "below minimum": "too small",
}


def rejection_reasons(rejected: list[dict[str, Any]]) -> str:
    """``29 touching the field border (…); 1 larger than the box (…)``: the readable reasons of rejected cells'
    table rows, counted; for cells larger than the box, the box that holds them all."""
    from collections import Counter

    too_large = [r for r in rejected if "the box" in str(r["status"])]
    fit = " ".join(str(int(max(r[f"fit_box_{a}"] for r in too_large))) for a in "zyx") if too_large else ""
    counts: Counter[str] = Counter()
    for r in rejected:
        status = str(r["status"])
        key = next((v for k, v in _ADVICE.items() if k in status), status.removeprefix("rejected: "))
        counts[key.format(fit=fit)] += 1
    return "; ".join(f"{n} {what}" for what, n in counts.most_common())
