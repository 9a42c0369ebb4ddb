"""Report-only figures: the worst objects of a segmentation, each in XY and XZ through its centre, with the true
outline (green) and the predicted one (yellow) over the image, at physical aspect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from subcell.plotting import contrast_limits, png_bytes, subplots

__all__ = ["batch_items_png", "object_boxes", "worst_objects_png"]


def _outline(mask: np.ndarray) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    return find_boundaries(mask, mode="inner")


def _median(counts: np.ndarray) -> int:
    """``int(np.median(v))`` of the integers ``v`` that ``counts`` counts (``counts[i]`` of them equal ``i``)."""
    n, cum = int(counts.sum()), np.cumsum(counts)
    lo, hi = (int(np.searchsorted(cum, k + 1)) for k in ((n - 1) // 2, n // 2))
    return int((lo + hi) / 2)


def object_boxes(labels: Any, ids: Sequence[int]) -> dict[int, tuple[tuple[slice, slice, slice], int, int]]:
    """For each id of a ``(Z, Y, X)`` label volume (NumPy, Dask or Zarr) found in it: its bounding box and the
    medians of its z and y coordinates. A lazy volume is read once, a block of whole chunks at a time
    (:func:`subcell.metrics.pieces.stored_blocks`), never whole."""
    from subcell.image import materialize
    from subcell.metrics.pieces import stored_blocks

    shape = tuple(int(s) for s in labels.shape)
    blocks = [tuple(slice(0, s) for s in shape)] if isinstance(labels, np.ndarray) else stored_blocks(labels)
    z_n = {i: np.zeros(shape[0], np.int64) for i in ids}
    y_n = {i: np.zeros(shape[1], np.int64) for i in ids}
    x_lim = {i: [shape[2], -1] for i in ids}
    for block in blocks:
        a = materialize(labels[block])
        z0, y0, x0 = (b.start for b in block)
        for i in ids:
            zz, yy, xx = np.nonzero(a == i)
            if zz.size:
                z_n[i] += np.bincount(zz + z0, minlength=shape[0])
                y_n[i] += np.bincount(yy + y0, minlength=shape[1])
                x_lim[i] = [min(x_lim[i][0], int(xx.min()) + x0), max(x_lim[i][1], int(xx.max()) + x0)]
    out = {}
    for i in ids:
        if x_lim[i][1] < 0:
            continue
        zs, ys = np.flatnonzero(z_n[i]), np.flatnonzero(y_n[i])
        box = (slice(int(zs[0]), int(zs[-1]) + 1), slice(int(ys[0]), int(ys[-1]) + 1),
               slice(x_lim[i][0], x_lim[i][1] + 1))  # fmt: skip
        out[i] = (box, _median(z_n[i]), _median(y_n[i]))
    return out


def worst_objects_png(
    image: Any,
    truth: Any,
    pred: Any,
    pairs: Sequence[tuple[int, int, float]],
    voxel_size: Sequence[float],
    *,
    margin_um: float = 2.0,
) -> bytes:
    """One column per ``(true_id, pred_id, iou)``: XY (top) and XZ (bottom) through the true object's centre,
    cropped to it plus ``margin_um``; truth outlined green, the matched prediction yellow (0: none matched).

    The volumes may be lazy (Dask, Zarr): the truth is read once to find the objects (:func:`object_boxes`), then
    only the crops drawn."""
    from subcell.image import materialize

    vz, vy, vx = (float(v) for v in voxel_size)
    n = len(pairs)
    boxes = object_boxes(truth, [tid for tid, _, _ in pairs])
    fig, axes = subplots(2, n, figsize=(2.3 * n, 4.4), squeeze=False, gridspec_kw={"hspace": 0.35})
    for k, (tid, pid, iou) in enumerate(pairs):
        (bz, by, bx), zc, yc = boxes[tid]
        mz, my, mx = (max(1, round(margin_um / v)) for v in (vz, vy, vx))
        z0, z1 = max(0, bz.start - mz), min(truth.shape[0], bz.stop + mz)
        y0, y1 = max(0, by.start - my), min(truth.shape[1], by.stop + my)
        x0, x1 = max(0, bx.start - mx), min(truth.shape[2], bx.stop + mx)
        region = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
        crop = materialize(image[region]).astype(np.float32)
        t_crop, p_crop = materialize(truth[region]), materialize(pred[region])
        lo, hi = contrast_limits(crop)
        views = [
            (crop[zc - z0], t_crop[zc - z0] == tid, p_crop[zc - z0] == pid, (0, (x1 - x0) * vx, (y1 - y0) * vy, 0)),
            (crop[:, yc - y0, :], t_crop[:, yc - y0] == tid, p_crop[:, yc - y0] == pid,
             (0, (x1 - x0) * vx, (z1 - z0) * vz, 0)),
        ]  # fmt: skip
        for row, (plane, t_mask, p_mask, ext) in enumerate(views):
            ax = axes[row, k]
            ax.imshow(plane, cmap="gray", vmin=lo, vmax=hi, extent=ext, aspect="equal", interpolation="nearest")
            rgba = np.zeros((*plane.shape, 4), np.float32)
            if pid:
                rgba[_outline(p_mask)] = (1.0, 0.85, 0.0, 1.0)
            rgba[_outline(t_mask)] = (0.1, 0.9, 0.2, 1.0)
            ax.imshow(rgba, extent=ext, aspect="equal", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"true {tid} · IoU {iou:.2f}", fontsize=8)
            else:
                ax.set_xlabel(f"XZ · {(x1 - x0) * vx:.0f} µm", fontsize=7)
    return png_bytes(fig)


def batch_items_png(seconds: np.ndarray, peak_mb: np.ndarray, estimate_mb: np.ndarray) -> bytes:
    """A batch's items: wall time per item (histogram) and each item's peak memory against its estimate (the
    estimate decides how many items a worker runs at once, so points above the diagonal were under-estimated)."""
    fig, (a, b) = subplots(1, 2, figsize=(9.0, 3.4), gridspec_kw={"wspace": 0.3})
    a.hist(seconds, bins=min(30, max(5, len(seconds) // 4)), color="0.4")
    a.set_xlabel("seconds per item")
    a.set_ylabel("items")
    a.set_title(f"{len(seconds)} items run", fontsize=9)
    known = estimate_mb > 0
    b.scatter(estimate_mb[known], peak_mb[known], s=10, color="tab:blue")
    top = float(max(peak_mb.max(initial=1.0), estimate_mb.max(initial=1.0))) * 1.05
    b.plot([0, top], [0, top], color="0.6", lw=1, ls="--")
    b.set_xlim(0, top)
    b.set_ylim(0, top)
    b.set_xlabel("memory estimate (MB)")
    b.set_ylabel("peak resident memory (MB)")
    b.set_title(f"{int(known.sum())} of {len(known)} items with an estimate", fontsize=9)
    return png_bytes(fig)
