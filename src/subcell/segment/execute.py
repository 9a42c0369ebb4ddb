"""Run a workflow on a field, whole or block by block, through one code path.

A workflow is run in stages. Consecutive ``local`` steps form a stage that is computed block by block, each
block read with the sum of the stage's reaches as its halo. A ``fitted`` step first fits its statistic on its
whole input (summaries merged over blocks, :mod:`subcell.segment.fits`) and then joins the stage as a local
step. An ``objects`` step works on connected objects joined across block faces (:mod:`subcell.blocks`). What a
later step needs is kept between stages in a store: in-memory arrays for a whole field, scratch arrays of the
unfinished output for a block-wise run. A whole-field run is the one-block case of the same code, so the
block-wise result equals it by construction: fitted numbers are identical, objects are judged whole, and ids
are numbered by each object's first voxel in raster order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from subcell.image import VoxelSize
from subcell.segment import steps as S
from subcell.segment.field import Field, Op, Scratch
from subcell.segment.run_fitted import fit_step
from subcell.segment.run_local import flush
from subcell.segment.run_objects import OBJECT_STEPS, label_step

__all__ = ["execute"]


def _plan(workflow: Any) -> list[Op]:
    """Resolve every name a step reads to the step (or input) that produced it."""
    alias = {n: n for n in workflow.inputs}
    current = workflow.inputs[0]
    ops = []
    for i, (name, step) in enumerate(workflow.steps):
        src = alias[step.input] if step.input else current
        refs = {f: alias[r] for f, r in step.refs().items()}
        out = f"#{i}"
        ops.append(Op(i, name, step, src, refs, out))
        if step.output:
            alias[step.output] = out
        current = out
    return ops


def execute(
    workflow: Any,
    inputs: Mapping[str, Any],
    *,
    voxel_size: VoxelSize | Sequence[float],
    block_yx: int | None = None,
    scratch: Scratch | None = None,
    executor: Any = None,
    record: dict[int, dict[str, Any]] | None = None,
) -> Any:
    """Run ``workflow`` on named ``(Z, Y, X)`` arrays (NumPy, Dask or Zarr); returns the result array.

    Whole field when ``block_yx`` is None (in memory); otherwise block by block over lateral blocks of
    ``block_yx`` px, keeping what later steps need in arrays made by ``scratch(name, dtype)``. Instance
    workflows return int32 labels, mask workflows uint8 0/1. ``record`` receives every fitted statistic.
    """
    vs = VoxelSize.of(voxel_size)
    shape = tuple(int(n) for n in np.shape(inputs[workflow.inputs[0]]))
    fld = Field(shape, vs, block_yx, scratch, executor)  # type: ignore[arg-type]
    for n in workflow.inputs:
        fld.store[n], fld.kinds[n] = inputs[n], "image"
    ops = _plan(workflow)
    final = ops[-1].out
    last_read = {n: i for i, op in enumerate(ops) for n in (op.src, *op.refs.values())}
    stage: list[Op] = []
    for i, op in enumerate(ops):
        kind = S.step_kind(op.step)
        fld.kinds[op.out] = S.result_kind(op.step, fld.kinds[op.src])
        needs = {op.src, *op.refs.values()}
        if kind != "local" and needs & {o.out for o in stage}:
            flush(fld, stage, {n for n, j in last_read.items() if j >= i} | {final})
            stage = []
        if kind == "fitted":
            op.params = fit_step(fld, op)
            if record is not None:
                record[op.index] = dict(op.params)
        if kind == "objects" or type(op.step) in OBJECT_STEPS:  # a fitted step may also judge objects whole
            OBJECT_STEPS[type(op.step)](fld, op)
        else:
            stage.append(op)
    flush(fld, stage, {final})
    if workflow.kind == "instance" and fld.kinds[final] != "labels":
        label_step(fld, Op(len(ops), "label", S.Label(), final, {}, "#final"))
        final = "#final"
    result = fld.store[final]
    if fld.whole:
        a = np.asarray(result)
        return a.astype(np.int32) if workflow.kind == "instance" else (a > 0).astype(np.uint8)
    return result
