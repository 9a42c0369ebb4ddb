"""``subcell labelfree nuclei``: nucleus instances from a bright-field prediction inside the user's segmented cells.

A label-free nucleus prediction alone is noisy where the bright-field gives little away; the cell outlines carry
what every interphase cell obeys: one compact nucleus, in the middle of the cell. Three rules, each measured on
the real Allen stacks (``benchmarks/labelfree/results.md``, "How much of the Dice is where a nucleus sits"):

The array rules are in :mod:`subcell.labelfree.cell_prior`; this module applies them to images, frame by frame.

1. **Score** = the z-scored prediction and the z-scored cell depth (:func:`~subcell.labelfree.cell_prior.cell_depth`,
   1 at a cell's centre, 0 at its edge) averaged inside the cells, ``prior_weight`` on the depth (0.5: equal
   weights, fixed before any measurement). The depth alone is the outline-only prior; the average beat both the
   prediction alone and the prior alone on every model measured.
2. **Threshold**: Otsu's threshold of the score over all cell voxels (nothing fitted to labels), or, given the
   nucleus ``share`` of the cell volume (e.g. measured on your training stacks), each cell's highest-scoring share.
3. **One object per cell**: in each cell the largest connected piece, holes filled, labelled with the cell's id
   (nucleus i lies in cell i, as the Allen pipeline's labels do).

Everything is computed on the cells' grid, one frame at a time (:func:`nuclei_frames`: a time-lapse holds one
frame, never the whole series) and, within a frame, one cell's bounding box at a time
(:func:`~subcell.labelfree.cell_prior.nuclei_by_cell`): ``write_nuclei`` streams each frame's prediction to a
scratch OME-Zarr and reads it back box by box, so a large field needs memory for its cells and nuclei, not for the
prediction, depth and scores of the whole frame.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import ChannelError, MetadataError
from subcell.image import Image
from subcell.labelfree.cell_prior import nuclei_by_cell
from subcell.labelfree.config import NucleiConfig
from subcell.labelfree.evaluate import align_to

__all__ = ["NucleiConfig", "nuclei_frames", "nuclei_in_cells", "write_nuclei"]


def _instance_labels(cells: Image, t: int) -> np.ndarray:
    """Frame ``t`` of the cells as integer instance labels ``(Z, Y, X)`` (:func:`subcell.io.as_labels`: integers, a
    boolean mask, or floats of whole numbers); a mask of one value in several pieces is labelled by its pieces
    (1, 2, …), one cell keeps its id. One frame is read at a time."""
    from scipy import ndimage as ndi

    from subcell.io import as_labels

    if cells.shape[1] != 1:
        raise ChannelError(f"expected one channel of cell instance labels, got {cells.shape[1]} "
                           f"({list(cells.channel_names)})", field="cells")  # fmt: skip
    lab = as_labels(cells.data[t, 0], path=cells.provenance.source, what="cell labels")  # the one label rule
    if np.unique(lab).size == 2:  # one value: a mask, whose separate pieces are separate cells
        pieces, n = ndi.label(lab > 0)
        lab = pieces.astype(np.int32) if n > 1 else lab  # a single cell keeps its id
    return lab


def nuclei_in_cells(
    prediction: Image, cells: Image, config: NucleiConfig | None = None, *, cache_gb: float = 1.0
) -> Image:
    """Nucleus instance labels, one per cell with the cell's id, from a nucleus prediction and cell labels.

    Computed cell by cell (:func:`~subcell.labelfree.cell_prior.nuclei_by_cell`): a lazy prediction on the cells'
    grid (e.g. read from the OME-Zarr ``labelfree predict`` wrote) is read one cell's box at a time, so memory holds
    the cells and the nuclei of one frame, not the frame's prediction, depth and scores.

    Parameters
    ----------
    prediction : Image
        Output of :func:`~subcell.labelfree.predict_image` with the ``config.channel`` output (a ``nucleus`` mask
        model's, or ``dna``'s); resampled to the cells' grid when it is on another one, one frame at a time
        (``output_grid: input`` avoids that).
    cells : Image
        Cell instance labels (one channel; a one-value mask in several pieces is split into them), one timepoint or
        as many as the prediction. The result is on their grid.
    config : NucleiConfig, optional
        Prior weight, threshold rule, channel.
    cache_gb : float
        Memory for what the first pass over the cells read and computed (beyond it, cells are read again in each of
        the up to four passes; same result).

    Returns
    -------
    Image
        ``(T, 1, Z, Y, X)`` labels named ``nucleus`` with the cells' voxel size and ids.
    """
    cfg = config or NucleiConfig()
    if cfg.channel not in prediction.channel_names:
        raise ChannelError(f"the prediction has no {cfg.channel!r} output; it has {list(prediction.channel_names)}",
                           field="channel")  # fmt: skip
    n_t = prediction.shape[0]
    if cells.shape[0] not in (1, n_t):
        raise MetadataError(f"{cells.shape[0]} timepoints of cells for {n_t} of prediction; expected "
                            "1 or the same number", path=cells.provenance.source, field="T")  # fmt: skip
    pred = prediction.channel(cfg.channel)
    same_grid = pred.shape[2:] == cells.shape[2:] and pred.voxel_size.isclose(cells.voxel_size, rtol=0.02)
    out: np.ndarray | None = None
    missing = 0
    for t in range(n_t):
        lab = _instance_labels(cells, min(t, cells.shape[0] - 1))
        if out is None:
            out = np.zeros((n_t, *lab.shape), lab.dtype)
        if same_grid:  # read box by box (lazy when the prediction is)
            p = pred.data[t, 0]
        else:  # this frame resampled onto the cells' grid, in memory
            p = align_to(pred.sel(t=t), cells.with_data(lab[None, None], step="instance_labels"))[0, 0]
        nuclei_by_cell(
            p, lab, cells.voxel_size, prior_weight=cfg.prior_weight, share=cfg.share, out=out[t], cache_gb=cache_gb
        )
        missing += len(set(np.unique(lab)) - set(np.unique(out[t])))
    if missing:
        warnings.warn(f"{missing} cell(s) got no nucleus: nothing in them passed the threshold", stacklevel=2)
    params: dict[str, Any] = cfg.model_dump()
    return Image(out[:, None], voxel_size=cells.voxel_size, channel_names=["nucleus"],  # type: ignore[index]
                 time_interval=prediction.time_interval or cells.time_interval,
                 provenance=prediction.provenance.then("nuclei_in_cells", params))  # fmt: skip


def nuclei_frames(
    model: Any, image: Image, cells: Image, config: NucleiConfig | None = None, predict: Any = None, *,
    scratch: str | Path | None = None,
) -> Iterator[tuple[int, Image]]:  # fmt: skip
    """``(t, nuclei)`` for every timepoint of ``image``: the model's prediction of that frame on the input's grid,
    then :func:`nuclei_in_cells` with that frame's cells (or the single frame of cells for all). One frame is done
    at a time, so a time-lapse streams (``subcell labelfree nuclei`` writes each frame as it comes). ``predict`` is
    a :class:`~subcell.labelfree.PredictConfig` (its ``output_grid`` and ``timepoints`` are set here).

    With a ``scratch`` folder, each frame's prediction goes to an OME-Zarr there
    (:func:`~subcell.labelfree.predict_to_zarr`, tiles within ``memory_limit_gb``) and is read back one cell's box
    at a time, then deleted: memory holds one frame of cells and of nuclei, whatever the frame's size. Without, the
    prediction is held in memory (:func:`~subcell.labelfree.predict_image`). Both give the same labels."""
    from subcell.io import read
    from subcell.io._atomic import discard
    from subcell.labelfree import PredictConfig, predict_image, predict_to_zarr
    from subcell.labelfree.predictor import output_channel_names

    cfg = config or NucleiConfig()
    names = output_channel_names(model)
    if cfg.channel not in names:  # before minutes of prediction
        raise ChannelError(f"the model has no {cfg.channel!r} output; it has {names}", field="channel")
    n_t = image.shape[0]
    if cells.shape[0] not in (1, n_t):
        raise MetadataError(f"{cells.shape[0]} timepoints of cells for {n_t} of bright-field; expected 1 or the same "
                            "number", path=cells.provenance.source, field="T")  # fmt: skip
    base = predict or PredictConfig()
    for t in range(n_t):
        pcfg = base.model_copy(update={"output_grid": "input", "timepoints": [t]})
        frame_cells = cells.sel(t=t if cells.shape[0] > 1 else 0)
        if scratch is None:
            yield t, nuclei_in_cells(predict_image(model, image, pcfg), frame_cells, cfg)
            continue
        store = Path(scratch) / f"prediction_t{t}.ome.zarr"
        try:
            predict_to_zarr(model, image, store, pcfg)
            # the prediction's memory is free again: the same budget keeps what the first pass over the cells read
            nuclei = nuclei_in_cells(read(store), frame_cells, cfg, cache_gb=base.memory_limit_gb)
        finally:
            discard(store)
        yield t, nuclei


def write_nuclei(
    model: Any, image: Image, cells: Image, path: str | Path, config: NucleiConfig | None = None,
    predict: Any = None, *, overwrite: bool = False,
) -> int:  # fmt: skip
    """:func:`nuclei_frames` written to ``path`` (``.ome.zarr``: frame by frame as they come, so a time-lapse is
    never held whole; ``.ome.tif``: at the end), atomically; returns the number of nuclei (distinct ids). Each
    frame's prediction goes through a scratch OME-Zarr beside ``path`` (removed), so memory holds one frame of cells
    and nuclei, not the prediction."""
    from subcell.io import OmeZarrWriter, output_format, write
    from subcell.io._atomic import check_output, scratch_beside

    found: set[int] = set()
    check_output(path, overwrite=overwrite)  # before minutes of prediction
    with scratch_beside(path) as scratch:
        frames = nuclei_frames(model, image, cells, config, predict, scratch=scratch)
        if output_format(path) != "ome-zarr":
            parts = [lab for _, lab in frames]
            labels = parts[0].with_data(np.concatenate([p.numpy() for p in parts]), step="frames")
            write(labels.with_metadata(time_interval=image.time_interval), path, overwrite=overwrite, is_label=True)
            return len(set(np.unique(labels.numpy()).tolist()) - {0})
        first = next(frames)  # the first frame fixes the store's dtype
        lab0 = first[1]
        with OmeZarrWriter(path, shape=(image.shape[0], *lab0.shape[1:]), dtype=lab0.dtype,
                           voxel_size=lab0.voxel_size, channel_names=["nucleus"], is_label=True,
                           time_interval=image.time_interval, provenance=lab0.provenance,
                           overwrite=overwrite) as writer:  # fmt: skip
            for t, lab in itertools.chain([first], frames):
                writer.write_region((slice(t, t + 1),), lab.numpy())
                found |= set(np.unique(lab.numpy()).tolist())
    return len(found - {0})
