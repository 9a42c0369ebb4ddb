"""Sliding-window prediction at any size, bounded in memory.

A volume (at the model's voxel size) is covered by a product grid of overlapping tiles (>= 25% overlap,
:class:`~subcell.transforms.tiling.TileGrid`). Tiles are predicted in batches, weighted by smooth separable
windows that sum to one, and accumulated row by row along z in a buffer one tile deep: once a z-row of tiles is
done, the planes no later row touches are final and are handed to a sink (an in-memory array or an OME-Zarr
writer). Memory is therefore bounded by one row of tiles, the input slab it needs, and the network's
activations, never by the volume. Inputs smaller than a tile are padded (reflect) and cropped back.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from subcell.errors import ChannelError, MetadataError, ValueRangeError
from subcell.image import Image, VoxelSize, materialize
from subcell.labelfree.config import PredictConfig
from subcell.labelfree.model import with_std
from subcell.train.host import RETAINED, tune_allocator
from subcell.train.precision import autocast_dtype, precision_name, resolve_device
from subcell.transforms.tiling import TileGrid, tile_starts

__all__ = ["choose_tile", "output_channel_names", "plan_tiles", "predict_image", "predict_to_zarr", "predict_volume"]


class Predictor(Protocol):
    """What the tiled predictor asks of a model: :class:`~subcell.labelfree.LabelFreeModel` and a bioimage.io
    package (:class:`~subcell.zoo.package.PackagedModel`) both answer it."""

    network: Any  # .to(), .eval(), .fused(), .activation_bytes_per_voxel()
    input_channel: str
    targets: list[str]
    voxel_size: VoxelSize
    uncertainty: bool
    percentiles: Any
    voxel_size_known: bool

    @property
    def halo(self) -> tuple[int, int, int]: ...  # output voxels unreliable at tile edges
    @property
    def divisor(self) -> tuple[int, int, int]: ...
    @property
    def patch_size(self) -> tuple[int, int, int]: ...
    @property
    def is_2d(self) -> bool: ...
    @property
    def tile_rule(self) -> str: ...
    def valid_tile(self, tile: tuple[int, ...]) -> tuple[int, int, int]: ...
    def preprocess(self, rows: np.ndarray, stats: dict[str, Any]) -> np.ndarray: ...
    def postprocess(self, rows: np.ndarray) -> np.ndarray: ...


# (z0, z1[, ys, xs]) → normalised input rows (C_in, z1 - z0, Y, X), or their (ys, xs) part
RowSource = Callable[..., np.ndarray]
RowSink = Callable[[int, np.ndarray], None]  # (z0, rows (C_out, n, Y, X))


def output_channel_names(model: Predictor) -> list[str]:
    """Prediction channels: one per target, plus ``<target>_std`` per target for uncertainty models."""
    names = list(model.targets)
    if model.uncertainty:
        names += [f"{t}_std" for t in model.targets]
    return names


def _round_up(n: int, m: int) -> int:
    return max(m, math.ceil(n / m) * m)


def padded_length(n: int, tile: int, multiple: int) -> int:
    """The extent a ``tile``-long grid covers on an ``n``-long axis: the tile itself when one suffices, else ``n``
    padded so that the last tile starts on a multiple of the network's downsampling factor (every tile then
    sees the stride phase a whole-volume pass sees)."""
    return tile if n <= tile else tile + -(-(n - tile) // multiple) * multiple


def axis_grid(n: int, tile: int, multiple: int, halo: Callable[[], int], overlap: float, trim: int | None
              ) -> tuple[int, float, int, int] | None:  # fmt: skip
    """Trim, overlap, number of tiles and padded length of a ``tile``-long grid on an ``n``-long axis, or None
    when the tile is too short for a trim on both sides (at least the model's ``halo()``, asked only when the axis
    needs more than one tile) on starts that are multiples of ``multiple``."""
    padded = padded_length(n, tile, multiple)
    if padded == tile:
        return 0, overlap, 1, padded
    cut = max(halo(), trim if trim is not None else math.floor(tile * overlap) // 4)
    # the overlap must leave room for a trim on both sides (a blending ramp where the overlap asked for leaves one)
    need = max(overlap, 2 * cut / tile)
    if math.floor(tile * (1 - need)) < multiple:
        return None
    return cut, need, len(tile_starts(padded, tile, overlap=need, multiple=multiple)), padded


def choose_tile(
    model: Predictor,
    shape: tuple[int, int, int],
    *,
    memory_limit_gb: float,
    batch_size: int | None = None,
    overlap: float = 0.25,
    trim: int | None = None,
    itemsize: int = 4,
    retained: float = 1.0,
    whole_yx: tuple[int, int] | None = None,
) -> tuple[tuple[int, int, int], int]:
    """The tile (and batch) that computes the fewest voxels while its activations, row buffers and input slab fit
    ``memory_limit_gb``.

    Overlapping tiles compute some voxels more than once: a 512-wide axis in 128-wide tiles computes 640 columns
    per row of tiles, in one 512-wide tile exactly 512. Every tile size (multiples of the network's divisor,
    at least the training patch where the volume allows, at most the padded volume) is scored by the voxels the
    whole grid computes, counting the overlap the model's halo forces (:func:`axis_grid`); among the cheapest,
    the largest tile wins. ``itemsize`` is 2 under bf16/fp16 autocast;
    ``retained`` scales the activation memory for an allocator that keeps freed blocks
    (:data:`subcell.train.host.RETAINED`). ``whole_yx``: the volume's (Y, X) when ``shape`` is one lateral region
    of it, whose input is read over the tiles reaching into the region (up to a tile beyond each side).
    """
    div = model.divisor
    budget = memory_limit_gb * 1024**3
    per_voxel = model.network.activation_bytes_per_voxel(itemsize=itemsize)
    n_out = len(output_channel_names(model))
    cap = tuple(_round_up(s, d) for s, d in zip(shape, div, strict=True))
    low = [min(c, _round_up(p, d)) for c, p, d in zip(cap, model.patch_size, div, strict=True)]

    def cost(t: tuple[int, ...], b: int) -> float:
        # accumulators + the finished rows handed to the sink (C_out each) over the window, the normalised input
        # slab and the raw slab it is converted from over what the window's tiles read
        window = max(shape[1], t[1]) * max(shape[2], t[2])
        read = window if whole_yx is None else math.prod(
            min(w, max(s, u) + 2 * u) for w, s, u in zip(whole_yx, shape[1:], t[1:], strict=True))  # fmt: skip
        row_bytes = (2 * n_out * window + 2.5 * read) * 4 * t[0]
        return b * per_voxel * t[0] * t[1] * t[2] * 1.3 * retained + row_bytes + 300e6  # + weights, libraries

    def cheapest(floor: list[int]) -> tuple[int, int, int] | None:
        # voxels computed along each axis for each candidate length (the grid is a product of per-axis grids)
        grids = [
            {t: axis_grid(shape[ax], t, div[ax], lambda ax=ax: model.halo[ax], overlap, trim)  # type: ignore[misc]
             for t in range(floor[ax], cap[ax] + 1, div[ax])}
            for ax in range(3)
        ]  # fmt: skip
        work = [{t: g[2] * t for t, g in gs.items() if g is not None} for gs in grids]
        sizes = [list(w) for w in work]
        best: tuple[float, float, tuple[int, int, int]] | None = None
        for tz in sizes[0]:
            for ty in sizes[1]:
                for tx in sizes[2]:
                    t = (tz, ty, tx)
                    if cost(t, 1) > budget:
                        break  # a longer x only costs more
                    key = (float(work[0][tz] * work[1][ty] * work[2][tx]), -float(tz * ty * tx), t)
                    if best is None or key < best:
                        best = key
        return None if best is None else best[2]

    # tiles at least as large as the training patch give the network the context it learnt with; only when
    # none fits, down to half the patch (smaller tiles would be mostly zero-padded border)
    half = [min(c, _round_up(-(-p // 2), d)) for c, p, d in zip(cap, model.patch_size, div, strict=True)]
    tile3 = cheapest(low) or cheapest(half)
    if tile3 is None:
        # the smallest tile the grid accepts per axis (its trim and overlap allowing), and what it would need
        smallest = tuple(
            next((t for t in range(half[ax], cap[ax] + 1, div[ax])
                  if axis_grid(shape[ax], t, div[ax], lambda ax=ax: model.halo[ax], overlap, trim)), cap[ax])  # type: ignore[misc]
            for ax in range(3)
        )  # fmt: skip
        raise ValueRangeError(
            f"{memory_limit_gb} GB cannot hold even the smallest tile {smallest} (with its full-plane row buffers: "
            f"{cost(smallest, 1) / 1024**3:.1f} GB); raise --memory-limit or predict by regions (--region-yx)",
            field="memory_limit",
        )
    b = batch_size or max(1, min(8, int((budget - cost(tile3, 0)) // max(1.0, cost(tile3, 1) - cost(tile3, 0)))))
    return tile3, b


def _flips(tta: bool) -> list[tuple[int, ...]]:
    return [(), (-1,), (-2,), (-2, -1)] if tta else [()]


def _forward(
    model: Predictor,
    net: torch.nn.Module,
    batch: np.ndarray,
    device: torch.device,
    dtype: torch.dtype | None,
    tta: bool,
) -> np.ndarray:
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
    return y.cpu().numpy()


def runtime(cfg: PredictConfig) -> tuple[torch.device, torch.dtype | None, bool]:
    """Where and how a prediction runs: the device, the autocast dtype (None: fp32) and whether the CPU allocator
    keeps freed blocks (:func:`subcell.train.host.tune_allocator`), which the tile chooser budgets."""
    device = resolve_device(cfg.device)
    return device, autocast_dtype(device, cfg.precision), device.type == "cpu" and tune_allocator()


def plan_tiles(model: Predictor, shape: tuple[int, int, int], cfg: PredictConfig, *, tuned: bool,
               dtype: torch.dtype | None, max_yx: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Tile, batch, overlap, trim and the padded extent for a ``shape`` volume (what :func:`predict_volume` and
    its region-wise runs share, so every worker covers the volume with the same grid). ``max_yx`` caps an
    automatically chosen tile's lateral size (a region's)."""
    if cfg.tile is not None:
        valid = tuple(model.valid_tile(cfg.tile))
        if valid != tuple(cfg.tile):
            raise ValueRangeError(f"tile {cfg.tile} must be {model.tile_rule} for this network (e.g. {valid})",
                                  field="tile")  # fmt: skip
        tile, batch = cfg.tile, cfg.batch_size or 1
    else:
        cap = max_yx or max(shape)
        capped = (shape[0], min(shape[1], cap), min(shape[2], cap))
        tile, batch = choose_tile(
            model, capped, memory_limit_gb=cfg.memory_limit_gb, batch_size=cfg.batch_size, overlap=cfg.overlap,
            trim=cfg.trim, itemsize=2 if dtype is not None else 4, retained=RETAINED if tuned else 1.0,
            whole_yx=None if capped == tuple(shape) else (shape[1], shape[2]),
        )  # fmt: skip
    # never larger than the volume needs: the smallest accepted size covering it (a volume it fits is not padded)
    tile = model.valid_tile(tuple(min(t, s) for t, s in zip(tile, shape, strict=True)))
    grids = []
    for ax, (s, t, d) in enumerate(zip(shape, tile, model.divisor, strict=True)):
        g = axis_grid(s, t, d, lambda ax=ax: model.halo[ax], cfg.overlap, cfg.trim)  # type: ignore[misc]
        if g is None:
            raise ValueRangeError(f"a tile {t} long in {'zyx'[ax]} cannot be trimmed by the network's edge reach "
                                  f"({model.halo[ax]} voxels) and still overlap its neighbours: use tiles of at least "
                                  f"{_round_up(2 * model.halo[ax] + d, d)}, or one tile over the whole axis ({s})",
                                  field="tile")  # fmt: skip
        grids.append(g)
    trim = tuple(g[0] for g in grids)
    overlap = tuple(g[1] for g in grids)
    padded = tuple(g[3] for g in grids)
    return {"tile": tuple(tile), "batch": batch, "padded": padded, "trim": trim, "overlap": overlap}


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
) -> dict[str, Any]:
    """Predict a ``shape`` (Z, Y, X) volume whose normalised rows come from ``source``; rows go to ``sink``.

    With ``window`` (a (Y, X) region of the volume), only the tiles reaching into it are predicted, ``source``
    is asked for the lateral range they read (``source(z0, z1, ys, xs)``) and ``sink`` gets the window's rows.
    Each voxel of the window then sums the same tiles in the same order as a whole-volume run, so regions
    predicted apart (on several workers) assemble into the whole-volume result.

    Returns a summary (tile, batch, number of tiles).
    """
    cfg = config or PredictConfig()
    device, dtype, tuned = runtime(cfg)
    model.network.to(device).eval()
    net = model.network.fused()  # batch norms folded into the convolutions: the same function, fewer passes
    plan = plan_tiles(model, shape, cfg, tuned=tuned, dtype=dtype)
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
    # one (C_out, Y, X) accumulator per plane of the current tile row: finished planes leave from the front,
    # fresh ones join at the back, so rolling the buffer never copies the row
    plane = (n_out, wy.stop - wy.start, wx.stop - wx.start)
    acc = [np.zeros(plane, np.float32) for _ in range(tile[0])]
    done = 0
    for k, z0 in enumerate(rows):
        z1 = z0 + tile[0]
        x = source(z0, min(z1, shape[0])) if window is None else source(z0, min(z1, shape[0]), ry, rx)
        pad = [(0, 0), (0, z1 - z0 - x.shape[1]), (0, ry.stop - ry.start - x.shape[2]),
               (0, rx.stop - rx.start - x.shape[3])]  # fmt: skip
        if any(p[1] for p in pad):
            x = np.pad(
                x, pad, mode="reflect" if all(p[1] < s for p, s in zip(pad[1:], x.shape[1:], strict=True)) else "edge"
            )
        # weights are made tile by tile: a row's all at once would hold as much as its tiles' outputs (3 GB on a
        # 2048² plane with a trained network's wide overlaps)
        tiles = [(ky, kx, sl) for ky, kx, sl in grid.row_tiles(k) if sl[1].start in ys and sl[2].start in xs]
        for i in range(0, len(tiles), batch):
            chunk = tiles[i : i + batch]
            inp = np.stack([x[:, :, _shift(sl[1], ry), _shift(sl[2], rx)] for _, _, sl in chunk])
            pred = _forward(model, net, inp.astype(np.float32, copy=False), device, dtype, cfg.tta)
            for (ky, kx, sl), p in zip(chunk, pred, strict=True):
                w = grid.weight(k, ky, kx)
                # the part of the tile inside the window, in tile and in window coordinates
                (ty, oy), (tx, ox) = _inside(sl[1], wy), _inside(sl[2], wx)
                pw = p[:, :, ty, tx] * w[:, ty, tx]
                for dz in range(pw.shape[1]):
                    acc[dz][:, oy, ox] += pw[:, dz]
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        nxt = rows[k + 1] if k + 1 < len(rows) else z1
        final = nxt - z0
        keep = min(final, shape[0] - z0)
        if keep > 0:
            ny, nx = min(wy.stop, shape[1]) - wy.start, min(wx.stop, shape[2]) - wx.start
            rows_out = np.stack([a[:, :ny, :nx] for a in acc[:keep]], axis=1)
            sink(z0, model.postprocess(rows_out))  # point-wise (a package's), after blending
        del acc[:final]
        acc.extend(np.zeros(plane, np.float32) for _ in range(final))
    return {
        "tile": list(tile), "batch": batch, "tiles": len(grid), "overlap": [round(o, 4) for o in plan["overlap"]],
        "trim": list(plan["trim"]),
        "device": str(device), "precision": precision_name(dtype), "precision_requested": cfg.precision,
    }  # fmt: skip


