"""A pixel classifier trained from sparse scribbles (the ilastik / APOC idea): a random forest on multi-scale
filter responses in µm, predicting each voxel's class probabilities.

Features (:func:`pixel_features`) are local and in physical units: at each scale σ (µm) the Gaussian-smoothed
intensity, the scale-normalized gradient magnitude and the three scale-normalized Hessian eigenvalues, plus the
intensity itself: Gaussian derivative filters along axes where σ is under 3 voxels, central differences of the
image smoothed once along the others — the wide scales, which cost most, take one filter instead of ten; kernels
reach 4σ. So a classifier trained at one voxel size reads another at the same physical scales, and a field
classified block by block equals the whole field (each block read with :func:`feature_reach` of halo: the workflow
step ``pixel_classifier`` declares it).

The forest is scikit-learn's; it is stored with skops, whose loader refuses any type not on an allow-list (a model
folder never unpickles code). Accuracy is measured on held-out scribble strokes: a stroke (a connected scribble of
one class, cut into tiles 8× the widest scale across) is never in both the training and the testing fold, so
neighbouring, nearly identical voxels do not inflate it.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.errors import InputFileError, ValueRangeError
from subcell.image import VoxelSize
from subcell.segment.filters import (
    DERIVATIVE_TRUNCATE,
    derivative_order,
    eigenvalues_by_magnitude,
    gaussian_reach,
    sigma_voxels,
)

__all__ = [
    "PixelClassifier",
    "feature_block_yx",
    "feature_blocks",
    "feature_reach",
    "held_out_summary",
    "load_pixel_classifier",
    "pixel_features",
    "save_model_folder",
    "save_pixel_classifier",
    "train_pixel_classifier",
]

DEFAULT_SIGMAS_UM = (0.3, 0.7, 1.6, 3.5)
# the normalization a classifier is trained after, which the workflow it writes repeats (the same fitted numbers)
NORMALIZE: dict[str, Any] = {"method": "percentile", "low": 1.0, "high": 99.8}
FD_MIN_SIGMA = 3.0  # voxels: from this σ up, an axis' derivatives are differences of the smoothed image
# every kernel here reaches DERIVATIVE_TRUNCATE σ, the smoothing before differences too: a second difference of a
# 3σ-smoothed image sees the cut, 1 % of the peak, as a curvature ∝ σ²
FEATURE_BYTES = 1 << 30  # the features of one block (with its halo) stay within this; a smaller field is one block
PREDICT_STEP = 1 << 18  # voxels per call of the forest: its work arrays stay small
MIN_LEAF = 5  # voxels per leaf: neighbouring voxels are near copies, a leaf of one is noise (and model size)
TILE_SIGMAS = 8  # held-out scoring cuts strokes into tiles this many of the widest scale across (28 µm by default)
META = "pixel_classifier.json"
FORMAT_VERSION = 2  # 2: derivatives by differences at wide scales (version 1's features differ: retrain)
FOREST = "forest.skops"
# the one type a stored forest holds beyond skops' own safe defaults (scikit-learn estimators, NumPy arrays);
# anything else is refused, never loaded, and what loads must be a random forest
_TRUSTED = frozenset({"sklearn.tree._tree.Tree"})


def pixel_features(
    image: np.ndarray, *, voxel_size: VoxelSize | Sequence[float], sigmas_um: Sequence[float] = DEFAULT_SIGMAS_UM
) -> np.ndarray:
    """``(F, Z, Y, X)`` float32 features of a ``(Z, Y, X)`` image (a single plane is filtered in 2D): the image,
    then per scale σ: Gaussian, σ·|∇G| and the Hessian eigenvalues σ²λ1..3 (|λ1| <= |λ2| <= |λ3|).

    Derivatives along an axis where σ spans :data:`FD_MIN_SIGMA` voxels or more are central differences of the
    smoothed image (one Gaussian filter then serves the gradient and the Hessian: the wide scales cost one filter
    instead of ten); along a finer axis they are Gaussian derivative filters."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim != 3:
        raise ValueRangeError(f"expected a (Z, Y, X) image, got {a.ndim} axes", field="image")
    vs = VoxelSize.of(voxel_size).as_tuple()
    flat = a.shape[0] == 1
    feats = [a]
    for s in sigmas_um:
        sig = sigma_voxels(float(s), vs, per_slice=flat)
        active = [ax for ax in range(3) if sig[ax] > 0]
        derivative = _derivatives(a, sig)

        def hessian(i: int, j: int) -> np.ndarray:
            return derivative(derivative_order(i, j)) * np.float32(sig[i] * sig[j])  # noqa: B023 - used within this pass

        feats.append(derivative((0, 0, 0)))  # stacked (copied) below
        grad = np.zeros_like(a)
        for ax in active:
            d = derivative(derivative_order(ax)) * np.float32(sig[ax])
            grad += d * d
        feats.append(np.sqrt(grad))
        feats.extend(eigenvalues_by_magnitude(hessian, active, a.shape))
    return np.stack(feats)


