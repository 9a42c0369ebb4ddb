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
(:func:`~subcell.labelfree.cell_prior.nuclei_by_cell`). :func:`write_nuclei` (the command) holds no frame whole:
each frame's prediction and its cells (the one label rule applied slab by slab) go to scratch Zarr stores beside
the output and are read back one cell's box at a time; each nucleus goes into a scratch store too, copied into the
output OME-Zarr chunk by chunk when the frame is done. Memory is the ``--memory-limit`` (the prediction's tiles,
then what the first pass over the cells keeps) and a few slabs, whatever the field's size. An OME-TIFF output is
written whole at the end, so it holds the nuclei of every frame.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import ChannelError, MetadataError
from subcell.image import Image
from subcell.labelfree.cell_prior import nuclei_by_cell, slab_planes
from subcell.labelfree.config import NucleiConfig
from subcell.transforms.align import align_to, on_grid_of

__all__ = ["NucleiConfig", "nuclei_frames", "nuclei_in_cells", "write_nuclei"]

# a new (Z, Y, X) array: name, shape, dtype, chunks (planes, rows, columns) -> NumPy array or Zarr array
NewArray = Callable[[str, tuple[int, ...], Any, tuple[int, ...]], Any]
PIECES_BLOCK = 256  # lateral block of the connected pieces of a one-value mask (whole planes in z)
# scratch arrays are read and written one cell's box at a time: small chunks (int32: 512 kB) touch little beyond a
# box (writing each nucleus straight into the output store's 32 × 256 × 256 chunks took twice as long)
SCRATCH_CHUNKS = (8, 128, 128)


def _in_memory(name: str, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, dtype)


def _zarr_in(folder: Path) -> NewArray:
    """Arrays made as Zarr stores in ``folder`` (a scratch folder the caller removes)."""
    from subcell.io._atomic import scratch_array

    def new(name: str, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...]) -> Any:
        return scratch_array(folder, name, shape=shape, dtype=dtype, chunks=chunks)

    return new


def _instance_labels(cells: Image, t: int, new: NewArray = _in_memory) -> Any:
    """Frame ``t`` of the cells as integer instance labels ``(Z, Y, X)`` (:func:`subcell.io.as_labels`: integers, a
    boolean mask, or floats of whole numbers), in an array from ``new``; a mask of one value in several pieces is
    labelled by its pieces (1, 2, …, numbered as ``scipy.ndimage.label`` numbers them), one cell keeps its id.

    Block by block (the block engine): the rule is applied to slabs of whole planes (read once each, however the
    source is stored), and the pieces of a mask are joined across blocks (:func:`~subcell.blocks.label_blocks`), so
    memory holds a slab, not the frame, when ``new`` makes Zarr arrays."""
    from subcell.blocks import BlockGrid, label_blocks, map_blocks
    from subcell.io import as_labels

    if cells.shape[1] != 1:
        raise ChannelError(f"expected one channel of cell instance labels, got {cells.shape[1]} "
                           f"({list(cells.channel_names)})", field="cells")  # fmt: skip
    src = cells.data[t, 0]
    shape = tuple(int(n) for n in src.shape)
    where = cells.provenance.source
    dtype = as_labels(np.zeros(0, src.dtype), path=where, what="cell labels").dtype  # the rule's dtype, or its error
    slab = slab_planes(shape, 16)  # the source's values and the labels made of them
    lab = new("cells", shape, dtype, SCRATCH_CHUNKS)

    def convert(block: Any) -> np.ndarray:
        part = as_labels(src[block.core], path=where, what="cell labels")  # the one label rule
        lab[block.core] = part
        return np.unique(part)

    values = np.unique(np.concatenate(map_blocks(convert, BlockGrid(shape, (slab, *shape[1:])))))
    if values.size != 2:
        return lab
    # one value: a mask, whose separate pieces are separate cells (joined across lateral blocks of whole planes)
    grid = BlockGrid(shape, (shape[0], PIECES_BLOCK, PIECES_BLOCK))
    pieces = new("pieces", shape, np.int32, SCRATCH_CHUNKS)
    found = label_blocks(grid, lambda block: np.asarray(lab[block.core]) > 0, pieces)
    if found.n <= 1:  # a single cell keeps its id
        return lab

    def number(block: Any) -> None:
        pieces[block.core] = found.ids(block)  # each block's own ids only: rewritten in place

    map_blocks(number, grid)
    return pieces


