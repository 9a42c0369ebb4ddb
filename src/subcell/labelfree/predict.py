"""Sliding-window prediction at any size, bounded in memory.

A volume (at the model's voxel size) is covered by a product grid of overlapping tiles (>= 25% overlap,
:class:`~subcell.transforms.tiling.TileGrid`). Tiles are predicted in batches, weighted by smooth separable
windows that sum to one, and accumulated row by row along z in a buffer one tile deep: once a z-row of tiles is
done, the planes no later row touches are final and are handed to a sink (an in-memory array or an OME-Zarr
writer). Memory is therefore bounded by one row of tiles, the input slab it needs, and the network's
activations, never by the volume. Inputs smaller than a tile are padded (reflect) and cropped back.

The tile grid is planned in :mod:`~subcell.labelfree.tile_plan`, the normalised input rows come from
:mod:`~subcell.labelfree.predict_input`, and what a model must offer is :class:`~subcell.labelfree.predictor.Predictor`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from subcell.errors import ValueRangeError
from subcell.image import Image, VoxelSize
from subcell.labelfree.config import PredictConfig
from subcell.labelfree.model import with_std
from subcell.labelfree.predict_input import cell_depth_input, check_input, on_model_grid, resample_hint, row_source
from subcell.labelfree.predictor import Predictor, RowSink, RowSource, output_channel_names
from subcell.labelfree.tile_plan import RESAMPLE_CHUNK, plan_tiles
from subcell.train.host import release_freed, tune_allocator
from subcell.train.precision import autocast_dtype, precision_name, resolve_device
from subcell.transforms.tiling import TileGrid, tile_starts

__all__ = ["predict_image", "predict_to_zarr", "predict_volume", "runtime"]


# the resident share of the memory limit above which a CPU prediction gives freed pages back after a batch of
# tiles: one tile to the next grew by up to 20 % of a 2 GB limit from fragmentation (benchmarks/labelfree/results.md)
RELEASE_AT = 0.75


def _flips(tta: bool) -> list[tuple[int, ...]]:
    return [(), (-1,), (-2,), (-2, -1)] if tta else [()]


def _forward(
    model: Predictor,
    net: torch.nn.Module,
    batch: np.ndarray,
    device: torch.device,
    dtype: torch.dtype | None,
    tta: bool,
) -> torch.Tensor:
    """The network's float32 output for a batch of tiles, left on ``device`` (the tiles are blended there)."""
    x = torch.from_numpy(batch).to(device)
    out = None
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        for dims in _flips(tta):
            xi = torch.flip(x, dims) if dims else x
            y = net(xi).float()
            y = torch.flip(y, dims) if dims else y
            out = y if out is None else out + y
    assert out is not None
    y = out / len(_flips(tta))
    if model.uncertainty:
        y = with_std(y, len(model.targets))
    return y


def _tile_weight(grid: TileGrid, k: int, ky: int, kx: int, device: torch.device) -> torch.Tensor:
    """:meth:`TileGrid.weight` made on ``device`` from the per-axis weights: the same float64 products rounded to
    float32 (IEEE arithmetic: the same numbers on any device), without making and copying a tile-sized array on
    the host for every tile."""
    wz, wy, wx = (torch.from_numpy(grid.weights[a][i]).to(device) for a, i in enumerate((k, ky, kx)))
    return (wz[:, None, None] * wy[None, :, None] * wx[None, None, :]).to(torch.float32)


def runtime(cfg: PredictConfig) -> tuple[torch.device, torch.dtype | None, bool]:
    """Where and how a prediction runs: the device, the autocast dtype (None: fp32) and whether the CPU allocator
    keeps freed blocks (:func:`subcell.train.host.tune_allocator`), which the tile chooser budgets."""
    device = resolve_device(cfg.device)
    return device, autocast_dtype(device, cfg.precision), device.type == "cpu" and tune_allocator()


def _span(starts: list[int], size: int, want: slice) -> tuple[list[int], slice]:
    """Tile starts along one axis whose tiles reach into ``want``, and the input range they read."""
    hit = [s for s in starts if s < want.stop and s + size > want.start]
    return hit, slice(min(hit), max(hit) + size)


