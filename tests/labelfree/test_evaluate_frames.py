"""``labelfree evaluate`` by parts: a time-lapse read one frame, or one slab of planes, at a time scores as the whole
volume does."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from subcell import Image
from subcell.labelfree.evaluate import evaluate_prediction
from subcell.metrics import pieces

VS = (0.5, 0.2, 0.2)


def _movie(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Three frames of 12×40×44: a smooth truth, a noisy target, a prediction, cells (one leaves after frame 0),
    nuclei in two of them and a probability-like prediction of the nuclei."""
    from scipy import ndimage as ndi

    shape = (3, 12, 40, 44)
    truth = ndi.gaussian_filter(rng.normal(size=shape), (0, 2, 2, 2)) * 40 + 100
    target = truth + rng.normal(scale=truth.std() * 0.5, size=shape)
    pred = (truth + rng.normal(scale=truth.std() * 0.4, size=shape)).astype(np.float32)
    cells = np.zeros(shape, np.uint16)
    cells[:, 1:11, 2:19, 2:40] = 1
    cells[:, 1:11, 21:38, 2:21] = 2
    cells[0, 1:11, 21:38, 23:42] = 9  # present in the first frame only
    nuclei = np.zeros(shape, np.uint8)
    nuclei[:, 3:9, 6:15, 8:30] = 1
    nuclei[:, 3:9, 25:34, 6:16] = 1
    prob = ((nuclei > 0) * 0.7 + rng.normal(0, 0.35, shape)).astype(np.float32)
    return {"truth": truth, "target": target, "pred": pred, "cells": cells, "nuclei": nuclei, "prob": prob}


def _lazy(*channels: tuple[str, np.ndarray], planes: int | None = None) -> Image:
    """A TCZYX image of named (T, Z, Y, X) channels backed by Dask, stored in chunks of one frame or of ``planes``
    planes (as an OME-Zarr time-lapse is read)."""
    import dask.array as da

    a = np.stack([c for _, c in channels], 1)
    return Image(da.from_array(a, chunks=(1, a.shape[1], planes or a.shape[2], *a.shape[3:])), voxel_size=VS, dims="TCZYX",
                 channel_names=[n for n, _ in channels])  # fmt: skip


def _expected(m: dict[str, np.ndarray]) -> dict[str, float]:
    """The metrics over the whole time-lapse held as one array, with NumPy and scikit-image."""
    from skimage.filters import threshold_otsu
    from skimage.metrics import structural_similarity

    from subcell.labelfree.cell_prior import cell_depth, deepest_in_cells, nuclei_by_cell

    p, t, truth, cells = m["pred"].astype(np.float64), m["target"], m["truth"], m["cells"]
    zp, zt = (p - p.mean()) / p.std(), (t - t.mean()) / t.std()
    per = [np.corrcoef(p[cells == i], t[cells == i])[0, 1] for i in (1, 2, 9)]
    mse = float(np.mean((zp - zt) ** 2))
    ssims = [structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=float(b.max() - b.min())) for a, b in zip(zp, zt, strict=True)]  # fmt: skip
    prob = m["prob"].astype(np.float64)
    inside = cells > 0
    otsu = float(threshold_otsu(prob[inside]))
    truth_in = (m["nuclei"] > 0) & inside
    share = truth_in.sum() / inside.sum()
    depth = np.stack([deepest_in_cells(cell_depth(c, VS), c, share) for c in cells])
    nuclei = np.stack([nuclei_by_cell(a, c, VS) > 0 for a, c in zip(m["prob"], cells, strict=True)])

    def dice(seg: np.ndarray) -> float:
        return 2 * float((seg & truth_in).sum()) / (seg.sum() + truth_in.sum())

    return {
        "pearson_r": float(np.corrcoef(p.ravel(), t.ravel())[0, 1]),
        "pearson_r_truth": float(np.corrcoef(p.ravel(), truth.ravel())[0, 1]),
        "noise_ceiling": math.sqrt(1 - np.var(t - truth) / np.var(t)),
        "pearson_r_cell_mean": float(np.mean(per)),
        "pearson_r_cell_median": float(np.median(per)),
        "ssim": float(np.mean(ssims)),
        "psnr_db": 10 * math.log10(float(zt.max() - zt.min()) ** 2 / mse),
        "nrmse": math.sqrt(mse) / float(zt.std()),
        "otsu_threshold": otsu,
        "dice_otsu": dice((prob > otsu) & inside),
        "dice_p50": dice((prob > 0.5) & inside),
        "dice_cell_depth_baseline": dice(depth),
        "dice_nuclei_in_cells": dice(nuclei),
    }


