from __future__ import annotations

import itertools

import numpy as np
import pytest

from subcell import Image
from subcell.errors import ValueRangeError
from subcell.transforms import resample, resample_image, resampled_shape


def test_shape_preserves_physical_extent() -> None:
    assert resampled_shape((60, 256, 256), (0.29, 0.26, 0.26), (0.29, 0.29, 0.29)) == (60, 230, 230)
    assert resampled_shape((1, 100, 100), (1, 0.5, 0.5), (0.25, 0.25, 0.25)) == (1, 200, 200)  # 2D stays 2D


def test_anisotropic_upsampling_keeps_a_linear_ramp_linear() -> None:
    z = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((1, 4, 4), np.float32)
    out = resample(z, voxel_size=(1.0, 0.5, 0.5), target_voxel_size=(0.5, 0.5, 0.5), order=1)
    assert out.shape == (20, 4, 4)
    # interior voxel centres at 0.25 + 0.5 k µm map to input coordinate (0.25 + 0.5 k) - 0.5
    inner = out[2:-2, 0, 0]
    np.testing.assert_allclose(np.diff(inner), 0.5, atol=1e-5)
    assert out.mean() == pytest.approx(z.mean(), abs=0.05)


def test_labels_use_nearest_and_keep_ids() -> None:
    lab = np.zeros((4, 20, 20), np.uint16)
    lab[:, 5:10, 5:10] = 3
    lab[:, 12:18, 2:8] = 8
    out = resample(lab, voxel_size=(1, 0.2, 0.2), target_voxel_size=(1, 0.3, 0.3), labels=True)
    assert out.dtype == np.uint16
    assert set(np.unique(out)) == {0, 3, 8}


def test_image_resample_records_exact_voxel_size_and_step() -> None:
    img = Image(
        np.random.default_rng(0).random((2, 10, 33, 33)),
        voxel_size=(0.5, 0.1, 0.1),
        dims="CZYX",
        channel_names=["a", "b"],
    )
    out = resample_image(img, (0.5, 0.3, 0.3))
    assert out.shape == (1, 2, 10, 11, 11)
    assert out.voxel_size.y == pytest.approx(0.3)
    assert out.provenance.step == "resample" and out.channel_names == ("a", "b")


def test_bad_order() -> None:
    with pytest.raises(ValueRangeError, match="order"):
        resample(np.zeros((2, 2, 2)), voxel_size=(1, 1, 1), target_voxel_size=(2, 2, 2), order=7)