def _shift(sl: slice, origin: slice) -> slice:
    return slice(sl.start - origin.start, sl.stop - origin.start)


def _inside(sl: slice, window: slice) -> tuple[slice, slice]:
    """The overlap of a tile's slice with a window: as a slice of the tile and as a slice of the window."""
    a, b = max(sl.start, window.start), min(sl.stop, window.stop)
    return slice(a - sl.start, b - sl.start), slice(a - window.start, b - window.start)


def check_input(model: Predictor, image: Image, cfg: PredictConfig) -> tuple[int, VoxelSize, tuple[int, int, int]]:
    """Channel index, model-grid voxel size and shape; warns or fails on a voxel-size mismatch."""
    from subcell.transforms.resample import resampled_shape

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
    if not model.is_2d and image.shape[2] == 1:
        raise MetadataError(
            f"a 3D model needs a z-stack; the image has a single plane {image.shape[3:]}",
            path=image.provenance.source,
            field="shape",
        )
    vs = image.voxel_size
    mvs = model.voxel_size
    if not model.voxel_size_known:  # a package without physical units: take the image's grid
        mvs = vs
    if model.is_2d:
        mvs = VoxelSize(vs.z, mvs.y, mvs.x)
    if not vs.isclose(mvs, rtol=0.02):
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
        shape = resampled_shape(image.shape[2:], vs, mvs)
        exact = VoxelSize(*(s * n / m for s, n, m in zip(vs.as_tuple(), image.shape[2:], shape, strict=True)))
        return c, exact, shape
    return c, vs, image.shape[2:]  # type: ignore[return-value]


