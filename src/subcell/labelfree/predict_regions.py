"""One large volume predicted region by region on many workers (the block engine's executor seam, e.g. Dask).

The client reads the stack statistics once (every tile is normalised with the whole stack's, as in a serial
run), fixes the tile grid, and cuts the (Y, X) plane into regions aligned to the output's chunks. Each region is
a task: a worker loads the model once (kept per process), predicts the tiles that reach into its region
(:func:`~subcell.labelfree.predict.predict_volume` with a window) and writes the region straight into the
unfinished OME-Zarr. No two regions share a chunk, and every voxel sums the same tiles in the same order as the
whole-volume run with the same tile grid, so the result equals it (up to the last bit where a batch of tiles is
grouped differently); the store is moved into place only once every region is written. An automatic tile is
capped at the region's size; tiles straddling two regions are computed by both.

Run serially with a loaded model, the same loop is what :func:`~subcell.labelfree.predict.predict_to_zarr` falls
back to when tile rows over whole planes do not fit the memory budget.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from subcell.blocks import BlockGrid, map_blocks
from subcell.errors import ValueRangeError
from subcell.image import Image
from subcell.labelfree import predict_input
from subcell.labelfree.config import PredictConfig
from subcell.labelfree.predict import (
    _output_interval,
    _prediction_provenance,
    _timepoints,
    predict_volume,
    runtime,
)
from subcell.labelfree.predict_input import (
    cell_depth_input,
    check_input,
    on_model_grid,
    resample_hint,
    row_source,
    stack_stats,
)
from subcell.labelfree.predictor import Predictor, output_channel_names
from subcell.labelfree.tile_plan import plan_tiles

__all__ = ["predict_regions_to_zarr", "worker_model"]


def worker_model(spec: str, device: str) -> Any:
    """The model ``spec`` (folder, shipped name or package), loaded once per process and device."""
    from subcell.labelfree.cache import MODEL_CACHE
    from subcell.train import resolve_device

    return MODEL_CACHE.load(spec, resolve_device(device), keep=True)


def _predict_region(block: Any, *, job: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """One region (a block of the lateral grid) of every timepoint into the output array: whether it wrote a
    finite value, and the tiling summary."""
    model = job["model"]
    if isinstance(model, str):
        model = worker_model(model, job["cfg"].device)
    finite = False
    summary: dict[str, Any] = {}
    region = ys, xs = block.core[1:]
    for i, (t, stats) in enumerate(zip(job["timepoints"], job["stats"], strict=True)):
        depth = None if job["depth"] is None else job["depth"][i]
        src = row_source(job["image"], t, job["channel"], job["grid_vs"], job["shape"], model, stats, depth)

        def sink(z0: int, rows: np.ndarray, i: int = i) -> None:
            nonlocal finite
            finite = finite or bool(np.isfinite(rows).any())
            job["array"][i : i + 1, :, z0 : z0 + rows.shape[1], ys, xs] = rows[None]

        summary = predict_volume(model, src, job["shape"], sink, config=job["cfg"], window=region,
                                 progress=job["progress"])  # fmt: skip
    return finite, summary


def predict_regions_to_zarr(
    model: str | Path | Predictor,
    image: Image,
    output: str | Path,
    config: PredictConfig | None = None,
    *,
    region_yx: int = 1024,
    executor: Any = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    levels: int | None = None,
    cells: Image | None = None,
) -> Path:
    """Predict ``image`` (lazy, at the model's voxel size) into an OME-Zarr, ``region_yx`` × ``region_yx`` regions
    at a time: blocks of a lateral :class:`~subcell.blocks.BlockGrid` through :func:`~subcell.blocks.map_blocks`
    on ``executor`` (e.g. :class:`subcell.batch.DaskExecutor`; serial when None), as block-wise segmentation.

    ``model`` is what :func:`~subcell.labelfree.pretrained.load_model` takes (a folder, a shipped name or a
    bioimage.io package): workers load it themselves, once each. Serially (no ``executor``) it may also be a
    loaded model; ``progress`` gets (tiles done, tiles) of each region in turn. ``levels``: the store's pyramid
    levels (:class:`~subcell.io.OmeZarrWriter`; 1 for a prediction only read back at full resolution).
    ``cells``: the cell labels on the image's grid, for a model conditioned on them (their depth is computed here
    and sent with the job).
    """
    from subcell.io import OmeZarrWriter

    cfg = config or PredictConfig()
    if isinstance(model, str | Path):
        spec: str | Predictor = str(model)
        lf: Predictor = worker_model(str(model), cfg.device)
    elif executor is not None:
        raise ValueRangeError("regions on workers need the model as a folder, shipped name or package, which each "
                              "worker loads; a loaded model predicts regions serially", field="model")  # fmt: skip
    else:
        spec = lf = model
    c, grid_vs, shape = check_input(lf, image, cfg)
    depth = cell_depth_input(lf, image, cells)
    if not on_model_grid(image, grid_vs, shape):
        raise ValueRangeError(f"the image ({image.voxel_size.as_tuple()} µm) is not on the model's grid "
                              f"({grid_vs.as_tuple()} µm): resample it first ({resample_hint(grid_vs)}), then "
                              "predict it by regions", field="voxel_size")  # fmt: skip
    # fix the tile grid on the client, so a worker with another device or allocator cannot choose another one
    _, dtype, tuned = runtime(cfg)
    plan = plan_tiles(lf, shape, cfg, tuned=tuned, dtype=dtype, max_yx=region_yx)
    cfg = cfg.model_copy(update={"tile": plan["tile"], "batch_size": plan["batch"]})
    chunk = min(region_yx, 256)
    if region_yx % chunk or region_yx < max(plan["tile"][1:]):
        raise ValueRangeError(f"region_yx {region_yx} must be a multiple of 256 (the output chunk) and at least "
                              f"one tile ({plan['tile'][1:]})", field="region_yx")  # fmt: skip
    names = output_channel_names(lf)
    ts = _timepoints(image, cfg)
    stats = [stack_stats(image, t, c, grid_vs, shape, lf) for t in ts]
    summary: dict[str, Any] = {**plan, "tile": list(plan["tile"]), "trim": list(plan["trim"])}
    writer = OmeZarrWriter(
        output, shape=(len(ts), len(names), *shape), dtype="float32", voxel_size=grid_vs, channel_names=names,
        time_interval=_output_interval(image, ts), provenance=_prediction_provenance(lf, image, summary, ts, cfg),
        chunks=(1, 1, min(shape[0], 32), chunk, chunk), levels=levels, overwrite=overwrite,
    )  # fmt: skip
    try:
        # every timepoint's cell depth, sent with the job: in memory up to DEPTH_HELD_BYTES in all, beyond that in
        # the unfinished store's scratch (beside the output, so workers that write there can read it)
        frames = (
            None
            if depth is None
            else [
                depth.frame(
                    t,
                    writer.scratch_array,
                    name=f"cell_depth_{i}",
                    held_bytes=predict_input.DEPTH_HELD_BYTES / len(ts),
                )
                for i, t in enumerate(ts)
            ]
        )
        job = {"model": spec, "cfg": cfg, "image": image, "channel": c, "grid_vs": grid_vs, "shape": shape,
               "timepoints": ts, "stats": stats, "array": writer.level0, "progress": progress, "depth": frames}  # fmt: skip
        # the regions are blocks of the block engine's lateral grid, run through its executor seam
        grid = BlockGrid(shape, (shape[0], region_yx, region_yx))
        done = map_blocks(partial(_predict_region, job=job), grid, executor=executor)
        summary = {**summary, **done[0][1], "region_yx": region_yx}
        writer.provenance = _prediction_provenance(lf, image, summary, ts, cfg)
        writer.written_elsewhere(any_finite=any(f for f, _ in done))
    except BaseException:
        writer.abort()
        raise
    return writer.close()
