"""``subcell labelfree evaluate``: prediction vs target per structure, against the noise ceiling.

Metrics per predicted channel: Pearson r (global; per cell when instance labels are given), the noise ceiling
``C_max`` when the noise can be estimated, SSIM, PSNR and NRMSE (computed after z-scoring prediction and target,
since predictions are in z-score units). The noise variance comes from, in order of preference: a no-label
control image, a second independent acquisition of the target, or — for synthetic data — the ``<name>_noise_free``
channel stored beside the target (then ``pearson_r_truth``, the correlation with the noise-free truth, is
reported too).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from subcell.errors import ChannelError, MetadataError, ValueRangeError
from subcell.image import SAME_GRID_RTOL, Image
from subcell.labelfree.cell_prior import cell_depth, deepest_in_cells, nuclei_by_cell

__all__ = ["align_to", "evaluate_prediction", "mask_scores", "on_grid_of"]


def on_grid_of(image: Image, reference: Image) -> bool:
    """Whether ``image`` already lies on ``reference``'s grid: the same (Z, Y, X) shape and voxel size (within
    ``SAME_GRID_RTOL``, the tolerance :func:`align_to` resamples beyond), so aligning it would change nothing."""
    return image.shape[2:] == reference.shape[2:] and image.voxel_size.isclose(
        reference.voxel_size, rtol=SAME_GRID_RTOL
    )


def align_to(image: Image, reference: Image, *, labels: bool = False) -> np.ndarray:
    """``image`` data (TCZYX) on ``reference``'s grid: resampled when voxel sizes differ, then cropped/padded."""
    from subcell.transforms.resample import resample, resample_linear

    data = image.numpy()
    if not image.voxel_size.isclose(reference.voxel_size, rtol=SAME_GRID_RTOL):
        if labels:
            data = resample(data, voxel_size=image.voxel_size, target_voxel_size=reference.voxel_size, labels=True)
        else:
            data = resample_linear(data, voxel_size=image.voxel_size, target_voxel_size=reference.voxel_size)
    want = reference.shape[2:]
    if any(abs(a - b) > 1 for a, b in zip(data.shape[2:], want, strict=True)):
        raise MetadataError(
            f"image covers {data.shape[2:]} voxels on the prediction grid, the prediction {want}; "
            "they do not show the same field",
            path=image.provenance.source,
            field="shape",
        )
    out = np.zeros((*data.shape[:2], *want), data.dtype)
    sl = tuple(slice(0, min(a, b)) for a, b in zip(data.shape[2:], want, strict=True))
    out[(slice(None), slice(None), *sl)] = data[(slice(None), slice(None), *sl)]
    return out


def _z(a: np.ndarray) -> np.ndarray:
    """Z-scored float64 copy, normalised in place (one volume-sized array, not three)."""
    z = a.astype(np.float64)
    z -= z.mean()
    flat = z.reshape(-1)
    sd = math.sqrt(float(np.dot(flat, flat)) / max(flat.size, 1))
    z /= sd if sd > 0 else 1.0
    return z


def mask_scores(p: np.ndarray, truth: np.ndarray, inside: np.ndarray | None = None) -> dict[str, Any]:
    """Dice and IoU of the prediction thresholded by Otsu and at 0.5 against a mask, inside ``inside`` or all."""
    from skimage.filters import threshold_otsu

    from subcell.metrics.segmentation import dice, iou

    region = inside if inside is not None else np.ones(p.shape, bool)
    if not region.any():
        raise ValueRangeError("no voxel inside the cells to score the mask in", field="cells")
    values = p[region]
    otsu = float(threshold_otsu(values)) if values.min() < values.max() else float(values.min())
    truth = truth & region
    out: dict[str, Any] = {"mask_scored_in": "cells" if inside is not None else "field", "otsu_threshold": otsu}
    for name, seg in (("otsu", (p > otsu) & region), ("p50", (p > 0.5) & region)):
        out[f"dice_{name}"], out[f"iou_{name}"] = dice(seg, truth), iou(seg, truth)
    return out


def _depth_baseline(truth: np.ndarray, labels: np.ndarray, sampling: tuple[float, ...]) -> dict[str, float]:
    """Dice of :func:`deepest_in_cells` at the true nucleus share of the cells' volume, over timepoints (TZYX)."""
    from subcell.metrics.segmentation import dice

    cells = labels > 0
    share = float((truth & cells).sum() / max(int(cells.sum()), 1))
    seg = np.stack([deepest_in_cells(cell_depth(lab_t, sampling), lab_t, share) for lab_t in labels.astype(np.int64)])
    return {"dice_cell_depth_baseline": dice(seg, truth & cells), "nucleus_share_of_cells": share}


def _nuclei_dice(p: np.ndarray, truth: np.ndarray, labels: np.ndarray, sampling: tuple[float, float, float]) -> float:
    """Dice inside the cells of what ``subcell labelfree nuclei`` makes of the prediction with its defaults (the
    cell depth averaged in, Otsu, one object per cell), over timepoints (TZYX)."""
    from subcell.metrics.segmentation import dice

    cells = labels > 0
    seg = np.stack([nuclei_by_cell(p_t, lab_t, sampling) > 0  # the command's own function
                    for p_t, lab_t in zip(p, labels.astype(np.int64), strict=True)])  # fmt: skip
    return dice(seg, truth & cells)


def _channel(image: Image, name: str, *, what: str) -> int:
    try:
        return image.channel_index(name)
    except ChannelError:
        raise ChannelError(
            f"{what} has no channel {name!r} (channels: {list(image.channel_names)})",
            path=image.provenance.source,
            field="channel",
        ) from None


