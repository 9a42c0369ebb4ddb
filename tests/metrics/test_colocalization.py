"""Colocalization coefficients: definitions, Costes' thresholds and randomization, per object in ``measure``."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from scipy.stats import pearsonr, spearmanr

from subcell.errors import ValueRangeError
from subcell.metrics.colocalization import ColocalizationSpec, colocalization, costes_thresholds


def _pair(seed: int = 0, shared: float = 1.0, shape: tuple[int, ...] = (12, 64, 64)) -> tuple[np.ndarray, ...]:
    """Two channels of blurred spots over a background with noise: ``shared`` of a's spots also in b."""
    rng = np.random.default_rng(seed)

    def spots(n: int) -> np.ndarray:
        s = np.zeros(shape)
        s[tuple(rng.integers(0, d, n) for d in shape)] = rng.uniform(0.5, 1.5, n)
        return s

    common, only_a, only_b = spots(150), spots(150), spots(150)
    keep = rng.random(shape) < shared
    blur = lambda s: ndi.gaussian_filter(s * 20000, (1.0, 1.5, 1.5), mode="constant")  # noqa: E731
    a = rng.poisson(blur(common + only_a) + 100).astype(np.float64)
    b = rng.poisson(blur(common * keep + only_b) + 300).astype(np.float64)
    return a, b


def test_coefficients_follow_their_definitions_for_given_thresholds() -> None:
    a, b = _pair()
    mask = np.zeros(a.shape, bool)
    mask[2:10, 5:60, 3:50] = True
    ta, tb = 130.0, 340.0
    c = colocalization(a, b, mask, thresholds=(ta, tb))
    x, y = a[mask], b[mask]
    both = (x > ta) & (y > tb)
    assert c.pearson == pytest.approx(pearsonr(x, y).statistic, abs=1e-12)
    assert c.spearman == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert c.m1 == pytest.approx(x[both].sum() / x[x > ta].sum())
    assert c.m2 == pytest.approx(y[both].sum() / y[y > tb].sum())
    assert c.pearson_above == pytest.approx(pearsonr(x[both], y[both]).statistic)
    assert c.overlap == pytest.approx((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))
    assert c.icq == pytest.approx(np.mean((x - x.mean()) * (y - y.mean()) > 0) - 0.5)
    assert (c.threshold_a, c.threshold_b) == (ta, tb) and math.isnan(c.p_value)


def _below_r(x: np.ndarray, y: np.ndarray, ta: float, slope: float, intercept: float) -> float:
    below = (x < ta) | (y < slope * ta + intercept)
    return float(pearsonr(x[below], y[below]).statistic)


def test_costes_thresholds_are_the_highest_uncorrelated_point_of_the_orthogonal_regression() -> None:
    a, b = _pair(1)
    x, y = a.ravel(), b.ravel()
    ta, tb = costes_thresholds(a, b)
    # the major axis of the covariance: total least squares, not b regressed on a
    _, v = np.linalg.eigh(np.cov(x, y))
    slope = v[1, 1] / v[0, 1]
    intercept = y.mean() - slope * x.mean()
    assert tb == pytest.approx(slope * ta + intercept, rel=1e-9)
    step = (x.max() - x.min()) / 2**12
    assert _below_r(x, y, ta, slope, intercept) <= 0 < _below_r(x, y, ta + step, slope, intercept)
    assert 130 < ta < 600 and 350 < tb < 900  # above the backgrounds (100, 300 ± Poisson noise), below the peaks


def test_costes_manders_follow_the_shared_fraction_and_thresholds_follow_an_offset() -> None:
    m1 = []
    for shared in (0.0, 0.25, 0.5, 1.0):
        a, b = _pair(2, shared)
        c = colocalization(a, b)
        m1.append(c.m1)
        moved = colocalization(a + 500.0, b - 200.0)  # the thresholds move with the backgrounds
        assert (moved.threshold_a - 500, moved.threshold_b + 200) == pytest.approx((c.threshold_a, c.threshold_b))
        assert moved.pearson == pytest.approx(c.pearson)
    assert (math.isnan(m1[0]) or m1[0] < m1[1]) and m1[1] < m1[2] < m1[3]
    # Manders' overlap depends on the offset: the reason for thresholds
    assert colocalization(a + 500.0, b).overlap != pytest.approx(colocalization(a, b).overlap, abs=1e-3)


def test_channels_that_do_not_correlate_have_nothing_above_costes_thresholds() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(100, 5, (8, 32, 32))
    b = 500 - a + rng.normal(0, 1, a.shape)  # anti-correlated: r < 0
    c = colocalization(a, b)
    assert c.pearson < 0 and (c.threshold_a, c.threshold_b) == (a.max(), b.max())
    assert math.isnan(c.m1) and math.isnan(c.m2)
    flat = colocalization(a, np.full(a.shape, 7.0))  # a constant channel: nothing is defined
    assert math.isnan(flat.pearson) and math.isnan(flat.spearman) and math.isnan(flat.m2)


