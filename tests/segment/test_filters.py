"""The filter vocabulary on tiny hand-built arrays, lengths in µm."""

from __future__ import annotations

import numpy as np
import pytest

from subcell.errors import ValueRangeError
from subcell.segment import filters as F

VS = (0.5, 0.1, 0.1)


def test_normalize_methods() -> None:
    a = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    p = F.normalize(a, method="percentile", low=0, high=100)
    assert p.min() == 0 and p.max() == 1
    s = F.normalize(a, method="std", low=1, high=1)
    assert s.min() == 0 and s.max() == 1 and (s == 0).sum() > 100  # clipped at mean ± 1 std
    wide = F.normalize(a, method="std", low=10, high=10)  # beyond the data: the data range maps to [0, 1]
    assert wide.min() == 0 and wide.max() == 1
    with pytest.raises(ValueRangeError, match="unknown method"):
        F.normalize(a, method="zscore")


def test_gaussian_sigma_is_in_micrometres_and_per_slice_keeps_planes_apart() -> None:
    a = np.zeros((9, 31, 31), np.float32)
    a[4, 15, 15] = 1
    out = F.gaussian_smooth(a, sigma_um=0.2, voxel_size=VS)
    prof = out[4, 15, :]
    sigma_vox = np.sqrt((prof * (np.arange(31) - 15) ** 2).sum() / prof.sum())
    assert sigma_vox == pytest.approx(2.0, rel=0.05)  # 0.2 µm / 0.1 µm
    flat = F.gaussian_smooth(a, sigma_um=0.2, voxel_size=VS, per_slice=True)
    assert flat[3].max() == 0 and flat[4].sum() == pytest.approx(1, rel=1e-3)


def test_edge_preserving_smoothing_keeps_a_step_and_removes_noise() -> None:
    rng = np.random.default_rng(0)
    a = np.zeros((6, 40, 40), np.float32)
    a[:, :, 20:] = 1.0
    noisy = a + rng.normal(0, 0.1, a.shape).astype(np.float32)
    out = F.edge_preserving_smooth(noisy, voxel_size=VS, iterations=10)
    assert out[:, :, 2:15].std() < 0.6 * noisy[:, :, 2:15].std()  # flat part smoothed
    step = out[:, :, 21].mean() - out[:, :, 18].mean()
    blurred = F.gaussian_smooth(noisy, sigma_um=0.3, voxel_size=VS)
    assert step > 0.9 and step > blurred[:, :, 21].mean() - blurred[:, :, 18].mean()  # edge kept sharper


def test_spot_filter_peaks_on_a_spot_of_matching_size() -> None:
    a = np.zeros((11, 41, 41), np.float32)
    a[5, 20, 20] = 1
    a = F.gaussian_smooth(a, sigma_um=0.2, voxel_size=(0.2, 0.1, 0.1))
    resp = F.spot_filter(a, sigmas_um=[0.1, 0.2, 0.4], voxel_size=(0.2, 0.1, 0.1))
    assert np.unravel_index(np.argmax(resp), resp.shape) == (5, 20, 20)
    assert resp[5, 20, 20] > 0 and resp[5, 20, 30] < resp[5, 20, 20] * 0.05


@pytest.mark.parametrize("sigma_um", [0.1, 0.2, 0.3])
def test_second_derivatives_see_nothing_in_a_flat_region(sigma_um: float) -> None:
    """A constant has no curvature: the LoG spot response and the Hessian eigenvalues stay at ~0 of its level. With
    kernels cut at 3σ they did not (σ = 2 voxels: 1.2 % of the level per axis, 3.6 % in the LoG)."""
    vs = (0.1, 0.1, 0.1)
    flat = np.full((25, 25, 25), 100.0, np.float32)
    spot = F.spot_filter(flat, sigmas_um=[sigma_um], voxel_size=vs)
    assert np.abs(spot).max() < 0.2  # 0.2 % of the level
    for e in F.hessian_eigenvalues(flat, F.sigma_voxels(sigma_um, vs)):
        assert np.abs(e).max() < 0.1
    ramp = flat + np.arange(25, dtype=np.float32)[None, None, :]  # a linear ramp has no curvature either
    assert np.abs(F.spot_filter(ramp, sigmas_um=[sigma_um], voxel_size=vs)[:, :, 10:15]).max() < 0.2