def evaluate_prediction(
    prediction: Image,
    target: Image,
    *,
    channels: list[str] | None = None,
    target_channels: list[str] | None = None,
    cells: Image | None = None,
    noise_control: Image | None = None,
    second_acquisition: Image | None = None,
    mask_target: bool = False,
) -> list[dict[str, Any]]:
    """One row of metrics per predicted structure.

    Parameters
    ----------
    prediction : Image
        Output of ``labelfree predict`` (channels named after the targets; ``*_std`` channels are skipped).
    target : Image
        Measured fluorescence; its channel for each structure has the same name unless ``target_channels``.
    cells : Image, optional
        Instance labels: Pearson r per cell (mean and median) is added.
    noise_control, second_acquisition : Image, optional
        Sources of the noise variance for the noise ceiling (same channel names as the target).
    mask_target : bool
        The target is a mask or label image (> 0 = foreground), as for a model trained on masks: adds the Dice of
        the prediction thresholded by Otsu (any model) and at 0.5 (a probability model's own threshold), over
        the voxels inside ``cells`` when given (the threshold from those voxels too), else over the field. With
        ``cells``, also the baseline a prediction has to beat: ``dice_cell_depth_baseline``, the Dice of each
        cell's deepest voxels (:func:`deepest_in_cells`) in the true nucleus share of the cell volume
        (``nucleus_share_of_cells``), which knows the outlines and the volume but not the image; and
        ``dice_nuclei_in_cells``, the Dice of what ``subcell labelfree nuclei`` makes of this prediction (the cell
        depth averaged in, one nucleus per cell).
    """
    from subcell.metrics.intensity import (
        noise_ceiling,
        noise_variance_from_control,
        noise_variance_from_pair,
        nrmse,
        pearson,
        pearson_per_object,
        psnr,
        ssim,
    )

    names = channels or [c for c in prediction.channel_names if not c.endswith("_std")]
    tnames = target_channels or names
    if len(tnames) != len(names):
        raise ChannelError(f"{len(names)} prediction channels but {len(tnames)} target channels", field="channel")
    if prediction.shape[0] != target.shape[0]:
        raise MetadataError(
            f"prediction has {prediction.shape[0]} timepoints, target {target.shape[0]}",
            path=target.provenance.source,
            field="T",
        )
    # only the channels read below go onto the prediction grid (a synthetic field carries 17; resampling is the
    # cost of an evaluation)
    used = [target.channel_names[_channel(target, t, what="target")] for t in tnames]
    used += [f"{t}_noise_free" for t in used if f"{t}_noise_free" in target.channel_names]
    target = target.sel(channel=list(dict.fromkeys(used)))
    tgt = align_to(target, prediction)
    pred_all = prediction.numpy()
    lab = align_to(cells, prediction, labels=True)[:, 0] if cells is not None else None
    extra = {
        "control": align_to(noise_control, prediction) if noise_control is not None else None,
        "pair": align_to(second_acquisition, prediction) if second_acquisition is not None else None,
    }
    rows: list[dict[str, Any]] = []
    for name, tname in zip(names, tnames, strict=True):
        p = pred_all[:, _channel(prediction, name, what="prediction")].astype(np.float64)
        ti = _channel(target, tname, what="target")
        t = tgt[:, ti].astype(np.float64)
        row: dict[str, Any] = {"structure": name, "target_channel": tname, "voxels": int(t.size)}
        row["pearson_r"] = pearson(p, t)
        noise_var, source = None, None
        control, pair = extra["control"], extra["pair"]
        if control is not None and noise_control is not None:
            noise_var = noise_variance_from_control(control[:, _channel(noise_control, tname, what="control")])
            source = "no-label control"
        elif pair is not None and second_acquisition is not None:
            other = pair[:, _channel(second_acquisition, tname, what="second acquisition")]
            noise_var = noise_variance_from_pair(t, other)
            source = "two acquisitions"
        elif f"{tname}_noise_free" in target.channel_names:
            truth = tgt[:, target.channel_index(f"{tname}_noise_free")].astype(np.float64)
            noise_var = float(np.var(t - truth))
            source = "noise-free truth"
            row["pearson_r_truth"] = pearson(p, truth)
        row["noise_ceiling"] = noise_ceiling(t, noise_var) if noise_var is not None else float("nan")
        row["noise_source"] = source or ""
        row["r_over_ceiling"] = (
            row["pearson_r"] / row["noise_ceiling"] if row["noise_ceiling"] == row["noise_ceiling"] else float("nan")
        )
        zp, zt = _z(p), _z(t)
        row["ssim"] = float(np.mean([ssim(zp[i], zt[i]) for i in range(zp.shape[0])]))
        row["psnr_db"] = psnr(zp, zt)
        row["nrmse"] = nrmse(zp, zt)
        if lab is not None:
            per = [v for v in pearson_per_object(p, t, lab).values() if v == v]
            row["cells"] = len(per)
            row["pearson_r_cell_mean"] = float(np.mean(per)) if per else float("nan")
            row["pearson_r_cell_median"] = float(np.median(per)) if per else float("nan")
        if mask_target:
            row.update(mask_scores(p, t > 0, lab > 0 if lab is not None else None))
            if lab is not None:
                vs = prediction.voxel_size
                row.update(_depth_baseline(t > 0, lab, (vs.z, vs.y, vs.x)))
                row["dice_nuclei_in_cells"] = _nuclei_dice(p, t > 0, lab, (vs.z, vs.y, vs.x))
        rows.append(row)
    return rows
