from __future__ import annotations

import numpy as np
import pytest

from subcell.errors import ValueRangeError
from subcell.transforms import crop_or_pad, crop_physical, pad_to_multiple, percentile_normalize, zscore


def test_zscore_ignores_nan_and_respects_mask() -> None:
    data = np.array([1.0, 2.0, 3.0, np.nan, 100.0])
    mask = np.array([True, True, True, True, False])
    out = zscore(data, mask=mask)
    np.testing.assert_allclose(out[:3], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    assert out.dtype == np.float32


def test_zscore_rejects_constant_and_all_nan() -> None:
    with pytest.raises(ValueRangeError, match="constant image"):
        zscore(np.ones(10))
    with pytest.raises(ValueRangeError, match="no finite values"):
        zscore(np.full(5, np.nan))


def test_percentile_normalize_with_and_without_clip() -> None:
    data = np.arange(1001, dtype=np.float64)
    out = percentile_normalize(data, low=10, high=90)
    assert out[100] == pytest.approx(0.0) and out[900] == pytest.approx(1.0)
    assert out.min() == 0.0 and out.max() == 1.0
    unclipped = percentile_normalize(data, low=10, high=90, clip=False)
    assert unclipped[0] == pytest.approx(-0.125)
    with pytest.raises(ValueRangeError, match="low < high"):
        percentile_normalize(data, low=50, high=10)


def test_normalizing_a_lazy_array_computes_it_once_with_the_same_result() -> None:
    """A Dask array is computed once (not once for the statistics and again for the output), and the result is
    the one for the same values in memory."""
    import dask
    import dask.array as da

    data = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 30, 30))
    lazy = da.from_array(data, chunks=(2, 15, 15))
    for fn in (zscore, percentile_normalize):
        calls: list[int] = []

        def counting_get(dsk, keys, calls=calls, **kw):  # type: ignore[no-untyped-def]
            calls.append(1)
            return dask.get(dsk, keys, **kw)

        with dask.config.set(scheduler=counting_get):
            out = fn(lazy)
        assert len(calls) == 1, fn.__name__
        np.testing.assert_array_equal(out, fn(data))


def test_crop_or_pad_centered() -> None:
    a = np.arange(5 * 6).reshape(5, 6)
    out = crop_or_pad(a, (3, 8))
    assert out.shape == (3, 8)
    np.testing.assert_array_equal(out[:, 1:7], a[1:4])
    assert (out[:, 0] == 0).all() and (out[:, 7] == 0).all()


def test_pad_to_multiple_round_trips() -> None:
    a = np.random.default_rng(0).random((2, 13, 17, 9))
    padded, pads = pad_to_multiple(a, 8)
    assert all(s % 8 == 0 for s in padded.shape[-3:])
    back = padded[tuple(slice(b, padded.shape[i] - e) for i, (b, e) in enumerate(pads))]
    np.testing.assert_array_equal(back, a)


def test_crop_physical_in_micrometres() -> None:
    a = np.arange(10 * 20 * 20).reshape(10, 20, 20)
    out = crop_physical(a, voxel_size=(0.5, 0.1, 0.1), start_um=(1.0, 0.5, 0.0), size_um=(2.0, 1.0, 0.5))
    assert out.shape == (4, 10, 5)
    np.testing.assert_array_equal(out, a[2:6, 5:15, 0:5])
    with pytest.raises(ValueRangeError, match="outside the image"):
        crop_physical(a, voxel_size=(0.5, 0.1, 0.1), start_um=(50, 0, 0), size_um=(1, 1, 1))
