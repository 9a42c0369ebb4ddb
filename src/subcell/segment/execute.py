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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.blocks import BlockGrid, canonical_order, components_of_pairs, face_pairs, map_blocks
from subcell.blocks.components import first_voxels
from subcell.errors import ValueRangeError
from subcell.image import VoxelSize
from subcell.segment import filters
from subcell.segment import fits as F
from subcell.segment import steps as S

__all__ = ["execute"]

Scratch = Callable[[str, Any], Any]
_DTYPES = {"image": np.float32, "mask": np.bool_, "labels": np.int32}


@dataclass
class _Op:
    index: int
    name: str
    step: S.Step
    src: str
    refs: dict[str, str]  # field name on the step (seeds, mask, …) → stored array name
    out: str
    params: dict[str, Any] = field(default_factory=dict)


def _plan(workflow: Any) -> list[_Op]:
    """Resolve every name a step reads to the step (or input) that produced it."""
    alias = {n: n for n in workflow.inputs}
    current = workflow.inputs[0]
    ops = []
    for i, (name, step) in enumerate(workflow.steps):
        src = alias[step.input] if step.input else current
        refs = {f: alias[getattr(step, f)] for f in ("seeds", "mask", "other", "intensity") if getattr(step, f, None)}
        out = f"#{i}"
        ops.append(_Op(i, name, step, src, refs, out))
        if step.output:
            alias[step.output] = out
        current = out
    return ops


class _Field:
    """The arrays of one field and how to walk it: one block (whole) or a grid of lateral blocks."""

    def __init__(
        self, shape: tuple[int, int, int], vs: VoxelSize, block_yx: int | None, scratch: Scratch | None, executor: Any
    ) -> None:
        self.shape, self.vs, self.block_yx, self.executor = shape, vs, block_yx, executor
        self.whole = block_yx is None or (block_yx >= shape[1] and block_yx >= shape[2])
        self._scratch = scratch
        self.store: dict[str, Any] = {}
        self.kinds: dict[str, str] = {}

    def grid(self, halo: Sequence[int] = (0, 0, 0), *, what: str = "") -> BlockGrid:
        if self.whole:
            return BlockGrid(self.shape, self.shape)
        assert self.block_yx is not None
        if min(halo) < 0:
            raise ValueRangeError(
                f"{what} has no bounded reach, so it cannot run block-wise (give it a distance bound, "
                "e.g. max_distance_um, or segment the field whole)",
                field="block_yx",
            )
        if max(halo[1:]) > self.block_yx:
            raise ValueRangeError(
                f"blocks of {self.block_yx} px are smaller than the reach of {what} ({max(halo[1:])} px at this "
                f"voxel size); use a block of at least {max(halo[1:])} px",
                field="block_yx",
            )
        h = (0, min(halo[1], self.shape[1]), min(halo[2], self.shape[2]))
        return BlockGrid(self.shape, (self.shape[0], self.block_yx, self.block_yx), halo=h)

    def read(self, name: str, region: tuple[slice, ...]) -> np.ndarray:
        a = self.store[name][region]
        return np.asarray(a.compute() if hasattr(a, "compute") else a)

    def new(self, name: str, dtype: Any) -> Any:
        arr = np.zeros(self.shape, dtype) if self.whole or self._scratch is None else self._scratch(name, dtype)
        self.store[name] = arr
        return arr

    def map(self, fn: Callable[[Any], Any], grid: BlockGrid) -> list[Any]:
        return map_blocks(fn, grid, executor=None if self.whole else self.executor)


# ---------------------------------------------------------------------------------------------- local steps