def _derivatives(a: np.ndarray, sig: Sequence[float]) -> Any:
    """``derivative(order)``: the Gaussian-smoothed image's derivative of that (z, y, x) order (total <= 2, per
    voxel): a Gaussian derivative filter (:data:`~subcell.segment.filters.DERIVATIVE_TRUNCATE` σ) along the axes where σ < :data:`FD_MIN_SIGMA`, then
    central differences along the others. Those axes are padded by one voxel (edge values, as the filters'
    ``nearest`` mode) before filtering, so the differences at the image's edges use the smoothed image beyond them,
    not a copy of the edge (which would halve a slope there and turn it into a curvature). Each filter is made once
    per scale; the arrays returned may be shared, so callers must not change them in place."""
    fd = [s >= FD_MIN_SIGMA for s in sig]
    padded = np.pad(a, [(1, 1) if d else (0, 0) for d in fd], mode="edge") if any(fd) else a
    filtered: dict[tuple[int, ...], np.ndarray] = {}

    def derivative(order: tuple[int, int, int]) -> np.ndarray:
        exact = tuple(0 if fd[ax] else o for ax, o in enumerate(order))
        if exact not in filtered:
            filtered[exact] = ndi.gaussian_filter(
                padded, sig, order=list(exact), mode="nearest", truncate=DERIVATIVE_TRUNCATE
            )
        out = filtered[exact]
        for ax in range(3):
            if fd[ax]:
                out = _difference(out, ax, order[ax])
        return out

    return derivative


def _difference(a: np.ndarray, axis: int, order: int) -> np.ndarray:
    """The inner part (one voxel off each end) of ``a`` along ``axis`` (order 0), or there its central first
    (``(f[i+1] − f[i−1]) / 2``) or second (``f[i+1] − 2f[i] + f[i−1]``) difference. Written as slices:
    ``np.gradient`` has no second difference."""
    f = np.moveaxis(a, axis, 0)
    if order == 0:
        out = f[1:-1]
    elif order == 1:
        out = (f[2:] - f[:-2]) * np.float32(0.5)
    else:
        out = f[2:] + f[:-2]
        out -= 2 * f[1:-1]
    return np.moveaxis(out, 0, axis)


def feature_blocks(
    image: np.ndarray,
    *,
    voxel_size: VoxelSize | Sequence[float],
    sigmas_um: Sequence[float],
    where: np.ndarray | None = None,
    budget: int = 0,
) -> Iterator[tuple[Any, np.ndarray]]:
    """``(block, features of its core)`` over lateral blocks, each computed on the block read with
    :func:`feature_reach` around it: equal to the whole image's features there. The blocks are as large as
    :data:`FEATURE_BYTES` of features allows (:func:`feature_block_yx`; a field whose features fit is one block, so
    no halo is computed twice): 21 features of a 65×624×924 field whole would take 3 GB. ``where``: only blocks
    holding a true voxel of it; ``budget``: bytes instead of :data:`FEATURE_BYTES`."""
    from subcell.blocks import BlockGrid

    a = np.asarray(image)
    halo = feature_reach(sigmas_um, voxel_size)
    # the features, and the six Hessian derivatives being made beside them
    side = feature_block_yx(a.shape, halo, 1 + 5 * len(sigmas_um) + 6, budget)
    for block in BlockGrid(a.shape, (a.shape[0], side, side), halo=(0, halo[1], halo[2])):
        if where is not None and not where[block.core].any():
            continue
        f = pixel_features(a[block.read], voxel_size=voxel_size, sigmas_um=sigmas_um)
        yield block, f[(slice(None), *block.trim)]