def test_swapping_the_channels_swaps_m1_and_m2() -> None:
    a, b = _pair(4, 0.5)
    ab, ba = colocalization(a, b, thresholds=(120.0, 330.0)), colocalization(b, a, thresholds=(330.0, 120.0))
    assert (ab.m1, ab.m2, ab.pearson) == pytest.approx((ba.m2, ba.m1, ba.pearson))


def test_otsu_thresholds_are_each_channels_own() -> None:
    from skimage.filters import threshold_otsu

    a, b = _pair(5)
    c = colocalization(a, b, thresholds="otsu")
    assert (c.threshold_a, c.threshold_b) == pytest.approx((threshold_otsu(a), threshold_otsu(b)))
    with pytest.raises(ValueRangeError, match="thresholds must be one of costes, otsu"):
        colocalization(a, b, thresholds="li")


def test_costes_randomization_tells_a_shared_pattern_from_independent_ones() -> None:
    a, b = _pair(6, 1.0)
    same = colocalization(a, b, randomizations=49, block=(2, 4, 4))
    assert same.p_value == pytest.approx(1 / 50)  # no shuffle of a's blocks correlates as well with b
    rng = np.random.default_rng(7)
    noise_a = ndi.gaussian_filter(rng.normal(size=(12, 64, 64)), 1.0)
    noise_b = ndi.gaussian_filter(rng.normal(size=(12, 64, 64)), 1.0)
    independent = [colocalization(noise_a, noise_b, randomizations=49, block=(4, 4, 4), seed=s).p_value
                   for s in range(3)]  # fmt: skip
    assert all(p > 0.05 for p in independent)
    assert (
        colocalization(a, b, randomizations=9, block=(2, 4, 4)).p_value
        == colocalization(a, b, randomizations=9, block=(2, 4, 4)).p_value
    )  # seeded
    auto = [colocalization(noise_a, noise_b, randomizations=49, seed=s).p_value for s in range(3)]
    assert all(p > 0.05 for p in auto)  # blocks from the data


def test_automatic_blocks_are_as_long_as_the_texture() -> None:
    from subcell.metrics.colocalization import correlation_block

    rng = np.random.default_rng(8)
    white = rng.normal(size=(24, 96, 96))
    mask = np.ones(white.shape, bool)
    fine, coarse = ndi.gaussian_filter(white, 1.0), ndi.gaussian_filter(white, 3.0)
    b_fine, b_coarse = correlation_block(fine, fine, mask), correlation_block(coarse, coarse, mask)
    assert all(f < c for f, c in zip(b_fine, b_coarse, strict=True))
    assert correlation_block(fine, coarse, mask) == b_coarse  # the slower texture sets the length
    streaks = ndi.gaussian_filter(white, (1.0, 4.0, 1.0))  # long along y
    zb, yb, xb = correlation_block(streaks + rng.normal(0, 0.2, white.shape), streaks, mask)  # noise: no shorter
    assert yb >= 3 * xb and yb <= 96 // 4
    assert correlation_block(streaks, streaks, mask) == [zb, yb, xb]


def test_measure_adds_the_coefficients_of_each_object() -> None:
    from subcell.segment import measure_objects

    a, b = _pair(8, 0.5)
    lab = np.zeros(a.shape, np.int32)
    lab[:, :30, :30] = 1
    lab[2:, 34:, 20:60] = 4
    spec = ColocalizationSpec((("dna", "mito"),), randomizations=19)
    t = measure_objects(lab, voxel_size=(0.5, 0.2, 0.2), intensity={"dna": a, "mito": b}, surface=False,
                        colocalize=spec).set_index("label")  # fmt: skip
    for i in (1, 4):
        own = colocalization(a, b, lab == i, randomizations=19, block=spec.block((0.5, 0.2, 0.2)), seed=i)
        for key, value in own.as_dict().items():
            assert t.loc[i, f"coloc_dna_mito_{key}"] == pytest.approx(value, nan_ok=True)
    assert spec.block((0.5, 0.2, 0.2)) is None  # from each object's texture
    assert replace(spec, block_um=(1.0, 0.4, 0.6)).block((0.5, 0.2, 0.2)) == [2, 2, 3]
    plain = measure_objects(lab, voxel_size=(0.5, 0.2, 0.2), intensity={"dna": a, "mito": b}, surface=False,
                            colocalize=ColocalizationSpec((("dna", "mito"),)))  # fmt: skip
    assert "coloc_dna_mito_m1" in plain and "coloc_dna_mito_p_value" not in plain
    empty = measure_objects(np.zeros_like(lab), voxel_size=(0.5, 0.2, 0.2), intensity={"dna": a, "mito": b},
                            surface=False, colocalize=ColocalizationSpec((("dna", "mito"),)))  # fmt: skip
    assert list(empty.columns) == list(plain.columns) and empty.empty
    with pytest.raises(ValueRangeError, match="'er' to colocalize is not among"):
        measure_objects(lab, voxel_size=(0.5, 0.2, 0.2), intensity={"dna": a},
                        colocalize=ColocalizationSpec((("dna", "er"),)))  # fmt: skip