@pytest.mark.parametrize("slabs", [False, True])
def test_a_time_lapse_scored_by_parts_equals_the_whole_volume(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, slabs: bool
) -> None:
    """Frames small enough are read whole, one at a time; with ``slabs`` none is (as a frame beyond the cache): the
    frames, stored in chunks of two planes, are read two planes at a time, and summed over pieces of 1,500 voxels
    (cells span pieces, slabs and frames; SSIM goes block by block)."""
    import subcell.image
    from subcell.labelfree import cell_prior, evaluate

    if slabs:
        monkeypatch.setattr(evaluate, "FRAME_CACHE_BYTES", 0)
        monkeypatch.setattr(cell_prior, "SLAB_BYTES", 2 * 40 * 44 * evaluate.BYTES_PER_VOXEL)
        monkeypatch.setattr(pieces, "PIECE_VOXELS", 1500)
    m = _movie(rng)
    want = _expected(m)
    computed: list[tuple[int, ...]] = []
    materialize = subcell.image.materialize

    def spy(data: Any) -> np.ndarray:
        out = materialize(data)
        computed.append(out.shape)
        return out

    monkeypatch.setattr(subcell.image, "materialize", spy)
    planes = 2 if slabs else None
    target = _lazy(("dna", m["target"]), ("dna_noise_free", m["truth"]), planes=planes)
    cells = _lazy(("cells", m["cells"]), planes=planes)
    (row,) = evaluate_prediction(_lazy(("dna", m["pred"]), planes=planes), target, cells=cells)
    (mask,) = evaluate_prediction(_lazy(("nucleus", m["prob"]), planes=planes), _lazy(("nucleus", m["nuclei"]),
                                  planes=planes), cells=cells, mask_target=True)  # fmt: skip
    for key in ("pearson_r", "pearson_r_truth", "noise_ceiling", "pearson_r_cell_mean", "pearson_r_cell_median"):
        assert row[key] == pytest.approx(want[key], abs=1e-12), key
    for key in ("ssim", "psnr_db", "nrmse"):
        assert row[key] == pytest.approx(want[key], rel=1e-9), key
    assert row["cells"] == 3 and row["noise_source"] == "noise-free truth" and row["voxels"] == m["pred"].size
    for key in ("otsu_threshold", "dice_otsu", "dice_p50", "dice_cell_depth_baseline", "dice_nuclei_in_cells"):
        assert mask[key] == pytest.approx(want[key], abs=1e-12), key
    frame = math.prod(m["pred"].shape[1:])
    if slabs:  # two planes at a time; deeper only SSIM's blocks (11-plane window) and cells' boxes, cut laterally
        assert computed and all(s[-3] <= 2 or s[-2] * s[-1] < 40 * 44 for s in computed), computed
    else:  # one timepoint at a time: at most a frame of two channels
        assert computed and all(math.prod(s) <= 2 * frame for s in computed), computed


