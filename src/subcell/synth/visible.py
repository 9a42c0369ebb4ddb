"""The tracking truth of what a synthetic time-lapse shows, where its colony extends beyond the field
(``cells.beyond_field_um``): cells drift out of view and back, and divide out of view.

A tracker (and a person annotating the movie) cannot know that a cell coming back into the field is one that left
it, nor that a cell drifting in was born of a division it never saw. So the truth is made of what is visible: each
unbroken run of frames in which a cell has voxels in the field is one track (a cell seen again after leaving gets
a new id from its return on, in its cell and nucleus labels and in the cell table), and a track has a parent only
where the division was in view (the parent in the frame before the daughter's birth, the daughter from its birth
on). A cell whose edge stays in view while its nucleus is out of it keeps its id: its nucleus track has a gap, as a
person following the cell would annotate it. Where every cell stays in view (the default colony inside the field)
nothing changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["visible_tracks"]


def visible_tracks(
    rows: list[dict[str, Any]],
    labels: dict[str, list[np.ndarray]],
    parents: dict[int, int],
    born: dict[int, int],
    next_id: int,
) -> Any:
    """Rename, in place, the ids of the runs of frames after a cell's first in view (in ``rows``, the cell table's
    rows — one per cell in view and frame — with ``frame``, ``cell_id`` and ``parent_id``, stated in a daughter's
    first frame; and in the integer label frames of ``labels``, e.g. ``cell`` and ``nucleus``) to new ids from
    ``next_id`` on; returns the lineage table (``track_id, parent_id, first_frame, last_frame``). ``parents``: a daughter's id → its parent's; ``born``: → the
    frame it was born in."""
    import pandas as pd

    frames: dict[int, list[int]] = {}
    for r in rows:
        frames.setdefault(int(r["cell_id"]), []).append(int(r["frame"]))
    truth: dict[tuple[int, int], int] = {}  # (cell id, frame) → track id
    for cid in sorted(frames):
        seen = sorted(frames[cid])
        run_id = cid
        for i, t in enumerate(seen):
            if i and t != seen[i - 1] + 1:  # back in view after leaving it: a new track
                run_id, next_id = next_id, next_id + 1
            truth[(cid, t)] = run_id
    track_parent: dict[int, int] = {}
    for (cid, _), tid in truth.items():
        if tid not in track_parent:  # (a run after a cell's first is not a birth)
            b = born.get(cid)
            seen_born = tid == cid and b is not None and min(frames[cid]) == b
            track_parent[tid] = truth.get((parents.get(cid, 0), b - 1), 0) if seen_born and b is not None else 0
    for r in rows:
        tid = truth[(int(r["cell_id"]), int(r["frame"]))]
        r["cell_id"], r["parent_id"] = tid, track_parent[tid] if r["parent_id"] else 0
    by_frame: dict[int, dict[int, int]] = {}
    for (cid, t), tid in truth.items():
        if tid != cid:
            by_frame.setdefault(t, {})[cid] = tid
    for t, renamed in by_frame.items():
        for stack in labels.values():
            frame = stack[t]
            lut = np.arange(max(int(frame.max()), max(renamed)) + 1, dtype=frame.dtype)
            lut[list(renamed)] = list(renamed.values())
            stack[t] = lut[frame]
    spans: dict[int, list[int]] = {}
    for (_, t), tid in truth.items():
        spans.setdefault(tid, []).append(t)
    return pd.DataFrame(
        [{"track_id": tid, "parent_id": track_parent[tid], "first_frame": min(ts), "last_frame": max(ts)}
         for tid, ts in sorted(spans.items())],
        columns=["track_id", "parent_id", "first_frame", "last_frame"],
    )  # fmt: skip
