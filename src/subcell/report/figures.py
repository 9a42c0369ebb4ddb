"""Report-only figures: the worst objects of a segmentation, each in XY and XZ through its centre, with the true
outline (green) and the predicted one (yellow) over the image, at physical aspect."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from subcell.plotting import contrast_limits, png_bytes, subplots

__all__ = ["batch_items_png", "worst_objects_png"]


def _outline(mask: np.ndarray) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    return find_boundaries(mask, mode="inner")


def worst_objects_png(
    image: np.ndarray,
    truth: np.ndarray,
    pred: np.ndarray,
    pairs: Sequence[tuple[int, int, float]],
    voxel_size: Sequence[float],
    *,
    margin_um: float = 2.0,
) -> bytes:
    """One column per ``(true_id, pred_id, iou)``: XY (top) and XZ (bottom) through the true object's centre,
    cropped to it plus ``margin_um``; truth outlined green, the matched prediction yellow (0: none matched)."""
    vz, vy, vx = (float(v) for v in voxel_size)
    n = len(pairs)
    fig, axes = subplots(2, n, figsize=(2.3 * n, 4.4), squeeze=False, gridspec_kw={"hspace": 0.35})
    for k, (tid, pid, iou) in enumerate(pairs):
        zz, yy, xx = np.nonzero(truth == tid)
        mz, my, mx = (max(1, round(margin_um / v)) for v in (vz, vy, vx))
        z0, z1 = max(0, zz.min() - mz), min(truth.shape[0], zz.max() + mz + 1)
        y0, y1 = max(0, yy.min() - my), min(truth.shape[1], yy.max() + my + 1)
        x0, x1 = max(0, xx.min() - mx), min(truth.shape[2], xx.max() + mx + 1)
        zc, yc = int(np.median(zz)), int(np.median(yy))
        crop = image[z0:z1, y0:y1, x0:x1]
        lo, hi = contrast_limits(crop)
        views = [
            (crop[zc - z0], truth[zc, y0:y1, x0:x1] == tid, pred[zc, y0:y1, x0:x1] == pid,
             (0, (x1 - x0) * vx, (y1 - y0) * vy, 0)),
            (crop[:, yc - y0, :], truth[z0:z1, yc, x0:x1] == tid, pred[z0:z1, yc, x0:x1] == pid,
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
