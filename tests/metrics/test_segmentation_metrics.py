from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from subcell.errors import ValueRangeError
from subcell.metrics import dice, iou, match_instances
from tests.conftest import StoredArray


def test_dice_and_iou_on_hand_built_masks() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True  # 8 pixels
    b[1:3] = True  # 8 pixels, 4 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert iou(a, b) == pytest.approx(4 / 12)
    assert dice(np.zeros(3), np.zeros(3)) == 1.0
    with pytest.raises(ValueRangeError, match="shape"):
        dice(a, b[:3])


def test_instance_matching_counts_and_ap_convention() -> None:
    truth = np.zeros((10, 10), np.int32)
    truth[0:4, 0:4] = 1  # matched well by pred 5
    truth[6:10, 6:10] = 2  # half covered by pred 6 (IoU 0.5: a match at 0.5, not above)
    truth[0:3, 7:10] = 3  # missed
    pred = np.zeros_like(truth)
    pred[0:4, 0:4] = 5
    pred[8:10, 6:10] = 6
    pred[5:6, 0:3] = 7  # false positive
    m = match_instances(pred, truth)
    assert (m.tp[0], m.fp[0], m.fn[0]) == (2, 1, 1)  # at IoU 0.5
    assert (m.tp[1], m.fp[1], m.fn[1]) == (1, 2, 2)  # at IoU 0.6
    assert m.precision(0.5) == pytest.approx(2 / 3)
    assert m.recall(0.6) == pytest.approx(1 / 3)
    assert m.f1(0.6) == pytest.approx(2 / 6)
    assert m.average_precision(0.5) == pytest.approx(2 / 4)
    objs = m.objects().set_index("true_id")
    assert objs.loc[2, "pred_id"] == 6 and objs.loc[2, "iou"] == pytest.approx(0.5)
    assert objs.loc[3, "pred_id"] == 0
    table = m.table()
    assert list(table.iou_threshold) == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert table.tp.is_monotonic_decreasing


def test_assignment_is_one_to_one_and_optimal() -> None:
    truth = np.zeros((1, 6, 6), np.int32)
    truth[0, :, :3] = 1
    truth[0, :, 3:] = 2
    pred = np.zeros_like(truth)
    pred[0, :, :4] = 9  # overlaps both, better with 1
    pred[0, :, 4:] = 8
    m = match_instances(pred, truth)
    pairs = {t: p for t, p, _ in m.pairs}
    assert pairs == {1: 9, 2: 8}


def test_labels_must_be_integers() -> None:
    with pytest.raises(ValueRangeError, match="integer label image"):
        match_instances(np.zeros((3, 3), np.float32), np.zeros((3, 3), np.int32))


def test_each_threshold_gets_its_own_matching() -> None:
    """The review's case: truth 1 = columns 0–16, truth 2 = 16–100; prediction 7 = 2–70, 8 = 70–100.
    7 overlaps truth 2 with IoU 0.55 — a true positive at 0.5, which one assignment for all thresholds lost."""
    truth = np.zeros((1, 100), np.int32)
    truth[0, :16], truth[0, 16:] = 1, 2
    pred = np.zeros_like(truth)
    pred[0, 2:70], pred[0, 70:] = 7, 8
    m = match_instances(pred, truth)
    assert m.tp[0] == 1 and m.tp[1] == 0
    assert (2, 7, pytest.approx(54 / 98)) in m.pairs


def _brute_force_tp(pred: np.ndarray, truth: np.ndarray, threshold: float) -> int:
    """Largest number of one-to-one pairs with IoU >= threshold, by trying every assignment."""
    import itertools

    t_ids = [i for i in np.unique(truth) if i]
    p_ids = [i for i in np.unique(pred) if i]
    ok = {
        (a, b)
        for a in t_ids
        for b in p_ids
        if np.logical_and(truth == a, pred == b).sum() / np.logical_or(truth == a, pred == b).sum() >= threshold
    }
    best = 0
    for k in range(min(len(t_ids), len(p_ids)), 0, -1):
        for ts in itertools.combinations(t_ids, k):
            for ps in itertools.permutations(p_ids, k):
                if all((a, b) in ok for a, b in zip(ts, ps, strict=True)):
                    return k
    return best


