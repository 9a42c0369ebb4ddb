"""Local steps: computed block by block, each block read with the halo its stage's reaches add up to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from subcell.image import VoxelSize
from subcell.segment import filters
from subcell.segment import steps as S
from subcell.segment.field import DTYPES, Field, Op

__all__ = ["flush", "run_local"]


def run_local(op: Op, arrays: Mapping[str, np.ndarray], vs: VoxelSize, origin: tuple[int, ...]) -> np.ndarray:
    s, a, p = op.step, arrays[op.src], op.params
    ref = {f: arrays[n] for f, n in op.refs.items()}
    if isinstance(s, S.Normalize):
        return filters.apply_range(a, p["lo"], p["hi"], clip=s.clip)
    if isinstance(s, S.Threshold):
        t = p["t"] if s.fitted else filters.threshold_value(a, method="absolute", value=s.value)
        return np.asarray(a) > t
    if isinstance(s, S.GaussianSmooth):
        return filters.gaussian_smooth(a, sigma_um=s.sigma_um, voxel_size=vs, per_slice=s.per_slice)
    if isinstance(s, S.EdgePreservingSmooth):
        return filters.edge_preserving_smooth(
            a, voxel_size=vs, iterations=s.iterations, conductance=s.conductance, time_step=s.time_step,
            per_slice=s.per_slice, mean_sq_gradient=p["mean_sq"],
        )  # fmt: skip
    if isinstance(s, S.SubtractBackground):
        return filters.subtract_background(
            a, radius_um=s.radius_um, voxel_size=vs, per_slice=s.per_slice, origin=origin
        )
    if isinstance(s, S.SpotFilter):
        return filters.spot_filter(a, sigmas_um=s.sigmas_um, voxel_size=vs, per_slice=s.per_slice)
    if isinstance(s, S.FilamentFilter):
        return filters.filament_filter(
            a, sigmas_um=s.sigmas_um, voxel_size=vs, per_slice=s.per_slice, tau=s.tau, top=p["top"]
        )
    if isinstance(s, S.Combine):
        x, y = np.asarray(a).astype(bool), np.asarray(ref["other"]).astype(bool)
        return x | y if s.op == "or" else (x & y if s.op == "and" else x & ~y)
    if isinstance(s, S.MaskWith):
        return np.where(np.asarray(ref["mask"]).astype(bool), a, 0).astype(np.asarray(a).dtype)
    if isinstance(s, S.SeededWatershed):
        seeds = np.asarray(ref["seeds"])
        return filters.seeded_watershed(
            a, seeds=seeds.astype(np.int32) if seeds.dtype == np.bool_ else seeds, mask=ref.get("mask"),
            compactness=s.compactness, max_distance_um=s.max_distance_um, voxel_size=vs,
        )  # fmt: skip
    if isinstance(s, S.PixelClassifier):
        from subcell.segment.pixels import load_pixel_classifier

        clf = load_pixel_classifier(s.model)
        return clf.probabilities(a, voxel_size=vs)[clf.class_index(s.foreground)]
    raise AssertionError(f"{op.name} is not a local step")


def flush(fld: Field, stage: list[Op], needed: set[str]) -> None:
    """Compute a stage of local steps block by block and store the outputs that later steps read."""
    if not stage:
        return
    produced = {op.out for op in stage}
    reads = sorted({n for op in stage for n in (op.src, *op.refs.values())} - produced)
    outs = [op.out for op in stage if op.out in needed]
    halo = tuple(
        -1 if any(op.step.reach(fld.vs)[ax] < 0 for op in stage) else sum(op.step.reach(fld.vs)[ax] for op in stage)
        for ax in range(3)
    )
    widest = max(stage, key=lambda op: max(op.step.reach(fld.vs)))
    grid = fld.grid(halo, what=f"step {widest.index + 1} ({widest.name}) with the steps before it")
    if fld.whole:
        arrays = {n: fld.read(n, grid.block((0, 0, 0)).read) for n in reads}
        for op in stage:
            arrays[op.out] = run_local(op, arrays, fld.vs, (0, 0, 0))
        for n in outs:
            fld.store[n] = arrays[n]
        return
    targets = {n: fld.new(n, DTYPES[fld.kinds[n]]) for n in outs}

    def task(block: Any) -> None:
        arrays = {n: fld.read(n, block.read) for n in reads}
        origin = tuple(r.start for r in block.read)
        for op in stage:
            arrays[op.out] = run_local(op, arrays, fld.vs, origin)
        for n, target in targets.items():
            target[block.core] = np.asarray(arrays[n][block.trim]).astype(target.dtype, copy=False)

    fld.map(task, grid)
