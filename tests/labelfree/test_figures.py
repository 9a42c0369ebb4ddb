"""The evaluation figure of fields too large to hold: each volume read once in blocks, none held whole."""

from __future__ import annotations

import tracemalloc

import dask.array as da
import numpy as np
import pytest

from subcell import plotting
from subcell.labelfree.figures import evaluation_figure_png
from subcell.plotting import panel_summary

METRICS = {"dna": {"pearson_r": 0.5}}


def _volumes(shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    truth = rng.gamma(2.0, 50.0, size=shape).astype(np.float32)  # photon counts, skewed
    pred = ((truth - truth.mean()) / truth.std() + rng.normal(scale=0.5, size=shape)).astype(np.float32)
    return {"input": (1000 - truth * 0.3).astype(np.float32), "target dna": truth, "prediction dna": pred}


def test_a_dask_volume_gives_the_figure_of_the_same_volume_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = (12, 96, 80)
    vols = _volumes(shape)
    lazy = {k: da.from_array(v, chunks=(5, 40, -1)) for k, v in vols.items()}
    for v, lv in zip(vols.values(), lazy.values(), strict=True):
        a, b = panel_summary(v), panel_summary(lv)
        for pa, pb in zip(a.planes.views(), b.planes.views(), strict=True):
            np.testing.assert_array_equal(pa, pb)
        assert a.planes.shape == b.planes.shape == shape
        assert b.mean == pytest.approx(float(v.astype(np.float64).mean()), rel=1e-12)
        assert b.std == pytest.approx(float(v.astype(np.float64).std()), rel=1e-9)
        np.testing.assert_array_equal(b.sample, v)  # under the sample limit: every voxel
    assert evaluation_figure_png(lazy, (0.5, 0.3, 0.3), METRICS) == evaluation_figure_png(
        vols, (0.5, 0.3, 0.3), METRICS
    )
    # over the limit: every s-th row and column, the largest s that keeps at least the limit's voxels
    monkeypatch.setattr(plotting, "LIMIT_SAMPLE_VOXELS", 12 * 24 * 20)
    v = vols["target dna"]
    np.testing.assert_array_equal(panel_summary(lazy["target dna"]).sample, v[:, ::4, ::4])
    monkeypatch.setattr(plotting, "LIMIT_SAMPLE_VOXELS", 12 * 24 * 20 + 1)
    np.testing.assert_array_equal(panel_summary(v).sample, v[:, ::3, ::3])


def test_the_figure_of_lazy_volumes_never_holds_one_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = (96, 512, 512)  # 96 MB a float32 volume; the figure's own drawing takes ~30 MB whatever the volume
    monkeypatch.setattr(plotting, "LIMIT_SAMPLE_VOXELS", 1 << 18)
    rng = da.random.default_rng(1)
    lazy = {"input": rng.random(shape, chunks=(2, -1, -1), dtype=np.float32),
            "target dna": rng.gamma(2.0, 50.0, size=shape, chunks=(2, -1, -1)).astype(np.float32),
            "prediction dna": rng.standard_normal(shape, chunks=(2, -1, -1), dtype=np.float32)}  # fmt: skip
    volume = int(np.prod(shape)) * 4
    tracemalloc.start()
    try:
        png = evaluation_figure_png(lazy, (0.5, 0.3, 0.3), METRICS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert png[:4] == b"\x89PNG"
    assert peak < volume / 2, f"peak {peak / 2**20:.1f} MB, one volume {volume / 2**20:.1f} MB"
