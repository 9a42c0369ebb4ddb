"""Where a nucleus sits in its cell, from the cell outlines alone and with a prediction (NumPy arrays in and out).

An interphase nucleus fills the middle of its cell: :func:`cell_depth` measures that middle, :func:`deepest_in_cells`
is the outline-only nucleus mask (the baseline a prediction inside segmented cells has to beat, reported by
``labelfree evaluate``), and :func:`nucleus_score` / :func:`nuclei_from_score` are what ``labelfree nuclei``
makes of a prediction with them (:mod:`subcell.labelfree.nuclei` applies them to images).

Everything is computed **cell by cell**, on each cell's bounding box: a cell's depth needs only that cell, the
z-scores need only sums over the cells, and Otsu's threshold only a histogram of the scores. So
:func:`nuclei_by_cell` reads its arrays one box at a time (NumPy, Zarr or Dask: anything sliced to NumPy) and
holds one cell's box at a time, whatever the size of the field; the whole-array functions are the same passes over
arrays in memory, so the two give the same labels to the bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize, materialize
from subcell.metrics.moments import Moments

__all__ = [
    "cell_boxes",
    "cell_depth",
    "cell_depth_into",
    "deepest_by_cell",
    "deepest_in_cells",
    "nuclei_by_cell",
    "nuclei_from_score",
    "nucleus_score",
    "otsu_over",
]

Box = tuple[slice, ...]
# one pass over the cells: (id, bounding box, the cell's voxels in the box, a value per voxel of the cell, raster order)
CellValues = Callable[[], Iterator[tuple[int, Box, np.ndarray, np.ndarray]]]
OTSU_BINS = 256  # scikit-image's default for threshold_otsu
SLAB_BYTES = 64 << 20  # what a pass over whole planes of the cells holds at once (their values, as int64)


def slab_planes(shape: tuple[int, ...], bytes_per_voxel: int = 8) -> int:
    """Planes of a ``(Z, Y, X)`` array in one slab of at most :data:`SLAB_BYTES` (at least one plane)."""
    return max(1, min(int(shape[0]), SLAB_BYTES // max(1, int(np.prod(shape[1:])) * bytes_per_voxel)))


def cell_boxes(cells: Any, *, slab: int | None = None) -> list[tuple[int, Box]]:
    """``(id, bounding box)`` of every labelled cell of a ``(Z, Y, X)`` label array, in id order: the bounding boxes
    of each ``slab`` planes (blocks of the block engine; a NumPy, Zarr or Dask array, one slab read at a time;
    default :func:`slab_planes`), merged."""
    from scipy import ndimage as ndi

    from subcell.blocks import Block, BlockGrid, map_blocks

    slab = slab or slab_planes(tuple(cells.shape))

    def boxes(block: Block) -> dict[int, tuple[list[int], list[int]]]:
        lab = np.asarray(cells[block.core])
        if (lab.dtype.kind == "u" and lab.dtype.itemsize >= 8) or lab.dtype.kind == "b":
            lab = lab.astype(np.int64)  # what find_objects takes
        z0 = block.core[0].start
        return {i: ([sl[0].start + z0, sl[1].start, sl[2].start], [sl[0].stop + z0, sl[1].stop, sl[2].stop])
                for i, sl in enumerate(ndi.find_objects(lab), start=1) if sl is not None}  # fmt: skip

    lo: dict[int, list[int]] = {}
    hi: dict[int, list[int]] = {}
    for part in map_blocks(boxes, BlockGrid(cells.shape, (slab, *cells.shape[1:]))):
        for i, (start, stop) in part.items():
            lo[i] = [min(a, b) for a, b in zip(lo.get(i, start), start, strict=True)]
            hi[i] = [max(a, b) for a, b in zip(hi.get(i, stop), stop, strict=True)]
    return [(i, tuple(slice(a, b) for a, b in zip(lo[i], hi[i], strict=True))) for i in sorted(lo)]


def _depth_in_box(own: np.ndarray, shape: tuple[int, ...], sampling: tuple[float, ...]) -> np.ndarray:
    """One cell's :func:`cell_depth` on its box (``own``: the cell's voxels there), float32, 0 outside the cell.
    Axes of length 1 in the whole array (``shape``: a single plane) are left out of the distance."""
    from scipy import ndimage as ndi

    keep = [i for i, n in enumerate(shape) if n > 1]
    flat = own.reshape([own.shape[i] for i in keep])
    step = tuple(sampling[i] for i in keep)
    d = ndi.distance_transform_edt(np.pad(flat, 1), sampling=step)[
        tuple(slice(1, -1) for _ in step)
    ]  # box edge: outside
    out = np.zeros(flat.shape, np.float32)
    out[flat] = d[flat] / max(float(d.max()), 1e-12)
    return out.reshape(own.shape)


def cell_depth(cells: np.ndarray, sampling: tuple[float, ...]) -> np.ndarray:
    """Each labelled voxel's distance to its cell's boundary (µm, ``sampling`` per axis of ``cells``, ZYX) over the
    largest in that cell: 1 at the cell's centre, towards 0 at its edge; 0 outside the cells. Axes of length 1 (a
    single plane) are left out of the distance. An interphase nucleus fills the middle of its cell, so the depth is
    the prior a mask prediction inside segmented cells has to beat."""
    depth = np.zeros(cells.shape, np.float32)
    cell_depth_into(depth, cells, sampling)
    return depth


def cell_depth_into(out: Any, cells: Any, sampling: tuple[float, ...], *, rows: int | None = None) -> None:
    """:func:`cell_depth` of ``cells`` (NumPy, Zarr or Dask, ``(Z, Y, X)``) written into ``out`` (zeros of their
    shape, float32: NumPy, or Zarr for a field larger than memory), sweeping down the field in y.

    The cells are taken in the order their boxes start in y, over a window of whole rows (every plane, the full
    width): rows are read into it ``rows`` at a time (default: the labels' stored chunk height, so each stored chunk
    is decoded once) as the next cell's box needs them, and written out, finished, once no later cell starts above
    them. So each row is read and written once, and what is held is the rows the cells under way span (about the
    tallest cell and a step), not the field. A cell's depth needs that cell alone, so the values are those of the
    whole array. (Cell by cell box reads decoded each stored chunk once per cell that touches it, and rewrote
    ``out``'s chunks as often: 3.5× the time of the whole-array computation on a 64×1280×1280 field.)"""
    boxes = sorted(cell_boxes(cells), key=lambda ib: ib[1][1].start)
    shape = tuple(int(n) for n in cells.shape)
    chunks = getattr(cells, "chunks", None)
    step = rows or (int(chunks[1][0]) if chunks and not isinstance(chunks[1], int) else 128)
    kind = np.dtype(cells.dtype)
    # the window's labels (rows [w0, w0 + its height)), in their own integer type, and their depth: a view of a
    # NumPy ``out`` (written in place), else its own rows, written out when finished
    lab = np.zeros((shape[0], 0, shape[2]), kind if kind.kind in "iu" else np.int64)
    direct = isinstance(out, np.ndarray)
    depth = np.zeros(lab.shape, np.float32)
    w0 = 0

    def flush(upto: int) -> None:  # rows above ``upto`` are finished: written out and let go
        nonlocal lab, depth, w0
        if upto > w0:
            if not direct:
                out[:, w0:upto] = depth[:, : upto - w0]
            lab, depth, w0 = lab[:, upto - w0 :], depth[:, upto - w0 :], upto  # views: the next read copies

    for i, box in boxes:
        zs, ys, xs = box
        flush(ys.start // step * step)  # no later cell starts above this cell's first row
        if w0 + lab.shape[1] < ys.stop:
            a = w0 + lab.shape[1]
            b = min(shape[1], -(-ys.stop // step) * step)
            lab = np.concatenate([lab, materialize(cells[:, a:b]).astype(lab.dtype, copy=False)], axis=1)
            depth = (
                out[:, w0:b]
                if direct
                else np.concatenate([depth, np.zeros((shape[0], b - a, shape[2]), np.float32)], axis=1)
            )
        where = (zs, slice(ys.start - w0, ys.stop - w0), xs)
        own = lab[where] == i
        part = depth[where]
        part[own] = _depth_in_box(own, shape, tuple(sampling))[own]
    flush(w0 + lab.shape[1])


class _Scorer:
    """``(1 - w) × z(prediction) + w × z(depth)`` of each cell's voxels, the z-scores' means and deviations taken
    over every cell's voxels (measured by one pass over the boxes when made). Called, it is one pass over the cells
    (:data:`CellValues`).

    Within ``cache_bytes``: the first pass keeps what it read and computed of each cell (its voxels in the box, their
    prediction and depth: 9 bytes a box voxel at most); once the z-scores are known those become the cell's scores
    (5 bytes), and the room that frees takes the scores of more cells as the next pass computes them. Cells beyond
    the budget are read and computed again in each pass. The values are the same either way."""

    def __init__(self, prediction: Any, cells: Any, sampling: tuple[float, ...], prior_weight: float, *,
                 cache_bytes: float = 0.0, progress: Callable[[int, int], None] | None = None,
                 passes: int = 1) -> None:  # fmt: skip
        if not 0.0 <= prior_weight <= 1.0:
            raise ValueRangeError(f"expected a weight in [0, 1], got {prior_weight}", field="prior_weight")
        self.prediction, self.cells, self.sampling = prediction, cells, tuple(sampling)
        self.boxes = cell_boxes(cells)
        if not self.boxes:
            raise ValueRangeError("no labelled cell to find a nucleus in", field="cells")
        # (cells done, cells × passes) after each cell of each pass
        self._progress, self._done, self._total = progress, 0, len(self.boxes) * passes
        self.weights = (1.0 - prior_weight, prior_weight)
        kept: dict[int, tuple[np.ndarray, tuple[np.ndarray | None, np.ndarray | None]]] = {}
        moments = (Moments(), Moments())  # cell by cell: what a pass in memory gives
        free = cache_bytes
        for i, box in self.boxes:
            own, parts = self._read(i, box)
            for m, v in zip(moments, parts, strict=True):
                if v is not None:
                    m.add(v)
            size = own.nbytes + sum(v.nbytes for v in parts if v is not None)
            if size <= free:
                kept[i] = (own, parts)
                free -= size
            self._tick()
        # a constant part (a prediction flat over the cells) carries no ranking: it adds nothing
        self.scale = [
            (m.mean_a, w / math.sqrt(m.var_a)) if w and m.var_a > 0 else None
            for w, m in zip(self.weights, moments, strict=True)
        ]
        self._scores: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._free = cache_bytes
        for i in list(kept):  # one cell at a time: its prediction and depth freed as its scores are made
            own, parts = kept.pop(i)
            self._keep(i, own, self._score(own, parts))

    def _tick(self) -> None:
        self._done += 1
        if self._progress is not None:
            self._progress(self._done, self._total)

    def _read(self, i: int, box: Box) -> tuple[np.ndarray, tuple[np.ndarray | None, np.ndarray | None]]:
        """The cell's voxels in its box and their prediction and depth (``None`` for a part without weight)."""
        own = np.asarray(self.cells[box]) == i
        p = np.asarray(self.prediction[box], np.float32)[own] if self.weights[0] else None
        d = _depth_in_box(own, tuple(self.cells.shape), self.sampling)[own] if self.weights[1] else None
        return own, (p, d)

    def _score(self, own: np.ndarray, parts: tuple[np.ndarray | None, np.ndarray | None]) -> np.ndarray:
        score = np.zeros(int(own.sum()), np.float32)
        for scale, v in zip(self.scale, parts, strict=True):
            if scale is not None and v is not None:
                z = v - np.float32(scale[0])
                z *= np.float32(scale[1])
                score += z
        return score

    def _keep(self, i: int, own: np.ndarray, score: np.ndarray) -> None:
        """Keep a cell's voxels and scores for the later passes while the budget lasts."""
        size = own.nbytes + score.nbytes
        if size <= self._free:
            self._scores[i] = (own, score)
            self._free -= size

    def __call__(self) -> Iterator[tuple[int, Box, np.ndarray, np.ndarray]]:
        for i, box in self.boxes:
            if i in self._scores:
                own, score = self._scores[i]
            else:
                own, parts = self._read(i, box)
                score = self._score(own, parts)
                self._keep(i, own, score)
            yield i, box, own, score
            self._tick()


def nucleus_score(
    prediction: np.ndarray, cells: np.ndarray, voxel_size: VoxelSize | tuple[float, float, float], *,
    prior_weight: float = 0.5,
) -> np.ndarray:  # fmt: skip
    """The nucleus score of every voxel inside the cells (``(Z, Y, X)`` arrays; 0 outside the cells).

    ``(1 - prior_weight) × z(prediction) + prior_weight × z(depth)``, both z-scored over the cells' voxels, where
    depth is each voxel's distance to its cell's boundary over the largest in that cell (µm, ``voxel_size``).

    Examples
    --------
    >>> cells = np.zeros((1, 9, 9), np.int32); cells[0, 1:8, 1:8] = 1
    >>> s = nucleus_score(np.zeros((1, 9, 9), np.float32), cells, (1.0, 1.0, 1.0), prior_weight=1.0)
    >>> bool(s[0, 4, 4] > s[0, 1, 1])
    True
    """
    scorer = _Scorer(prediction, cells, VoxelSize.of(voxel_size).as_tuple(), prior_weight)  # one pass: no cache
    score = np.zeros(cells.shape, np.float32)
    for _, box, own, values in scorer():
        score[box][own] = values
    return score


def otsu_over(values: Callable[[], Iterable[np.ndarray]]) -> float:
    """Otsu's threshold of all the values a pass yields (``values()`` starts a pass: cells, frames, slabs), from a
    histogram summed piece by piece: two passes, the range, then the counts in :data:`OTSU_BINS` bins over it, as
    scikit-image's ``threshold_otsu`` bins the values held whole (the same threshold)."""
    from skimage.filters import threshold_otsu

    lo, hi, dtype = np.inf, -np.inf, None
    for v in values():
        if v.size:
            lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
            dtype = v.dtype if dtype is None else np.result_type(dtype, v.dtype)
    if not lo < hi:  # every voxel the same: nothing passes a threshold at that value
        return float(lo)
    # the bin edges in the values' own precision, as NumPy computes them for the values held whole
    edges = np.histogram_bin_edges(np.empty(0, dtype), bins=OTSU_BINS, range=(lo, hi))
    counts = np.zeros(OTSU_BINS, np.int64)
    for v in values():
        counts += np.histogram(v, bins=edges)[0]
    return float(threshold_otsu(hist=(counts, (edges[:-1] + edges[1:]) / 2)))


def _otsu(cell_values: CellValues) -> float:
    """Otsu's threshold of the values of every cell (:func:`otsu_over` a pass over the cells)."""
    return otsu_over(lambda: (v for *_, v in cell_values()))


def _top_share(own: np.ndarray, values: np.ndarray, fraction: float) -> np.ndarray:
    """The cell's ``fraction`` of voxels with the highest values (``values`` of ``own``'s voxels in raster order):
    exactly that share, rounded to voxels; where voxels tie at the cut, the first in raster order are taken."""
    where = np.flatnonzero(own)
    keep = where[np.argsort(-values, kind="stable")[: round(fraction * where.size)]]
    chosen = np.zeros(own.size, bool)
    chosen[keep] = True
    return chosen.reshape(own.shape)


def _from_array(values: np.ndarray, cells: np.ndarray) -> CellValues:
    """A pass over the cells of an array in memory, each cell's values read from ``values``."""
    boxes = cell_boxes(cells)

    def cell_values() -> Iterator[tuple[int, Box, np.ndarray, np.ndarray]]:
        for i, box in boxes:
            own = cells[box] == i
            yield i, box, own, values[box][own]

    return cell_values


def deepest_in_cells(depth: np.ndarray, cells: np.ndarray, fraction: float) -> np.ndarray:
    """In each labelled cell, its ``fraction`` of voxels deepest inside it (:func:`cell_depth`; or any score): a
    nucleus mask from the cell outlines alone, given the nucleus share of the cell volume. Exactly that share
    (rounded to voxels): where voxels tie at the cut, the first in raster order are taken."""
    out = np.zeros(cells.shape, bool)
    for _, box, own, values in _from_array(depth, cells)():
        out[box] |= _top_share(own, values, fraction)
    return out


def deepest_by_cell(cells: Any, sampling: tuple[float, ...], fraction: float) -> Iterator[tuple[Box, np.ndarray]]:
    """``deepest_in_cells(cell_depth(cells, sampling), cells, fraction)`` one cell at a time: each cell's bounding
    box and the voxels of it chosen (the same voxels), with ``cells`` read one box at a time (NumPy, Zarr, Dask)."""
    shape = tuple(cells.shape)
    for i, box in cell_boxes(cells):
        own = np.asarray(cells[box]) == i
        yield box, _top_share(own, _depth_in_box(own, shape, tuple(sampling))[own], fraction)


def _largest_piece_filled(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    pieces, n = ndi.label(mask)
    if n == 0:
        return mask
    largest = pieces == 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
    return ndi.binary_fill_holes(largest)


def _label_nuclei(cell_values: CellValues, out: Any, share: float | None, found: dict[int, bool] | None = None) -> Any:
    """Each cell's nucleus from its scores, written into ``out`` (its own voxels of its box only; NumPy or Zarr);
    ``found`` records for each cell whether it got one."""
    if share is not None and not 0.0 < share < 1.0:
        raise ValueRangeError(f"expected a share of the cell volume in (0, 1), got {share}", field="share")
    t = _otsu(cell_values) if share is None else None
    for i, box, own, values in cell_values():
        if t is None:
            passed = _top_share(own, values, share)  # type: ignore[arg-type]
        else:
            passed = np.zeros(own.shape, bool)
            passed[own] = values > t
        nucleus = _largest_piece_filled(passed) & own
        if found is not None:
            found[i] = bool(nucleus.any())
        if nucleus.any():
            region = np.asarray(out[box])
            region[nucleus] = i
            out[box] = region
    return out


def nuclei_from_score(score: np.ndarray, cells: np.ndarray, *, share: float | None = None) -> np.ndarray:
    """Nucleus labels from a score (``(Z, Y, X)``): thresholded inside the cells, one object per cell, each
    labelled with its cell's id.

    The threshold is Otsu's over every cell voxel's score, or with ``share`` each cell's highest-scoring
    ``share`` of its voxels. Each cell keeps its largest connected piece (face connectivity), holes filled,
    clipped to the cell. A cell where nothing passes the threshold gets no nucleus.
    """
    if not (cells > 0).any():
        raise ValueRangeError("no labelled cell to find a nucleus in", field="cells")
    return _label_nuclei(_from_array(score, cells), np.zeros(cells.shape, cells.dtype), share)


def nuclei_by_cell(
    prediction: Any, cells: Any, voxel_size: VoxelSize | tuple[float, float, float], *, prior_weight: float = 0.5,
    share: float | None = None, out: Any = None, cache_gb: float = 1.0, found: dict[int, bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Any:  # fmt: skip
    """``nuclei_from_score(nucleus_score(prediction, cells, …), cells)`` with one cell's box at a time read.

    ``prediction`` and ``cells`` are ``(Z, Y, X)`` arrays of the same shape that slice to NumPy (NumPy, Zarr, Dask).
    Four passes over the cells: the z-scores' moments, Otsu's range and counts (none with ``share``), the labels.
    The first reads each cell's box and computes its depth, and keeps them for the later passes up to ``cache_gb``
    (9 bytes a voxel of a cell's box; then its scores, 5 bytes, and the room that frees takes more cells' scores in
    the second pass); cells beyond it are read and computed again in each pass (slower, same values). The labels
    are written into ``out`` (e.g. a Zarr array; default a NumPy array of the cells' dtype), cell by cell, each
    into its own voxels. Same labels as the whole-array functions, to the bit. ``found``, when
    given, is filled with each cell's id and whether it got a nucleus (nothing passing the threshold: none);
    ``progress`` gets (cells done, cells × passes) after each cell of each pass.
    """
    if tuple(prediction.shape) != tuple(cells.shape):
        raise ValueRangeError(f"prediction of shape {tuple(prediction.shape)} for cells of {tuple(cells.shape)}",
                              field="prediction")  # fmt: skip
    scorer = _Scorer(prediction, cells, VoxelSize.of(voxel_size).as_tuple(), prior_weight, cache_bytes=cache_gb * 1e9,
                     progress=progress, passes=2 if share is not None else 4)  # fmt: skip
    return _label_nuclei(scorer, np.zeros(cells.shape, cells.dtype) if out is None else out, share, found)