def test_a_single_frame_is_read_once_for_every_pass(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two structures scored against a one-frame field: each prediction channel is read once, the target's
    channels and the cells once for both rows, over the five passes of each."""
    import subcell.image

    m = {k: v[:1] for k, v in _movie(rng).items()}
    reads: list[tuple[int, ...]] = []
    materialize = subcell.image.materialize

    def spy(data: Any) -> np.ndarray:
        reads.append(np.shape(data))
        return materialize(data)

    monkeypatch.setattr(subcell.image, "materialize", spy)
    pred = _lazy(("nucleus", m["prob"]), ("membrane", m["prob"] * 0.5 + m["cells"]))
    target = _lazy(("nucleus", m["nuclei"]), ("membrane", m["cells"] > 0))
    rows = evaluate_prediction(pred, target, cells=_lazy(("cells", m["cells"])), mask_target=True)
    assert [r["structure"] for r in rows] == ["nucleus", "membrane"] and "dice_nuclei_in_cells" in rows[1]
    assert len(reads) == 4  # the two prediction channels, the target's two channels at once, the cells


def test_cells_follow_the_one_label_rule(rng: np.random.Generator) -> None:
    """Cells stored as floats of whole numbers score as their integer ids; fractional values are refused, not
    truncated (:func:`subcell.io.as_labels`)."""
    from subcell.errors import ValueRangeError

    m = {k: v[:1] for k, v in _movie(rng).items()}
    pred, target = _lazy(("dna", m["pred"])), _lazy(("dna", m["target"]))
    (ints,) = evaluate_prediction(pred, target, cells=_lazy(("cells", m["cells"])))
    (floats,) = evaluate_prediction(pred, target, cells=_lazy(("cells", m["cells"].astype(np.float32))))
    known = lambda row: {k: v for k, v in row.items() if v == v}  # noqa: E731 (no noise source: NaN ceilings)
    assert known(floats) == known(ints) and ints["cells"] == 3
    with pytest.raises(ValueRangeError, match="fractional"):
        evaluate_prediction(pred, target, cells=_lazy(("cells", m["cells"] + np.float32(0.5))))


def test_inputs_on_a_finer_grid_are_resampled_a_few_planes_at_a_time_as_the_whole_frame_is(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target, its cells and nuclei at twice the prediction's lateral resolution (and a plane more: cropped): read
    by slabs, each input is resampled onto the prediction's grid as read, and scores what the whole frames resampled
    in memory score."""
    from scipy import ndimage as ndi

    from subcell.labelfree import cell_prior, evaluate

    m = _movie(rng)
    fine = (0.5, 0.1, 0.1)
    up = {k: np.repeat(np.repeat(m[k], 2, axis=2), 2, axis=3) for k in ("cells", "nuclei")}
    up = {k: np.concatenate([v, v[:, -1:]], axis=1) for k, v in up.items()}  # 13 planes against 12
    target = ndi.zoom(m["target"], (1, 13 / 12, 2, 2), order=1) + rng.normal(0, 1, (3, 13, 80, 88))

    def lazy(name: str, a: np.ndarray, vs: tuple[float, ...]) -> Image:
        import dask.array as da

        return Image(da.from_array(a[:, None], chunks=(1, 1, 2, *a.shape[2:])), voxel_size=vs, dims="TCZYX",
                     channel_names=[name])  # fmt: skip

    def score() -> tuple[dict[str, Any], dict[str, Any]]:
        cells = lazy("cells", up["cells"], fine)
        (row,) = evaluate_prediction(lazy("dna", m["pred"], VS), lazy("dna", target, fine), cells=cells)
        (mask,) = evaluate_prediction(lazy("nucleus", m["prob"], VS), lazy("nucleus", up["nuclei"], fine),
                                      cells=cells, mask_target=True)  # fmt: skip
        return row, mask

    whole = score()  # each frame resampled whole (align_to) and kept
    monkeypatch.setattr(evaluate, "FRAME_CACHE_BYTES", 0)
    monkeypatch.setattr(cell_prior, "SLAB_BYTES", 2 * 40 * 44 * evaluate.BYTES_PER_VOXEL)
    calls: list[tuple[int, int]] = []
    from subcell.transforms import align

    aligned = align.aligned_lazily

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((args[1], kwargs["chunk_z"]))
        return aligned(*args, **kwargs)

    monkeypatch.setattr(align, "aligned_lazily", spy)
    from subcell.io import _atomic

    made: list[str] = []
    scratch_array = _atomic.scratch_array
    monkeypatch.setattr(_atomic, "scratch_array", lambda folder, name, **kw: made.append(name) or scratch_array(
        folder, name, **kw))  # fmt: skip
    by_slabs = score()
    # each input resampled into scratch once a frame; the last pass copies only what is not there (the prediction)
    assert sorted(set(made)) == ["cells_0", "pred", "target_0"] and "t" not in made
    assert calls and {z for _, z in calls} == {2}  # resampled as read, a stored chunk layer (two planes) at a time
    for got, want in zip(by_slabs, whole, strict=True):
        assert got["cells"] == want["cells"] and got["voxels"] == want["voxels"]
        for key, value in want.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
    assert whole[1]["dice_otsu"] > 0.5 and whole[0]["pearson_r"] > 0.5  # the grids were matched, not misread