@pytest.mark.parametrize(
    ("src", "dst", "pieces"),
    [
        ((0.29, 0.29, 0.29), (0.5, 0.331, 0.2935), [3, 5, 7, 25]),  # coarser in z and y (anti-aliased), finer in x
        ((0.29, 0.29, 0.29), (0.11, 0.11, 0.0975), [1] * 20),  # finer: one input row at a time
        ((0.3, 0.3, 0.3), (1.0, 0.3, 0.3), [31]),  # all rows at once
    ],
)
def test_rows_resampled_as_they_arrive_equal_the_whole_volume_resampled(src, dst, pieces, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    from subcell.transforms.resample import RowResampler, resample_linear

    module = sys.modules["subcell.transforms.resample"]
    computed: list[int] = []  # output rows per resampling call: ``chunk`` bounds its temporaries
    rows_of = module.resample_rows
    monkeypatch.setattr(module, "resample_rows",
                        lambda data, a, b, **kw: computed.append(b - a) or rows_of(data, a, b, **kw))  # fmt: skip

    n_in = sum(pieces)
    x = np.random.default_rng(0).normal(size=(2, n_in, 30, 40)).astype(np.float32)
    whole = resample_linear(x, voxel_size=src, target_voxel_size=dst)
    got = np.full_like(whole, np.nan)
    calls: list[tuple[int, int]] = []

    def sink(z0: int, rows: np.ndarray) -> None:
        got[:, z0 : z0 + rows.shape[-3]] = rows
        calls.append((z0, rows.shape[-3]))

    r = RowResampler(sink, n_in_z=n_in, voxel_size=src, target_voxel_size=dst, out_shape=whole.shape[-3:], chunk=4)
    z = 0
    for p in pieces:
        r(z, x[:, z : z + p])
        z += p
        assert r._rows == [] or sum(a.shape[-3] for a in r._rows) <= 12 + p  # only the rows still needed are held
    r.close()
    np.testing.assert_array_equal(got, whole)
    # in order, each piece's completed rows in one call (a chunked store then writes a chunk once per piece)
    assert [c[0] for c in calls] == list(itertools.accumulate([0] + [c[1] for c in calls[:-1]]))
    assert len(calls) <= len(pieces) and sum(c[1] for c in calls) == whole.shape[-3]
    assert max(computed) <= 4 and sum(computed) == whole.shape[-3]  # computed 4 rows at a time, each row once


def test_bands_of_rows_resampled_along_y_equal_the_whole_volume_resampled() -> None:
    from subcell.transforms.resample import RowResampler, resample_linear, resample_rows

    src, dst = (0.29, 0.29, 0.29), (0.5, 0.331, 0.2935)  # coarser in y (anti-aliased), finer in x
    x = np.random.default_rng(1).normal(size=(2, 12, 40, 30)).astype(np.float32)
    whole = resample_linear(x, voxel_size=src, target_voxel_size=dst)
    got = np.full_like(whole, np.nan)
    calls: list[tuple[int, int]] = []

    def sink(z0: int, rows: np.ndarray, y0: int) -> None:  # bands of every plane come as (0, rows, y0)
        assert z0 == 0 and rows.shape[-3] == whole.shape[-3]
        got[:, :, y0 : y0 + rows.shape[-2]] = rows
        calls.append((y0, rows.shape[-2]))

    r = RowResampler(sink, n_in_z=40, voxel_size=src, target_voxel_size=dst, out_shape=whole.shape[-3:], chunk=4,
                     axis="y")  # fmt: skip
    for y in range(0, 40, 7):
        r(y, x[:, :, y : y + 7])
    r.close()
    np.testing.assert_allclose(got, whole, atol=1e-5)  # the axes interpolated in another order: rounding only
    assert [c[0] for c in calls] == list(itertools.accumulate([0] + [c[1] for c in calls[:-1]]))
    assert len(calls) <= 6 and max(c[1] for c in calls) > 4  # one call per band of 7 rows, not per 4 rows
    # the function underneath, for any band of output rows in y
    band = resample_rows(x, 5, 17, voxel_size=src, target_voxel_size=dst, out_shape=whole.shape[-3:], axis="y")
    np.testing.assert_allclose(band, whole[:, :, 5:17], atol=1e-5)


def test_rows_out_of_order_or_missing_are_refused() -> None:
    from subcell.transforms.resample import RowResampler

    r = RowResampler(lambda z0, rows: None, n_in_z=10, voxel_size=(1, 1, 1), target_voxel_size=(0.5, 1, 1),
                     out_shape=(20, 4, 4))  # fmt: skip
    r(0, np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueRangeError, match="expected row 3, got 5"):
        r(5, np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueRangeError, match="ended after 3 of 10 input rows"):
        r.close()


@pytest.mark.parametrize(
    ("shape", "voxel", "target"),
    [((5, 17, 23), (0.29, 0.1, 0.1), (0.29, 0.29, 0.29)), ((12, 9, 64), (1.0, 0.2, 0.2), (0.29, 0.29, 0.29)),
     ((7, 30, 41), (0.5, 0.3, 0.7), (0.21, 0.33, 0.29)), ((1, 30, 41), (1.0, 0.3, 0.3), (1.0, 0.2, 0.45))],
)  # fmt: skip
def test_labels_resampled_plane_by_plane_equal_scikit_images_nearest_neighbour_resize(
    shape: tuple[int, int, int], voxel: tuple[float, ...], target: tuple[float, ...]
) -> None:
    import dask.array as da
    from skimage.transform import resize

    from subcell.transforms.resample import resample_label_rows, resampled_shape

    lab = np.random.default_rng(0).integers(0, 1000, (2, *shape)).astype(np.uint16)
    out = resampled_shape(shape, voxel, target)
    want = np.stack([resize(v, out, order=0, mode="edge", anti_aliasing=False, preserve_range=True) for v in lab])
    whole = resample(lab, voxel_size=voxel, target_voxel_size=target, labels=True)
    assert whole.dtype == np.uint16
    np.testing.assert_array_equal(whole, want)
    lazy = da.from_array(lab, chunks=(1, 2, *shape[1:]))
    for z0 in range(0, out[0], 2):
        rows = resample_label_rows(lazy, z0, z0 + 2, voxel_size=voxel, target_voxel_size=target)
        np.testing.assert_array_equal(rows, want[:, z0 : z0 + 2])
