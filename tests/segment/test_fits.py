"""Whole-field statistics from summaries merged over chunks equal the statistics of the whole data."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import filters as skf

from subcell.errors import ValueRangeError
from subcell.segment.fits import IntMedianFit, MaxFit, MomentsFit, PercentileFit, ThresholdFit, fit_chunks


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