def feature_block_yx(shape: Sequence[int], halo: Sequence[int], n_features: int, budget: int = 0) -> int:
    """The lateral block size whose features (``n_features`` float32 volumes of ``Z × (side + 2·halo)²``) fit
    ``budget`` bytes (default :data:`FEATURE_BYTES`): the whole field when they fit, never under 64 px."""
    budget = budget or FEATURE_BYTES
    z, y, x = (int(n) for n in shape)
    if n_features * 4 * z * y * x <= budget:
        return max(y, x)
    fits = int(math.sqrt(budget / (n_features * 4 * z))) - 2 * max(int(halo[1]), int(halo[2]))
    return max(64, fits)


def feature_reach(sigmas_um: Sequence[float], voxel_size: VoxelSize | Sequence[float]) -> tuple[int, int, int]:
    """Voxels per axis (z, y, x) a voxel's features depend on around it: the widest Gaussian kernel's radius
    (:func:`~subcell.segment.filters.gaussian_reach` at 4σ, which adds the one voxel of the differences)."""
    return gaussian_reach(max(sigmas_um), voxel_size, truncate=DERIVATIVE_TRUNCATE)


@dataclass(frozen=True)
class PixelClassifier:
    """A trained forest with what it was trained on: its classes (scribble ids), scales, and held-out scores."""

    forest: Any
    classes: tuple[int, ...]
    sigmas_um: tuple[float, ...]
    meta: dict[str, Any]

    def probabilities(self, image: np.ndarray, *, voxel_size: VoxelSize | Sequence[float]) -> np.ndarray:
        """``(K, Z, Y, X)`` float32 probability of each class (in ``classes`` order) for every voxel; the features
        are made a lateral block at a time (:func:`feature_blocks`), so their memory stays bounded."""
        a = np.asarray(image)
        out = np.empty((len(self.classes), *a.shape), np.float32)
        for block, f in feature_blocks(a, voxel_size=voxel_size, sigmas_um=self.sigmas_um):
            flat = f.reshape(f.shape[0], -1).T
            proba = np.concatenate([self.forest.predict_proba(flat[i : i + PREDICT_STEP])
                                    for i in range(0, len(flat), PREDICT_STEP)])  # fmt: skip
            out[(slice(None), *block.core)] = proba.T.reshape((len(self.classes), *f.shape[1:]))
        return out

    def class_index(self, cls: int) -> int:
        if cls not in self.classes:
            raise ValueRangeError(f"class {cls} is not one of the classifier's {list(self.classes)}", field="class")
        return self.classes.index(cls)


