"""The Cell Tracking Challenge's biological measures (Ulman et al. 2017) and its overall scores.

CT (complete tracks: true tracks reconstructed whole, F1 of tracks), TF (track fractions: the longest correctly
followed part of each true track), BC(i) (branching correctness: divisions found within i frames, F1) and CCA (cell
cycle accuracy: the distribution of cycle lengths of the tracks that both start and end with a division) average
into BIO; OP_CLB = ½(LNK + BIO), OP_CTB = ½(SEG + TRA), OP_CSB = ½(SEG + DET). The measures are py-ctcmetrics'
(the challenge's own Python port) on what subcell already found: both movies' tracks as CTC segments (a gap cuts a
track, :func:`~subcell.track.tracks.ctc_segment_table`) and the CTC rule's matching of each frame, so no frame is
read again. A measure that needs divisions is None where the truth has none or they are unknown; BIO averages the
others, as the challenge does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subcell.errors import ValueRangeError

__all__ = ["bio_scores", "overall_scores"]


def bio_scores(pred_table: Any, truth_table: Any, ctc_pairs: list[tuple[int, int, int]], *, n_frames: int,
               frame_tolerance: int, divisions_known: bool = True) -> dict[str, float | None]:  # fmt: skip
    """CT, TF, BC (within ``frame_tolerance`` frames), CCA and BIO of predicted tracks against true ones (tracks
    tables, ``track_id, t, parent_track``), given the CTC rule's matched pairs ``(t, true track id, predicted track
    id)`` of every frame."""
    try:
        from ctc_metrics.metrics import bc, bio, cca, ct, raw_division_metrics, tf
    except ImportError:
        raise ValueRangeError("the CTC biological measures need py-ctcmetrics: pip install 'subcell[track]'",
                              field="evaluate") from None  # fmt: skip
    from subcell.track.tracks import ctc_segment_table

    (truth_segs, truth_rows), (pred_segs, pred_rows) = ctc_segment_table(truth_table), ctc_segment_table(pred_table)
    segment = [dict(zip(zip(s["t"].tolist(), s["label"].tolist(), strict=True), s["track_id"].tolist(), strict=True))
               for s in (truth_segs, pred_segs)]  # fmt: skip
    labels_ref: list[list[int]] = [[] for _ in range(n_frames)]
    for (t, _), sid in sorted(segment[0].items(), key=lambda kv: (kv[0][0], kv[1])):
        labels_ref[t].append(int(sid))
    pairs: list[list[tuple[int, int]]] = [[] for _ in range(n_frames)]
    for t, true_id, pred_id in ctc_pairs:
        pairs[t].append((int(segment[0][(t, true_id)]), int(segment[1][(t, pred_id)])))
    mapped_ref = [[r for r, _ in sorted(frame)] for frame in pairs]
    mapped_comp = [[c for _, c in sorted(frame)] for frame in pairs]
    ref = truth_rows[["L", "B", "E", "P"]].to_numpy(np.int64).reshape(-1, 4)
    comp = pred_rows[["L", "B", "E", "P"]].to_numpy(np.int64).reshape(-1, 4)
    out: dict[str, float | None] = {
        "CT": _number(ct(comp, ref, labels_ref, mapped_ref, mapped_comp)),
        "TF": _number(tf(ref, labels_ref, mapped_ref, mapped_comp)),
        "BC": None,
        "CCA": None,
    }
    if divisions_known:
        tp, fp, fn = raw_division_metrics(comp, ref, mapped_ref, mapped_comp, i=frame_tolerance)
        out["BC"] = _number(bc(tp, fp, fn))
        out["CCA"] = _number(cca(comp, ref))
    out["BIO"] = _number(bio(out["CT"], out["TF"], out["BC"], out["CCA"]))
    return out


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def overall_scores(scores: dict[str, Any]) -> dict[str, float | None]:
    """OP_CTB, OP_CSB and OP_CLB (py-ctcmetrics' definitions) of scores holding SEG, TRA, DET, LNK and BIO (None
    where BIO is)."""
    from ctc_metrics.metrics import op_clb, op_csb, op_ctb

    return {"OP_CTB": float(op_ctb(scores["SEG"], scores["TRA"])), "OP_CSB": float(op_csb(scores["SEG"], scores["DET"])),
            "OP_CLB": None if scores["BIO"] is None else float(op_clb(scores["LNK"], scores["BIO"]))}  # fmt: skip