def on_model_grid(image: Image, grid_vs: VoxelSize, shape: tuple[int, int, int]) -> bool:
    """Whether ``image`` is read as it is (no resampling to the model grid): what reading lateral parts needs."""
    return grid_vs.isclose(image.voxel_size, rtol=1e-6) or tuple(shape) == tuple(image.shape[2:])


def _raw_rows(image: Image, t: int, c: int, grid_vs: VoxelSize, shape: tuple[int, int, int]) -> RowSource:
    """Input rows at the model grid (not normalised), read (and resampled) slab by slab from a lazy image; a
    lateral (ys, xs) part of them when the image is already on the model grid."""
    from subcell.transforms.resample import resample_linear, source_rows

    data = image.data
    n_in = image.shape[2]
    same = on_model_grid(image, grid_vs, shape)

    def rows(z0: int, z1: int, ys: slice = slice(None), xs: slice = slice(None)) -> np.ndarray:
        if same:
            return materialize(data[t, c, z0:z1, ys, xs]).astype(np.float32)[None]
        if ys != slice(None) or xs != slice(None):
            raise ValueRangeError(f"regions of an image at {image.voxel_size.as_tuple()} µm need it resampled to the "
                                  f"model's {grid_vs.as_tuple()} µm first (subcell convert --voxel-size)",
                                  field="voxel_size")  # fmt: skip
        a, b = source_rows(z0, z1, n_in=n_in, voxel_z=image.voxel_size.z, target_voxel_z=grid_vs.z)
        block = materialize(data[t, c, a:b]).astype(np.float32)
        out = resample_linear(
            block, voxel_size=image.voxel_size, target_voxel_size=grid_vs, out_shape=shape, z_rows=(z0, z1),
            data_z0=a, n_in_z=n_in,
        )  # fmt: skip
        return out[None]

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
    stats: dict[str, Any] | None = None,
) -> RowSource:  # fmt: skip
    """Normalised input rows at the model grid: ``model.preprocess`` with the whole stack's statistics
    (:func:`stack_stats`, computed here unless given): subcell models z-score, a bioimage.io package applies its
    own steps.

    A stack of up to :data:`HELD_STACK_VOXELS` read for its statistics here is held from that pass and handed out
    as the first request for all of its planes (a tiling whose rows span the whole depth asks exactly that once):
    one read of the file instead of two, with nothing more in memory than that row would hold (it is the row).
    """
    raw_rows = _raw_rows(image, t, c, grid_vs, shape)
    held: list[np.ndarray] = []
    if stats is None and math.prod(shape) <= HELD_STACK_VOXELS:
        held.append(np.empty((1, *shape), np.float32))
    st = stats if stats is not None else stack_stats(image, t, c, grid_vs, shape, model, keep=held[0] if held else None)

    def rows(*where: Any) -> np.ndarray:
        if held and len(where) == 2 and tuple(where) == (0, shape[0]):
            return model.preprocess(held.pop(), st)
        held.clear()  # a tiling that reads otherwise: not kept longer than the statistics pass
        return model.preprocess(raw_rows(*where), st)

    return rows


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