def _strokes(scribbles: np.ndarray, tile_vox: Sequence[int]) -> np.ndarray:
    """Each scribbled voxel's group for held-out scoring: its stroke (connected scribbles of one class,
    26-connected) cut by a grid of tiles (``tile_vox`` voxels per axis), so one long stroke or a painted region
    still gives several groups, each far from most others; numbered 1..N."""
    strokes = np.zeros(scribbles.shape, np.int64)
    n = 0
    for c in np.unique(scribbles[scribbles > 0]):
        lab, k = ndi.label(scribbles == c, structure=np.ones((3, 3, 3), bool))
        strokes[lab > 0] = lab[lab > 0] + n
        n += k
    marked = np.nonzero(strokes)
    keys = np.stack([strokes[marked], *(ax // t for ax, t in zip(marked, tile_vox, strict=True))], axis=1)
    out = np.zeros(scribbles.shape, np.int64)
    out[marked] = np.unique(keys, axis=0, return_inverse=True)[1].ravel() + 1
    return out


def train_pixel_classifier(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    voxel_size: VoxelSize | Sequence[float] | Sequence[VoxelSize | Sequence[float]],
    sigmas_um: Sequence[float] = DEFAULT_SIGMAS_UM,
    trees: int = 50,
    max_depth: int = 16,
    max_per_class: int = 50_000,
    seed: int = 0,
) -> PixelClassifier:
    """Train on ``(image, scribbles)`` pairs of ``(Z, Y, X)`` arrays; scribbles hold class ids (> 0) on the voxels a
    user marked, 0 elsewhere. ``voxel_size``: one for all pairs, or one per pair. At most ``max_per_class`` voxels
    of each class are drawn (seeded) to train on. Images should be normalized alike: the workflow a classifier
    folder holds normalizes by :data:`NORMALIZE` before its ``pixel_classifier`` step, as the CLI trains."""
    from sklearn.ensemble import RandomForestClassifier

    if not pairs:
        raise ValueRangeError("no image with scribbles to train on", field="pairs")
    vs_list = _per_pair(voxel_size, len(pairs))
    xs, ys, groups = [], [], []
    offset = 0
    for (image, scribbles), vs in zip(pairs, vs_list, strict=True):
        s = np.asarray(scribbles)
        if s.shape != np.shape(image):
            raise ValueRangeError(f"scribbles {s.shape} and image {np.shape(image)} differ in shape", field="scribbles")
        if not np.issubdtype(s.dtype, np.integer) or (s.size and s.min() < 0):
            raise ValueRangeError(
                "scribbles must be non-negative integer class ids (0 = not marked)", field="scribbles"
            )
        marked = s > 0
        if not marked.any():
            continue
        tile = [max(1, round(TILE_SIGMAS * max(sigmas_um) / v)) for v in VoxelSize.of(vs).as_tuple()]
        strokes = _strokes(s, tile) + offset
        offset = int(strokes.max())
        # the features of the marked voxels only, a block at a time; classes and strokes in the same order
        for block, f in feature_blocks(np.asarray(image), voxel_size=vs, sigmas_um=sigmas_um, where=marked):
            here = marked[block.core]
            xs.append(f[:, here].T)
            ys.append(s[block.core][here].astype(np.int64))
            groups.append(strokes[block.core][here])
    if not xs:
        raise ValueRangeError("the scribbles mark no voxel (every value is 0)", field="scribbles")
    x, y, g = np.concatenate(xs), np.concatenate(ys), np.concatenate(groups)
    classes = tuple(int(c) for c in np.unique(y))
    if len(classes) < 2:
        raise ValueRangeError(f"the scribbles mark one class only ({classes[0]}); mark at least two (e.g. object and "
                              "background)", field="scribbles")  # fmt: skip
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:max_per_class] for c in classes])
    keep.sort()
    x, y, g = x[keep], y[keep], g[keep]

    def forest() -> Any:
        return RandomForestClassifier(n_estimators=trees, max_depth=max_depth, min_samples_leaf=MIN_LEAF,
                                      class_weight="balanced", random_state=seed, n_jobs=-1)  # fmt: skip

    meta = {"sigmas_um": [float(s) for s in sigmas_um], "classes": list(classes), "trees": trees,
            "max_depth": max_depth, "seed": seed, "voxels_per_class": {str(c): int((y == c).sum()) for c in classes},
            "strokes_per_class": {str(c): len(np.unique(g[y == c])) for c in classes},
            **_held_out_scores(forest, x, y, g, classes)}  # fmt: skip
    model = forest().fit(x, y)
    model.n_jobs = 1  # predicting: the block engine spreads blocks over cores
    return PixelClassifier(model, classes, tuple(float(s) for s in sigmas_um), meta)


