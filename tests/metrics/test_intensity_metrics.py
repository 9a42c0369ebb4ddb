"""Pearson r, noise ceiling, SSIM, PSNR, NRMSE on arrays whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from subcell.errors import ValueRangeError
from subcell.metrics.intensity import (
    noise_ceiling,
    noise_variance_from_control,
    noise_variance_from_pair,
    nrmse,
    pearson,
    pearson_per_object,
    psnr,
    ssim,
)


def test_pearson_of_affine_maps(rng: np.random.Generator) -> None:
    x = rng.normal(size=(4, 16, 16))
    assert pearson(2 * x + 3, x) == pytest.approx(1.0)
    assert pearson(-x, x) == pytest.approx(-1.0)
    assert math.isnan(pearson(np.ones_like(x), x))


def test_pearson_mask_and_per_object(rng: np.random.Generator) -> None:
    x = rng.normal(size=(8, 8))
    y = x.copy()
    y[:, 4:] = rng.normal(size=(8, 4))  # right half unrelated
    labels = np.zeros((8, 8), np.int32)
    labels[:, :4] = 1
    labels[:, 4:] = 2
    assert pearson(y, x, mask=labels == 1) == pytest.approx(1.0)
    per = pearson_per_object(y, x, labels)
    assert per[1] == pytest.approx(1.0) and abs(per[2]) < 0.6


def test_noise_ceiling_matches_the_correlation_of_truth_with_its_noisy_version(rng: np.random.Generator) -> None:
    truth = rng.normal(size=(32, 64, 64))
    noisy = truth + rng.normal(scale=0.5, size=truth.shape)
    control = rng.normal(scale=0.5, size=truth.shape)
    second = truth + rng.normal(scale=0.5, size=truth.shape)
    best = pearson(truth, noisy)  # the best any prediction can do
    assert noise_ceiling(noisy, noise_variance_from_control(control)) == pytest.approx(best, abs=0.005)
    assert noise_ceiling(noisy, noise_variance_from_pair(noisy, second)) == pytest.approx(best, abs=0.005)
    assert noise_ceiling(noisy, 0.0) == 1.0


def test_ssim_psnr_nrmse(rng: np.random.Generator) -> None:
    a = rng.normal(size=(10, 32, 32))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a + rng.normal(scale=1.0, size=a.shape), a) < 0.7
    assert nrmse(a, a) == 0.0
    assert nrmse(np.zeros_like(a), a) == pytest.approx(1.0 / a.std() * math.sqrt(np.mean(a**2)))
    assert psnr(a, a) == math.inf
    b = a + 0.1
    assert psnr(b, a) == pytest.approx(10 * math.log10((a.max() - a.min()) ** 2 / 0.01))


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueRangeError, match="shape"):
        pearson(np.zeros((2, 3)), np.zeros((3, 2)))


@pytest.mark.parametrize("shape", [(40, 60, 50), (150, 120)])
def test_a_large_volume_is_scored_in_blocks_with_the_whole_volumes_value(
    shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scipy import ndimage as ndi
    from skimage.metrics import structural_similarity

    from subcell.metrics import pieces

    rng = np.random.default_rng(3)
    target = ndi.gaussian_filter(rng.random(shape), 2)
    pred = 0.7 * target + 0.02 * rng.standard_normal(shape) + 5
    whole_ssim = structural_similarity(pred, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=float(target.max() - target.min()))  # fmt: skip
    whole_r = float(np.corrcoef(pred.ravel(), target.ravel())[0, 1])
    blocks: list[tuple[int, ...]] = []
    original = structural_similarity

    def spy(a: np.ndarray, b: np.ndarray, **kw: object) -> object:
        blocks.append(a.shape)
        return original(a, b, **kw)

    monkeypatch.setattr("skimage.metrics.structural_similarity", spy)
    monkeypatch.setattr(pieces, "PIECE_VOXELS", 3000)
    assert ssim(pred, target) == pytest.approx(whole_ssim, abs=1e-12)
    assert pearson(pred, target) == pytest.approx(whole_r, abs=1e-12)  # centred in pieces of 3000 voxels
    assert len(blocks) > 4 and all(np.prod(np.array(s) - 10) <= 3000 for s in blocks)  # 5 voxels of context


def test_moments_merged_over_pieces_equal_those_of_the_whole(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chan's merge over uneven pieces (added in three calls, each cut into pieces of 700 values), with a large mean:
    the variance and r of the whole, and per object r of each object's voxels."""
    from subcell.errors import ValueRangeError
    from subcell.metrics import pieces
    from subcell.metrics.moments import Moments, ObjectMoments

    monkeypatch.setattr(pieces, "PIECE_VOXELS", 700)
    a = rng.normal(1e4, 1.0, 5000)
    b = 0.5 * a + rng.normal(0, 1.0, 5000)
    labels = rng.integers(0, 6, 5000)
    m, per = Moments(), ObjectMoments()
    for sl in (slice(0, 1234), slice(1234, 1300), slice(1300, None)):
        m.add(a[sl], b[sl])
        per.add(labels[sl], a[sl], b[sl])
    assert m.var_a == pytest.approx(np.var(a), rel=1e-10) and m.mean_b == pytest.approx(b.mean(), rel=1e-12)
    assert m.pearson == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    r = per.pearson()
    assert sorted(r) == [1, 2, 3, 4, 5]  # background (0) left out
    for i, value in r.items():
        assert value == pytest.approx(np.corrcoef(a[labels == i], b[labels == i])[0, 1], abs=1e-12)
    with pytest.raises(ValueRangeError, match="differ in number"):
        m.add(a, b[:10])
