"""Shape features, spherical harmonics, shape space and placement statistics on hand-built objects."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from subcell.cells import fit_harmonics, fit_shape_space, rasterize, shape_coefficients
from subcell.cells.placement import placement_stats
from subcell.cells.shape_space import walk_volumes
from subcell.errors import ValueRangeError
from subcell.metrics.shape import shape_features


def ball(shape, center, radii, v=0.5):  # type: ignore[no-untyped-def]
    g = np.meshgrid(*[np.arange(n) * v for n in shape], indexing="ij")
    return sum(((gi - c) / r) ** 2 for gi, c, r in zip(g, center, radii, strict=True)) <= 1


def test_sphere_features_in_micrometres() -> None:
    m = ball((40, 40, 40), (10, 10, 10), (6, 6, 6))
    f = shape_features(m, (0.5, 0.5, 0.5))
    assert f["volume_um3"] == pytest.approx(4 / 3 * math.pi * 216, rel=0.03)
    assert f["surface_area_um2"] == pytest.approx(4 * math.pi * 36, rel=0.05)
    assert f["sphericity"] > 0.95
    assert f["axis_major_um"] == pytest.approx(12, rel=0.05)


def test_harmonics_of_a_sphere_and_an_ellipsoid() -> None:
    sphere = fit_harmonics(ball((40, 40, 40), (10, 10, 10), (6, 6, 6)), (0.5,) * 3, lmax=4)
    assert sphere.coefficients[0] / (2 * math.sqrt(math.pi)) == pytest.approx(6, abs=0.15)  # r = c00 · Y00
    assert np.abs(sphere.coefficients[1:]).max() < 0.1
    ell = ball((40, 60, 60), (10, 15, 15), (6, 12, 8))
    fit = fit_harmonics(ell, (0.5,) * 3, lmax=8)
    assert fit.mean_error_um < 0.1
    back = rasterize(fit.coefficients, ell.shape, (0.5,) * 3, fit.center_um)
    assert 2 * (back & ell).sum() / (back.sum() + ell.sum()) > 0.97
    with pytest.raises(ValueRangeError, match="empty"):
        fit_harmonics(np.zeros((4, 4, 4), bool), (1, 1, 1))


def test_shape_space_finds_the_varied_axis_and_walks_along_it() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(12):
        a = rng.uniform(5, 10)  # the cell's x radius varies, everything else fixed
        cell = ball((24, 48, 48), (6, 12, 12), (4, 8, a))
        nucleus = ball((24, 48, 48), (6, 12, 12), (2.5, 4, 4))
        rows.append({"a": a, **shape_coefficients(cell, nucleus, 0.5, lmax=4)})
    table = pd.DataFrame(rows)
    space = fit_shape_space(table, lmax=4, n_modes=3)
    assert space.explained_variance_ratio[0] > 0.9
    scores = space.transform(table[space.feature_names].to_numpy())
    assert abs(np.corrcoef(scores[:, 0], table.a)[0, 1]) > 0.98
    walk = walk_volumes(space, 0, (-2, 0, 2), (24, 48, 48), 0.5)
    sizes = walk[:, 0].reshape(3, -1).sum(axis=1)
    assert (np.all(np.diff(sizes) > 0) or np.all(np.diff(sizes) < 0)) and walk[:, 1].sum(axis=(1, 2, 3)).std() < 50
    with pytest.raises(ValueRangeError, match="at least 3"):
        fit_shape_space(table.iloc[:2], lmax=4)


def test_placement_statistics_follow_the_construction() -> None:
    shape, v = (24, 48, 48), 0.5
    cell = ball(shape, (6, 12, 12), (5, 10, 10))
    nucleus = ball(shape, (5, 12, 12), (2.5, 4, 4))
    shell = ball(shape, (5, 12, 12), (3.3, 4.8, 4.8)) & ~nucleus  # within ~1 µm of the nucleus
    s = placement_stats(shell.astype(float), cell, nucleus, v)
    assert s["radial_0_1.5um"] > 0.95 and s["inside_nucleus_fraction"] == 0
    blobs = np.zeros(shape)
    for cy in (10, 12, 14):
        blobs[ball(shape, (5, cy, 12), (0.6, 0.6, 0.6))] = 1
    b = placement_stats(blobs, cell, nucleus, v)
    assert b["object_count"] == 3 and b["inside_nucleus_fraction"] == 1
    cap = ball(shape, (9, 12, 12), (0.8, 2, 2)) & cell
    assert placement_stats(cap.astype(float), cell, nucleus, v)["apical_offset_um"] == pytest.approx(4, abs=0.6)


def test_real_harmonics_by_recurrence_equal_scipy_and_are_orthonormal() -> None:
    from scipy.special import sph_harm_y

    from subcell.cells.harmonics import real_sph_harm

    rng = np.random.default_rng(0)
    theta = np.concatenate([[0.0, np.pi, np.pi / 2], rng.uniform(0, np.pi, 500)])  # poles included
    phi = np.concatenate([[0.0, 1.0, -2.0], rng.uniform(-np.pi, np.pi, 500)])
    for lmax in (0, 1, 3, 8, 12):
        cols = []
        for l in range(lmax + 1):  # noqa: E741
            for m in range(-l, l + 1):
                y = sph_harm_y(l, abs(m), theta, phi)
                cols.append(np.sqrt(2) * y.real if m > 0 else np.sqrt(2) * y.imag if m < 0 else y.real)
        np.testing.assert_allclose(real_sph_harm(lmax, theta, phi), np.stack(cols, axis=-1), atol=1e-10)
    # orthonormal on the sphere (midpoint quadrature on a fine θ/φ grid)
    t = (np.arange(400) + 0.5) * np.pi / 400
    p = (np.arange(800) + 0.5) * 2 * np.pi / 800 - np.pi
    tt, pp = np.meshgrid(t, p, indexing="ij")
    basis = real_sph_harm(6, tt.ravel(), pp.ravel())
    w = (np.sin(tt) * (np.pi / 400) * (2 * np.pi / 800)).ravel()
    np.testing.assert_allclose(basis.T @ (basis * w[:, None]), np.eye(49), atol=2e-4)
    assert real_sph_harm(2, tt, pp).shape == (*tt.shape, 9)