def _per_pair(voxel_size: Any, n: int) -> list[tuple[float, float, float]]:
    if isinstance(voxel_size, VoxelSize) or (len(voxel_size) == 3 and np.isscalar(voxel_size[0])):
        return [VoxelSize.of(voxel_size).as_tuple()] * n
    if len(voxel_size) != n:
        raise ValueRangeError(f"{len(voxel_size)} voxel sizes for {n} images", field="voxel_size")
    return [VoxelSize.of(v).as_tuple() for v in voxel_size]


def _held_out_scores(forest: Any, x: np.ndarray, y: np.ndarray, g: np.ndarray, classes: tuple[int, ...]) -> dict[str, Any]:  # fmt: skip
    """Per-class recall and their mean (balanced accuracy) on held-out strokes (grouped k-fold, k <= 5, every
    stroke piece tested once by a forest that never saw it); None where a class has a single piece (nothing to
    hold out without losing the class)."""
    from sklearn.model_selection import StratifiedGroupKFold

    strokes = {c: np.unique(g[y == c]) for c in classes}
    if min(len(v) for v in strokes.values()) < 2:
        return {"held_out_balanced_accuracy": None, "held_out_recall": None,
                "held_out_note": "a class has a single stroke: mark each class in two places or more to measure"}  # fmt: skip
    k = min(5, min(len(v) for v in strokes.values()))
    pred = np.full_like(y, -1)  # a fold that trained on one class predicts nothing: counted wrong
    for train, test in StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=0).split(x, y, g):
        if len(np.unique(y[train])) > 1:  # (a class missing from training is simply never predicted)
            pred[test] = forest().fit(x[train], y[train]).predict(x[test])
    recall = {str(c): float(np.mean(pred[y == c] == c)) for c in classes}
    return {"held_out_balanced_accuracy": float(np.mean(list(recall.values()))), "held_out_recall": recall,
            "held_out_folds": k}  # fmt: skip


def save_pixel_classifier(clf: PixelClassifier, folder: str | Path, *, files: dict[str, bytes] | None = None,
                          overwrite: bool = False) -> Path:  # fmt: skip
    """Write ``folder`` (``forest.skops``, ``pixel_classifier.json`` and any extra ``files``), atomically."""
    import skops.io as sio

    from subcell import __version__
    from subcell.io import write_bundle

    meta = {**clf.meta, "format": "subcell-pixel-classifier", "version": FORMAT_VERSION, "subcell": __version__}
    blob = sio.dumps(clf.forest, compression=zipfile.ZIP_DEFLATED)
    return write_bundle(folder, files={FOREST: blob, META: json.dumps(meta, indent=2).encode(),
                                       **(files or {})}, overwrite=overwrite)  # fmt: skip


def save_model_folder(clf: PixelClassifier, folder: str | Path, *, foreground: int | None = None,
                      kind: str = "mask", overwrite: bool = False) -> Path:  # fmt: skip
    """The classifier with a ``workflow.yaml`` that segments ``foreground`` (default: the second of two classes):
    normalize as in training, the class probability, above 0.5; ``kind`` instance labels connected objects."""
    import yaml

    if kind not in ("mask", "instance"):
        raise ValueRangeError(f"expected mask or instance, got {kind!r}", field="kind")
    if foreground is None:
        if len(clf.classes) != 2:
            raise ValueRangeError(f"the scribbles mark classes {list(clf.classes)}: say which one to segment "
                                  "(--foreground ID)", field="foreground")  # fmt: skip
        foreground = clf.classes[1]
    clf.class_index(foreground)  # one of the classes, or a one-line error
    clf.meta.update(normalize=NORMALIZE, foreground=foreground)
    scales = ", ".join(f"{s:g}" for s in clf.sigmas_um)
    workflow = {
        "name": f"pixels_{Path(folder).name}",
        "description": f"Pixel classifier (random forest on Gaussian, gradient and Hessian features at σ {scales} "
        f"µm) trained on scribbles; the probability of class {foreground} above 0.5. Written by subcell.\n",
        "version": 1,
        "inputs": ["image"],
        "kind": kind,
        "steps": [{"normalize": NORMALIZE}, {"pixel_classifier": {"model": ".", "foreground": foreground}},
                  {"threshold": {"method": "absolute", "value": 0.5}}],
    }  # fmt: skip
    return save_pixel_classifier(clf, folder, overwrite=overwrite,
                                 files={"workflow.yaml": yaml.safe_dump(workflow, sort_keys=False).encode()})  # fmt: skip


