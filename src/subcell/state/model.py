"""The stored state classifier: standardized features → multinomial logistic regression (scikit-learn fits it).

Stored as plain numbers (``state_model.json``: feature names, standardization, coefficients, classes), so a
model loads without unpickling code, as every subcell model does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import InputFileError, ValueRangeError
from subcell.state.config import StateConfig

__all__ = ["StateModel", "fit_state_model", "load_state_model", "make_classifier", "save_state_model"]

FILE = "state_model.json"


@dataclass
class StateModel:
    feature_names: list[str]
    classes: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (K, F); K = 1 for two classes (scikit-learn's binary form)
    intercept: np.ndarray
    fill: np.ndarray  # per-feature value used for a missing (NaN) feature: the training median
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, features: Any) -> np.ndarray:
        """(N, K) class probabilities for a table with (at least) the model's feature columns."""
        missing = [f for f in self.feature_names if f not in features.columns]
        if missing:
            raise ValueRangeError(f"features {missing[:5]} missing (the model was trained with other channels?)",
                                  field="features")  # fmt: skip
        x = features[self.feature_names].to_numpy(np.float64)
        x = np.where(np.isfinite(x), x, self.fill)
        z = (x - self.mean) / self.scale @ self.coef.T + self.intercept
        if z.shape[1] == 1:  # binary: one logit for the second class
            z = np.concatenate([np.zeros_like(z), z], axis=1)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, features: Any) -> np.ndarray:
        return np.asarray(self.classes)[self.predict_proba(features).argmax(axis=1)]


def make_classifier(config: StateConfig) -> Any:
    """The scikit-learn estimator for ``config.classifier`` (median imputation and standardization first)."""
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
    """Fit the logistic model on all cells."""
    if config.classifier != "logistic":
        raise ValueRangeError("only the logistic model can be stored; gradient_boosting is for `state evaluate`",
                              field="classifier")  # fmt: skip
    y = check_labels(labels, config.column)
    pipe = make_classifier(config)
    pipe.fit(features.to_numpy(np.float64), y)
    imputer, scaler, head = pipe.steps[0][1], pipe.steps[1][1], pipe.steps[2][1]
    return StateModel(
        feature_names=[str(c) for c in features.columns], classes=[str(c) for c in head.classes_],
        mean=scaler.mean_, scale=scaler.scale_, coef=head.coef_, intercept=head.intercept_,
        fill=imputer.statistics_, config=config.model_dump(mode="json"),
    )  # fmt: skip


def save_state_model(model: StateModel, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Write the model folder (``state_model.json``) atomically."""
    from subcell.io import write_bundle

    doc = {
        "format": "subcell-state/1", "feature_names": model.feature_names, "classes": model.classes,
        "mean": model.mean.tolist(), "scale": model.scale.tolist(), "coef": model.coef.tolist(),
        "intercept": model.intercept.tolist(), "fill": model.fill.tolist(), "config": model.config,
        "metrics": model.metrics,
    }  # fmt: skip
    return write_bundle(folder, files={FILE: json.dumps(doc, indent=1).encode()}, overwrite=overwrite)


def load_state_model(folder: str | Path) -> StateModel:
    p = Path(folder)
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
        )  # fmt: skip
    except (ValueError, KeyError, TypeError) as e:
        raise InputFileError(f"unreadable state model ({e})", path=path) from None
