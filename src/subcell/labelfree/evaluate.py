"""``subcell labelfree evaluate``: prediction vs target per structure, against the noise ceiling.

Metrics per predicted channel: Pearson r (global; per cell when instance labels are given), the noise ceiling
``C_max`` when the noise can be estimated, SSIM, PSNR and NRMSE (computed after z-scoring prediction and target,
since predictions are in z-score units). The noise variance comes from, in order of preference: a no-label
control image, a second independent acquisition of the target, or — for synthetic data — the ``<name>_noise_free``
channel stored beside the target (then ``pearson_r_truth``, the correlation with the noise-free truth, is
reported too).

Every metric is a sum over voxels (moments, squared errors, SSIM map values, histogram counts), so the inputs are
read one timepoint at a time and summed over passes: the moments (r, the noise ceiling, r per cell, the nucleus share
of the cells), Otsu's histogram (two passes, mask targets only), then the thresholded counts, the squared error of the
z-scores, SSIM, and cell by cell the depth baseline and ``labelfree nuclei``'s Dice. A frame whose inputs fit
:data:`FRAME_CACHE_BYTES` is read once and kept for every pass; a larger one is read in each pass slab by slab (its
stored chunks' depth), and in the last pass copied to scratch Zarr for what reads it in blocks (SSIM) and boxes
(cells), so memory does not grow with the frame. Same values as the metrics of the whole arrays, to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import ChannelError, MetadataError, ValueRangeError
from subcell.image import Image
from subcell.labelfree.cell_prior import nuclei_by_cell
from subcell.metrics.intensity import squared_error_sum
from subcell.transforms.align import align_to, aligned_into, on_grid_of

__all__ = ["evaluate_prediction", "mask_scores"]


def mask_scores(p: np.ndarray, truth: np.ndarray, inside: np.ndarray | None = None) -> dict[str, Any]:
    """Dice and IoU of the prediction thresholded by Otsu and at 0.5 against a mask, inside ``inside`` or all."""
    scores = _MaskScores(inside is not None)
    scores.threshold(lambda: scores.values(p, inside))
    scores.add(p, truth, inside)
    return scores.result()


class _MaskScores:
    """Dice and IoU at Otsu's threshold (of the values inside the cells, or of the field) and at 0.5, summed over
    frames: :meth:`threshold` over a pass of the values, then :meth:`add` for each frame."""

    def __init__(self, in_cells: bool) -> None:
        self.in_cells, self.otsu = in_cells, float("nan")
        self.counts = {name: np.zeros(3, np.int64) for name in ("otsu", "p50")}  # |seg|, |truth|, |seg ∩ truth|

    @staticmethod
    def values(p: np.ndarray, inside: np.ndarray | None) -> Iterator[np.ndarray]:
        """The values to threshold, plane by plane, in float64 as the whole-array threshold was taken (Otsu's bins
        in the values' precision)."""
        for k in range(p.shape[0]):
            yield (p[k][inside[k]] if inside is not None else p[k].reshape(-1)).astype(np.float64)

    def threshold(self, values: Any) -> None:
        from subcell.labelfree.cell_prior import otsu_over

        if not any(v.size for v in values()):
            raise ValueRangeError("no voxel inside the cells to score the mask in", field="cells")
        self.otsu = otsu_over(values)

    def add(self, p: np.ndarray, truth: np.ndarray, inside: np.ndarray | None) -> None:
        truth = truth & inside if inside is not None else truth
        for name, cut in (("otsu", self.otsu), ("p50", 0.5)):
            seg = p > cut
            if inside is not None:
                seg &= inside
            self.counts[name] += [np.count_nonzero(seg), np.count_nonzero(truth), np.count_nonzero(seg & truth)]

    def result(self) -> dict[str, Any]:
        from subcell.metrics.segmentation import dice_from_counts, iou_from_counts

        out: dict[str, Any] = {"mask_scored_in": "cells" if self.in_cells else "field", "otsu_threshold": self.otsu}
        for name, counts in self.counts.items():
            n = [int(v) for v in counts]
            out[f"dice_{name}"], out[f"iou_{name}"] = dice_from_counts(*n), iou_from_counts(*n)
        return out


def _as_float(a: np.ndarray) -> np.ndarray:
    """Floating-point values as stored (float32 or float64), anything else as float32."""
    a = np.asarray(a)
    return a if a.dtype.kind == "f" and a.itemsize >= 4 else a.astype(np.float32)


# a frame's inputs up to this size (as held) are read once and kept for every pass; larger ones are read slab by slab
# in each pass (2-4 passes: slower by the reads, bounded in memory)
FRAME_CACHE_BYTES = 512 << 20
# what `labelfree nuclei`'s pass keeps of its cells' boxes between its passes, here
NUCLEI_CACHE_GB = 0.25
# what a slab holds while it is scored, per voxel: the prediction and target in float64 with their z-scores, the
# cells, masks
BYTES_PER_VOXEL = 48


class _Frames:
    """Frame ``t`` of every input on the prediction's grid, as ``(Z, Y, X)`` (or ``(C, Z, Y, X)``) arrays that slice
    to NumPy (:func:`_read`): read whole and kept when the frame fits :data:`FRAME_CACHE_BYTES`, else left lazy and
    read slab by slab in every pass. An input on another grid is then resampled onto it once, a stored chunk layer
    at a time (:func:`~subcell.transforms.align.aligned_into`), into a scratch Zarr array in the system's temporary folder that the passes
    read (resampling again in every pass took twice the time). :meth:`close` removes them."""

    def __init__(self, prediction: Image, inputs: dict[str, Image | None]) -> None:
        self.prediction, self.inputs = prediction, inputs
        self._key: tuple[int, int] | None = None
        self._frame: dict[str, Any] = {}
        self._scratch = ExitStack()
        self._folder: Path | None = None
        self.in_scratch: set[str] = set()  # the inputs of this frame held in scratch (resampled onto the grid)

    def close(self) -> None:
        self._scratch.close()
        self._folder = None
        self.in_scratch = set()

    def _onto_grid(self, key: str, image: Image, t: int) -> list[Any]:
        """Frame ``t`` of ``image`` resampled onto the prediction's grid into scratch: a Zarr array per channel (read
        directly, in slabs and in boxes: a Dask array over them cost half again the time in the cells' box reads)."""
        from subcell.io._atomic import scratch_array, scratch_temporary

        if self._folder is None:
            self._folder = self._scratch.enter_context(scratch_temporary())
        folder = self._folder
        out = aligned_into(image, t, self.prediction, labels=key == "cells",
                           new=lambda i, **kw: scratch_array(folder, f"{key}_{i}", **kw))  # fmt: skip
        self.in_scratch.add(key)
        return out

    def __call__(self, t: int, c: int) -> dict[str, Any]:
        from subcell.image import materialize

        if self._key == (t, c):
            return self._frame
        pred = self.prediction
        lazy = {"pred": pred.data[t, c]} | {
            key: image.data[t, 0] if key == "cells" else image.data[t]
            for key, image in self.inputs.items() if image is not None
        }  # fmt: skip
        # as held: images as float32 (float64 when stored so), the cells as stored
        size = sum(math.prod(v.shape) * max(np.dtype(v.dtype).itemsize, 1 if key == "cells" else 4)
                   for key, v in lazy.items())  # fmt: skip
        whole = size <= FRAME_CACHE_BYTES
        kept = {k: v for k, v in self._frame.items() if k != "pred"} if self._key and self._key[0] == t else {}
        self._frame = {}  # the last frame freed before the next is read
        if not kept:
            self.close()  # its inputs resampled into scratch too
        for key, image in self.inputs.items():
            if image is None:
                self._frame[key] = None
            elif key in kept:
                self._frame[key] = kept[key]
            elif not whole and on_grid_of(image, pred):
                self._frame[key] = lazy[key]
            elif not whole:
                aligned = self._onto_grid(key, image, t)
                self._frame[key] = aligned[0] if key == "cells" else aligned
            elif key == "cells":
                self._frame[key] = align_to(image.sel(t=t), pred, labels=True)[0, 0]
            else:
                self._frame[key] = _as_float(align_to(image.sel(t=t), pred)[0])
        self._frame["pred"] = _as_float(materialize(lazy["pred"])) if whole else lazy["pred"]
        self._key = (t, c)
        return self._frame


def _read(source: Any, where: Any, *, labels: bool = False) -> np.ndarray:
    """``source[where]`` as NumPy: floating point as :func:`_as_float`, or as stored (``labels``: integer ids)."""
    from subcell.image import materialize

    a = source[where]
    a = a if isinstance(a, np.ndarray) else np.asarray(materialize(a))  # a kept frame is sliced, a lazy one read
    return a if labels else _as_float(a)


def _scratch(folder: Path, f: dict[str, Any], ti: int, depth: int, *, cells: bool, done: set[str]) -> dict[str, Any]:
    """Scratch Zarr arrays for a lazy frame's prediction and target channel (and cells), as :func:`_read` gives
    them, in chunks of ``depth`` planes (the slabs they are written in) and 128 × 128 pixels; none for an input
    the frames already hold in scratch (``done``: resampled onto the grid, :meth:`_Frames._onto_grid`)."""
    from subcell.io._atomic import scratch_array

    src = {"pred": f["pred"]} | ({"t": f["target"][ti]} if "target" not in done else {})
    src |= {"cells": f["cells"]} if cells and "cells" not in done else {}
    grid = tuple(int(n) for n in f["pred"].shape)
    return {
        k: scratch_array(folder, k, shape=grid, chunks=(depth, 128, 128),
                         dtype=v.dtype if k == "cells" else _as_float(np.zeros(0, v.dtype)).dtype)
        for k, v in src.items()
    }  # fmt: skip


class _NucleusCounts:
    """Stands in for the label array ``nuclei_by_cell`` writes: instead of keeping each cell's nucleus it counts its
    voxels and those on the true mask (cells' nuclei are disjoint, each inside its own cell)."""

    def __init__(self, truth: Any, shape: tuple[int, ...], dtype: Any) -> None:
        self.truth, self.shape, self.dtype = truth, shape, np.dtype(dtype)
        self.counts = np.zeros(2, np.int64)  # |seg|, |seg ∩ truth|

    def __getitem__(self, box: tuple[slice, ...]) -> np.ndarray:
        return np.zeros(tuple(sl.stop - sl.start for sl in box), self.dtype)

    def __setitem__(self, box: tuple[slice, ...], region: np.ndarray) -> None:
        seg = region > 0
        self.counts += [np.count_nonzero(seg), np.count_nonzero(seg & (_read(self.truth, box) > 0))]


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
    names = channels or [c for c in prediction.channel_names if not c.endswith("_std")]
    tnames = target_channels or names
    if len(tnames) != len(names):
        raise ChannelError(f"{len(names)} prediction channels but {len(tnames)} target channels", field="channel")
    for what, image in (("target", target), ("cells", cells), ("noise control", noise_control),
                        ("second acquisition", second_acquisition)):  # fmt: skip
        if image is not None and image.shape[0] != prediction.shape[0]:
            raise MetadataError(
                f"prediction has {prediction.shape[0]} timepoints, {what} {image.shape[0]}",
                path=image.provenance.source,
                field="T",
            )
    # only the channels read below go onto the prediction grid (a synthetic field carries 17; resampling is the
    # cost of an evaluation)
    used = [target.channel_names[_channel(target, t, what="target")] for t in tnames]
    used += [f"{t}_noise_free" for t in used if f"{t}_noise_free" in target.channel_names]
    target = target.sel(channel=list(dict.fromkeys(used)))
    if cells is not None:  # the one rule for label inputs, block by block as they are read
        from subcell.io import as_labels

        cells = cells.with_data(as_labels(cells.data, path=cells.provenance.source, what="cell labels", lazy=True),
                                step="as_labels")  # fmt: skip
    frames = _Frames(prediction, {"target": target, "cells": cells, "control": noise_control,
                                  "pair": second_acquisition})  # fmt: skip
    vs = prediction.voxel_size
    rows = []
    try:
        for name, tname in zip(names, tnames, strict=True):
            c = _channel(prediction, name, what="prediction")
            rows.append(_score_channel(frames, prediction.shape[0], c, name, tname, target=target,
                                       noise_control=noise_control, second_acquisition=second_acquisition,
                                       mask_target=mask_target, sampling=(vs.z, vs.y, vs.x)))  # fmt: skip
    finally:
        frames.close()
    return rows


def _score_channel(
    frames: _Frames, n_frames: int, c: int, name: str, tname: str, *, target: Image, noise_control: Image | None,
    second_acquisition: Image | None, mask_target: bool, sampling: tuple[float, float, float],
) -> dict[str, Any]:  # fmt: skip
    """One row of :func:`evaluate_prediction`: passes over the frames, slab by slab, each summing what its metrics
    need."""
    from subcell.blocks import BlockGrid
    from subcell.io._atomic import scratch_temporary
    from subcell.labelfree.cell_prior import deepest_by_cell, slab_planes
    from subcell.metrics.intensity import ceiling_from_variances, nrmse_from, psnr_from, ssim_of
    from subcell.metrics.moments import Moments, ObjectMoments
    from subcell.metrics.segmentation import dice_from_counts

    ti = _channel(target, tname, what="target")
    free = target.channel_index(f"{tname}_noise_free") if f"{tname}_noise_free" in target.channel_names else None
    ci = _channel(noise_control, tname, what="control") if noise_control is not None else None
    pi = _channel(second_acquisition, tname, what="second acquisition") if second_acquisition is not None else None

    def read_depth(f: dict[str, Any]) -> int:
        """Planes read at a time: a lazy frame's stored chunk depth (each chunk decoded once), at least a part."""
        chunks = getattr(f["pred"], "chunks", None)  # a Dask array's; a kept frame has none
        step = slab_planes(tuple(f["pred"].shape), BYTES_PER_VOXEL)
        return max(step, int(chunks[0][0])) if chunks else step

    def parts(t: int, keys: set[str], keep: dict[str, Any] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Frame ``t``'s inputs named in ``keys`` (``pred``, ``t``: the target, ``noise``: a no-label control,
        ``other``: a second acquisition or the noise-free truth, ``cells``) as NumPy, a few planes at a time. A lazy
        frame is read in slabs of its stored chunks' depth (each chunk decoded once; the block engine's cores), and
        each slab handed on in parts of :func:`slab_planes` planes (what the metrics' temporaries are sized by).
        ``keep``: arrays (scratch Zarr) each slab of the inputs they are named after is also written into."""
        f = frames(t, c)
        src = {"pred": f["pred"], "t": f["target"][ti], "cells": f["cells"]}
        if f["control"] is not None:
            src["noise"] = f["control"][ci]
        elif f["pair"] is not None or free is not None:
            src["other"] = f["pair"][pi] if f["pair"] is not None else f["target"][free]
        src = {k: v for k, v in src.items() if k in keys and v is not None}
        grid = tuple(f["pred"].shape)
        step = slab_planes(grid, BYTES_PER_VOXEL)
        for block in BlockGrid(grid, (read_depth(f), *grid[1:])):
            read = {k: _read(v, block.core, labels=k == "cells") for k, v in src.items()}
            for k, array in (keep or {}).items():
                array[block.core] = read[k]
            n = block.core[0].stop - block.core[0].start
            for z in range(0, n, step):
                yield {k: v[z : z + step] for k, v in read.items()}

    # pass 1: moments of prediction and target, of the noise, per cell; the nucleus share of the cells; each
    # frame's target range (SSIM's data range)
    pt, noise, truth_r, per_cell = Moments(), Moments(), Moments(), ObjectMoments()
    in_cells = np.zeros(2, np.int64)  # cell voxels, nucleus voxels among them
    ranges = [[np.inf, -np.inf] for _ in range(n_frames)]
    has_cells = False
    for t in range(n_frames):
        for part in parts(t, {"pred", "t", "noise", "other", "cells"}):
            p, tt = part["pred"], part["t"]
            pt.add(p, tt)
            ranges[t] = [min(ranges[t][0], float(tt.min())), max(ranges[t][1], float(tt.max()))]
            if "noise" in part:
                noise.add(part["noise"])
            elif "other" in part:
                noise.add(tt.astype(np.float64) - part["other"])
                if pi is None:
                    truth_r.add(p, part["other"])
            if "cells" in part:
                has_cells = True
                lab = part["cells"]
                per_cell.add(lab, p, tt)
                if mask_target:
                    inside = lab > 0
                    in_cells += [np.count_nonzero(inside), np.count_nonzero(inside & (tt > 0))]
    row: dict[str, Any] = {"structure": name, "target_channel": tname, "voxels": int(pt.n)}
    row["pearson_r"] = pt.pearson
    source = None
    if ci is not None:
        source = "no-label control"
    elif pi is not None:
        source = "two acquisitions"
    elif free is not None:
        source = "noise-free truth"
        row["pearson_r_truth"] = truth_r.pearson
    noise_var = (noise.var_a / 2 if source == "two acquisitions" else noise.var_a) if source else None
    row["noise_ceiling"] = ceiling_from_variances(noise_var, pt.var_b) if noise_var is not None else float("nan")
    row["noise_source"] = source or ""
    row["r_over_ceiling"] = (
        row["pearson_r"] / row["noise_ceiling"] if row["noise_ceiling"] == row["noise_ceiling"] else float("nan")
    )

    # Otsu's threshold of the prediction (inside the cells when given): two passes of a histogram
    masks = _MaskScores(has_cells) if mask_target else None
    if masks is not None:

        def values() -> Iterator[np.ndarray]:
            for t in range(n_frames):
                for part in parts(t, {"pred", "cells"}):
                    yield from masks.values(part["pred"], part["cells"] > 0 if "cells" in part else None)

        masks.threshold(values)

    # last passes: thresholded counts, the squared error of the z-scored frames (z-scores over the whole time-lapse,
    # as one volume) and SSIM per frame; the cell-depth baseline and `labelfree nuclei`, cell by cell
    mp, sp = pt.mean_a, math.sqrt(pt.var_a) or 1.0
    mt, st = pt.mean_b, math.sqrt(pt.var_b) or 1.0
    share = float(in_cells[1] / max(int(in_cells[0]), 1))
    depth_counts, nuclei_counts = np.zeros(2, np.int64), np.zeros(2, np.int64)  # |seg|, |seg ∩ truth|
    ssims, err = [], 0.0
    for t in range(n_frames):
        f = frames(t, c)
        by_cell = masks is not None and f["cells"] is not None
        keys = {"pred", "t", "cells"} if masks is not None else {"pred", "t"}
        with ExitStack() as stack:
            # a frame read slab by slab is also written to scratch Zarr arrays in small chunks as it is read here,
            # for what reads it in boxes next (SSIM's blocks, the cells' boxes): from the source's own chunks each
            # box would decode whole chunk layers, over and over
            keep = {} if isinstance(f["pred"], np.ndarray) else _scratch(stack.enter_context(scratch_temporary()), f,
                                                                          ti, read_depth(f), cells=by_cell,
                                                                          done=frames.in_scratch)  # fmt: skip
            for part in parts(t, keys, keep):
                p, tt = part["pred"], part["t"]
                if masks is not None:
                    masks.add(p, tt > 0, part["cells"] > 0 if "cells" in part else None)
                zp, zt = (p.astype(np.float64) - mp) / sp, (tt.astype(np.float64) - mt) / st
                err += squared_error_sum(zp, zt)
            src_p, src_t = keep.get("pred", f["pred"]), keep.get("t", f["target"][ti])
            zscored = lambda ext, src_p=src_p, src_t=src_t: (  # noqa: E731
                (_read(src_p, ext).astype(np.float64) - mp) / sp,
                (_read(src_t, ext).astype(np.float64) - mt) / st,
            )
            ssims.append(ssim_of(zscored, src_p.shape, data_range=(ranges[t][1] - ranges[t][0]) / st or 1.0))
            if by_cell:
                cells = keep.get("cells", f["cells"])
                for box, chosen in deepest_by_cell(cells, sampling, share):
                    depth_counts += [np.count_nonzero(chosen), np.count_nonzero(chosen & (_read(src_t, box) > 0))]
                counter = _NucleusCounts(src_t, tuple(cells.shape), cells.dtype)
                # the command's own function, its cache of cells' boxes smaller than the command's (memory, not speed)
                nuclei_by_cell(src_p, cells, sampling, out=counter, cache_gb=NUCLEI_CACHE_GB)
                nuclei_counts += counter.counts
    row["ssim"] = float(np.mean(ssims))
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    row["psnr_db"] = psnr_from(err / max(pt.n, 1), (hi - lo) / st or 1.0)
    row["nrmse"] = nrmse_from(err / max(pt.n, 1), math.sqrt(pt.var_b) / st)  # the z-scored target's deviation
    if has_cells:
        per = [v for v in per_cell.pearson().values() if v == v]
        row["cells"] = len(per)
        row["pearson_r_cell_mean"] = float(np.mean(per)) if per else float("nan")
        row["pearson_r_cell_median"] = float(np.median(per)) if per else float("nan")
    if masks is not None:
        row.update(masks.result())
        if has_cells:
            truth_in = int(in_cells[1])
            row["dice_cell_depth_baseline"] = dice_from_counts(int(depth_counts[0]), truth_in, int(depth_counts[1]))
            row["nucleus_share_of_cells"] = share
            row["dice_nuclei_in_cells"] = dice_from_counts(int(nuclei_counts[0]), truth_in, int(nuclei_counts[1]))
    return row