def test_filament_filter_prefers_lines_over_blobs() -> None:
    vs = (0.1, 0.1, 0.1)
    line = np.zeros((15, 41, 41), np.float32)
    line[7, 20, 5:36] = 1  # a line along x
    spot = np.zeros_like(line)
    spot[7, 32, 32] = 1  # a round spot of the same width
    img = F.gaussian_smooth(line, sigma_um=0.1, voxel_size=vs) + 3 * F.gaussian_smooth(
        spot, sigma_um=0.1, voxel_size=vs
    )
    resp = F.filament_filter(img, sigmas_um=[0.1], voxel_size=vs)
    assert resp[7, 20, 20] > 0.5
    assert resp[7, 32, 32] < 0.2 * resp[7, 20, 20]  # the spot is not a tube


def test_hessian_eigenvalues_match_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    from subcell.segment.filters import detection

    rng = np.random.default_rng(1)
    a = rng.random((8, 9, 10)).astype(np.float32)
    e1, e2, e3 = F.hessian_eigenvalues(a, (1.0, 1.0, 1.0))
    monkeypatch.setattr(detection, "EIGEN_STEP", 97)  # runs of 97 voxels (the last one shorter): the same numbers
    for whole, in_runs in zip((e1, e2, e3), F.hessian_eigenvalues(a, (1.0, 1.0, 1.0)), strict=True):
        assert np.array_equal(whole, in_runs)
    from scipy import ndimage as ndi

    h = np.empty((3, 3, *a.shape), np.float32)
    for i in range(3):
        for j in range(3):
            order = [0, 0, 0]
            order[i] += 1
            order[j] += 1
            h[i, j] = ndi.gaussian_filter(a, 1.0, order=order, mode="nearest", truncate=F.DERIVATIVE_TRUNCATE)
    ref = np.linalg.eigvalsh(np.moveaxis(h, (0, 1), (-2, -1)))
    ref = np.take_along_axis(ref, np.argsort(np.abs(ref), axis=-1), axis=-1)
    np.testing.assert_allclose(np.stack([e1, e2, e3], -1), ref, atol=2e-4)
    # per slice (sigma_z = 0): 2×2 closed form, the third eigenvalue is 0
    f1, f2, f3 = F.hessian_eigenvalues(a, (0.0, 1.0, 1.0))
    h2 = np.empty((2, 2, *a.shape), np.float32)
    for i in range(2):
        for j in range(2):
            order = [0, 0, 0]
            order[i + 1] += 1
            order[j + 1] += 1
            h2[i, j] = ndi.gaussian_filter(
                a, (0.0, 1.0, 1.0), order=order, mode="nearest", truncate=F.DERIVATIVE_TRUNCATE
            )
    ref2 = np.linalg.eigvalsh(np.moveaxis(h2, (0, 1), (-2, -1)))
    ref2 = np.take_along_axis(ref2, np.argsort(np.abs(ref2), axis=-1), axis=-1)
    assert not f1.any()
    np.testing.assert_allclose(np.stack([f2, f3], -1), ref2, atol=2e-4)


def test_masked_object_threshold_adapts_to_each_object() -> None:
    a = np.zeros((1, 40, 80), np.float32)
    a[0, 10:30, 5:35] = 10  # dim object with a dimmer rim
    a[0, 15:25, 10:30] = 20
    a[0, 10:30, 45:75] = 100  # bright object with a bright core
    a[0, 15:25, 50:70] = 200
    out = F.masked_object_threshold(a, global_method="triangle", voxel_size=VS)
    assert out[0, 20, 20] and not out[0, 11, 6]  # core of the dim object, not its rim
    assert out[0, 20, 60] and not out[0, 11, 46]