@given(
    truth=arrays(np.int32, (3, 8), elements=st.integers(0, 3)),
    pred=arrays(np.int32, (3, 8), elements=st.integers(0, 3)),
    threshold=st.sampled_from([0.1, 0.3, 0.5, 0.6, 0.9]),
)
@settings(max_examples=150, deadline=None)
def test_matching_equals_brute_force(truth: np.ndarray, pred: np.ndarray, threshold: float) -> None:
    m = match_instances(pred, truth, thresholds=[threshold])
    expected = _brute_force_tp(pred, truth, threshold)
    assert m.tp[0] == expected
    assert m.fp[0] == len(np.unique(pred[pred > 0])) - expected
    assert m.fn[0] == len(np.unique(truth[truth > 0])) - expected


@given(
    truth=arrays(np.int32, (3, 8), elements=st.integers(0, 3)),
    pred=arrays(np.int32, (3, 8), elements=st.integers(0, 3)),
    threshold=st.sampled_from([0.1, 0.5, 0.9]),
)
@settings(max_examples=80, deadline=None)
def test_counting_row_by_row_equals_brute_force(truth: np.ndarray, pred: np.ndarray, threshold: float) -> None:
    from subcell.metrics import pieces

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pieces, "PIECE_VOXELS", 8)  # one row per piece: objects span pieces
        m = match_instances(pred, truth, thresholds=[threshold])
        d, j = dice(pred, truth), iou(pred, truth)
    assert m.tp[0] == _brute_force_tp(pred, truth, threshold)
    p, t = pred != 0, truth != 0
    assert d == (1.0 if not (p.sum() + t.sum()) else 2 * (p & t).sum() / (p.sum() + t.sum()))
    assert j == (1.0 if not (p | t).sum() else (p & t).sum() / (p | t).sum())


def test_a_large_volume_is_counted_in_bounded_pieces_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy import ndimage as ndi

    import subcell.metrics.segmentation as seg
    from subcell.metrics import pieces

    rng = np.random.default_rng(1)

    def blobs(shape: tuple[int, ...]) -> np.ndarray:
        lab, k = ndi.label(ndi.gaussian_filter(rng.random(shape), 2) > 0.55)
        ids = rng.permutation(np.arange(1, k + 1)).astype(np.uint64) * 1_000_003 + 2**40  # ids beyond 32 bits
        return np.where(lab > 0, ids[np.maximum(lab - 1, 0)], 0).astype(np.uint64)

    truth = blobs((24, 48, 40))
    pred = np.roll(truth, 1, axis=2) * 3 + 5  # the same objects moved by a voxel and renamed, plus ...
    pred[pred == 5] = 0
    pred[:4][blobs((4, 48, 40)) > 0] = 7  # ... one object over some of them
    whole = match_instances(pred, truth), dice(pred, truth), iou(pred, truth)
    sizes: list[int] = []
    cut = seg._pieces

    def spy(p: np.ndarray, t: np.ndarray):  # type: ignore[no-untyped-def]
        for a, b in cut(p, t):
            sizes.append(a.size)
            yield a, b

    monkeypatch.setattr(pieces, "PIECE_VOXELS", 5000)  # 2 planes of 48x40 per piece
    monkeypatch.setattr(seg, "_pieces", spy)
    assert (match_instances(pred, truth), dice(pred, truth), iou(pred, truth)) == whole
    assert max(sizes) <= 5000 and len(sizes) == 3 * 12  # three passes over 12 pieces each
    assert whole[0].n_true > 5 and 0 < whole[0].tp[0] < whole[0].n_true and len(whole[0].pairs) == whole[0].n_true