def _frame_nuclei(pred: Image, t: int, lab: Any, cells: Image, cfg: NucleiConfig, out: Any, cache_gb: float,
                  found: dict[int, bool], progress: Callable[[int, int], None] | None = None,
                  volume: Any = None) -> None:  # fmt: skip
    """The nuclei of frame ``t`` of the one-channel ``pred`` inside ``lab`` (that frame's cells, on ``cells``' grid)
    written into ``out``; ``found`` gets each cell's id and whether it got a nucleus. ``volume``: the same frame as
    a ``(Z, Y, X)`` array that reads boxes faster than ``pred.data`` (:func:`subcell.io._ngff.level0_volume`), used
    on the cells' grid."""
    if on_grid_of(pred, cells):
        p = pred.data[t, 0] if volume is None else volume  # read box by box (lazy when the prediction is)
    else:  # this frame resampled onto the cells' grid, in memory
        p = align_to(pred.sel(t=t), cells.sel(t=0))[0, 0]
    assert cfg.prior_weight is not None  # resolved by _resolved
    nuclei_by_cell(p, lab, cells.voxel_size, prior_weight=cfg.prior_weight, share=cfg.share, out=out,
                   cache_gb=cache_gb, found=found, progress=progress)  # fmt: skip


def _copy_frame(nuclei: Any, writer: Any, t: int) -> None:
    """A frame's nuclei into frame ``t`` of the output's level 0, one of its chunks at a time (each written once)."""
    from subcell.blocks import BlockGrid, map_blocks

    def copy(block: Any) -> None:
        writer.write_region((slice(t, t + 1), slice(0, 1), *block.core), np.asarray(nuclei[block.core])[None, None])

    map_blocks(copy, BlockGrid(nuclei.shape, writer.chunks[2:]))


def _stages(
    progress: Callable[[str, int, int], None] | None, frame: str
) -> tuple[Callable[[int, int], None] | None, Callable[[int, int], None] | None]:
    """``progress`` as the (done, total) callbacks of a frame's prediction and of its passes over the cells."""
    if progress is None:
        return None, None
    report = progress  # narrowed for the closures
    return (lambda d, n: report(f"{frame}: prediction", d, n)), (lambda d, n: report(f"{frame}: nuclei", d, n))


def _warn_missing(missing: int) -> None:
    if missing:
        warnings.warn(f"{missing} cell(s) got no nucleus: nothing in them passed the threshold", stacklevel=3)


def _check_times(n_t: int, cells: Image, what: str) -> None:
    if cells.shape[0] not in (1, n_t):
        raise MetadataError(f"{cells.shape[0]} timepoints of cells for {n_t} of {what}; expected 1 or the same "
                            "number", path=cells.provenance.source, field="T")  # fmt: skip


