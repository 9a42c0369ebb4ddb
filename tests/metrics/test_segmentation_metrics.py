from __future__ import annotations

import numpy as np
import pytest

from subcell.errors import ValueRangeError
from subcell.metrics import dice, iou, match_instances


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
