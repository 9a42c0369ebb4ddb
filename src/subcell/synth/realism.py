"""How far is synthetic bright-field from real? A domain classifier and texture statistics, at matched voxel size.

The gap is measured, not eyeballed: texture features of 2D patches (intensity moments, gradient and Laplacian
energy, radially averaged power in frequency bands in cycles/µm, local binary patterns, through-focus change) are
computed from stacks normalised per stack (mean 0, std 1, so camera gain and offset carry no information), and a
random forest is trained to tell real patches from synthetic ones. Its accuracy on stacks it never saw is the gap:
0.5 means indistinguishable, 1.0 means every patch is recognised.

scikit-learn's forest and scikit-image's LBP do the learning and the texture codes; only the choice of features
(what a microscopist would look at) is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FEATURE_NAMES", "GapResult", "domain_gap", "patch_features", "sharpest_plane"]

_BANDS_CPUM = ((0.05, 0.2), (0.2, 0.5), (0.5, 1.0), (1.0, 1.6))
FEATURE_NAMES = (
    "std",
    "skew",
    "kurtosis",
    "grad_energy",
    "laplace_energy",
    *(f"band_{a}_{b}" for a, b in _BANDS_CPUM),
    *(f"lbp_{i}" for i in range(10)),
    "dz_energy",
    "local_std_cv",
)


def sharpest_plane(stack: np.ndarray) -> int:
    """Index of the plane with the largest standard deviation (the in-focus contrast peak of a BF stack)."""
    s = stack.reshape(stack.shape[0], -1).astype(np.float64)
    return int(np.argmax(s.std(axis=1)))


def _band_powers(patch: np.ndarray, spacing_um: float) -> list[float]:
    p = patch - patch.mean()
    power = np.abs(np.fft.fft2(p * np.outer(np.hanning(p.shape[0]), np.hanning(p.shape[1])))) ** 2
    fy = np.fft.fftfreq(p.shape[0], d=spacing_um)
    fx = np.fft.fftfreq(p.shape[1], d=spacing_um)
    f = np.hypot(*np.meshgrid(fy, fx, indexing="ij"))
    total = power[f > 0].sum() + 1e-12
    return [float(np.log(power[(f >= a) & (f < b)].sum() / total + 1e-9)) for a, b in _BANDS_CPUM]


def patch_features(
    stack: np.ndarray,
    spacing_um: tuple[float, float, float],
    *,
    patch_um: float = 10.0,
    planes: int = 3,
    max_patches: int = 200,
    rng: np.random.Generator | None = None,
    centre_z: int | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Texture features ``(N, len(FEATURE_NAMES))`` of patches around the sharpest plane of a ZYX stack.

    Patches are ``patch_um`` wide (in µm, so stacks of different voxel sizes are compared at the same physical
    scale: the stack is resampled to ``patch_um / 32`` µm lateral spacing first). ``centre_z`` picks the planes
    (default: the sharpest); with ``mask`` (ZYX, e.g. the cells) only patches at least half inside it count.
    """
    from scipy import ndimage as ndi
    from scipy import stats
    from skimage.feature import local_binary_pattern

    rng = rng or np.random.default_rng(0)
    dz, dy, dx = spacing_um
    size = 32
    target = patch_um / size
    s = ndi.zoom(stack.astype(np.float32), (1.0, dy / target, dx / target), order=1)
    m = None
    if mask is not None:
        m = ndi.zoom((mask > 0).astype(np.float32), (1.0, dy / target, dx / target), order=0)
        m = m[:, : s.shape[1], : s.shape[2]] > 0
    centre = sharpest_plane(s) if centre_z is None else int(centre_z)
    zs = [z for z in range(centre - planes // 2, centre + planes // 2 + 1) if 1 <= z < s.shape[0] - 1]
    # scale-free: normalised by the statistics of the compared planes (inside the mask), not the whole stack,
    # whose defocused planes and empty areas say more about the field of view than about texture
    ref = s[zs][m[zs]] if m is not None and m[zs].any() else s[zs]
    s = (s - float(ref.mean())) / max(float(ref.std()), 1e-6)
    rows = []
    for z in zs:
        plane = s[z]
        dzp = (s[z + 1] - s[z - 1]) / (2 * dz)
        lap = ndi.laplace(plane)
        gy, gx = np.gradient(plane)
        grad = np.hypot(gy, gx)
        lstd = np.sqrt(np.maximum(ndi.uniform_filter(plane**2, 5) - ndi.uniform_filter(plane, 5) ** 2, 0))
        q = np.clip((plane - plane.min()) / (np.ptp(plane) + 1e-6) * 255, 0, 255).astype(np.uint8)
        lbp = local_binary_pattern(q, 8, 1, method="uniform")
        ny, nx = plane.shape
        for y in range(0, ny - size + 1, size // 2):
            for x in range(0, nx - size + 1, size // 2):
                sl = (slice(y, y + size), slice(x, x + size))
                if m is not None and m[z][sl].mean() < 0.5:
                    continue
                p = plane[sl]
                sd = float(p.std()) + 1e-6
                hist = np.bincount(lbp[sl].astype(int).ravel(), minlength=10)[:10] / float(size * size)
                ls = lstd[sl]
                rows.append([
                    np.log(sd), float(stats.skew(p.ravel())), float(stats.kurtosis(p.ravel())),
                    float(np.log(np.mean(grad[sl] ** 2) / sd**2 + 1e-9)),
                    float(np.log(np.mean(lap[sl] ** 2) / sd**2 + 1e-9)),
                    *_band_powers(p, target), *hist.tolist(),
                    float(np.log(np.mean(dzp[sl] ** 2) / sd**2 + 1e-9)),
                    float(ls.std() / (ls.mean() + 1e-6)),
                ])  # fmt: skip
    out = np.asarray(rows, np.float64)
    if len(out) > max_patches:
        out = out[np.sort(rng.choice(len(out), max_patches, replace=False))]
    return out


@dataclass
class GapResult:
    """Held-out accuracy of the real-vs-synthetic classifier per fold and overall, and feature importances."""

    accuracy: float
    per_fold: list[float]
    importances: dict[str, float]


def domain_gap(real: Sequence[np.ndarray], synthetic: Sequence[np.ndarray], *, seed: int = 0) -> GapResult:
    """Leave-one-pair-out accuracy of a random forest telling real patches (``real[i]``) from synthetic ones.

    ``real`` and ``synthetic`` are per-stack feature arrays from :func:`patch_features`, paired by index (the
    synthetic stack ``i`` is made at real stack ``i``'s voxel size). Fold ``i`` trains on every other pair and tests on
    pair ``i``; classes are balanced per fold by subsampling, so 0.5 means the two are indistinguishable.
    """
    from sklearn.ensemble import RandomForestClassifier

    if len(real) != len(synthetic) or len(real) < 2:
        raise ValueError("need at least two (real, synthetic) pairs of feature arrays")
    rng = np.random.default_rng(seed)

    def balanced(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = min(len(a), len(b))
        a = a[rng.choice(len(a), n, replace=False)]
        b = b[rng.choice(len(b), n, replace=False)]
        return np.concatenate([a, b]), np.concatenate([np.ones(n), np.zeros(n)])

    accs = []
    importances = np.zeros(real[0].shape[1])
    for i in range(len(real)):
        xr = np.concatenate([r for j, r in enumerate(real) if j != i])
        xs = np.concatenate([s for j, s in enumerate(synthetic) if j != i])
        x, y = balanced(xr, xs)
        clf = RandomForestClassifier(n_estimators=200, min_samples_leaf=3, random_state=seed, n_jobs=1)
        clf.fit(x, y)
        xt, yt = balanced(real[i], synthetic[i])
        accs.append(float((clf.predict(xt) == yt).mean()))
        importances += clf.feature_importances_
    names = FEATURE_NAMES if len(FEATURE_NAMES) == len(importances) else tuple(map(str, range(len(importances))))
    imp = dict(sorted(zip(names, (importances / len(real)).tolist(), strict=True), key=lambda kv: -kv[1]))
    return GapResult(float(np.mean(accs)), accs, imp)
