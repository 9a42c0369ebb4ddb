"""Segmentation metrics: Dice / IoU of masks, and instance matching with precision, recall, F1 and AP.

Instance matching follows the convention of the StarDist and Cellpose papers: at each IoU threshold τ, true and
predicted objects are paired one-to-one among the pairs with IoU ≥ τ, as many as possible (a maximum bipartite
matching; for τ > 0.5 every object has at most one such partner). Each threshold gets its own matching: one
assignment reused for all thresholds would count a pair with IoU 0.55 as a miss at 0.5 whenever the assignment
preferred a higher-IoU partner elsewhere. Overlaps are computed sparsely (only pairs that share voxels), counted
in pieces of a few million voxels and summed, so the temporaries do not grow with the volume. Then precision =
TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN) and the "average precision" AP = TP/(TP+FP+FN).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import as_array, materialize
from subcell.metrics import pieces

__all__ = [
    "DEFAULT_THRESHOLDS",
    "InstanceMatch",
    "Overlaps",
    "dice",
    "dice_from_counts",
    "evaluate_frames",
    "iou",
    "iou_from_counts",
    "match_instances",
    "overlaps",
]

DEFAULT_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _check_shapes(a: Any, b: Any) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueRangeError(f"prediction shape {tuple(a.shape)} does not match ground truth shape "
                              f"{tuple(b.shape)}", field="shape")  # fmt: skip


def _pieces(pred: Any, truth: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Matching flat pieces of two equally shaped arrays, each at most ``PIECE_VOXELS`` (:mod:`subcell.metrics.pieces`)
    voxels where the storage allows. Every metric here is a sum of integer counts, so summing them piece by piece
    gives exactly the whole volume's, while the temporaries (masks, sorted copies, int64 codes: ~40 bytes a voxel)
    stay those of one piece instead of ~10× the labels' size.

    NumPy arrays are cut into slabs along the first axis (at least one plane). A lazy array (Dask, or a Zarr array)
    is read a block at a time, blocks made of whole storage chunks of ``pred`` (at least one), so a volume larger
    than memory is scored without being held and no chunk is decompressed twice."""
    _check_shapes(pred, truth)
    if len(pred.shape) == 0:
        yield materialize(pred).reshape(1), materialize(truth).reshape(1)
        return
    if isinstance(pred, np.ndarray) or getattr(pred, "chunks", None) is None:
        plane = int(np.prod(pred.shape[1:], dtype=np.int64))
        step = max(1, pieces.PIECE_VOXELS // max(plane, 1))
        for i in range(0, pred.shape[0], step):
            yield np.asarray(pred[i : i + step]).ravel(), np.asarray(truth[i : i + step]).ravel()
        return
    for block in pieces.stored_blocks(pred):
        yield materialize(pred[block]).ravel(), materialize(truth[block]).ravel()


def _mask_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """Foreground voxels of the prediction, of the truth, of both, of either."""
    n = np.zeros(4, np.int64)
    for p, t in _pieces(as_array(pred), as_array(truth)):
        pm, tm = p != 0, t != 0
        n += (np.count_nonzero(pm), np.count_nonzero(tm), np.count_nonzero(pm & tm), np.count_nonzero(pm | tm))
    return int(n[0]), int(n[1]), int(n[2]), int(n[3])


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient 2|A∩B| / (|A|+|B|) of two masks (non-zero = foreground); 1.0 when both are empty."""
    n_p, n_t, both, _ = _mask_counts(pred, truth)
    return dice_from_counts(n_p, n_t, both)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two masks; 1.0 when both are empty."""
    n_p, n_t, both, _ = _mask_counts(pred, truth)
    return iou_from_counts(n_p, n_t, both)


def dice_from_counts(n_pred: int, n_truth: int, both: int) -> float:
    """:func:`dice` from the voxel counts of the prediction, the truth and both (counts summed over parts)."""
    return 1.0 if n_pred + n_truth == 0 else 2.0 * both / (n_pred + n_truth)


def iou_from_counts(n_pred: int, n_truth: int, both: int) -> float:
    """:func:`iou` from the voxel counts of the prediction, the truth and both."""
    union = n_pred + n_truth - both
    return 1.0 if union == 0 else both / union


def _merge(ids: list[np.ndarray], counts: list[np.ndarray], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ids of several pieces' (ids, counts) and each one's summed count."""
    if not ids:
        return np.zeros(0, dtype), np.zeros(0, np.int64)
    u, inverse = np.unique(np.concatenate(ids), return_inverse=True)
    return u, np.bincount(inverse.ravel(), weights=np.concatenate(counts), minlength=len(u)).astype(np.int64)


@dataclass(frozen=True)
class Overlaps:
    """Every pair of a true and a predicted object that share voxels, with the objects' sizes: what matching
    (:func:`match_instances`) and the CTC SEG measure are computed from (:func:`overlaps`)."""

    true_ids: np.ndarray  # sorted, 0 (background) excluded
    true_sizes: np.ndarray  # voxels of each
    pred_ids: np.ndarray
    pred_sizes: np.ndarray
    rows: np.ndarray  # each pair's index into true_ids
    cols: np.ndarray  # and into pred_ids
    shared: np.ndarray  # voxels in both

    def iou(self) -> np.ndarray:
        """Each pair's intersection over union."""
        return self.shared / (self.true_sizes[self.rows] + self.pred_sizes[self.cols] - self.shared)

    def foreground(self) -> tuple[int, int, int]:
        """Foreground voxels of the prediction, of the truth and of both (every voxel in both is in one pair)."""
        return int(self.pred_sizes.sum()), int(self.true_sizes.sum()), int(self.shared.sum())

    def one_to_one(self, threshold: float, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A maximum one-to-one matching among the pairs with IoU >= ``threshold`` (and ``keep``, a mask over the
        pairs, where given): the matched pairs' indices into ``true_ids`` and ``pred_ids``, in ``true_ids`` order.
        Above 0.5 each object has at most one such pair; the matching only decides ties at exactly 0.5."""
        sel = self.iou() >= threshold
        if keep is not None:
            sel &= keep
        partner = _max_matching(len(self.true_ids), len(self.pred_ids), self.rows[sel], self.cols[sel])
        (rows,) = np.nonzero(partner >= 0)
        return rows, partner[rows]

    def covering(self) -> np.ndarray:
        """The pairs where the predicted object covers more than half of the true one (the Cell Tracking
        Challenge's match: at most one per true object), as a mask over the pairs, in integers."""
        return 2 * self.shared > self.true_sizes[self.rows]

    def seg_jaccard(self) -> np.ndarray:
        """Each true object's Jaccard index with the predicted object covering more than half of it, 0 when none
        does: the CTC SEG measure is their mean over the true objects."""
        half = self.covering()
        jac = np.zeros(self.true_ids.size)
        jac[self.rows[half]] = self.iou()[half]
        return jac


def overlaps(pred: Any, truth: Any) -> Overlaps:
    """:class:`Overlaps` of two label images (NumPy, Dask or Zarr; lazy ones read a block at a time).

    Counted piece by piece (:func:`_pieces`): sizes and pair overlaps of each piece, summed over the pieces."""
    pred, truth = as_array(pred), as_array(truth)
    sizes: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {"t": ([], []), "p": ([], [])}
    pair_t, pair_p, pair_n = [], [], []
    for p, t in _pieces(pred, truth):
        # one sort per image and one of the pairs' codes (background included, dropped after counting); indices
        # by binary search among the few ids, cheaper than the argsort behind np.unique's inverse
        tu, tn = np.unique(t, return_counts=True)
        pu, pn = np.unique(p, return_counts=True)
        for key, u, n in (("t", tu, tn), ("p", pu, pn)):
            sizes[key][0].append(u[u != 0])
            sizes[key][1].append(n[u != 0])
        width = len(pu)
        code, n = np.unique(
            np.searchsorted(tu, t).astype(np.int64) * width + np.searchsorted(pu, p), return_counts=True
        )
        a, b = tu[code // width], pu[code % width]
        both = (a != 0) & (b != 0)
        pair_t.append(a[both])
        pair_p.append(b[both])
        pair_n.append(n[both])
    t_ids, t_size = _merge(*sizes["t"], truth.dtype)
    p_ids, p_size = _merge(*sizes["p"], pred.dtype)
    width = max(len(p_ids), 1)
    if pair_n:
        rows = np.searchsorted(t_ids, np.concatenate(pair_t)).astype(np.int64)
        cols = np.searchsorted(p_ids, np.concatenate(pair_p))
        code, inter = _merge([rows * width + cols], pair_n, np.int64)
    else:
        code, inter = np.zeros(0, np.int64), np.zeros(0, np.int64)
    r, c = np.divmod(code, width)
    return Overlaps(t_ids, t_size, p_ids, p_size, r, c, inter)


def _max_matching(n_true: int, n_pred: int, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """For every true object the column of its partner in a maximum one-to-one matching of the pairs, or -1."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    if not len(r):
        return np.full(n_true, -1, np.int64)
    graph = csr_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n_true, n_pred))
    return np.asarray(maximum_bipartite_matching(graph, perm_type="column"), np.int64)


@dataclass(frozen=True)
class InstanceMatch:
    """Result of :func:`match_instances`: per-threshold scores and the optimal one-to-one pairing."""

    thresholds: tuple[float, ...]
    tp: tuple[int, ...]
    fp: tuple[int, ...]
    fn: tuple[int, ...]
    n_true: int
    n_pred: int
    pairs: tuple[tuple[int, int, float], ...]  # (true id, predicted id or 0, IoU): the matching at the lowest threshold
    # foreground voxels (non-zero) of the prediction, of the truth, and of both: counted in the same read
    foreground: tuple[int, int, int] = (0, 0, 0)
    seg_sum: float = 0.0  # the true objects' SEG Jaccard indices (Overlaps.seg_jaccard), summed

    def seg(self) -> float:
        """The Cell Tracking Challenge's SEG: the mean over true objects of the Jaccard index with the predicted
        object covering more than half of each (0 when none does); NaN without true objects."""
        return self.seg_sum / self.n_true if self.n_true else float("nan")

    def dice(self) -> float:
        """:func:`dice` of the two foregrounds (any object against any object), from the matching's own counts."""
        return dice_from_counts(*self.foreground)

    def iou(self) -> float:
        """:func:`iou` of the two foregrounds."""
        return iou_from_counts(*self.foreground)

    def _at(self, threshold: float) -> int:
        for i, t in enumerate(self.thresholds):
            if abs(t - threshold) < 1e-9:
                return i
        raise ValueRangeError(
            f"threshold {threshold} was not evaluated; have {list(self.thresholds)}", field="threshold"
        )

    def precision(self, threshold: float = 0.5) -> float:
        i = self._at(threshold)
        return self.tp[i] / max(self.tp[i] + self.fp[i], 1)

    def recall(self, threshold: float = 0.5) -> float:
        i = self._at(threshold)
        return self.tp[i] / max(self.tp[i] + self.fn[i], 1)

    def f1(self, threshold: float = 0.5) -> float:
        i = self._at(threshold)
        denom = 2 * self.tp[i] + self.fp[i] + self.fn[i]
        return 1.0 if denom == 0 else 2 * self.tp[i] / denom

    def average_precision(self, threshold: float = 0.5) -> float:
        """TP / (TP + FP + FN), the "AP" of StarDist / Cellpose."""
        i = self._at(threshold)
        denom = self.tp[i] + self.fp[i] + self.fn[i]
        return 1.0 if denom == 0 else self.tp[i] / denom

    def mean_matched_iou(self) -> float:
        ious = [p[2] for p in self.pairs if p[1] != 0]
        return float(np.mean(ious)) if ious else 0.0

    def table(self) -> Any:
        """One row per threshold: tp, fp, fn, precision, recall, f1, ap."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "iou_threshold": t,
                    "tp": self.tp[i],
                    "fp": self.fp[i],
                    "fn": self.fn[i],
                    "precision": self.precision(t),
                    "recall": self.recall(t),
                    "f1": self.f1(t),
                    "average_precision": self.average_precision(t),
                }
                for i, t in enumerate(self.thresholds)
            ]
        )

    def objects(self) -> Any:
        """One row per true object: its matched prediction at the lowest threshold (0 if none) and the IoU (the
        best IoU with any prediction for an unmatched object)."""
        import pandas as pd

        return pd.DataFrame(self.pairs, columns=["true_id", "pred_id", "iou"])


def match_instances(
    pred: np.ndarray, truth: np.ndarray, *, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> InstanceMatch:
    """Match predicted to true instances (integer label images, 0 = background) by optimal IoU assignment.

    NumPy, Dask or Zarr arrays: lazy ones are read a piece at a time (never held whole), and the foreground Dice
    and IoU come with the matching (:meth:`InstanceMatch.dice`) from the same read.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((1, 8, 8), int); t[0, :4, :4] = 1; t[0, 5:, 5:] = 2
    >>> p = np.zeros_like(t); p[0, :4, :3] = 7
    >>> m = match_instances(p, t)
    >>> m.tp[0], m.fp[0], m.fn[0], round(m.f1(0.5), 3)
    (1, 0, 1, 0.667)
    """
    pred, truth = as_array(pred), as_array(truth)
    _check_shapes(pred, truth)
    for name, a in (("prediction", pred), ("ground truth", truth)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueRangeError(f"{name} must be an integer label image, got dtype {a.dtype}", field="labels")
    ths = tuple(float(t) for t in thresholds)
    if not ths or min(ths) <= 0 or max(ths) > 1:
        raise ValueRangeError(f"IoU thresholds must lie in (0, 1], got {list(thresholds)}", field="thresholds")
    ov = overlaps(pred, truth)
    t_ids, p_ids, r, c, v = ov.true_ids, ov.pred_ids, ov.rows, ov.cols, ov.iou()
    n_true, n_pred = len(t_ids), len(p_ids)
    tp = [len(ov.one_to_one(th)[0]) for th in ths]
    low = v >= min(ths)
    partner = np.full(n_true, -1, np.int64)  # each true object's matched column at the lowest threshold, or -1
    matched, cols = ov.one_to_one(min(ths))
    partner[matched] = cols
    best = np.zeros(n_true)
    np.maximum.at(best, r, v)
    lookup = {(int(a), int(b)): float(x) for a, b, x in zip(r[low], c[low], v[low], strict=True)}
    pairs = [
        (int(t_ids[i]), int(p_ids[j]), lookup[(i, int(j))]) if j >= 0 else (int(t_ids[i]), 0, float(best[i]))
        for i, j in enumerate(partner)
    ]
    return InstanceMatch(
        thresholds=ths,
        tp=tuple(tp),
        fp=tuple(n_pred - x for x in tp),
        fn=tuple(n_true - x for x in tp),
        n_true=n_true,
        n_pred=n_pred,
        pairs=tuple(pairs),
        foreground=ov.foreground(),
        seg_sum=float(ov.seg_jaccard().sum()),
    )


def evaluate_frames(
    pred: np.ndarray, truth: np.ndarray, *, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> tuple[Any, Any]:
    """Score a time-lapse frame by frame: objects are matched within each frame, never across time.

    ``pred`` and ``truth`` are ``(T, Z, Y, X)`` label arrays (a single frame is T = 1). Returns (per-frame
    table: t, Dice, IoU, CTC SEG, objects and the scores at every threshold; summary table per threshold with TP,
    FP and FN summed over frames, so precision, recall, F1 and AP weight every object equally, and the SEG over
    every true object of every frame in ``table.attrs["seg"]``).
    """
    import pandas as pd

    p, t = as_array(pred), as_array(truth)
    _check_shapes(p, t)
    if len(p.shape) != 4:
        raise ValueRangeError(f"expected (T, Z, Y, X) label arrays, got {len(p.shape)} dimensions", field="shape")
    rows, tp, fp, fn = [], np.zeros(0), np.zeros(0), np.zeros(0)
    foreground, seg_sum = np.zeros(3, np.int64), 0.0
    for i in range(p.shape[0]):
        m = match_instances(p[i], t[i], thresholds=thresholds)
        foreground += m.foreground
        tp, fp, fn = (
            x + np.asarray(y) if x.size else np.asarray(y, float) for x, y in ((tp, m.tp), (fp, m.fp), (fn, m.fn))
        )
        # Dice and IoU from the matching's counts: each frame is read once (a lazy time-lapse never whole)
        seg_sum += m.seg_sum
        row: dict[str, Any] = {"t": i, "dice": m.dice(), "iou": m.iou(), "seg": m.seg(), "n_true": m.n_true,
                               "n_pred": m.n_pred}  # fmt: skip
        row.update({f"f1@{th:g}": m.f1(th) for th in m.thresholds})
        rows.append(row)
    total = InstanceMatch(
        thresholds=tuple(float(x) for x in thresholds), tp=tuple(int(x) for x in tp), fp=tuple(int(x) for x in fp),
        fn=tuple(int(x) for x in fn), n_true=int(sum(r["n_true"] for r in rows)),
        n_pred=int(sum(r["n_pred"] for r in rows)), pairs=(), foreground=(int(foreground[0]), int(foreground[1]), int(foreground[2])),
        seg_sum=seg_sum,
    )  # fmt: skip
    table = total.table()
    table.attrs["seg"] = total.seg()  # over every true object of every frame
    return pd.DataFrame(rows), table