def test_fill_holes_respects_the_maximum_hole_size() -> None:
    m = np.zeros((1, 30, 30), bool)
    m[0, 2:12, 2:12] = True
    m[0, 5:7, 5:7] = False  # 4 px hole = 0.04 µm²
    m[0, 15:29, 15:29] = True
    m[0, 17:27, 17:27] = False  # 100 px hole = 1 µm²
    out = F.fill_holes(m, max_hole_um=0.5, voxel_size=VS, per_slice=True)
    assert out[0, 5, 5] and not out[0, 20, 20]
    assert F.fill_holes(m, voxel_size=VS, per_slice=True)[0, 20, 20]


def test_size_filter_in_cubic_micrometres() -> None:
    m = np.zeros((4, 20, 20), bool)
    m[:2, :2, :2] = True  # 8 voxels × 0.005 µm³ = 0.04 µm³
    m[:, 10:20, 10:20] = True  # 400 voxels = 2 µm³
    out = F.size_filter(m, min_volume_um3=0.1, voxel_size=VS)
    assert not out[0, 0, 0] and out[0, 15, 15]
    labels = np.zeros((4, 20, 20), np.int32)
    labels[m] = 3
    labels[:2, :2, :2] = 5
    kept = F.size_filter(labels, min_volume_um3=0.1, voxel_size=VS)
    assert set(np.unique(kept)) == {0, 3}
    one = F.size_filter((labels == 3).astype(np.int32), min_volume_um3=0.1, voxel_size=VS)
    assert one.dtype == np.int32 and one.max() == 1  # a label image with one object is still labels


def test_seeded_watershed_keeps_seed_ids() -> None:
    land = np.zeros((1, 10, 20), np.float32)
    land[0, :, 10] = 1  # a ridge
    seeds = np.zeros((1, 10, 20), np.int32)
    seeds[0, 5, 2] = 7
    seeds[0, 5, 17] = 9
    out = F.seeded_watershed(land, seeds=seeds)
    assert set(np.unique(out[0, :, :9])) == {7} and set(np.unique(out[0, :, 12:])) == {9}
    near = F.seeded_watershed(land, seeds=seeds, max_distance_um=0.3, voxel_size=VS)
    assert near[0, 5, 2] == 7 and near[0, 5, 9] == 0  # 0.7 µm away: beyond the limit


def test_thinning_keeps_thin_bridges() -> None:
    m = np.zeros((1, 30, 40), bool)
    m[0, 5:25, 2:14] = True  # thick blob
    m[0, 14:16, 14:26] = True  # 2-px bridge
    m[0, 5:25, 26:38] = True
    out = F.topology_preserving_thinning(m, min_thickness_um=0.1, thin_um=0.2, voxel_size=VS)
    from scipy import ndimage as ndi

    assert ndi.label(out[0])[1] == 1  # still one connected piece
    assert out.sum() < m.sum()  # the thick parts lost their rim
    assert out[0, 14, 20]


def test_fill_between_membranes_fills_from_basal_to_apical_peak() -> None:
    nz, nx = 12, 12
    inten = np.zeros((nz, 3, nx), np.float32)
    inten[1:4, :, 1:] = [[[0.5]], [[1.0]], [[0.5]]]  # basal membrane, brightest at z = 2
    inten[7:10, :, 1:] = [[[0.5]], [[1.0]], [[0.5]]]  # apical membrane, brightest at z = 8
    inten[7:10, :, 5] = 0  # a one-column gap in the apical membrane
    inten[7:10, :, 8:11] = 0  # a three-column gap (0.3 µm)
    inten[1:10, :, 11] = 1.0  # a lateral wall
    mask = inten > 0.4
    out = F.fill_between_membranes(mask, inten, voxel_size=VS, max_gap_um=0.15)
    col = out[:, 1]
    assert not col[:, 0].any()  # no membrane: outside the colony
    assert col[2:9, 1].all() and not col[:2, 1].any() and not col[9:, 1].any()  # peak to peak, not the blur
    assert col[2:9, 5].all() and not col[9:, 5].any()  # the narrow gap is bridged at the neighbours' height
    assert not col[:, 9].any()  # the middle of the wide gap is 0.2 µm from an apical membrane: not bridged
    assert col[1:10, 11].all()  # the wall is filled whole
    wide = F.fill_between_membranes(mask, inten, voxel_size=VS, max_gap_um=0.5)
    assert wide[2:9, 1, 9].all()
    assert np.array_equal(F.fill_between_membranes(mask[4:5], inten[4:5], voxel_size=VS), mask[4:5])
    with pytest.raises(ValueRangeError, match="intensity has shape"):
        F.fill_between_membranes(mask, inten[:5], voxel_size=VS)


