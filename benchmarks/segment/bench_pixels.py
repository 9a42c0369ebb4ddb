"""Pixel-classifier features: Gaussian derivative filters at every scale (the baseline, format version 1) against
differences of the image smoothed once where σ spans >= 3 voxels (shipped, version 2), in one run.

Reports (1) the features' time on a 32×512×512 field at 0.29 × 0.108 × 0.108 µm, (2) each arm's deviation from
untruncated Gaussian derivatives (float64, 8σ kernels) per feature kind, and (3) a classifier trained on scribbles
drawn from a synthetic field's nucleus truth and applied to another field: train and predict wall time, Dice with
the truth. Run alone (2 cores, nothing else running): ``python benchmarks/segment/bench_pixels.py``; appends to
``benchmarks/segment/pixels_results.md``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

import subcell.segment.pixels as px
from subcell.metrics import dice
from subcell.segment.filters import hessian_eigenvalues, sigma_voxels
from subcell.synth import synth_field

SHAPE = (32, 512, 512)
VS = (0.29, 0.108, 0.108)
KINDS = ["image"] + [f"{k} σ{s:g}" for s in px.DEFAULT_SIGMAS_UM for k in ("gauss", "‖∇‖", "λ1", "λ2", "λ3")]


def filter_features(image: np.ndarray, *, voxel_size, sigmas_um=px.DEFAULT_SIGMAS_UM, truncate=3.0) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The baseline: every derivative a Gaussian derivative filter (ten filters per scale)."""
    a = np.asarray(image, dtype=np.float32 if truncate == 3.0 else np.float64)
    flat = a.shape[0] == 1
    feats = [a]
    for s in sigmas_um:
        sig = sigma_voxels(float(s), voxel_size, per_slice=flat)
        feats.append(ndi.gaussian_filter(a, sig, mode="nearest", truncate=truncate))
        grad = np.zeros_like(a)
        for ax in range(3):
            if sig[ax] > 0:
                order = [0, 0, 0]
                order[ax] = 1
                d = ndi.gaussian_filter(a, sig, order=order, mode="nearest", truncate=truncate) * sig[ax]
                grad += d * d
        feats.append(np.sqrt(grad))
        if truncate == 3.0:
            feats.extend(hessian_eigenvalues(a, sig))
        else:
            feats.extend(_eig64(a, sig, truncate))
    return np.stack(feats)


def _eig64(a: np.ndarray, sig, truncate: float) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    h = np.empty((*a.shape, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            order = [0, 0, 0]
            order[i] += 1
            order[j] += 1
            h[..., i, j] = h[..., j, i] = ndi.gaussian_filter(a, sig, order=order, mode="nearest",
                                                              truncate=truncate) * sig[i] * sig[j]  # fmt: skip
    ev = np.linalg.eigvalsh(h)
    ev = np.take_along_axis(ev, np.argsort(np.abs(ev), axis=-1), axis=-1)
    return [ev[..., k] for k in range(3)]


def _field(seed: int) -> tuple[np.ndarray, np.ndarray]:
    f = synth_field(shape=SHAPE, voxel_size=VS, seed=seed)
    img = f.image.numpy()[0, list(f.image.channel_names).index("dna")].astype(np.float32)
    lo, hi = np.percentile(img, [1.0, 99.8])
    return ((img - lo) / (hi - lo)).astype(np.float32), f.labels["nucleus"][0] > 0


def _scribbles(truth: np.ndarray, seed: int) -> np.ndarray:
    """Short lines inside nuclei and in the background of three planes, as a user paints them."""
    rng = np.random.default_rng(seed)
    s = np.zeros(truth.shape, np.uint8)
    inner, outer = ndi.binary_erosion(truth, iterations=3), ~ndi.binary_dilation(truth, iterations=4)
    for z in (8, 16, 24):
        for cls, where in ((2, inner[z]), (1, outer[z])):
            pts = np.argwhere(where)
            for y, x in pts[rng.choice(len(pts), 12, replace=False)]:
                line = np.zeros_like(where)
                line[y, max(0, x - 6) : x + 6] = True
                s[z][line & where] = cls
    return s


def main() -> None:
    rows = []
    shipped = px.pixel_features
    train_img, train_truth = _field(1)
    test_img, test_truth = _field(2)
    scrib = _scribbles(train_truth, 0)
    # (1) feature time, whole field, each arm once (the baseline first)
    t = time.perf_counter()
    base = filter_features(test_img, voxel_size=VS)
    t_base = time.perf_counter() - t
    t = time.perf_counter()
    ours = px.pixel_features(test_img, voxel_size=VS)
    t_ours = time.perf_counter() - t
    del base, ours
    # (2) deviation from untruncated derivatives on a crop (float64, 8σ)
    crop = test_img[:, 128:384, 128:384]
    ref = filter_features(crop, voxel_size=VS, truncate=8.0)
    dev = {}
    for name, f in (("filters 3σ (v1)", filter_features(crop, voxel_size=VS)),
                    ("shipped (v2)", px.pixel_features(crop, voxel_size=VS))):  # fmt: skip
        inner = (slice(None), slice(None), slice(40, -40), slice(40, -40))
        err = np.sqrt(((f - ref)[inner] ** 2).mean(axis=(1, 2, 3))) / (ref[inner].std(axis=(1, 2, 3)) + 1e-12)
        dev[name] = err
    # (3) a classifier per arm: train on field 1's scribbles, predict field 2
    for name, fn in (("filters 3σ (v1)", filter_features), ("shipped (v2)", shipped)):
        px.pixel_features = fn  # type: ignore[assignment]  # what feature_blocks calls, for this arm
        try:
            t = time.perf_counter()
            clf = px.train_pixel_classifier([(train_img, scrib)], voxel_size=VS)
            t_train = time.perf_counter() - t
            t = time.perf_counter()
            prob = clf.probabilities(test_img, voxel_size=VS)[clf.class_index(2)]
            t_pred = time.perf_counter() - t
        finally:
            px.pixel_features = shipped  # type: ignore[assignment]
        held = clf.meta["held_out_balanced_accuracy"]
        rows.append((name, t_train, t_pred, dice(prob > 0.5, test_truth), held))
    out = [f"\n## {time.strftime('%Y-%m-%d %H:%M')} — {SHAPE} at {VS} µm, scales {px.DEFAULT_SIGMAS_UM} µm\n",
           f"Features of the whole field: filters 3σ (v1) {t_base:.1f} s, shipped (v2) {t_ours:.1f} s "
           f"(**{t_base / t_ours:.1f}×**).\n",
           "| arm | train s | predict s | Dice vs truth (field 2) | held-out strokes |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    out += [f"| {n} | {a:.1f} | {b:.1f} | {d:.3f} | {h:.3f} |" for n, a, b, d, h in rows]
    out += ["", "RMS deviation from untruncated Gaussian derivatives (float64, 8σ), / the feature's std, inside a "
            "40 px margin of a 32×256×256 crop:", "", "| feature | " + " | ".join(dev) + " |",
            "|---|" + "---:|" * len(dev)]  # fmt: skip
    out += [f"| {k} | " + " | ".join(f"{dev[n][i]:.3f}" for n in dev) + " |" for i, k in enumerate(KINDS)]
    text = "\n".join(out) + "\n"
    print(text)
    with (Path(__file__).parent / "pixels_results.md").open("a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