def held_out_summary(clf: PixelClassifier) -> str:
    """One line: the held-out balanced accuracy and recall per class, or why it was not measured."""
    score, recall = clf.meta["held_out_balanced_accuracy"], clf.meta["held_out_recall"]
    if score is None:
        return f"held-out accuracy: not measured ({clf.meta['held_out_note']})"
    per = ", ".join(f"{c}: {r:.3f}" for c, r in recall.items())
    return (
        f"held-out strokes: balanced accuracy {score:.3f} (recall per class {per}; {clf.meta['held_out_folds']} folds)"
    )


def load_pixel_classifier(folder: str | Path) -> PixelClassifier:
    """A saved classifier; a missing, damaged or foreign file is a one-line error naming it."""
    return _load(str(Path(folder).resolve()))


@lru_cache(maxsize=4)
def _load(folder: str) -> PixelClassifier:  # one load per process and model (every block of a field uses it)
    import skops.io as sio

    p = Path(folder)
    meta = _read_meta(p)
    blob = p / FOREST
    if not blob.is_file():
        raise InputFileError("pixel classifier has no forest file", path=blob)
    data = blob.read_bytes()
    try:
        foreign = set(sio.get_untrusted_types(data=data)) - _TRUSTED
        if foreign:
            raise InputFileError(f"holds types that are not loaded: {sorted(foreign)}", path=blob)
        forest = sio.loads(data, trusted=sorted(_TRUSTED))
    except InputFileError:
        raise
    except Exception as e:  # a damaged file: skops / zip errors of many kinds
        raise InputFileError(f"cannot be read as a stored forest ({type(e).__name__}: {e})", path=blob) from None
    from sklearn.ensemble import RandomForestClassifier

    if not isinstance(forest, RandomForestClassifier):
        raise InputFileError(f"holds a {type(forest).__name__}, not a random forest", path=blob)
    classes = tuple(int(c) for c in meta["classes"])
    if tuple(int(c) for c in forest.classes_) != classes:
        raise InputFileError(f"forest classes {list(forest.classes_)} differ from {META}'s {list(classes)}", path=blob)
    return PixelClassifier(forest, classes, tuple(float(s) for s in meta["sigmas_um"]), meta)


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META
    if not path.is_file():
        raise InputFileError(f"not a pixel classifier folder (no {META})", path=folder)
    try:
        meta = json.loads(path.read_text())
        sig = [float(s) for s in meta["sigmas_um"]]
        [int(c) for c in meta["classes"]]
    except (ValueError, KeyError, TypeError) as e:
        raise InputFileError(f"expected JSON with sigmas_um and classes ({e})", path=path) from None
    if meta.get("version") != FORMAT_VERSION:
        raise InputFileError(f"version {meta.get('version')!r} of the pixel classifier format; this subcell reads "
                             f"version {FORMAT_VERSION} (its features differ): train it again with `subcell pixels "
                             "train`", path=path, field="version")  # fmt: skip
    if not sig or any(not math.isfinite(s) or s <= 0 for s in sig):
        raise InputFileError(f"sigmas_um must be positive lengths, got {sig}", path=path, field="sigmas_um")
    return dict(meta)


def model_classes(folder: str | Path) -> tuple[int, ...]:
    """The classes (scribble ids) of a saved classifier, from its JSON only."""
    return tuple(int(c) for c in _read_meta(Path(folder))["classes"])


def model_sigmas(folder: str | Path) -> tuple[float, ...]:
    """The scales a saved classifier's features use (from its JSON only: cheap, for a step's reach)."""
    return tuple(float(s) for s in _read_meta(Path(folder))["sigmas_um"])
