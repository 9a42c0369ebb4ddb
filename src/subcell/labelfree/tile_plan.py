"""The tile grid of a prediction: which tile and batch compute the fewest voxels within a memory budget, and the
trim and overlap each axis needs (the network's unreliable edge voxels cut away, neighbours still blending)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from subcell.errors import ValueRangeError
from subcell.labelfree.config import PredictConfig
from subcell.labelfree.predict_input import HELD_STACK_VOXELS
from subcell.labelfree.predictor import Predictor, output_channel_names
from subcell.train.host import RETAINED
from subcell.transforms.tiling import tile_starts

# output planes the row resampler computes at a time (``PredictConfig.output_grid: input``)
RESAMPLE_CHUNK = 4

__all__ = ["axis_grid", "choose_tile", "is_banded", "padded_length", "pass_bytes", "plan_tiles"]


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


def pass_bytes(
    model: Predictor, tile: tuple[int, ...], batch: int, *, itemsize: int = 4, retained: float = 1.0
) -> float:
    """The resident memory one pass of the network over ``batch`` tiles takes: its activations (the network's
    calibrated estimate, ×1.3) grown by ``retained`` for an allocator that keeps freed blocks."""
    return batch * model.network.activation_bytes_per_voxel(itemsize=itemsize) * math.prod(tile) * 1.3 * retained


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
    out_grid: tuple[int, int, int] | None = None,
    banded: bool = False,
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
    ``out_grid``: the (Z, Y, X) of the output grid when finished rows are resampled onto another grid
    (:class:`~subcell.transforms.resample.RowResampler`), which holds about a tile row (or band) of finished rows
    more and works on a few output planes (or rows of a band) at a time.
    ``banded``: a tile that spans the whole depth is accumulated in bands one tile high across the plane
    (:func:`is_banded` says when), so its row buffers are a band's, not the whole plane's.
    """
    div = model.divisor
    budget = memory_limit_gb * 1024**3
    n_out = len(output_channel_names(model))
    per_voxel = pass_bytes(model, (1, 1, 1), 1, itemsize=itemsize, retained=retained)  # a pass, per tile voxel
    # the input slab, in float32 words per voxel it reads: raw and normalised rows (2.5); with the cell depth as a
    # second channel, also its rows and the two channels concatenated (+3: predict_input.row_source)
    slab = 2.5 + 3.0 * model.cell_conditioned
    cap = tuple(_round_up(s, d) for s, d in zip(shape, div, strict=True))
    low = [min(c, _round_up(p, d)) for c, p, d in zip(cap, model.patch_size, div, strict=True)]

    def band(t: tuple[int, ...]) -> bool:
        return banded and whole_yx is None and is_banded(shape, t)

    def cost(t: tuple[int, ...], b: int) -> float:
        # accumulators + the finished rows handed to the sink (C_out each) over the window, the normalised input
        # slab and the raw slab it is converted from over what the window's tiles read
        if band(t):  # the band being summed, the one handed on, the band's input slab (raw and normalised) and a
            # small stack held whole by the input rows (:data:`~subcell.labelfree.predict_input.HELD_STACK_VOXELS`)
            window = t[1] * max(shape[2], t[2])
            held = 4 * math.prod(shape) if math.prod(shape) <= HELD_STACK_VOXELS else 0
            row_bytes = (3 * n_out + slab) * window * 4 * t[0] + held
            if out_grid is not None:  # the resampler's held band rows (up to two bands), the output rows a band
                # completes (about a band), and its chunk of output rows (Z_out × X_out each) with temporaries
                row_bytes += n_out * 4 * (3 * window * t[0] + 4 * RESAMPLE_CHUNK * out_grid[0] * out_grid[2])
            return b * per_voxel * math.prod(t) + row_bytes + 300e6
        window = max(shape[1], t[1]) * max(shape[2], t[2])
        read = window if whole_yx is None else math.prod(
            min(w, max(s, u) + 2 * u) for w, s, u in zip(whole_yx, shape[1:], t[1:], strict=True))  # fmt: skip
        row_bytes = (2 * n_out * window + slab * read) * 4 * t[0]
        if out_grid is not None:  # the resampler's held rows, the output planes a tile row completes, and its
            # chunk of output planes with temporaries
            row_bytes += n_out * 4 * (2 * window * t[0] + 4 * RESAMPLE_CHUNK * out_grid[1] * out_grid[2])
        return b * per_voxel * math.prod(t) + row_bytes + 300e6  # + weights, libraries

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


def is_banded(shape: tuple[int, ...], tile: tuple[int, ...]) -> bool:
    """Whether a prediction of ``shape`` in ``tile`` tiles can sum its tiles in bands one tile high: when one row
    of tiles spans the whole depth (no later row adds to its planes) and the plane needs more than one tile in
    y. A band's rows are final once the next tile row starts below them, so only a band, not the plane, is held."""
    return tile[0] >= shape[0] and tile[1] < shape[1]


def plan_tiles(model: Predictor, shape: tuple[int, int, int], cfg: PredictConfig, *, tuned: bool,
               dtype: torch.dtype | None, max_yx: int | None = None,
               out_grid: tuple[int, int, int] | None = None, banded: bool = False) -> dict[str, Any]:  # fmt: skip
    """Tile, batch, overlap, trim and the padded extent for a ``shape`` volume (what :func:`predict_volume` and
    its region-wise runs share, so every worker covers the volume with the same grid). ``max_yx`` caps an
    automatically chosen tile's lateral size (a region's); ``out_grid`` see :func:`choose_tile`. ``banded``: the
    caller's sink takes bands of rows (``sink(z0, rows, y0)``); the plan's ``banded`` says whether this grid is
    summed in bands (:func:`is_banded`, never with a region cap); ``pass_bytes`` what one pass of the network
    takes (:func:`pass_bytes`)."""
    itemsize, retained = 2 if dtype is not None else 4, RETAINED if tuned else 1.0  # bf16/fp16 autocast; kept blocks
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
            trim=cfg.trim, itemsize=itemsize, retained=retained,
            whole_yx=None if capped == tuple(shape) else (shape[1], shape[2]), out_grid=out_grid,
            banded=banded and max_yx is None,
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
    bands = banded and max_yx is None and is_banded(shape, tile)
    need = pass_bytes(model, tile, batch, itemsize=itemsize, retained=retained)
    return {"tile": tuple(tile), "batch": batch, "padded": padded, "trim": trim, "overlap": overlap, "banded": bands,
            "pass_bytes": need}  # fmt: skip