def _prediction_provenance(model: Predictor, image: Image, summary: dict[str, Any], ts: list[int]) -> Any:
    return image.provenance.then(
        "labelfree.predict",
        {
            "targets": model.targets,
            "model_voxel_size": list(model.voxel_size.as_tuple()),
            "timepoints": list(ts),  # input frame of every output frame
            **summary,
        },
    )


def predict_image(
    model: Predictor,
    image: Image,
    config: PredictConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Image:
    """Predict every (selected) timepoint of ``image`` in memory; returns an :class:`Image` at the model grid."""
    cfg = config or PredictConfig()
    c, grid_vs, shape = check_input(model, image, cfg)
    names = output_channel_names(model)
    ts = _timepoints(image, cfg)
    out = np.zeros((len(ts), len(names), *shape), np.float32)
    summary: dict[str, Any] = {}
    for i, t in enumerate(ts):
        src = row_source(image, t, c, grid_vs, shape, model)

        def sink(z0: int, rows: np.ndarray, i: int = i) -> None:
            out[i, :, z0 : z0 + rows.shape[1]] = rows

        summary = predict_volume(model, src, shape, sink, config=cfg, progress=progress)
    return Image(
        out,
        voxel_size=grid_vs,
        channel_names=names,
        time_interval=_output_interval(image, ts),
        provenance=_prediction_provenance(model, image, summary, ts),
    )


def predict_to_zarr(
    model: Predictor,
    image: Image,
    output: str | Path,
    config: PredictConfig | None = None,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Predict ``image`` (lazy is fine) straight into an OME-Zarr, row by row; memory bounded by tiles. When tile
    rows over whole planes do not fit ``memory_limit_gb``, lateral regions are predicted one after another
    (:func:`~subcell.labelfree.predict_regions.predict_regions_to_zarr`, same result)."""
    from subcell.io import OmeZarrWriter

    cfg = config or PredictConfig()
    c, grid_vs, shape = check_input(model, image, cfg)
    region, cfg = _fit_memory(model, image, shape, grid_vs, cfg)
    if region is not None:
        from subcell.labelfree.predict_regions import predict_regions_to_zarr

        return predict_regions_to_zarr(model, image, output, cfg, region_yx=region, overwrite=overwrite,
                                       progress=progress)  # fmt: skip
    names = output_channel_names(model)
    ts = _timepoints(image, cfg)
    summary: dict[str, Any] = {"tile": None}
    with OmeZarrWriter(
        output,
        shape=(len(ts), len(names), *shape),
        dtype="float32",
        voxel_size=grid_vs,
        channel_names=names,
        time_interval=_output_interval(image, ts),
        provenance=_prediction_provenance(model, image, summary, ts),
        overwrite=overwrite,
    ) as writer:
        for i, t in enumerate(ts):
            src = row_source(image, t, c, grid_vs, shape, model)

            def sink(z0: int, rows: np.ndarray, i: int = i) -> None:
                writer.write_region((slice(i, i + 1), slice(None), slice(z0, z0 + rows.shape[1])), rows[None])

            summary.update(predict_volume(model, src, shape, sink, config=cfg, progress=progress))
        writer.provenance = _prediction_provenance(model, image, summary, ts)  # metadata is written on close
    return Path(output)


def _fit_memory(model: Predictor, image: Image, shape: tuple[int, int, int], grid_vs: VoxelSize,
                cfg: PredictConfig) -> tuple[int | None, PredictConfig]:  # fmt: skip
    """``(None, cfg)`` when tile rows over whole planes fit ``cfg.memory_limit_gb``; otherwise the lateral region
    (1024, 512 or 256 px) whose rows fit and which computes the fewest voxels, and ``cfg`` with its tile fixed for
    every region (one grid over the volume, so the regions assemble into a whole-volume run's result)."""
    _, dtype, tuned = runtime(cfg)
    try:
        plan_tiles(model, shape, cfg, tuned=tuned, dtype=dtype)
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
                                  f"grid ({grid_vs.as_tuple()} µm): resample it first (subcell convert --voxel-size)",
                                  field="memory_limit")  # fmt: skip
        _, region, plan = best
        return region, cfg.model_copy(update={"tile": plan["tile"], "batch_size": plan["batch"]})
    raise first