def nuclei_in_cells(
    prediction: Image, cells: Image, config: NucleiConfig | None = None, *, cache_gb: float = 1.0
) -> Image:
    """Nucleus instance labels, one per cell with the cell's id, from a nucleus prediction and cell labels.

    Computed cell by cell (:func:`~subcell.labelfree.cell_prior.nuclei_by_cell`): a lazy prediction on the cells'
    grid (e.g. read from the OME-Zarr ``labelfree predict`` wrote) is read one cell's box at a time; the cells and
    the nuclei are held in memory (:func:`write_nuclei` holds neither).

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
    cfg = _resolved(config or NucleiConfig(), cell_conditioned=False)  # a prediction: no model to ask
    if cfg.channel not in prediction.channel_names:
        raise ChannelError(f"the prediction has no {cfg.channel!r} output; it has {list(prediction.channel_names)}",
                           field="channel")  # fmt: skip
    n_t = prediction.shape[0]
    _check_times(n_t, cells, "prediction")
    pred = prediction.channel(cfg.channel)
    out: np.ndarray | None = None
    lab: Any = None
    missing = 0
    for t in range(n_t):
        if lab is None or cells.shape[0] > 1:
            lab = _instance_labels(cells, min(t, cells.shape[0] - 1))
        if out is None:
            out = np.zeros((n_t, *lab.shape), lab.dtype)
        found: dict[int, bool] = {}
        _frame_nuclei(pred, t, lab, cells, cfg, out[t], cache_gb, found)
        missing += sum(not v for v in found.values())
    _warn_missing(missing)
    return Image(out[:, None], voxel_size=cells.voxel_size, channel_names=["nucleus"],  # type: ignore[index]
                 time_interval=prediction.time_interval or cells.time_interval,
                 provenance=prediction.provenance.then("nuclei_in_cells", cfg.model_dump()))  # fmt: skip


def nuclei_frames(
    model: Any, image: Image, cells: Image, config: NucleiConfig | None = None, predict: Any = None
) -> Iterator[tuple[int, Image]]:
    """``(t, nuclei)`` for every timepoint of ``image``: the model's prediction of that frame on the input's grid,
    in memory (:func:`~subcell.labelfree.predict_image`), then :func:`nuclei_in_cells` with that frame's cells (or
    the single frame of cells for all). One frame is done at a time, so a time-lapse is never predicted whole.
    ``predict`` is a :class:`~subcell.labelfree.PredictConfig` (its ``output_grid`` and ``timepoints`` are set here).
    :func:`write_nuclei` gives the same labels without holding a frame."""
    from subcell.labelfree import PredictConfig, predict_image

    cfg = _checked(model, image, cells, config)
    base = predict or PredictConfig()
    for t in range(image.shape[0]):
        pcfg = base.model_copy(update={"output_grid": "input", "timepoints": [t]})
        frame_cells = cells.sel(t=t if cells.shape[0] > 1 else 0)
        pred = predict_image(model, image, pcfg, cells=_model_cells(model, frame_cells))
        yield t, nuclei_in_cells(pred, frame_cells, cfg)


def _model_cells(model: Any, cells: Image, lab: Any = None) -> Image | None:
    """The cells as the prediction's second input, for a model conditioned on them (``lab``: the frame's instance
    labels on ``cells``' grid when already made, e.g. in a scratch Zarr array, else made here from its first frame),
    handed on lazily on their own grid: the prediction puts them on the bright-field's a frame at a time, into
    memory or its store's scratch as it does the depth
    (:class:`~subcell.labelfree.predict_input.CellDepth`); None, with nothing computed, for any other model."""
    import dask.array as da

    if not model.cell_conditioned:
        return None
    if lab is None:
        lab = _instance_labels(cells, 0)
    data = lab if isinstance(lab, np.ndarray) else da.from_array(lab, chunks=getattr(lab, "chunks", "auto"))
    return Image(data[None, None], voxel_size=cells.voxel_size, channel_names=["cells"], provenance=cells.provenance)


def _checked(model: Any, image: Image, cells: Image, config: NucleiConfig | None) -> NucleiConfig:
    """The config, once the model has its channel and the cells' timepoints fit (before minutes of prediction)."""
    from subcell.labelfree.predictor import output_channel_names

    cfg = config or NucleiConfig()
    names = output_channel_names(model)
    if cfg.channel not in names:
        raise ChannelError(f"the model has no {cfg.channel!r} output; it has {names}", field="channel")
    _check_times(image.shape[0], cells, "bright-field")
    return _resolved(cfg, cell_conditioned=model.cell_conditioned)


def _resolved(cfg: NucleiConfig, *, cell_conditioned: bool) -> NucleiConfig:
    """``cfg`` with its default prior weight made concrete: 0 for a model that took the cells as input (it has used
    the outlines already), 0.5 otherwise."""
    if cfg.prior_weight is not None:
        return cfg
    return cfg.model_copy(update={"prior_weight": 0.0 if cell_conditioned else 0.5})


