"""The input of a prediction: the model's channel at the model's grid (resampled slab by slab when the image is
on another), checked against the model, and normalised with the whole stack's statistics from one streaming pass."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from subcell.errors import ChannelError, MetadataError, ValueRangeError
from subcell.image import SAME_GRID_RTOL, Image, VoxelSize, materialize
from subcell.labelfree.config import PredictConfig
from subcell.labelfree.predictor import Predictor, RowSource

__all__ = [
    "DEPTH_HELD_BYTES",
    "CellDepth",
    "cell_depth_input",
    "check_input",
    "check_planes",
    "on_model_grid",
    "resample_hint",
    "row_source",
    "stack_stats",
]


def check_planes(model: Predictor, image: Image) -> None:
    """Refuse a single plane for a 3D model (checked before anything is said of a prediction that cannot run)."""
    if not model.is_2d and image.shape[2] == 1:
        raise MetadataError(
            f"a 3D model needs a z-stack; the image has a single plane {image.shape[3:]} (2D models: subcell "
            "labelfree models)",
            path=image.provenance.source,
            field="shape",
        )


def check_input(model: Predictor, image: Image, cfg: PredictConfig) -> tuple[int, VoxelSize, tuple[int, int, int]]:
    """Channel index, model-grid voxel size and shape; warns or fails on a voxel-size mismatch."""
    from subcell.transforms.resample import resampled_grid

    if image.shape[1] == 1 and model.input_channel not in image.channel_names:
        c = 0
        warnings.warn(
            f"the model was trained on channel {model.input_channel!r}; using the image's only channel "
            f"{image.channel_names[0]!r} as that",
            UserWarning,
            stacklevel=3,
        )
    else:
        try:
            c = image.channel_index(model.input_channel)
        except ChannelError:
            raise ChannelError(
                f"model expects input channel {model.input_channel!r}; the image has {list(image.channel_names)}",
                path=image.provenance.source,
                field="channel",
            ) from None
    check_planes(model, image)
    vs = image.voxel_size
    mvs = model.voxel_size
    if not model.voxel_size_known:  # a package without physical units: take the image's grid
        mvs = vs
    if model.is_2d:
        mvs = VoxelSize(vs.z, mvs.y, mvs.x)
    if not vs.isclose(mvs, rtol=SAME_GRID_RTOL):
        if not cfg.allow_resample:
            raise MetadataError(
                f"image voxel size {vs.as_tuple()} µm differs from the model's {mvs.as_tuple()} µm "
                "and resampling is disallowed",
                path=image.provenance.source,
                field="voxel_size",
            )
        warnings.warn(
            f"resampling input from {vs.as_tuple()} µm to the model's {mvs.as_tuple()} µm", UserWarning, stacklevel=3
        )
        shape, exact = resampled_grid(image.shape[2:], vs, mvs)
        return c, exact, shape
    return c, vs, image.shape[2:]  # type: ignore[return-value]


DEPTH_HELD_BYTES = 256 << 20  # a frame's cell depth (float32) up to this is computed in memory, a larger one in scratch


class CellDepth:
    """The second input of a model conditioned on the cell outlines, one frame at a time: each voxel's depth in its
    cell (:func:`~subcell.labelfree.cell_prior.cell_depth`) on the image's grid, made by :func:`cell_depth_input`.

    A frame is computed when asked for (:meth:`frame`) and only that frame is held: in memory up to
    :data:`DEPTH_HELD_BYTES`, beyond that in a scratch Zarr array the caller provides (e.g. inside the unfinished
    output store), swept down the field from the labels read lazily, a window of rows at a time
    (:func:`~subcell.labelfree.cell_prior.cell_depth_into`). A time-lapse is never held whole,
    and timepoints not predicted are never computed; one frame of cells for every timepoint is computed once.
    Cells on another grid than the image (``grid``: the image, to resample them onto) are resampled by nearest
    neighbour onto it a frame at a time, a stored chunk layer at a time, into memory or scratch as the depth is,
    before the sweep reads them (the sweep's row windows would otherwise resample the whole frame each).
    """

    def __init__(self, cells: Image, voxel_size: VoxelSize, grid: Image | None = None) -> None:
        from subcell.io import as_labels

        # the one label rule (integers, a mask, or floats of whole numbers), block by block as read
        self.labels = as_labels(cells.data[:, 0], path=cells.provenance.source, what="cell labels", lazy=True)
        self.cells = cells.with_data(self.labels[:, None], step="as_labels") if grid is not None else cells
        self.grid = grid
        self.voxel_size = voxel_size
        self._last: tuple[int, Image] | None = None

    def frame(self, t: int, scratch: Callable[..., Any] | None = None, *, name: str = "cell_depth",
              held_bytes: float | None = None) -> Image:  # fmt: skip
        """The cell depth of timepoint ``t`` (or of the only frame of cells), ``(1, 1, Z, Y, X)`` float32.
        ``scratch(name, shape=, dtype=, chunks=)`` makes a Zarr array of zeros (the depth's is ``name``) for a frame
        beyond ``held_bytes`` (default :data:`DEPTH_HELD_BYTES`; in memory whatever its size when ``scratch`` is
        None)."""
        import dask.array as da

        from subcell.labelfree.cell_prior import cell_depth_into

        i = min(t, self.labels.shape[0] - 1)
        if self._last is not None and self._last[0] == i:
            return self._last[1]
        self._last = None  # the previous frame is let go before the next is made
        held = DEPTH_HELD_BYTES if held_bytes is None else held_bytes
        lab = self.labels[i] if self.grid is None else self._on_grid(i, scratch, held)
        sampling = (self.voxel_size.z, self.voxel_size.y, self.voxel_size.x)
        if scratch is None or 4 * math.prod(lab.shape) <= held:
            depth: Any = np.zeros(lab.shape, np.float32)
            cell_depth_into(depth, lab, sampling)
        else:
            out = scratch(name, shape=lab.shape, dtype="float32", chunks=(min(lab.shape[0], 16), 128, 128))
            cell_depth_into(out, lab, sampling)
            depth = da.from_zarr(out)
        self._last = (i, Image(depth[None, None], voxel_size=self.voxel_size, channel_names=["cell_depth"]))
        return self._last[1]

    def _on_grid(self, i: int, scratch: Callable[..., Any] | None, held: float) -> Any:
        """Frame ``i`` of the cells resampled onto the image's grid: in memory, or in a scratch array (one, reused
        by every frame: the depth is made from it before the next frame needs it)."""
        from subcell.image import dask_scheduler
        from subcell.transforms.align import aligned_into, aligned_lazily

        assert self.grid is not None
        if scratch is None or np.dtype(self.labels.dtype).itemsize * math.prod(self.grid.shape[2:]) <= held:
            return aligned_lazily(self.cells, i, self.grid, labels=True)[0].compute(scheduler=dask_scheduler())
        (lab,) = aligned_into(self.cells, i, self.grid, labels=True, new=lambda _, **kw: scratch("cells_on_grid", **kw))
        return lab


def cell_depth_input(model: Predictor, image: Image, cells: Image | None) -> CellDepth | None:
    """The cell depth a model conditioned on the cell outlines takes as its second input (:class:`CellDepth`,
    computed a frame at a time), None for a model without it. Checks that the cells are given exactly when the
    model takes them, one frame for every timepoint or one for all, and that they cover the image's field: on its
    grid, or on another that :func:`~subcell.transforms.align.align_to` puts onto it (resampled by nearest
    neighbour, cropped or padded by a voxel at most)."""
    from subcell.transforms.align import fitted_shape
    from subcell.transforms.resample import resampled_shape

    conditioned = model.cell_conditioned
    if conditioned and cells is None:
        raise ValueRangeError("the model takes the cell outlines as a second input: give the cell labels "
                              "(--cells LABELS; the cells need not all be labelled)", field="cells")  # fmt: skip
    if cells is None:
        return None
    if not conditioned:
        raise ValueRangeError("the model takes no cell outlines; cells are the input of a model conditioned on "
                              "them (e.g. nucleus-in-cells)", path=cells.provenance.source, field="cells")  # fmt: skip
    if cells.shape[0] not in (1, image.shape[0]) or cells.shape[1] != 1:
        raise MetadataError(f"cell labels of shape {cells.shape} (TCZYX): expected one channel and one frame or "
                            f"one for each of the image's {image.shape[0]} timepoints", path=cells.provenance.source,
                            field="cells")  # fmt: skip
    vs = image.voxel_size
    if cells.voxel_size.isclose(vs, rtol=SAME_GRID_RTOL):
        if cells.shape[2:] != image.shape[2:]:
            raise MetadataError(f"cell labels of shape {cells.shape} (TCZYX) do not lie on the image's grid "
                                f"{image.shape}: expected (Z, Y, X) {image.shape[2:]}", path=cells.provenance.source,
                                field="cells")  # fmt: skip
        return CellDepth(cells, vs)
    # another grid: it must cover the image's field (evaluate's check), before minutes of prediction
    fitted_shape(cells, resampled_shape(cells.shape[2:], cells.voxel_size, vs), image)
    return CellDepth(cells, vs, grid=image)


def resample_hint(grid_vs: VoxelSize) -> str:
    """The command that puts an image on the model's grid ``grid_vs`` (for errors that need it there)."""
    return f"subcell convert IMAGE OUT.ome.zarr --resample {' '.join(f'{v:.4g}' for v in grid_vs.as_tuple())}"


def on_model_grid(image: Image, grid_vs: VoxelSize, shape: tuple[int, int, int]) -> bool:
    """Whether ``image`` is read as it is (no resampling to the model grid): what reading lateral parts needs."""
    return grid_vs.isclose(image.voxel_size, rtol=1e-6) or tuple(shape) == tuple(image.shape[2:])


def _raw_rows(image: Image, t: int, c: int, grid_vs: VoxelSize, shape: tuple[int, int, int]) -> RowSource:
    """Input rows at the model grid (not normalised), read (and resampled) slab by slab from a lazy image; a
    lateral (ys, xs) part of them when the image is already on the model grid, or a band of rows of every plane
    (resampled along y) when it is not."""
    from subcell.transforms.resample import resample_rows

    data = image.data
    same = on_model_grid(image, grid_vs, shape)

    def rows(z0: int, z1: int, ys: slice = slice(None), xs: slice = slice(None)) -> np.ndarray:
        if same:
            return materialize(data[t, c, z0:z1, ys, xs]).astype(np.float32)[None]
        if ys != slice(None) or xs != slice(None):
            if (z0, z1) == (0, shape[0]) and xs.indices(shape[2])[:2] == (0, shape[2]):
                return band(ys)
            raise ValueRangeError(f"regions of an image at {image.voxel_size.as_tuple()} µm need it resampled to the "
                                  f"model's {grid_vs.as_tuple()} µm first ({resample_hint(grid_vs)})",
                                  field="voxel_size")  # fmt: skip
        return resample_rows(data[t, c], z0, z1, voxel_size=image.voxel_size, target_voxel_size=grid_vs,
                             out_shape=shape)[None]  # fmt: skip

    def band(ys: slice) -> np.ndarray:
        # every plane of a band of rows (a banded tiling), reading only the input rows the band needs
        y0, y1 = ys.indices(shape[1])[:2]
        return resample_rows(data[t, c], y0, y1, voxel_size=image.voxel_size, target_voxel_size=grid_vs,
                             out_shape=shape, axis="y")[None]  # fmt: skip

    return rows


STATS_BLOCK_VOXELS = 1 << 24  # 64 MB as float32: the largest block the statistics pass reads at once


def _stats_blocks(image: Image, grid_vs: VoxelSize, shape: tuple[int, int, int]) -> list[tuple[slice, slice]]:
    """The (z, y) blocks :func:`stack_stats` reads, whole planes in x.

    A stack on the model grid is read in the blocks it is stored in (z and y chunks), so each stored chunk is
    decompressed once: slabs of 4 planes over chunks 32 planes deep decompressed every chunk 8 times, a third
    of the prediction's time outside the network on a 64×512×512 OME-Zarr (``bench_speed.py``). A stack that
    is resampled is read in slabs of 4 planes (resampling needs whole planes), as is one held in memory.
    """
    chunks = getattr(image.data, "chunks", None)
    if not on_model_grid(image, grid_vs, shape) or chunks is None or isinstance(chunks[0], int):
        return [(slice(z0, min(shape[0], z0 + 4)), slice(None)) for z0 in range(0, shape[0], 4)]
    cap = STATS_BLOCK_VOXELS  # larger stored chunks are read in parts
    blocks = []
    for z0, z1 in itertools.pairwise(np.cumsum((0, *chunks[2])).tolist()):
        for y0, y1 in itertools.pairwise(np.cumsum((0, *chunks[3])).tolist()):
            dy = min(y1 - y0, max(1, cap // shape[2]))
            dz = max(1, cap // (dy * shape[2]))
            blocks += [(slice(a, min(z1, a + dz)), slice(b, min(y1, b + dy)))
                       for a in range(z0, z1, dz) for b in range(y0, y1, dy)]  # fmt: skip
    return blocks


def _sums(rows: np.ndarray, part: int = 1 << 18) -> tuple[float, float]:
    """Sum and sum of squares of a float32 block, accumulated in float64 over cache-sized parts (a float64 copy
    of the whole block costs more than the arithmetic). Both are finite exactly when every value is: NaN
    propagates, an infinity squares to +inf, and squares of finite float32 values cannot overflow float64."""
    flat = rows.reshape(-1)
    total = total_sq = 0.0
    for i in range(0, flat.size, part):
        p = flat[i : i + part].astype(np.float64)
        total += float(p.sum())
        total_sq += float(np.dot(p, p))
    return total, total_sq


HELD_STACK_VOXELS = 1 << 24  # 64 MB as float32: the largest stack row_source keeps from its statistics pass


def stack_stats(
    image: Image, t: int, c: int, grid_vs: VoxelSize, shape: tuple[int, int, int], model: Predictor,
    *, keep: np.ndarray | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The whole stack's mean, standard deviation and the percentiles ``model.percentiles`` asks for (at the
    model grid), in one streaming pass over bounded blocks: what ``model.preprocess`` normalises every tile with.
    ``keep``, a ``(1, Z, Y, X)`` float32 array, receives the rows read (for a stack small enough to hold)."""
    raw_rows = _raw_rows(image, t, c, grid_vs, shape)
    total, total_sq, count = 0.0, 0.0, 0
    percentiles = list(model.percentiles)
    kept: list[np.ndarray] = []  # values for percentiles: every voxel up to 64 M voxels, a regular subsample above
    stride = max(1, math.ceil(math.sqrt(shape[0] * shape[1] * shape[2] / 64e6)))
    for zs, ys in _stats_blocks(image, grid_vs, shape):
        rows = raw_rows(zs.start, zs.stop, ys)
        if keep is not None:
            keep[:, zs, ys] = rows
        block_sum, block_sq = _sums(rows)
        if not (math.isfinite(block_sum) and math.isfinite(block_sq)):
            raise ValueRangeError(
                f"input contains NaN or Inf values (timepoint {t}, planes {zs.start}–{zs.start + rows.shape[1] - 1})",
                field=f"{image.provenance.source or 'image'}: channel {image.channel_names[c]}",
            )
        total += block_sum
        total_sq += block_sq
        count += rows.size
        if percentiles:  # every plane, every stride-th row and column of the stack (whichever block holds it)
            y_first = (-(ys.start or 0)) % stride
            kept.append(rows[0, :, y_first::stride, ::stride].ravel().copy())
    mean = total / count
    pv = np.percentile(np.concatenate(kept), percentiles).tolist() if percentiles else []
    return {"mean": mean, "std": math.sqrt(max(0.0, total_sq / count - mean**2)),
            "percentiles": dict(zip(percentiles, pv, strict=True))}  # fmt: skip


def row_source(
    image: Image, t: int, c: int, grid_vs: VoxelSize, shape: tuple[int, int, int], model: Predictor,
    stats: dict[str, Any] | None = None, depth: Image | None = None,
) -> RowSource:  # fmt: skip
    """Normalised input rows at the model grid: ``model.preprocess`` with the whole stack's statistics
    (:func:`stack_stats`, computed here unless given): subcell models z-score, a bioimage.io package applies its
    own steps.

    A stack of up to :data:`HELD_STACK_VOXELS` read for its statistics here is held from that pass and handed out
    as the first request for all of its planes (a tiling whose rows span the whole depth asks exactly that once):
    one read of the file instead of two, with nothing more in memory than that row would hold (it is the row).
    A banded tiling's requests for all planes of a (Y, X) band are cut from it (the tile choice counts it).
    ``depth`` (:meth:`CellDepth.frame`): a second channel, the cell depth of timepoint ``t`` at the same rows,
    resampled as the image is and not normalised.
    """
    raw_rows = _raw_rows(image, t, c, grid_vs, shape)
    if depth is not None:
        image_rows = _normalised_rows(image, t, c, grid_vs, shape, model, stats, raw_rows)
        depth_rows = _raw_rows(depth, 0, 0, grid_vs, shape)
        return lambda *where: np.concatenate([image_rows(*where), depth_rows(*where)])
    return _normalised_rows(image, t, c, grid_vs, shape, model, stats, raw_rows)


def _normalised_rows(
    image: Image, t: int, c: int, grid_vs: VoxelSize, shape: tuple[int, int, int], model: Predictor,
    stats: dict[str, Any] | None, raw_rows: RowSource,
) -> RowSource:  # fmt: skip
    held: list[np.ndarray] = []
    if stats is None and math.prod(shape) <= HELD_STACK_VOXELS:
        held.append(np.empty((1, *shape), np.float32))
    st = stats if stats is not None else stack_stats(image, t, c, grid_vs, shape, model, keep=held[0] if held else None)

    def rows(*where: Any) -> np.ndarray:
        if held and tuple(where[:2]) == (0, shape[0]):
            if len(where) == 2:
                return model.preprocess(held.pop(), st)
            # bands of every plane (a banded tiling): cut from the held stack, which stays until the last band
            return model.preprocess(np.array(held[0][:, :, where[2], where[3]]), st)
        held.clear()  # a tiling that reads otherwise: not kept longer than the statistics pass
        return model.preprocess(raw_rows(*where), st)

    return rows
