"""Object steps: objects joined across block faces (:func:`subcell.blocks.label_blocks`) and judged whole."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.blocks import Objects, label_blocks
from subcell.blocks.components import first_voxels, number_by_first_voxel
from subcell.errors import ValueRangeError
from subcell.image import VoxelSize
from subcell.segment import filters
from subcell.segment import fits as F
from subcell.segment import steps as S
from subcell.segment.field import Field, Op, reader, unit, write
from subcell.segment.run_fitted import fit_step

__all__ = ["OBJECT_STEPS", "label_step"]


def _objects(
    fld: Field, mask: Callable[[Any], np.ndarray], *, per_slice: bool, open_faces: Sequence[tuple[int, int]] = ()
) -> Objects:
    tmp = np.zeros(fld.shape, np.int32) if fld.whole else fld.new(f"_objects{len(fld.store)}", np.int32)
    return label_blocks(fld.grid(), mask, tmp, per_slice=per_slice, open_faces=open_faces, run=fld.map)


def _size_filter(fld: Field, op: Op) -> None:
    s: S.SizeFilter = op.step  # type: ignore[assignment]
    read = reader(fld, op.src)
    if fld.kinds[op.src] == "labels":  # judged by id; survivors renumbered 1..n in their order
        counts = fld.map(lambda b: np.bincount(read(b).ravel()), fld.grid())
        n = max(len(c) for c in counts)
        sizes = sum(np.pad(c, (0, n - len(c))) for c in counts)
        keep = np.asarray(sizes) * unit(fld, False) >= s.min_volume_um3
        keep[0] = False
        new = np.where(keep, np.cumsum(keep), 0).astype(np.int32)
        write(fld, op.out, np.int32, lambda b: new[read(b)])
        return
    per_slice = s.per_slice or fld.shape[0] == 1
    obj = _objects(fld, lambda b: read(b).astype(bool), per_slice=per_slice)
    keep = obj.sizes * unit(fld, per_slice) >= s.min_volume_um3
    keep[0] = False
    write(fld, op.out, np.bool_, lambda b: keep[obj.ids(b)])


def _fill_holes(fld: Field, op: Op) -> None:
    s: S.FillHoles = op.step  # type: ignore[assignment]
    read = reader(fld, op.src)
    per_slice = s.per_slice or fld.shape[0] == 1
    lateral = [] if s.close_lateral_border else [(1, 0), (1, 1), (2, 0), (2, 1)]
    faces = lateral if per_slice else [(0, 0), (0, 1), *lateral]
    bg = _objects(fld, lambda b: ~read(b).astype(bool), per_slice=per_slice, open_faces=faces)
    hole = ~bg.touches
    if s.max_hole_um is not None:
        hole &= bg.sizes * unit(fld, per_slice) <= s.max_hole_um
    hole[0] = False
    write(fld, op.out, np.bool_, lambda b: read(b).astype(bool) | hole[bg.ids(b)])


def _masked_object_threshold(fld: Field, op: Op) -> None:
    """Global threshold → objects (size-filtered) → Otsu of each object's own intensities."""
    s: S.MaskedObjectThreshold = op.step  # type: ignore[assignment]
    read = reader(fld, op.src)
    low = fit_step(
        fld, Op(op.index, op.name, S.Threshold(method=s.global_method, factor=s.global_factor), op.src, {}, "")
    )["t"]
    obj = _objects(fld, lambda b: read(b) > low, per_slice=False)
    keep = np.ones(obj.n + 1, bool) if s.min_object_um3 <= 0 else obj.sizes * unit(fld, False) >= s.min_object_um3
    keep[0] = False

    def kept(b: Any) -> np.ndarray:
        ids = obj.ids(b)
        return np.where(keep[ids], ids, 0)

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

    def thresholded(b: Any) -> np.ndarray:
        ids = kept(b)
        return (ids > 0) & (read(b) > t[ids])

    write(fld, op.out, np.bool_, thresholded)


OBJECTS_PER_BATCH = 64  # objects computed between two writes (bounds the crops held by the client)


