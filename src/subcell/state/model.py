"""The stored state classifier: standardized features → gradient-boosted trees (default: better in grouped
cross-validation on real mitotic cells, benchmarks/state) or multinomial logistic regression; scikit-learn fits.

Stored as plain numbers (``state_model.json``: feature names, imputation, standardization, classes, logistic
coefficients; ``trees.npz``: every tree's nodes), so a model loads without unpickling code, as every subcell model
does. Predicting from the stored trees is written here (a few lines of tree traversal) because scikit-learn can
only reload a fitted model by unpickling it; a test checks the result equals scikit-learn's own prediction.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import InputFileError, ValueRangeError
from subcell.state.config import StateConfig

__all__ = ["StateModel", "fit_state_model", "load_state_model", "make_classifier", "save_state_model"]

FILE = "state_model.json"
TREES = "trees.npz"


@dataclass
class StateModel:
    feature_names: list[str]
    classes: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (K, F); K = 1 for two classes (scikit-learn's binary form)
    intercept: np.ndarray
    fill: np.ndarray  # per-feature value used for a missing (NaN) feature: the training median
    kind: str = "logistic"
    trees: dict[str, np.ndarray] = field(default_factory=dict)  # gradient boosting: nodes of every tree
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, features: Any) -> np.ndarray:
        """(N, K) class probabilities for a table with (at least) the model's feature columns."""
        missing = [f for f in self.feature_names if f not in features.columns]
        if missing:
            raise ValueRangeError(f"features {missing[:5]} missing (the model was trained with other channels?)",
                                  field="features")  # fmt: skip
        x = features[self.feature_names].to_numpy(np.float64)
        x = (np.where(np.isfinite(x), x, self.fill) - self.mean) / self.scale
        z = _tree_scores(self.trees, x) if self.kind == "gradient_boosting" else x @ self.coef.T + self.intercept
        if z.shape[1] == 1:  # binary: one logit for the second class
            z = np.concatenate([np.zeros_like(z), z], axis=1)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, features: Any) -> np.ndarray:
        return np.asarray(self.classes)[self.predict_proba(features).argmax(axis=1)]


def _tree_scores(trees: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Raw scores (N, K) of stored gradient-boosted trees: the baseline plus each tree's leaf value (a sample goes
    left when its feature is <= the node's threshold, as in scikit-learn)."""
    base = trees["baseline"]
    z = np.tile(base, (len(x), 1)).astype(np.float64)
    offsets, klass = trees["offsets"], trees["tree_class"]
    feat, thr, left, right, leaf, value = (trees[k] for k in ("feature", "threshold", "left", "right", "is_leaf",
                                                              "value"))  # fmt: skip
    rows = np.arange(len(x))
    for t in range(len(klass)):
        node = np.full(len(x), offsets[t])
        active = ~leaf[node]
        while active.any():
            n = node[active]
            go_left = x[rows[active], feat[n]] <= thr[n]
            node[active] = offsets[t] + np.where(go_left, left[n], right[n])
            active = ~leaf[node]
        z[:, klass[t]] += value[node]
    return z


def _export_trees(head: Any) -> dict[str, np.ndarray]:
    nodes = [(k, tree.nodes) for it in head._predictors for k, tree in enumerate(it)]
    sizes = np.array([len(n) for _, n in nodes])
    cat = np.concatenate([n for _, n in nodes])
    if cat["is_categorical"].any():
        raise ValueRangeError("categorical splits are not supported in stored models", field="classifier")
    return {
        "offsets": np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
        "tree_class": np.array([k for k, _ in nodes], dtype=np.int64),
        "feature": cat["feature_idx"].astype(np.int64), "threshold": cat["num_threshold"].astype(np.float64),
        "left": cat["left"].astype(np.int64), "right": cat["right"].astype(np.int64),
        "is_leaf": cat["is_leaf"].astype(bool), "value": cat["value"].astype(np.float64),
        "baseline": np.asarray(head._baseline_prediction, dtype=np.float64).reshape(-1),
    }  # fmt: skip


def make_classifier(config: StateConfig, crops: Any = None) -> Any:
    """The scikit-learn estimator for ``config.classifier`` (median imputation and standardization first); for
    ``cnn`` a :class:`~subcell.state.cnn.CNNClassifier` over ``crops`` (its ``x`` are row indices)."""
    if config.classifier == "cnn":
        from subcell.state.cnn import CNNClassifier

        if crops is None:
            raise ValueRangeError("the cnn classifier needs the cells' crops", field="classifier")
        return CNNClassifier(config, crops)
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if config.classifier == "logistic":
        from sklearn.linear_model import LogisticRegression

        head = LogisticRegression(C=config.regularization, max_iter=5000)
    else:
        from sklearn.ensemble import HistGradientBoostingClassifier

        head = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=config.seed)
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), head)