def write_nuclei(
    model: Any, image: Image, cells: Image, path: str | Path, config: NucleiConfig | None = None,
    predict: Any = None, *, overwrite: bool = False, progress: Callable[[str, int, int], None] | None = None,
) -> int:  # fmt: skip
    """The nuclei of every frame of ``image`` (as :func:`nuclei_frames`) written to ``path``, atomically; returns
    the number of nuclei (distinct ids).

    Nothing of a frame is held whole: its prediction (:func:`~subcell.labelfree.predict_to_zarr`, tiles within
    the ``memory_limit_gb`` of ``predict``) and its cells (:func:`_instance_labels`, slab by slab) go to Zarr stores
    in a scratch folder beside ``path`` (removed at the end and on error), the first pass over the cells keeps what
    it read within the same memory limit, and each nucleus is written into a scratch Zarr, copied into the
    ``.ome.zarr`` output chunk by chunk once the frame is done; an ``.ome.tif`` output is written at the end from
    the frames' scratch arrays, a few planes at a time. ``progress`` gets (stage, done, total): the prediction's
    tiles (``"frame 1/3: prediction"``), then the cells of each pass over them (``"frame 1/3: nuclei"``)."""
    from subcell.io import OmeZarrWriter, output_format, read, write
    from subcell.io._atomic import check_output, discard, scratch_beside
    from subcell.io._ngff import level0_volume
    from subcell.labelfree import PredictConfig, predict_to_zarr

    cfg = _checked(model, image, cells, config)
    check_output(path, overwrite=overwrite)  # before minutes of prediction
    base = predict or PredictConfig()
    n_t = image.shape[0]
    to_zarr = output_format(path) == "ome-zarr"
    found: dict[int, bool] = {}
    missing = 0
    with scratch_beside(path) as scratch:
        new = _zarr_in(scratch)
        lab = _instance_labels(cells, 0, new)  # its dtype is the output's
        tif: list[Any] = []  # an OME-TIFF output's frames, in scratch Zarr arrays until written
        provenance = image.provenance.then("labelfree_nuclei", cfg.model_dump())
        opened: Any = contextlib.nullcontext()
        if to_zarr:
            opened = OmeZarrWriter(path, shape=(n_t, 1, *lab.shape), dtype=lab.dtype, voxel_size=cells.voxel_size,
                                   channel_names=["nucleus"], is_label=True, time_interval=image.time_interval,
                                   provenance=provenance, overwrite=overwrite)  # fmt: skip
        with opened as writer:  # closed into place at the end, removed on error
            for t in range(n_t):
                if t and cells.shape[0] > 1:
                    lab = _instance_labels(cells, t, new)
                store = scratch / f"prediction_t{t}.ome.zarr"
                pcfg = base.model_copy(update={"output_grid": "input", "timepoints": [t]})
                tiles, cells_done = _stages(progress, f"frame {t + 1}/{n_t}")
                predict_to_zarr(model, image, store, pcfg, levels=1, progress=tiles,  # read back at full resolution
                                cells=_model_cells(model, cells, lab))  # fmt: skip
                out = new("nuclei" if writer else f"nuclei_t{t}", lab.shape, lab.dtype, SCRATCH_CHUNKS)
                frame: dict[int, bool] = {}
                # the prediction's memory is free again: the same budget keeps what the first pass over the cells read
                pred = read(store)
                volume = level0_volume(store, 0, pred.channel_index(cfg.channel))
                _frame_nuclei(pred.channel(cfg.channel), 0, lab, cells, cfg, out, base.memory_limit_gb, frame,
                              cells_done, volume)  # fmt: skip
                discard(store)
                if writer is None:
                    tif.append(out)
                else:
                    _copy_frame(out, writer, t)
                missing += sum(not v for v in frame.values())
                found.update({i: found.get(i, False) or v for i, v in frame.items()})
        if not to_zarr:  # streamed into the file a few planes at a time (a Dask image)
            import dask.array as da

            frames = [da.from_array(a, chunks=(SCRATCH_CHUNKS[0], *a.shape[1:])) for a in tif]
            labels = Image(da.stack(frames)[:, None], voxel_size=cells.voxel_size, channel_names=["nucleus"],
                           time_interval=image.time_interval, provenance=provenance)  # fmt: skip
            write(labels, path, overwrite=overwrite, is_label=True)
    _warn_missing(missing)
    return sum(found.values())