def _per_object(fld: Field, op: Op) -> None:
    """Split or thin every object on its own crop (its bounding box and a one-voxel margin)."""
    s = op.step
    read = reader(fld, op.src)
    obj = _objects(fld, lambda b: read(b).astype(bool), per_slice=False)
    labels_name = f"_ids{op.index}"
    write(fld, labels_name, np.int32, obj.ids)
    labels = fld.store[labels_name]
    split = isinstance(s, S.SplitTouching)
    out = fld.new(op.out if not split else f"_lobes{op.index}", np.int32 if split else np.bool_)
    budget = None if fld.whole else 4 * int(np.prod(fld.grid().block((0, 0, 0)).read_shape))
    crops = {}
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
        crops[i] = crop
    vs = fld.vs

    def one(item: tuple[int, tuple[slice, ...]]) -> tuple[int, np.ndarray, np.ndarray]:
        i, crop = item
        own = np.asarray(labels[crop]) == i
        if isinstance(s, S.SplitTouching):
            stain = fld.read(op.refs["intensity"], crop) if "intensity" in op.refs else None
            return i, own, _split_object(own, s, vs, stain)
        assert isinstance(s, S.Thinning)
        thin = filters.topology_preserving_thinning(own, min_thickness_um=s.min_thickness_um, thin_um=s.thin_um,
                                                    voxel_size=vs)  # fmt: skip
        return i, own, thin

    # objects are computed independently (on the cluster when the field has an executor), a batch at a time so
    # the results held at once stay bounded, and written here in id order: lobe ids are offset by the lobes of
    # the objects before, so the numbering is the serial run's
    executor = None if fld.whole else fld.executor
    items = list(crops.items())
    next_id = 0
    for start in range(0, len(items), OBJECTS_PER_BATCH):
        chunk = items[start : start + OBJECTS_PER_BATCH]
        results = list(executor.map(one, chunk)) if executor is not None else [one(it) for it in chunk]
        for i, own, res in results:
            if split:
                lobes = res
                res = np.where(lobes > 0, lobes + next_id, 0)
                next_id += int(lobes.max())
            crop = crops[i]
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
        new = np.zeros(next_id + 1, np.int32)
        if next_id:
            ids = np.concatenate([i for i, _ in firsts]) - 1
            new[1:] = number_by_first_voxel(ids, np.concatenate([f for _, f in firsts]), next_id)
        write(fld, op.out, np.int32, lambda b: new[fld.read(lobes_name, b.core)])


def _split_object(own: np.ndarray, s: S.SplitTouching, vs: VoxelSize, stain: np.ndarray | None) -> np.ndarray:
    from subcell.segment.split import split_touching

    return split_touching(own, depth_um=s.depth_um, max_neck_ratio=s.max_neck_ratio, voxel_size=vs, intensity=stain,
                          intensity_weight=s.intensity_weight)  # fmt: skip


def _fill_between_membranes(fld: Field, op: Op) -> None:
    """The membrane-enclosed volume block by block: each block's (Y, X) column maps from what it reads (the bridge's
    reach as halo), then the cells cut by the top of the stack judged on the whole field's maps (a piece of
    columns reaches as far as its cell), then each block's columns filled."""
    from subcell.segment.filters.morphology import columns_filled, fill_cut_tops, membrane_columns

    s: S.FillBetweenMembranes = op.step  # type: ignore[assignment]
    nz, ny, nx = fld.shape
    if nz < 3:  # a single plane (2D) or too few to hold two membranes: unchanged, as fill_between_membranes
        write(fld, op.out, np.bool_, lambda b: fld.read(op.src, b.core).astype(bool))
        return
    grid = fld.grid(s.reach(fld.vs), what=f"step {op.index + 1} ({op.name})")

    def columns(block: Any) -> tuple[tuple[slice, ...], tuple[np.ndarray, ...]]:
        maps = membrane_columns(
            fld.read(op.src, block.read), fld.read(op.refs["intensity"], block.read), voxel_size=fld.vs,
            max_gap_um=s.max_gap_um, basal_len=op.params["basal_len"],
        )  # fmt: skip
        return block.core[1:], tuple(m[block.trim[1:]] for m in maps)

    low, high = np.zeros((ny, nx), np.int32), np.zeros((ny, nx), np.int32)  # (Y, X) maps: small beside the field
    known, has = np.zeros((ny, nx), bool), np.zeros((ny, nx), bool)
    for core, maps in fld.map(columns, grid):
        for whole, part in zip((low, high, known, has), maps, strict=True):
            whole[core] = part
    fill_cut_tops(has, known, high, nz)
    write(fld, op.out, np.bool_, lambda b: columns_filled(low[b.core[1:]], high[b.core[1:]], known[b.core[1:]], nz))


def label_step(fld: Field, op: Op) -> None:
    read = reader(fld, op.src)
    obj = _objects(fld, lambda b: read(b).astype(bool), per_slice=False)
    write(fld, op.out, np.int32, obj.ids)


OBJECT_STEPS: dict[type, Callable[[Field, Op], None]] = {
    S.SizeFilter: _size_filter,
    S.FillHoles: _fill_holes,
    S.MaskedObjectThreshold: _masked_object_threshold,
    S.SplitTouching: _per_object,
    S.Thinning: _per_object,
    S.Label: label_step,
    S.FillBetweenMembranes: _fill_between_membranes,  # fitted (the basal membrane's thickness), then this
}