def test_measure_cli_colocalizes_channels_by_name_or_index(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell.cli.main import run
    from subcell.image import Image
    from subcell.io import write
    from tests.conftest import cli_user_error

    a, b = _pair(9, 1.0, shape=(8, 48, 48))
    lab = np.zeros(a.shape, np.uint16)
    lab[:, 4:44, 4:44] = 2
    write(Image(np.stack([a, b], 1).astype(np.uint16), voxel_size=(0.5, 0.2, 0.2), dims="ZCYX",
                channel_names=["dna", "mito"]), tmp_path / "img.ome.tif")  # fmt: skip
    write(Image(lab, voxel_size=(0.5, 0.2, 0.2), dims="ZYX"), tmp_path / "lab.ome.tif")
    args = [
        "measure",
        str(tmp_path / "lab.ome.tif"),
        str(tmp_path / "t.csv"),
        "--intensity",
        str(tmp_path / "img.ome.tif"),
    ]
    assert run([*args, "--colocalize", "dna,1", "--coloc-randomizations", "9"]) == 0
    row = pd.read_csv(tmp_path / "t.csv").iloc[0]
    direct = colocalization(a, b, lab > 0)
    assert row.coloc_dna_mito_m1 == pytest.approx(direct.m1) and row.coloc_dna_mito_p_value == pytest.approx(0.1)
    assert run([*args, "--colocalize", "mito,dna", "--coloc-thresholds", "330,120", "--overwrite"]) == 0
    row = pd.read_csv(tmp_path / "t.csv").iloc[0]
    assert row.coloc_mito_dna_threshold_a == 330 and row.coloc_mito_dna_threshold_b == 120
    out = tmp_path / "u.csv"
    bad = {
        ("--colocalize", "dna,er"): "no channel 'er' in --intensity",
        ("--colocalize", "dna"): "expected two channels A,B",
        ("--colocalize", "dna,mito", "--coloc-thresholds", "li"): "expected costes or otsu or two numbers",
        ("--colocalize", "dna,mito", "--coloc-block-um", "1", "0", "1"): "block sizes must be positive",
    }
    for extra, message in bad.items():
        err = cli_user_error(capsys, "measure", str(tmp_path / "lab.ome.tif"), str(out), "--intensity",
                             str(tmp_path / "img.ome.tif"), *extra)  # fmt: skip
        assert message in err and not out.exists()
    err = cli_user_error(capsys, "measure", str(tmp_path / "lab.ome.tif"), str(out), "--colocalize", "dna,mito")
    assert "give --intensity" in err


def test_randomization_shuffles_within_the_region_only() -> None:
    """What lies around a cell (background, a neighbour) is never shuffled into it: the P-value of a region does
    not depend on the values outside it."""
    rng = np.random.default_rng(11)
    zz, yy, xx = np.mgrid[:16, :96, :96]
    cell = ((yy - 48) ** 2 + (xx - 48) ** 2 < 30**2) & (zz > 2) & (zz < 13)
    a = ndi.gaussian_filter(rng.normal(size=cell.shape), 2.0)
    b = 0.1 * a + ndi.gaussian_filter(rng.normal(size=cell.shape), 2.0)
    quiet = colocalization(np.where(cell, a, 0), np.where(cell, b, 0), cell, randomizations=99, block=(4, 8, 8))
    busy = colocalization(np.where(cell, a, rng.normal(0, 50, a.shape)), b, cell, randomizations=99, block=(4, 8, 8))
    assert busy.p_value == quiet.p_value and busy.pearson == quiet.pearson
    assert 0.01 < quiet.p_value < 0.9  # a weak correlation: shuffles do reach it sometimes


def test_voxels_without_a_measurement_are_left_out() -> None:
    a, b = _pair(12, 0.5)
    holes = np.zeros(a.shape, bool)
    holes[:, :10] = True  # e.g. the canvas of a drift-corrected movie
    with_nan = colocalization(np.where(holes, np.nan, a), b, randomizations=19, block=(2, 4, 4))
    without = colocalization(a, b, ~holes, randomizations=19, block=(2, 4, 4))
    assert with_nan == without and not math.isnan(with_nan.m1)
