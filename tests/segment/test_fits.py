"""Whole-field statistics from summaries merged over chunks equal the statistics of the whole data."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import filters as skf

from subcell.errors import ValueRangeError
from subcell.segment.fits import IntMedianFit, MaxFit, MomentsFit, NoiseFit, PercentileFit, ThresholdFit, fit_chunks


def _chunks(data: np.ndarray, cuts: list[int]):  # type: ignore[no-untyped-def]
    return lambda: np.split(data, cuts)


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.float64])
@pytest.mark.parametrize("q", [[0.5, 99.8], [1, 99.95], [0, 100], [33.3]])
def test_percentiles_in_chunks_equal_numpy(dtype: type, q: list[float]) -> None:
    data = np.random.default_rng(1).gamma(2, 100, size=100_001).astype(dtype)
    got = fit_chunks(PercentileFit(q), _chunks(data, [5000, 70_001]))
    np.testing.assert_allclose(got, np.percentile(data, q), rtol=1e-12, atol=0)
    assert got == fit_chunks(PercentileFit(q), _chunks(data, [50_000]))  # any chunking: the same numbers


@pytest.mark.parametrize(("method", "reference"), [("otsu", skf.threshold_otsu), ("yen", skf.threshold_yen),
                                                   ("triangle", skf.threshold_triangle)])  # fmt: skip
def test_histogram_thresholds_equal_scikit_image(method: str, reference) -> None:  # type: ignore[no-untyped-def]
    data = np.random.default_rng(2).gamma(2, 1, size=50_000).astype(np.float32)
    got = fit_chunks(ThresholdFit(method), _chunks(data, [1000, 30_000]))
    assert got == pytest.approx(float(reference(data)), rel=1e-6)


def test_noise_level_and_spread_in_chunks_equal_numpy_and_threshold_in_noise_units() -> None:
    """median and 1.4826·MAD over chunks are numpy's; a "noise" threshold k SDs above the median keeps the same share
    of a noise field at any noise amplitude (an absolute cut does not), and a bright spot above it."""
    from subcell.segment.filters import threshold

    rng = np.random.default_rng(4)
    data = rng.normal(3.0, 2.0, size=80_001).astype(np.float32)
    got = fit_chunks(NoiseFit(), _chunks(data, [11, 40_000]))
    med = np.median(data)
    assert got["median"] == pytest.approx(float(med), rel=1e-7)
    assert got["sd"] == pytest.approx(1.4826 * float(np.median(np.abs(data - med))), rel=1e-6)
    assert got["sd"] == pytest.approx(2.0, rel=0.02)  # the SD of Gaussian noise
    assert got == fit_chunks(NoiseFit(), _chunks(data, [50_000]))
    shares = []
    for amplitude in (0.01, 0.1):
        field = rng.normal(0, amplitude, (20, 64, 64)).astype(np.float32)
        field[10, 32, 32] = 1.0  # a spot far above either noise
        cut = threshold(field, method="noise", factor=4)
        assert cut[10, 32, 32]
        shares.append(cut.mean())
    assert shares[0] == pytest.approx(shares[1], abs=2e-5) and shares[0] < 1e-3  # ~3e-5 of the voxels (4 SD)
    assert threshold(rng.normal(0, 0.1, (20, 64, 64)), method="absolute", value=0.2).mean() > 0.01


def test_li_moments_maximum_median_and_bad_input() -> None:
    data = np.random.default_rng(3).gamma(2, 1, size=50_000).astype(np.float32)
    bin_width = float(data.max() - data.min()) / 4096  # Li runs on a 4,096-bin histogram: within a bin of skimage
    assert fit_chunks(ThresholdFit("li"), _chunks(data, [7])) == pytest.approx(
        float(skf.threshold_li(data)), abs=bin_width
    )
    m = fit_chunks(MomentsFit(), _chunks(data, [7, 9000]))
    assert m["mean"] == pytest.approx(data.astype(np.float64).mean(), rel=1e-12)
    assert m["std"] == pytest.approx(data.astype(np.float64).std(), rel=1e-9)
    assert fit_chunks(MaxFit(), lambda: [np.array([1.0, 5.0]), np.array([4.0, 2.0])]) == [4.0, 5.0]
    assert fit_chunks(IntMedianFit(), lambda: [np.array([1, 5, 3]), np.array([2])]) == np.median([1, 5, 3, 2])
    with pytest.raises(ValueRangeError, match="no finite values"):
        fit_chunks(PercentileFit([50]), lambda: [np.array([np.nan])])
    assert fit_chunks(ThresholdFit("otsu"), lambda: [np.full(4, 7.0)]) == 7.0  # constant data
