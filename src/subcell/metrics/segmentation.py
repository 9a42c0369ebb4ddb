"""Segmentation metrics: Dice / IoU of masks, and instance matching with precision, recall, F1 and AP.

Instance matching follows the convention of the StarDist and Cellpose papers: predicted and true objects are
paired one-to-one by optimal assignment (Hungarian) on IoU; a pair counts as a true positive at threshold τ
when IoU ≥ τ. Then precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN) and the "average
precision" AP = TP/(TP+FP+FN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError

__all__ = ["DEFAULT_THRESHOLDS", "InstanceMatch", "dice", "iou", "match_instances"]

DEFAULT_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _check_shapes(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueRangeError(f"prediction shape {a.shape} does not match ground truth shape {b.shape}", field="shape")


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient 2|A∩B| / (|A|+|B|) of two masks (non-zero = foreground); 1.0 when both are empty."""
    p, t = np.asarray(pred) != 0, np.asarray(truth) != 0
    _check_shapes(p, t)
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(p, t).sum()) / total


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two masks; 1.0 when both are empty."""
    p, t = np.asarray(pred) != 0, np.asarray(truth) != 0
    _check_shapes(p, t)
    union = int(np.logical_or(p, t).sum())
    return 1.0 if union == 0 else int(np.logical_and(p, t).sum()) / union


def _overlap(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU matrix between all true (rows) and predicted (columns) objects, with their ids and sizes."""
    p = np.asarray(pred).ravel()
    t = np.asarray(truth).ravel()
    p_ids, p_inv = np.unique(p, return_inverse=True)
    t_ids, t_inv = np.unique(t, return_inverse=True)
    pair = t_inv.astype(np.int64) * len(p_ids) + p_inv
    counts = np.bincount(pair, minlength=len(t_ids) * len(p_ids)).reshape(len(t_ids), len(p_ids))
    t_size = counts.sum(axis=1)
    p_size = counts.sum(axis=0)
    tk = t_ids != 0
    pk = p_ids != 0
    inter = counts[np.ix_(tk, pk)]
    union = t_size[tk][:, None] + p_size[pk][None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(union > 0, inter / union, 0.0)
    return m, t_ids[tk], p_ids[pk]


@dataclass(frozen=True)
class InstanceMatch:
    """Result of :func:`match_instances`: per-threshold scores and the optimal one-to-one pairing."""

    thresholds: tuple[float, ...]
    tp: tuple[int, ...]
    fp: tuple[int, ...]
    fn: tuple[int, ...]
    n_true: int
    n_pred: int
    pairs: tuple[tuple[int, int, float], ...]  # (true id, predicted id, IoU) of the assignment

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
        ious = [p[2] for p in self.pairs if p[2] > 0]
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
        """One row per true object: its matched prediction (0 if none) and IoU."""
        import pandas as pd

        return pd.DataFrame(self.pairs, columns=["true_id", "pred_id", "iou"])


def match_instances(
    pred: np.ndarray, truth: np.ndarray, *, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> InstanceMatch:
    """Match predicted to true instances (integer label images, 0 = background) by optimal IoU assignment.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((1, 8, 8), int); t[0, :4, :4] = 1; t[0, 5:, 5:] = 2
    >>> p = np.zeros_like(t); p[0, :4, :3] = 7
    >>> m = match_instances(p, t)
    >>> m.tp[0], m.fp[0], m.fn[0], round(m.f1(0.5), 3)
    (1, 0, 1, 0.667)
    """
    from scipy.optimize import linear_sum_assignment

    pred = np.asarray(pred)
    truth = np.asarray(truth)
    _check_shapes(pred, truth)
    for name, a in (("prediction", pred), ("ground truth", truth)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueRangeError(f"{name} must be an integer label image, got dtype {a.dtype}", field="labels")
    ths = tuple(float(t) for t in thresholds)
    if not ths or min(ths) <= 0 or max(ths) > 1:
        raise ValueRangeError(f"IoU thresholds must lie in (0, 1], got {list(thresholds)}", field="thresholds")
    m, t_ids, p_ids = _overlap(pred, truth)
    n_true, n_pred = len(t_ids), len(p_ids)
    pairs: list[tuple[int, int, float]] = []
    if n_true and n_pred:
        rows, cols = linear_sum_assignment(-m)
        matched = {int(t_ids[r]): (int(p_ids[c]), float(m[r, c])) for r, c in zip(rows, cols, strict=True)}
    else:
        matched = {}
    for tid in t_ids:
        pid, v = matched.get(int(tid), (0, 0.0))
        pairs.append((int(tid), pid if v > 0 else 0, v))
    tp = tuple(sum(1 for _, _, v in pairs if v >= th) for th in ths)
    return InstanceMatch(
        thresholds=ths,
        tp=tp,
        fp=tuple(n_pred - x for x in tp),
        fn=tuple(n_true - x for x in tp),
        n_true=n_true,
        n_pred=n_pred,
        pairs=tuple(pairs),
    )