def check_labels(labels: Any, column: str) -> np.ndarray:
    y = np.asarray(labels).astype(str)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueRangeError(f"need at least two classes to learn, got {classes.tolist()}", field=column)
    return y


def fit_state_model(features: Any, labels: Any, config: StateConfig) -> StateModel:
    """Fit the configured classifier on all cells."""
    y = check_labels(labels, config.column)
    pipe = make_classifier(config)
    pipe.fit(features.to_numpy(np.float64), y)
    imputer, scaler, head = pipe.steps[0][1], pipe.steps[1][1], pipe.steps[2][1]
    common = {"feature_names": [str(c) for c in features.columns], "classes": [str(c) for c in head.classes_],
              "mean": scaler.mean_, "scale": scaler.scale_, "fill": imputer.statistics_,
              "config": config.model_dump(mode="json"), "kind": config.classifier}  # fmt: skip
    if config.classifier == "gradient_boosting":
        return StateModel(coef=np.zeros((0, 0)), intercept=np.zeros(0), trees=_export_trees(head), **common)
    return StateModel(coef=head.coef_, intercept=head.intercept_, **common)


def save_state_model(model: StateModel, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Write the model folder (``state_model.json``) atomically."""
    from subcell.io import write_bundle

    doc = {
        "format": "subcell-state/1", "feature_names": model.feature_names, "classes": model.classes,
        "mean": model.mean.tolist(), "scale": model.scale.tolist(), "coef": model.coef.tolist(),
        "intercept": model.intercept.tolist(), "fill": model.fill.tolist(), "config": model.config,
        "metrics": model.metrics, "kind": model.kind,
    }  # fmt: skip
    files = {FILE: json.dumps(doc, indent=1).encode()}
    if model.trees:
        buf = io.BytesIO()
        np.savez_compressed(buf, **model.trees)  # type: ignore[arg-type]
        files[TREES] = buf.getvalue()
    return write_bundle(folder, files=files, overwrite=overwrite)


def load_state_model(folder: str | Path) -> Any:
    """A :class:`StateModel` (features) or, for a CNN model folder, a :class:`~subcell.state.cnn.CNNStateModel`."""
    p = Path(folder)
    if (p / "model.json").is_file() and not (p / FILE).is_file():
        from subcell.state.cnn import CNNStateModel

        return CNNStateModel.load(p)
    path = p / FILE if p.is_dir() else p
    if not path.is_file():
        raise InputFileError(f"not a state model folder: {FILE} not found", path=p)
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != "subcell-state/1":
            raise ValueError(f"format {doc.get('format')!r}")
        return StateModel(
            feature_names=list(doc["feature_names"]), classes=list(doc["classes"]), mean=np.asarray(doc["mean"]),
            scale=np.asarray(doc["scale"]), coef=np.asarray(doc["coef"]), intercept=np.asarray(doc["intercept"]),
            fill=np.asarray(doc["fill"]), config=doc.get("config", {}), metrics=doc.get("metrics", {}),
            kind=doc.get("kind", "logistic"), trees=_load_trees(path.parent / TREES, doc.get("kind", "logistic")),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError) as e:
        raise InputFileError(f"unreadable state model ({e})", path=path) from None


def _load_trees(path: Path, kind: str) -> dict[str, np.ndarray]:
    if kind != "gradient_boosting":
        return {}
    if not path.is_file():
        raise ValueError(f"{TREES} missing")
    with np.load(path, allow_pickle=False) as z:  # plain arrays only: no code is unpickled
        return {k: z[k] for k in z.files}
