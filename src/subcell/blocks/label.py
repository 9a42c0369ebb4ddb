"""Connected objects of a volume labelled block by block and joined across block faces."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.blocks.components import components_of_pairs, face_pairs, first_voxels, number_by_first_voxel
from subcell.blocks.engine import map_blocks
from subcell.blocks.grid import Block, BlockGrid

__all__ = ["Objects", "label_blocks"]

_FACE3D = ndi.generate_binary_structure(3, 1)
_FACE2D = np.zeros((3, 3, 3), bool)
_FACE2D[1] = ndi.generate_binary_structure(2, 1)


@dataclass
class Objects:
    """Connected objects of a field: per-object size, bounding box and border contact, and their ids per block."""

    n: int
    sizes: np.ndarray  # (n + 1,), index 0 unused
    lo: np.ndarray  # (n + 1, 3) bounding-box start
    hi: np.ndarray  # (n + 1, 3) bounding-box stop
    touches: np.ndarray  # (n + 1,) bool: touches an open border face of the field
    ids: Callable[[Any], np.ndarray]  # block → global ids of its core


def label_blocks(
    grid: BlockGrid,
    mask: Callable[[Block], np.ndarray],
    tmp: Any,
    *,
    per_slice: bool = False,
    open_faces: Sequence[tuple[int, int]] = (),
    run: Callable[[Callable[[Block], Any], BlockGrid], list[Any]] | None = None,
) -> Objects:
    """Connected objects of ``mask(block)`` (each block's core) over the whole volume, joined across block faces.

    Face connectivity, in 3D or within each z-plane (``per_slice``). ``tmp`` is an integer array of the volume's
    shape (NumPy or Zarr) that keeps the block-local ids between passes. ``open_faces`` are (axis, side) faces
    of the volume (side 0: start, 1: end) whose contact is recorded per object. ``run(fn, grid)`` runs the
    per-block passes (default :func:`map_blocks`, serial). Ids are numbered by first voxel in raster order, so
    any block grid gives the same ids as one block.
    """
    structure = _FACE2D if per_slice else _FACE3D
    run = run or (lambda fn, g: map_blocks(fn, g))
    shape = grid.shape

    def label_block(block: Any) -> dict[str, Any]:
        lab, n = ndi.label(mask(block), structure=structure)
        lab = lab.astype(np.int32, copy=False)
        tmp[block.core] = lab
        offset = tuple(c.start for c in block.core)
        _, first = first_voxels(lab, offset=offset, shape=shape, ordered=True)
        lo = np.zeros((n + 1, 3), np.int64)
        hi = np.zeros((n + 1, 3), np.int64)
        for i, sl in enumerate(ndi.find_objects(lab), start=1):
            if sl is not None:
                lo[i] = [s.start + o for s, o in zip(sl, offset, strict=True)]
                hi[i] = [s.stop + o for s, o in zip(sl, offset, strict=True)]
        touch = np.zeros(n + 1, bool)
        for ax, side in open_faces:
            c = block.core[ax]
            if (side == 0 and c.start == 0) or (side == 1 and c.stop == shape[ax]):
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

    parts = run(label_block, grid)
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
    new = np.zeros(total + 1, np.int64)
    if n:
        new[1:] = number_by_first_voxel(comp[1:], first[1:], n)[comp[1:]]
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

    return Objects(n, out_sizes, out_lo, out_hi, out_touch, ids)