def _moved_cells(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    truth, _ = ndi.label(ndi.gaussian_filter(rng.random(shape), 2) > 0.55)
    pred = np.where(np.roll(truth, 1, axis=-1) > 0, np.roll(truth, 1, axis=-1) * 3 + 1, 0)
    pred[..., :3, :][pred[..., :3, :] > 0] = 2  # some objects merged in a few rows
    return pred.astype(np.int32), truth.astype(np.int32)


def test_stored_and_dask_labels_are_scored_a_chunk_block_at_a_time_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    import dask.array as da

    from subcell.metrics import pieces

    pred, truth = _moved_cells((12, 48, 40), seed=2)
    whole = match_instances(pred, truth)
    assert whole.dice() == dice(pred, truth) and whole.iou() == iou(pred, truth)  # the matching's own counts
    assert 0 < whole.tp[0] < whole.n_true and 0 < whole.dice() < 1
    monkeypatch.setattr(pieces, "PIECE_VOXELS", 4 * 24 * 40)  # a block: 4 planes of two chunk rows, 1/6 of the volume
    p, t = StoredArray(pred, (4, 12, 20)), StoredArray(truth, (4, 12, 20))
    assert match_instances(p, t) == whole
    assert max(p.reads + t.reads) <= 4 * 24 * 40 and len(p.reads) == len(t.reads) == 6  # each block read once
    lazy = match_instances(da.from_array(pred, chunks=(4, 12, 20)), da.from_array(truth, chunks=(3, 48, 40)))
    assert lazy == whole and dice(da.from_array(pred, chunks=5), truth) == whole.dice()


def test_a_stored_time_lapse_is_read_once_frame_by_frame() -> None:
    from subcell.metrics import evaluate_frames

    pred, truth = _moved_cells((3, 6, 32, 32), seed=4)
    per_frame, table = evaluate_frames(pred, truth)
    p, t = StoredArray(pred, (1, 6, 32, 32)), StoredArray(truth, (1, 6, 32, 32))
    lazy_frames, lazy_table = evaluate_frames(p, t)
    assert lazy_frames.equals(per_frame) and lazy_table.equals(table)
    assert p.reads == t.reads == [6 * 32 * 32] * 3  # one read of each frame: Dice and IoU come with the matching
    for i in range(3):
        assert per_frame.dice[i] == dice(pred[i], truth[i]) and per_frame.iou[i] == iou(pred[i], truth[i])


def test_ctc_seg_counts_a_match_only_above_half_the_true_object() -> None:
    """SEG: each true object's Jaccard with the predicted object covering more than half of it, else 0."""
    from scipy import ndimage as ndi

    from subcell.metrics import evaluate_frames

    truth = np.zeros((1, 4, 10), np.int32)
    truth[0, 0, :] = 1  # 10 voxels
    truth[0, 2, :] = 2  # 10 voxels
    pred = np.zeros_like(truth)
    pred[0, 0, :6] = 5  # 6 of 10: Jaccard 6 / 12 with the 2 extra voxels below
    pred[0, 1, :2] = 5
    pred[0, 2, :5] = 7  # exactly half: no match, 0
    m = match_instances(pred, truth)
    assert m.seg() == pytest.approx((6 / 12 + 0) / 2)
    assert np.isnan(match_instances(pred, np.zeros_like(truth)).seg())
    # over frames: the mean over every true object of every frame, as the tracking SEG (cross-checked with
    # py-ctcmetrics in tests/track)
    from subcell.track.evaluate import seg_score

    rng = np.random.default_rng(2)
    t = np.stack([ndi.label(rng.random((6, 20, 20)) > 0.6)[0] for _ in range(3)])
    p = np.stack([ndi.label(ndi.binary_dilation(f > 0))[0] for f in t])
    per_frame, table = evaluate_frames(p, t)
    assert table.attrs["seg"] == pytest.approx(seg_score(t, p)[0]) and 0 < table.attrs["seg"] < 1
    assert per_frame.seg.tolist() == pytest.approx([match_instances(p[i], t[i]).seg() for i in range(3)])