def test_fill_between_membranes_fills_a_cell_cut_by_the_top_of_the_stack() -> None:
    """A cell taller than the stack: a basal membrane, walls up to the last plane, no apical membrane. Its inside
    is filled to the last plane; the same cell whose walls end below the top (a dim apical membrane, not a cut)
    and a piece open to the dish stay as the bridge leaves them. A thicker patch of the basal membrane is no wall:
    its top does not cut the cell short around it."""
    nz, nx = 10, 30
    inten = np.zeros((nz, 3, nx), np.float32)
    inten[1:4, :, 2:28] = [[[0.5]], [[1.0]], [[0.5]]]  # basal membrane, brightest at z = 2
    inten[1:, :, 2] = inten[1:, :, 27] = 1.0  # walls up to the last plane
    mask = inten > 0.4
    # the field's basal membrane is 3 planes thick (`basal_run_lengths` over a field with whole cells)
    out = F.fill_between_membranes(mask, inten, voxel_size=VS, max_gap_um=0.3, basal_len=3)
    assert out[2:, 1, 3:27].all() and not out[:2, 1, 14].any()  # basal peak to the last plane
    patch = inten.copy()
    patch[1:6, :, 14] = 1.0  # the basal membrane 5 planes thick in one column
    out = F.fill_between_membranes(patch > 0.4, patch, voxel_size=VS, max_gap_um=0.3, basal_len=3)
    assert out[2:, 1, 3:27].all()
    low_walls = inten.copy()
    low_walls[8:, :, [2, 27]] = 0  # the walls end at z = 7: the cell ends in the stack
    out = F.fill_between_membranes(low_walls > 0.4, low_walls, voxel_size=VS, max_gap_um=0.3, basal_len=3)
    assert not out[:, 1, 14].any()
    open_side = inten.copy()
    open_side[1:, :, 27] = 0
    open_side[1:4, :, 27] = [[0.5], [1.0], [0.5]]  # no wall on the right, and beyond it the dish
    open_side[:, :, 28:] = 0
    out = F.fill_between_membranes(open_side > 0.4, open_side, voxel_size=VS, max_gap_um=0.3, basal_len=3)
    assert not out[:, 1, 20].any()


def test_subtract_background_removes_a_ramp_and_keeps_small_objects() -> None:
    ramp = np.broadcast_to(np.linspace(0, 2, 80, dtype=np.float32), (3, 80, 80)).copy()
    img = ramp.copy()
    img[:, 40:44, 20:24] += 1.0  # 0.4 µm objects on a ramp twice as bright
    out = F.subtract_background(img, radius_um=1.0, voxel_size=VS)
    assert abs(float(out[1, 41, 21]) - 1.0) < 0.1
    assert float(np.median(out)) < 0.02  # the ramp itself is gone
    vol = F.subtract_background(img, radius_um=1.0, voxel_size=VS, per_slice=False)  # 3D footprint
    assert vol.shape == img.shape and abs(float(vol[1, 41, 21]) - 1.0) < 0.1
    with pytest.raises(ValueRangeError, match="radius_um must be > 0"):
        F.subtract_background(img, radius_um=0, voxel_size=VS)
