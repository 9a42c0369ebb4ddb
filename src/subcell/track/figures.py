"""The lineage figure: every track a ribbon over time, daughters drawn below their parent, joined at divisions."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["lineage_order", "lineage_png"]


def lineage_order(lineage: Any) -> list[int]:
    """Track ids in depth-first lineage order (each root, then its daughters' subtrees), roots by first frame."""
    children: dict[int, list[int]] = {}
    for r in lineage.sort_values(["start", "track_id"]).itertuples():
        children.setdefault(int(r.parent_track), []).append(int(r.track_id))
    known = set(lineage["track_id"].astype(int))
    roots = [t for p, kids in children.items() if p == 0 or p not in known for t in kids]
    order: list[int] = []
    stack = sorted(roots, key=lambda t: (int(lineage.set_index("track_id").loc[t, "start"]), t))[::-1]
    while stack:
        tid = stack.pop()
        order.append(tid)
        stack.extend(children.get(tid, [])[::-1])
    return order


def lineage_png(table: Any, lineage: Any, *, time_interval_s: float | None = None, state: str | None = None,
                max_tracks: int = 120) -> bytes:  # fmt: skip
    """PNG of the lineages: one row per track (lineage order), a ribbon over the frames it is present, coloured by
    ``state`` (a column of ``table``) when given, else by generation; divisions join parent and daughters."""
    from subcell.plotting import png_bytes, subplots

    order = lineage_order(lineage)[:max_tracks]
    row = {tid: i for i, tid in enumerate(order)}
    scale = (time_interval_s / 60.0) if time_interval_s else 1.0
    fig, ax = subplots(figsize=(9, max(2.5, 0.16 * len(order) + 1)))
    tab = table[table["track_id"].isin(row)]
    if state is not None and state in tab.columns:
        values = tab[state].astype(str)
        names = sorted(values.unique())
        palette = {n: f"C{i % 10}" for i, n in enumerate(names)}
        colors = [palette[v] for v in values]
        for n, c in palette.items():
            ax.plot([], [], color=c, lw=6, label=n)
        ax.legend(title=state, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    else:
        colors = [f"C{int(g) % 10}" for g in tab["generation"]]
    # one ribbon piece per object and frame, [t - ½, t + ½]: consecutive frames join into a ribbon, gaps show
    from matplotlib.collections import LineCollection

    t = tab["t"].to_numpy(float)
    y = tab["track_id"].map(row).to_numpy(float)
    segments = np.stack([np.column_stack([(t - 0.5) * scale, y]), np.column_stack([(t + 0.5) * scale, y])], axis=1)
    ax.add_collection(LineCollection(list(segments), colors=colors, linewidths=5, capstyle="butt"))
    ax.set_xlim((float(table["t"].min()) - 1) * scale, (float(table["t"].max()) + 1) * scale)
    ax.set_ylim(-1, len(order))
    lin = lineage.set_index("track_id")
    for tid in order:
        parent = int(lin.loc[tid, "parent_track"])
        if parent in row:
            x0, x1 = (float(lin.loc[parent, "end"]) + 0.5) * scale, (float(lin.loc[tid, "start"]) - 0.5) * scale
            ax.plot([x0, x1], [row[parent], row[tid]], color="0.3", lw=0.8)
    ax.set_yticks(range(len(order)), [str(t) for t in order], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("time (min)" if time_interval_s else "frame")
    ax.set_ylabel("track (lineage order)")
    ax.set_title(f"{len(order)} tracks, {int((lineage['parent_track'] > 0).sum())} daughters")
    return png_bytes(fig)