def _run_local(op: _Op, arrays: Mapping[str, np.ndarray], vs: VoxelSize, origin: tuple[int, ...]) -> np.ndarray:
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
    if isinstance(s, S.FillBetweenMembranes):
        return filters.fill_between_membranes(
            a, ref["intensity"], voxel_size=vs, max_gap_um=s.max_gap_um, basal_len=p["basal_len"]
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
    raise AssertionError(f"{op.name} is not a local step")


def _flush(fld: _Field, stage: list[_Op], needed: set[str]) -> None:
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
            arrays[op.out] = _run_local(op, arrays, fld.vs, (0, 0, 0))
        for n in outs:
            fld.store[n] = arrays[n]
        return
    targets = {n: fld.new(n, _DTYPES[fld.kinds[n]]) for n in outs}

    def task(block: Any) -> None:
        arrays = {n: fld.read(n, block.read) for n in reads}
        origin = tuple(r.start for r in block.read)
        for op in stage:
            arrays[op.out] = _run_local(op, arrays, fld.vs, origin)
        for n, target in targets.items():
            target[block.core] = np.asarray(arrays[n][block.trim]).astype(target.dtype, copy=False)

    fld.map(task, grid)


# ---------------------------------------------------------------------------------------------- fitted steps


def _fit(fld: _Field, op: _Op) -> dict[str, Any]:
    """The statistic a fitted step uses, fitted once on its whole input."""
    s, vs = op.step, fld.vs
    halo: tuple[int, int, int] = (0, 0, 0)
    values: Callable[[dict[str, np.ndarray], tuple[slice, ...]], np.ndarray]

    def core_of(name: str) -> Callable[[dict[str, np.ndarray], tuple[slice, ...]], np.ndarray]:
        return lambda arrays, trim: arrays[name][trim]

    values = core_of(op.src)
    if isinstance(s, S.Normalize):
        fit: Any = (
            F.MomentsFit()
            if s.method == "std"
            else F.PercentileFit([s.low, s.high] if s.method == "percentile" else [0.0, s.high], what="normalization")
        )
    elif isinstance(s, S.Threshold):
        fit = F.ThresholdFit(s.method)
    elif isinstance(s, S.EdgePreservingSmooth):
        fit, halo = F.MomentsFit(), (0 if s.per_slice else 1, 1, 1)
        values = lambda arrays, trim: filters.gradient_sq(arrays[op.src], voxel_size=vs, per_slice=s.per_slice)[trim]  # noqa: E731
    elif isinstance(s, S.FilamentFilter):
        fit, halo = F.MaxFit(), s.reach(vs)
        values = lambda arrays, trim: np.asarray(  # noqa: E731
            filters.filament_top(arrays[op.src], sigmas_um=s.sigmas_um, voxel_size=vs, per_slice=s.per_slice, core=trim)
        )
    elif isinstance(s, S.FillBetweenMembranes):
        fit = F.IntMedianFit()
        values = lambda arrays, trim: filters.basal_run_lengths(arrays[op.src][trim])  # noqa: E731
    else:
        raise AssertionError(f"{op.name} fits nothing")
    grid = fld.grid(halo, what=f"step {op.index + 1} ({op.name})")

    def summarize(r: int, st: dict[str, Any]) -> list[Any]:
        def task(block: Any) -> Any:
            v = values({op.src: fld.read(op.src, block.read)}, block.trim)
            return fit.summary(r, F._finite(v) if not isinstance(fit, F.MaxFit) else v, st)

        return fld.map(task, grid)

    res = F.run_fit(fit, summarize)
    if isinstance(s, S.Normalize):
        if s.method == "std":
            return {
                "lo": max(res["mean"] - s.low * res["std"], res["min"]),
                "hi": min(res["mean"] + s.high * res["std"], res["max"]),
            }
        return {"lo": res[0], "hi": res[1]}
    if isinstance(s, S.Threshold):
        return {"t": res * s.factor}
    if isinstance(s, S.EdgePreservingSmooth):
        return {"mean_sq": res["mean"]}
    if isinstance(s, S.FilamentFilter):
        return {"top": res}
    return {"basal_len": res}


# ---------------------------------------------------------------------------------------------- object steps

_FACE3D = ndi.generate_binary_structure(3, 1)
_FACE2D = np.zeros((3, 3, 3), bool)
_FACE2D[1] = ndi.generate_binary_structure(2, 1)


@dataclass
class _Objects:
    """Connected objects of a field: per-object size, bounding box and border contact, and their ids per block."""

    n: int
    sizes: np.ndarray  # (n + 1,), index 0 unused
    lo: np.ndarray  # (n + 1, 3) bounding-box start
    hi: np.ndarray  # (n + 1, 3) bounding-box stop
    touches: np.ndarray  # (n + 1,) bool: touches an open border face of the field
    ids: Callable[[Any], np.ndarray]  # block → global ids of its core


def _objects(
    fld: _Field, mask: Callable[[Any], np.ndarray], *, per_slice: bool, open_faces: Sequence[tuple[int, int]] = ()
) -> _Objects:
    """Label the objects of ``mask(block)`` (face connectivity, per z-plane with ``per_slice``) across blocks.

    ``open_faces`` are (axis, side) faces of the field (side 0: start, 1: end) whose contact is recorded.
    """
    structure = _FACE2D if per_slice else _FACE3D
    grid = fld.grid()
    tmp = np.zeros(fld.shape, np.int32) if fld.whole else fld.new(f"_objects{len(fld.store)}", np.int32)

    def label_block(block: Any) -> dict[str, Any]:
        lab, n = ndi.label(mask(block), structure=structure)
        lab = lab.astype(np.int32, copy=False)
        tmp[block.core] = lab
        offset = tuple(c.start for c in block.core)
        _, first = first_voxels(lab, offset=offset, shape=fld.shape)
        lo = np.zeros((n + 1, 3), np.int64)
        hi = np.zeros((n + 1, 3), np.int64)
        for i, sl in enumerate(ndi.find_objects(lab), start=1):
            if sl is not None:
                lo[i] = [s.start + o for s, o in zip(sl, offset, strict=True)]
                hi[i] = [s.stop + o for s, o in zip(sl, offset, strict=True)]
        touch = np.zeros(n + 1, bool)
        for ax, side in open_faces:
            c = block.core[ax]
            if (side == 0 and c.start == 0) or (side == 1 and c.stop == fld.shape[ax]):
                layer = np.take(lab, 0 if side == 0 else lab.shape[ax] - 1, axis=ax)
                touch[np.unique(layer)] = True
        touch[0] = False
        return {
            "n": n,
            "sizes": np.bincount(lab.ravel(), minlength=n + 1),
            "first": first,
            "lo": lo,
            "hi": hi,
            "touch": touch,
        }

    parts = fld.map(label_block, grid)
    blocks = list(grid)
    offsets = np.cumsum([0] + [p["n"] for p in parts])
    total = int(offsets[-1])
    where = {b.index: k for k, b in enumerate(blocks)}
    pairs = [np.zeros((0, 2), np.int64)]
    for k, b in enumerate(blocks):  # faces with the next block along y and along x
        for ax in (1, 2):
            nxt = list(b.index)
            nxt[ax] += 1
            if tuple(nxt) not in where:
                continue
            k2 = where[tuple(nxt)]
            face = b.core[ax].stop
            sl_a, sl_b = list(b.core), list(b.core)
            sl_a[ax], sl_b[ax] = slice(face - 1, face), slice(face, face + 1)
            a, c = np.asarray(tmp[tuple(sl_a)]).astype(np.int64), np.asarray(tmp[tuple(sl_b)]).astype(np.int64)
            a[a > 0] += offsets[k]
            c[c > 0] += offsets[k2]
            pairs.append(face_pairs(a, c))
    root = components_of_pairs(total + 1, np.concatenate(pairs))
    first = np.full(total + 1, np.iinfo(np.int64).max, np.int64)
    sizes = np.zeros(total + 1, np.int64)
    lo = np.zeros((total + 1, 3), np.int64)
    hi = np.zeros((total + 1, 3), np.int64)
    touch = np.zeros(total + 1, bool)
    for k, p in enumerate(parts):
        sl = slice(offsets[k] + 1, offsets[k + 1] + 1)
        first[sl], sizes[sl], lo[sl], hi[sl], touch[sl] = (
            p["first"],
            p["sizes"][1:],
            p["lo"][1:],
            p["hi"][1:],
            p["touch"][1:],
        )
    roots = np.unique(root[1:]) if total else np.zeros(0, np.int64)
    n = len(roots)
    comp = np.searchsorted(roots, root)  # provisional id → component index (0..n-1); index 0 is background
    comp_first = np.full(n, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(comp_first, comp[1:], first[1:])
    new = np.zeros(total + 1, np.int64)
    final = canonical_order(np.arange(n), comp_first) if n else np.zeros(0, np.int64)
    new[1:] = final[comp[1:]]
    out_sizes = np.bincount(new, weights=sizes, minlength=n + 1).astype(np.int64)
    out_lo = np.full((n + 1, 3), np.iinfo(np.int64).max, np.int64)
    out_hi = np.zeros((n + 1, 3), np.int64)
    np.minimum.at(out_lo, new[1:], lo[1:])
    np.maximum.at(out_hi, new[1:], hi[1:])
    out_touch = np.zeros(n + 1, bool)
    np.logical_or.at(out_touch, new[1:], touch[1:])
    out_touch[0] = False
    lookups = {b.index: new[offsets[k] : offsets[k + 1] + 1].copy() for k, b in enumerate(blocks)}
    for lk in lookups.values():
        lk[0] = 0

    def ids(block: Any) -> np.ndarray:
        return lookups[block.index][np.asarray(tmp[block.core])]

    return _Objects(n, out_sizes, out_lo, out_hi, out_touch, ids)


def _write(fld: _Field, name: str, dtype: Any, make: Callable[[Any], np.ndarray]) -> None:
    """Store ``make(block)`` (the block's core) as array ``name``."""
    target = fld.new(name, dtype)

    def task(block: Any) -> None:
        target[block.core] = np.asarray(make(block)).astype(dtype, copy=False)

    fld.map(task, fld.grid())


def _reader(fld: _Field, name: str) -> Callable[[Any], np.ndarray]:
    return lambda block: fld.read(name, block.core)


def _unit(fld: _Field, per_slice: bool) -> float:
    z, y, x = fld.vs.as_tuple()
    return y * x if per_slice or fld.shape[0] == 1 else z * y * x


def _size_filter(fld: _Field, op: _Op) -> None:
    s: S.SizeFilter = op.step  # type: ignore[assignment]
    read = _reader(fld, op.src)
    if fld.kinds[op.src] == "labels":  # judged by id; survivors renumbered 1..n in their order
        counts = fld.map(lambda b: np.bincount(read(b).ravel()), fld.grid())
        n = max(len(c) for c in counts)
        sizes = sum(np.pad(c, (0, n - len(c))) for c in counts)
        keep = np.asarray(sizes) * _unit(fld, False) >= s.min_volume_um3
        keep[0] = False
        new = np.where(keep, np.cumsum(keep), 0).astype(np.int32)
        _write(fld, op.out, np.int32, lambda b: new[read(b)])
        return
    per_slice = s.per_slice or fld.shape[0] == 1
    obj = _objects(fld, lambda b: read(b).astype(bool), per_slice=per_slice)
    keep = obj.sizes * _unit(fld, per_slice) >= s.min_volume_um3
    keep[0] = False
    _write(fld, op.out, np.bool_, lambda b: keep[obj.ids(b)])


def _fill_holes(fld: _Field, op: _Op) -> None:
    s: S.FillHoles = op.step  # type: ignore[assignment]
    read = _reader(fld, op.src)
    per_slice = s.per_slice or fld.shape[0] == 1
    lateral = [] if s.close_lateral_border else [(1, 0), (1, 1), (2, 0), (2, 1)]
    faces = lateral if per_slice else [(0, 0), (0, 1), *lateral]
    bg = _objects(fld, lambda b: ~read(b).astype(bool), per_slice=per_slice, open_faces=faces)
    hole = ~bg.touches
    if s.max_hole_um is not None:
        hole &= bg.sizes * _unit(fld, per_slice) <= s.max_hole_um
    hole[0] = False
    _write(fld, op.out, np.bool_, lambda b: read(b).astype(bool) | hole[bg.ids(b)])


def _masked_object_threshold(fld: _Field, op: _Op) -> None:
    """Global threshold → objects (size-filtered) → Otsu of each object's own intensities."""
    s: S.MaskedObjectThreshold = op.step  # type: ignore[assignment]
    read = _reader(fld, op.src)
    low = _fit(
        fld, _Op(op.index, op.name, S.Threshold(method=s.global_method, factor=s.global_factor), op.src, {}, "")
    )["t"]
    obj = _objects(fld, lambda b: read(b) > low, per_slice=False)
    keep = np.ones(obj.n + 1, bool) if s.min_object_um3 <= 0 else obj.sizes * _unit(fld, False) >= s.min_object_um3
    keep[0] = False

    def kept(b: Any) -> np.ndarray:
        return np.where(keep[obj.ids(b)], obj.ids(b), 0)

    def ranges(b: Any) -> dict[int, tuple[Any, Any]]:
        ids, vals = kept(b), read(b).astype(np.float32)
        idx = np.unique(ids[ids > 0])
        if not idx.size:
            return {}
        mn, mx = ndi.minimum(vals, ids, idx), ndi.maximum(vals, ids, idx)
        return {int(i): (np.float32(a), np.float32(c)) for i, a, c in zip(idx, mn, mx, strict=True)}

    rng: dict[int, tuple[Any, Any]] = {}
    for part in fld.map(ranges, fld.grid()):
        for i, (a, c) in part.items():
            rng[i] = (min(rng[i][0], a), max(rng[i][1], c)) if i in rng else (a, c)

    def hists(b: Any) -> dict[int, np.ndarray]:
        ids, vals = kept(b), read(b).astype(np.float32)
        out = {}
        for i, sl in enumerate(ndi.find_objects(ids), start=1):
            if sl is not None and rng[i][0] != rng[i][1]:
                out[i] = np.histogram(vals[sl][ids[sl] == i], bins=256, range=rng[i])[0]
        return out

    hist: dict[int, np.ndarray] = {}
    for part in fld.map(hists, fld.grid()):
        for i, h in part.items():
            hist[i] = hist[i] + h if i in hist else h
    t = np.full(obj.n + 1, np.inf, np.float32)
    for i, (a, c) in rng.items():
        if obj.sizes[i] < 2:
            t[i] = -np.inf
        elif a == c:
            t[i] = a * s.local_factor
        else:
            edges = np.histogram_bin_edges(np.zeros(1, np.float32), bins=256, range=(a, c))
            t[i] = F._otsu(hist[i], (edges[:-1] + edges[1:]) / 2.0) * s.local_factor
    _write(fld, op.out, np.bool_, lambda b: (kept(b) > 0) & (read(b) > t[kept(b)]))


def _per_object(fld: _Field, op: _Op) -> None:
    """Split or thin every object on its own crop (its bounding box and a one-voxel margin)."""
    s = op.step
    read = _reader(fld, op.src)
    obj = _objects(fld, lambda b: read(b).astype(bool), per_slice=False)
    labels_name = f"_ids{op.index}"
    _write(fld, labels_name, np.int32, obj.ids)
    labels = fld.store[labels_name]
    split = isinstance(s, S.SplitTouching)
    out = fld.new(op.out if not split else f"_lobes{op.index}", np.int32 if split else np.bool_)
    budget = None if fld.whole else 4 * int(np.prod(fld.grid().block((0, 0, 0)).read_shape))
    next_id = 0
    for i in range(1, obj.n + 1):
        crop = tuple(
            slice(max(0, int(a) - 1), min(n, int(c) + 1))
            for a, c, n in zip(obj.lo[i], obj.hi[i], fld.shape, strict=True)
        )
        if budget is not None and np.prod([c.stop - c.start for c in crop]) > budget:
            raise ValueRangeError(
                f"an object spans {[c.stop - c.start for c in crop]} voxels, more than {op.name} can hold block-wise; "
                "use larger blocks or segment the field whole",
                field="block_yx",
            )
        own = np.asarray(labels[crop]) == i
        if split:
            lobes = _split_object(own, s, fld.vs)  # type: ignore[arg-type]
            res = np.where(lobes > 0, lobes + next_id, 0)
            next_id += int(lobes.max())
        else:
            res = filters.topology_preserving_thinning(
                own,
                min_thickness_um=s.min_thickness_um,
                thin_um=s.thin_um,
                voxel_size=fld.vs,  # type: ignore[attr-defined]
            )
        out[crop] = np.where(own, res, np.asarray(out[crop]))
    if split:  # number the lobes by their first voxel, like every other id
        lobes_name = f"_lobes{op.index}"
        grid = fld.grid()
        firsts = fld.map(
            lambda b: first_voxels(
                fld.read(lobes_name, b.core), offset=tuple(c.start for c in b.core), shape=fld.shape
            ),
            grid,
        )
        first = np.full(next_id + 1, np.iinfo(np.int64).max, np.int64)
        for ids, f in firsts:
            np.minimum.at(first, ids, f)
        new = np.zeros(next_id + 1, np.int32)
        if next_id:
            new[1:] = canonical_order(np.arange(1, next_id + 1), first[1:])
        _write(fld, op.out, np.int32, lambda b: new[fld.read(lobes_name, b.core)])


def _split_object(own: np.ndarray, s: S.SplitTouching, vs: VoxelSize) -> np.ndarray:
    from subcell.segment.split import split_touching

    return split_touching(own, depth_um=s.depth_um, max_neck_ratio=s.max_neck_ratio, voxel_size=vs)


def _label(fld: _Field, op: _Op) -> None:
    read = _reader(fld, op.src)
    obj = _objects(fld, lambda b: read(b).astype(bool), per_slice=False)
    _write(fld, op.out, np.int32, obj.ids)


_OBJECT_STEPS: dict[type, Callable[[_Field, _Op], None]] = {
    S.SizeFilter: _size_filter,
    S.FillHoles: _fill_holes,
    S.MaskedObjectThreshold: _masked_object_threshold,
    S.SplitTouching: _per_object,
    S.Thinning: _per_object,
    S.Label: _label,
}


# ---------------------------------------------------------------------------------------------- the run


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
    fld = _Field(shape, vs, block_yx, scratch, executor)  # type: ignore[arg-type]
    for n in workflow.inputs:
        fld.store[n], fld.kinds[n] = inputs[n], "image"
    ops = _plan(workflow)
    final = ops[-1].out
    last_read = {n: i for i, op in enumerate(ops) for n in (op.src, *op.refs.values())}
    stage: list[_Op] = []
    for i, op in enumerate(ops):
        kind = S.step_kind(op.step)
        fld.kinds[op.out] = S.result_kind(op.step, fld.kinds[op.src])
        needs = {op.src, *op.refs.values()}
        if kind != "local" and needs & {o.out for o in stage}:
            _flush(fld, stage, {n for n, j in last_read.items() if j >= i} | {final})
            stage = []
        if kind == "fitted":
            op.params = _fit(fld, op)
            if record is not None:
                record[op.index] = dict(op.params)
        if kind == "objects":
            _OBJECT_STEPS[type(op.step)](fld, op)
        else:
            stage.append(op)
    _flush(fld, stage, {final})
    if workflow.kind == "instance" and fld.kinds[final] != "labels":
        _label(fld, _Op(len(ops), "label", S.Label(), final, {}, "#final"))
        final = "#final"
    result = fld.store[final]
    if fld.whole:
        a = np.asarray(result)
        return a.astype(np.int32) if workflow.kind == "instance" else (a > 0).astype(np.uint8)
    return result
