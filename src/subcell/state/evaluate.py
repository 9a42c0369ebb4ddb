"""Cross-validation that cannot leak: folds grouped by field, source or structure; macro-F1 against chance."""

from __future__ import annotations

from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.state.config import StateConfig
from subcell.state.model import check_labels, make_classifier

__all__ = ["confusion_png", "cross_validate"]


def cross_validate(
    features: Any, labels: Any, config: StateConfig, groups: Any = None, crops: Any = None
) -> dict[str, Any]:
    """Out-of-fold predictions for every cell and their scores (``crops`` for the ``cnn`` classifier, whose
    ``features`` may then be None).

    With ``groups`` (e.g. the structure or source of each cell) all cells of one group fall in the same fold
    (StratifiedGroupKFold; leave-one-group-out when there are fewer groups than folds), so a model is never
    scored on a field or structure it saw in training.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``chance_accuracy`` (the majority class's share), ``uniform_chance``,
        ``per_class_recall``, ``classes``, ``confusion`` (rows true, columns predicted), ``predictions``.
    """
    from sklearn.metrics import confusion_matrix, f1_score, recall_score
    from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold

    y = check_labels(labels, config.column)
    x = np.arange(len(y))[:, None] if config.classifier == "cnn" else features.to_numpy(np.float64)
    classes, counts = np.unique(y, return_counts=True)
    if groups is not None:
        g = np.asarray(groups).astype(str)
        n_groups = len(np.unique(g))
        if n_groups < 2:
            raise ValueRangeError(f"cross-validation by {config.groups!r} needs two or more groups, got {n_groups}",
                                  field="groups")  # fmt: skip
        cv: Any = (LeaveOneGroupOut() if n_groups < config.folds
                   else StratifiedGroupKFold(n_splits=config.folds, shuffle=True, random_state=config.seed))  # fmt: skip
        splits = list(cv.split(x, y, g))
    else:
        folds = min(config.folds, int(counts.min()))
        if folds < 2:
            raise ValueRangeError(f"a class has {int(counts.min())} cell: too few for cross-validation",
                                  field=config.column)  # fmt: skip
        splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed).split(x, y))
    pred = np.empty(len(y), dtype=object)
    for train, test in splits:
        model = make_classifier(config, crops)
        model.fit(x[train], y[train])
        pred[test] = model.predict(x[test])
    pred = pred.astype(str)
    recall = recall_score(y, pred, average=None, labels=classes)
    return {
        "classifier": config.classifier,
        "cells": len(y),
        "folds": len(splits),
        "grouped_by": config.groups,
        "accuracy": float(np.mean(pred == y)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=classes)),
        "chance_accuracy": float(counts.max() / counts.sum()),
        "uniform_chance": 1.0 / len(classes),
        "classes": classes.tolist(),
        "per_class_recall": dict(zip(classes.tolist(), recall.tolist(), strict=True)),
        "confusion": confusion_matrix(y, pred, labels=classes).tolist(),
        "predictions": pred.tolist(),
    }


def confusion_png(result: dict[str, Any], title: str = "") -> bytes:
    """The confusion matrix (row-normalized colours, counts written) as PNG bytes."""
    from subcell.plotting import png_bytes, subplots

    cm = np.asarray(result["confusion"], dtype=float)
    classes = result["classes"]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = subplots(figsize=(1.0 + 0.55 * len(classes), 0.8 + 0.5 * len(classes)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"{result['classifier']}: macro-F1 {result['macro_f1']:.2f}, accuracy "
                 f"{result['accuracy']:.2f} (chance {result['chance_accuracy']:.2f})", fontsize=9)  # fmt: skip
    return png_bytes(fig)