def predict_volume(
    model: Predictor,
    source: RowSource,
    shape: tuple[int, int, int],
    sink: RowSink,
    *,
    config: PredictConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    window: tuple[slice, slice] | None = None,
    out_grid: tuple[int, int, int] | None = None,
    bands: bool = False,
) -> dict[str, Any]:
    """Predict a ``shape`` (Z, Y, X) volume whose normalised rows come from ``source``; rows go to ``sink``.

    With ``window`` (a (Y, X) region of the volume), only the tiles reaching into it are predicted, ``source``
    is asked for the lateral range they read (``source(z0, z1, ys, xs)``) and ``sink`` gets the window's rows.
    Each voxel of the window then sums the same tiles in the same order as a whole-volume run, so regions
    predicted apart (on several workers) assemble into the whole-volume result. ``out_grid``: the (Z, Y, X) of
    the grid ``sink`` resamples the rows onto, which the tile choice leaves memory for. ``bands``: ``sink`` also
    takes a band of rows, ``sink(z0, rows, y0)`` with ``rows`` (C_out, n, Y', X) starting at row ``y0``; where one
    row of tiles spans the whole depth, the tiles are then summed a band at a time instead of over whole planes
    (less memory for the same tiles, so the tile choice can afford larger tiles that recompute less overlap).

    Returns a summary (tile, batch, number of tiles, whether it was banded).
    """
    cfg = config or PredictConfig()
    device, dtype, tuned = runtime(cfg)
    model.network.to(device).eval()
    net = model.network.fused()  # batch norms folded into the convolutions: the same function, fewer passes
    plan = plan_tiles(model, shape, cfg, tuned=tuned, dtype=dtype, out_grid=out_grid, banded=bands and window is None)
    tile, batch, padded = plan["tile"], plan["batch"], plan["padded"]
    grid = TileGrid(padded, tile, overlap=plan["overlap"], trim=plan["trim"], multiple=model.divisor)
    if window is not None and any(t > s for t, s in zip(tile[1:], shape[1:], strict=True)):
        raise ValueRangeError(f"a {shape[1:]} plane is smaller than one {tile[1:]} tile: predict it whole, not by "
                              "regions", field="window")  # fmt: skip
    wy, wx = window if window is not None else (slice(0, padded[1]), slice(0, padded[2]))
    ys, ry = _span(list(grid.starts[1]), tile[1], wy)
    xs, rx = _span(list(grid.starts[2]), tile[2], wx)
    n_out = len(output_channel_names(model))
    rows = grid.rows()
    total = len(rows) * len(ys) * len(xs)
    done = 0

    def tiles_done(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    run = _TileRun(model, net, grid, batch, device, dtype, cfg, tuned, tiles_done, plan["pass_bytes"])
    if plan["banded"]:
        _predict_bands(run, source, shape, sink, n_out)
        return _summary(plan, grid, device, dtype, cfg)
    # one (C_out, Y, X) accumulator per plane of the current tile row: finished planes leave from the front,
    # fresh ones join at the back, so rolling the buffer never copies the row. The buffer lives on the device
    # that predicts: on a GPU, weighting and summing the tiles on the host cost 6-9x the network
    # (benchmarks/labelfree/results_gpu_speed.md); only finished planes travel back
    plane = (n_out, wy.stop - wy.start, wx.stop - wx.start)
    acc = [torch.zeros(plane, dtype=torch.float32, device=device) for _ in range(tile[0])]
    for k, z0 in enumerate(rows):
        z1 = z0 + tile[0]
        x = source(z0, min(z1, shape[0])) if window is None else source(z0, min(z1, shape[0]), ry, rx)
        x = _pad_to(x, (z1 - z0, ry.stop - ry.start, rx.stop - rx.start))
        tiles = [(ky, kx, sl) for ky, kx, sl in grid.row_tiles(k) if sl[1].start in ys and sl[2].start in xs]
        run.add(k, tiles, x, (ry, rx), (wy, wx), acc)
        nxt = rows[k + 1] if k + 1 < len(rows) else z1
        final = nxt - z0
        keep = min(final, shape[0] - z0)
        if keep > 0:
            ny, nx = min(wy.stop, shape[1]) - wy.start, min(wx.stop, shape[2]) - wx.start
            rows_out = torch.stack([a[:, :ny, :nx] for a in acc[:keep]], dim=1).cpu().numpy()
            sink(z0, model.postprocess(rows_out))  # point-wise (a package's), after blending
        del acc[:final]
        acc.extend(torch.zeros(plane, dtype=torch.float32, device=device) for _ in range(final))
    return _summary(plan, grid, device, dtype, cfg)


def _summary(plan: dict[str, Any], grid: TileGrid, device: torch.device, dtype: torch.dtype | None,
             cfg: PredictConfig) -> dict[str, Any]:  # fmt: skip
    return {
        "tile": list(plan["tile"]), "batch": plan["batch"], "tiles": len(grid),
        "overlap": [round(o, 4) for o in plan["overlap"]], "trim": list(plan["trim"]), "banded": plan["banded"],
        "device": str(device), "precision": precision_name(dtype), "precision_requested": cfg.precision,
    }  # fmt: skip


def _pad_to(x: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """Input rows padded at the far end of each axis to ``size`` (the padded volume's edge), by reflection where
    the rows are long enough, else by repeating the edge."""
    pad = [(0, 0)] + [(0, n - s) for n, s in zip(size, x.shape[1:], strict=True)]
    if not any(p[1] for p in pad):
        return x
    return np.pad(
        x, pad, mode="reflect" if all(p[1] < s for p, s in zip(pad[1:], x.shape[1:], strict=True)) else "edge"
    )


class _TileRun:
    """Tiles predicted in batches, weighted and summed into per-plane accumulators: the one summing loop of the
    whole-plane rows and of the bands, so both add each voxel's tiles in the same order."""

    def __init__(self, model: Predictor, net: torch.nn.Module, grid: TileGrid, batch: int, device: torch.device,
                 dtype: torch.dtype | None, cfg: PredictConfig, tuned: bool, done: Callable[[int], None],
                 pass_bytes: float) -> None:  # fmt: skip
        self.model, self.net, self.grid, self.batch, self.device = model, net, grid, batch, device
        self.dtype, self.cfg, self.tuned, self.done = dtype, cfg, tuned, done
        limit = cfg.memory_limit_gb * 1024**3
        # freed pages are given back before a pass that would otherwise take the process over its limit (the
        # blocks freed between passes by reading, resampling and writing rows: 0.4-0.5 GB of a 2 GB run off the
        # model's grid), and after a pass near the limit (its freed activations fragment the heap over many tiles)
        self.release_before, self.release_after = max(0.0, limit - pass_bytes), RELEASE_AT * limit

    def add(self, k: int, tiles: list[tuple[int, int, tuple[slice, slice, slice]]], x: np.ndarray,
            read: tuple[slice, slice], into: tuple[slice, slice], acc: list[torch.Tensor]) -> None:  # fmt: skip
        """Sum ``tiles`` of z-row ``k`` (their input: ``x``, read over the (Y, X) range ``read``) into ``acc``, one
        (C_out, Y, X) tensor per plane over the (Y, X) range ``into``."""
        (ry, rx), (wy, wx) = read, into
        # weights are made tile by tile: a row's all at once would hold as much as its tiles' outputs (3 GB on a
        # 2048² plane with a trained network's wide overlaps)
        for i in range(0, len(tiles), self.batch):
            chunk = tiles[i : i + self.batch]
            inp = np.stack([x[:, :, _shift(sl[1], ry), _shift(sl[2], rx)] for _, _, sl in chunk])
            self._release(self.release_before)
            pred = _forward(self.model, self.net, inp.astype(np.float32, copy=False), self.device, self.dtype,
                            self.cfg.tta)  # fmt: skip
            for (ky, kx, sl), p in zip(chunk, pred, strict=True):
                w = _tile_weight(self.grid, k, ky, kx, self.device)
                # the part of the tile inside the range summed, in tile and in accumulator coordinates
                (ty, oy), (tx, ox) = _inside(sl[1], wy), _inside(sl[2], wx)
                pw = p[:, :, ty, tx] * w[:, ty, tx]
                for dz in range(pw.shape[1]):
                    acc[dz][:, oy, ox] += pw[:, dz]
            del inp, pred, p, pw, w
            self._release(self.release_after)
            self.done(len(chunk))

    def _release(self, above: float) -> None:
        """Freed pages back to the system when the resident size is over ``above`` bytes (with the allocator
        setting that keeps freed blocks, :func:`~subcell.train.host.release_freed`): the limit then holds."""
        if self.tuned:
            release_freed(above=above)


def _predict_bands(run: _TileRun, source: RowSource, shape: tuple[int, int, int], sink: RowSink, n_out: int) -> None:
    """The one tile row of a grid whose tiles span the whole depth (:func:`~subcell.labelfree.tile_plan.is_banded`),
    summed one row of tiles in y at a time into a band one tile high; the band's rows above the next tile row's
    start are final and go to ``sink(0, rows, y0)``, the rest is carried into the next band. Each voxel sums the
    same tiles in the same order as the whole plane would."""
    grid, device = run.grid, run.device
    (tz, ty, _), width = grid.tile, grid.shape[2]
    xs = slice(0, width)
    plane = (n_out, ty, width)
    acc = [torch.zeros(plane, dtype=torch.float32, device=device) for _ in range(tz)]
    by_row: dict[int, list[tuple[int, int, tuple[slice, slice, slice]]]] = {}
    for ky, kx, sl in grid.row_tiles(0):
        by_row.setdefault(sl[1].start, []).append((ky, kx, sl))
    starts = sorted(by_row)
    for j, y0 in enumerate(starts):
        band = slice(y0, y0 + ty)
        x = _pad_to(source(0, shape[0], slice(y0, min(y0 + ty, shape[1])), slice(0, shape[2])), (tz, ty, width))
        run.add(0, by_row[y0], x, (band, xs), (band, xs), acc)
        y1 = starts[j + 1] if j + 1 < len(starts) else y0 + ty
        keep = min(y1, shape[1]) - y0
        if keep > 0:
            rows_out = torch.stack([a[:, :keep, : shape[2]] for a in acc[: shape[0]]], dim=1).cpu().numpy()
            sink(0, run.model.postprocess(rows_out), y0)
        carry = y0 + ty - y1
        fresh = [torch.zeros(plane, dtype=torch.float32, device=device) for _ in range(tz)]
        if carry > 0:
            for a, f in zip(acc, fresh, strict=True):
                f[:, :carry] = a[:, ty - carry :]
        acc = fresh


def _shift(sl: slice, origin: slice) -> slice:
    return slice(sl.start - origin.start, sl.stop - origin.start)


def _inside(sl: slice, window: slice) -> tuple[slice, slice]:
    """The overlap of a tile's slice with a window: as a slice of the tile and as a slice of the window."""
    a, b = max(sl.start, window.start), min(sl.stop, window.stop)
    return slice(a - sl.start, b - sl.start), slice(a - window.start, b - window.start)


def _timepoints(image: Image, cfg: PredictConfig) -> list[int]:
    ts = cfg.timepoints if cfg.timepoints is not None else list(range(image.shape[0]))
    bad = [t for t in ts if not 0 <= t < image.shape[0]]
    if bad:
        raise ValueRangeError(f"timepoints {bad} outside 0..{image.shape[0] - 1}", field="timepoints")
    return ts


def _output_interval(image: Image, ts: list[int]) -> float | None:
    """Seconds between the predicted frames: the input's interval times their common step; None when the
    selected frames are not evenly spaced (the provenance lists them)."""
    if image.time_interval is None or len(ts) < 2:
        return image.time_interval
    steps = {b - a for a, b in itertools.pairwise(ts)}
    step = steps.pop() if len(steps) == 1 else 0
    return image.time_interval * step if step > 0 else None


def _prediction_provenance(model: Predictor, image: Image, summary: dict[str, Any], ts: list[int],
                           cfg: PredictConfig) -> Any:  # fmt: skip
    return image.provenance.then(
        "labelfree.predict",
        {
            "targets": model.targets,
            "model_voxel_size": list(model.voxel_size.as_tuple()),
            "output_grid": cfg.output_grid,
            "timepoints": list(ts),  # input frame of every output frame
            **summary,
        },
    )


def _output_grid(image: Image, grid_vs: VoxelSize, shape: tuple[int, int, int],
                 cfg: PredictConfig) -> tuple[VoxelSize, tuple[int, int, int]]:  # fmt: skip
    """Voxel size and shape of the prediction: the model grid's, or the input's (``output_grid: input``)."""
    if cfg.output_grid == "model" or tuple(image.shape[2:]) == tuple(shape):
        return grid_vs, shape
    return image.voxel_size, tuple(image.shape[2:])  # type: ignore[return-value]


def _out_grid(shape: tuple[int, int, int], out_shape: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """The output grid a row resampler works onto (None when the output is the model grid)."""
    return None if tuple(out_shape) == tuple(shape) else tuple(out_shape)  # type: ignore[return-value]


class _OntoGrid:
    """A sink that resamples what :func:`predict_volume` hands on onto the output grid and passes it to ``sink``:
    whole-plane rows through a :class:`~subcell.transforms.resample.RowResampler` along z, bands of rows through
    one along y, so a banded prediction also holds a band, not the stack. Either way the result is
    :func:`resample_linear` of the whole model-grid prediction (tested)."""

    def __init__(self, sink: RowSink, shape: tuple[int, int, int], grid_vs: VoxelSize, out_vs: VoxelSize,
                 out_shape: tuple[int, int, int]) -> None:  # fmt: skip
        from subcell.transforms.resample import RowResampler

        self._by = {
            axis: RowResampler(sink, n_in_z=shape[0 if axis == "z" else 1], voxel_size=grid_vs,
                               target_voxel_size=out_vs, out_shape=out_shape, chunk=RESAMPLE_CHUNK, axis=axis)
            for axis in ("z", "y")
        }  # fmt: skip
        self._used = "z"

    def __call__(self, z0: int, rows: np.ndarray, y0: int | None = None) -> None:
        if y0 is None:
            self._by["z"](z0, rows)
        else:  # a band of every plane (z0 is 0)
            self._used = "y"
            self._by["y"](y0, rows)

    def close(self) -> None:
        self._by[self._used].close()


def _predict_rows(model: Predictor, source: RowSource, shape: tuple[int, int, int], sink: RowSink,
                  grid_vs: VoxelSize, out_vs: VoxelSize, out_shape: tuple[int, int, int], cfg: PredictConfig,
                  progress: Callable[[int, int], None] | None) -> dict[str, Any]:  # fmt: skip
    """:func:`predict_volume` into ``sink`` (which takes bands of rows), through :class:`_OntoGrid` onto the
    output grid when it is not the model's."""
    out_grid = _out_grid(shape, out_shape)
    if out_grid is None:
        return predict_volume(model, source, shape, sink, config=cfg, progress=progress, bands=True)
    onto = _OntoGrid(sink, shape, grid_vs, out_vs, out_shape)
    summary = predict_volume(model, source, shape, onto, config=cfg, progress=progress, out_grid=out_grid, bands=True)
    onto.close()
    return summary


def _frame_progress(progress: Callable[[int, int], None] | None, i: int, n: int) -> Any:
    """``progress`` of frame ``i`` of ``n``: tiles counted over the whole movie (a 30-frame movie's bar ended at
    "1/1 tiles", its last frame's)."""
    if progress is None or n == 1:
        return progress
    return lambda done, total: progress(i * total + done, n * total)


def predict_image(
    model: Predictor,
    image: Image,
    config: PredictConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    cells: Image | None = None,
) -> Image:
    """Predict every (selected) timepoint of ``image`` in memory; returns an :class:`Image` at the model grid
    (``output_grid: model``) or at the input's voxel size and shape (``output_grid: input``). ``cells``: the cell
    labels on the image's grid, for a model conditioned on them (``model.cell_conditioned``; required there)."""
    cfg = config or PredictConfig()
    c, grid_vs, shape = check_input(model, image, cfg)
    depth = cell_depth_input(model, image, cells)
    out_vs, out_shape = _output_grid(image, grid_vs, shape, cfg)
    names = output_channel_names(model)
    ts = _timepoints(image, cfg)
    out = np.zeros((len(ts), len(names), *out_shape), np.float32)
    summary: dict[str, Any] = {}
    for i, t in enumerate(ts):
        src = row_source(image, t, c, grid_vs, shape, model, depth=None if depth is None else depth.frame(t))

        def sink(z0: int, rows: np.ndarray, y0: int = 0, i: int = i) -> None:
            out[i, :, z0 : z0 + rows.shape[1], y0 : y0 + rows.shape[2]] = rows

        summary = _predict_rows(model, src, shape, sink, grid_vs, out_vs, out_shape, cfg,
                                _frame_progress(progress, i, len(ts)))  # fmt: skip
    return Image(
        out,
        voxel_size=out_vs,
        channel_names=names,
        time_interval=_output_interval(image, ts),
        provenance=_prediction_provenance(model, image, summary, ts, cfg),
    )


def predict_to_zarr(
    model: Predictor,
    image: Image,
    output: str | Path,
    config: PredictConfig | None = None,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    levels: int | None = None,
    cells: Image | None = None,
) -> Path:
    """Predict ``image`` (lazy is fine) straight into an OME-Zarr, row by row; memory bounded by tiles. When tile
    rows over whole planes do not fit ``memory_limit_gb``, lateral regions are predicted one after another
    (:func:`~subcell.labelfree.predict_regions.predict_regions_to_zarr`, same result). ``levels``: the store's
    pyramid levels (default: until it fits 256 px; 1 for a prediction only read back at full resolution).
    ``cells``: the cell labels on the image's grid, for a model conditioned on them (required there)."""
    from subcell.io import OmeZarrWriter

    cfg = config or PredictConfig()
    c, grid_vs, shape = check_input(model, image, cfg)
    depth = cell_depth_input(model, image, cells)
    out_vs, out_shape = _output_grid(image, grid_vs, shape, cfg)
    region, cfg = _fit_memory(model, image, shape, grid_vs, cfg, _out_grid(shape, out_shape))
    if region is not None:
        from subcell.labelfree.predict_regions import predict_regions_to_zarr

        return predict_regions_to_zarr(model, image, output, cfg, region_yx=region, overwrite=overwrite,
                                       progress=progress, levels=levels, cells=cells)  # fmt: skip
    names = output_channel_names(model)
    ts = _timepoints(image, cfg)
    summary: dict[str, Any] = {"tile": None}
    with OmeZarrWriter(
        output,
        shape=(len(ts), len(names), *out_shape),
        dtype="float32",
        voxel_size=out_vs,
        channel_names=names,
        time_interval=_output_interval(image, ts),
        provenance=_prediction_provenance(model, image, summary, ts, cfg),
        levels=levels,
        overwrite=overwrite,
    ) as writer:
        for i, t in enumerate(ts):
            # a frame's cell depth beyond what is held in memory goes to the unfinished store's scratch
            frame = None if depth is None else depth.frame(t, writer.scratch_array)
            src = row_source(image, t, c, grid_vs, shape, model, depth=frame)

            def sink(z0: int, rows: np.ndarray, y0: int = 0, i: int = i) -> None:
                where = (slice(i, i + 1), slice(None), slice(z0, z0 + rows.shape[1]), slice(y0, y0 + rows.shape[2]))
                writer.write_region(where, rows[None])

            summary.update(_predict_rows(model, src, shape, sink, grid_vs, out_vs, out_shape, cfg,
                                         _frame_progress(progress, i, len(ts))))  # fmt: skip
            del src, frame  # this frame's input and cell depth go before the next frame's are made
        writer.provenance = _prediction_provenance(model, image, summary, ts, cfg)  # metadata is written on close
    return Path(output)


def _fit_memory(model: Predictor, image: Image, shape: tuple[int, int, int], grid_vs: VoxelSize,
                cfg: PredictConfig, out_grid: tuple[int, int, int] | None = None) -> tuple[int | None, PredictConfig]:  # fmt: skip
    """``(None, cfg)`` when tile rows over whole planes fit ``cfg.memory_limit_gb`` (with a row resampler onto an
    ``out_grid`` output grid); otherwise the lateral region (1024, 512 or 256 px) whose rows fit and which
    computes the fewest voxels, and ``cfg`` with its tile fixed for every region (one grid over the volume, so the
    regions assemble into a whole-volume run's result)."""
    _, dtype, tuned = runtime(cfg)
    try:  # rows over whole planes, or bands of them
        plan_tiles(model, shape, cfg, tuned=tuned, dtype=dtype, out_grid=out_grid, banded=True)
        return None, cfg
    except ValueRangeError as exc:
        if cfg.tile is not None or exc.field != "memory_limit":
            raise
        first = exc
    best: tuple[int, int, dict[str, Any]] | None = None
    for region in (1024, 512, 256):
        if region >= max(shape[1:]):
            continue
        try:
            plan = plan_tiles(model, shape, cfg, tuned=tuned, dtype=dtype, max_yx=region)
        except ValueRangeError as exc:
            if exc.field != "memory_limit":
                raise
            continue
        # voxels computed: every region computes each tile reaching into it (tiles straddling regions twice)
        work = 1
        for ax in (1, 2):
            t, n = plan["tile"][ax], plan["padded"][ax]
            starts = tile_starts(n, t, overlap=plan["overlap"][ax], multiple=model.divisor[ax])
            work *= t * sum(len(_span(starts, t, slice(w, w + region))[0]) for w in range(0, shape[ax], region))
        if best is None or work < best[0]:
            best = (work, region, plan)
    if best is not None:
        if not on_model_grid(image, grid_vs, shape):
            raise ValueRangeError(f"{first.message}; lateral regions would fit, but need the image on the model's "
                                  f"grid ({grid_vs.as_tuple()} µm): resample it first ({resample_hint(grid_vs)})",
                                  field="memory_limit")  # fmt: skip
        _, region, plan = best
        return region, cfg.model_copy(update={"tile": plan["tile"], "batch_size": plan["batch"]})
    raise first
