"""What was corrected in a time-lapse before it was measured: the drift table of ``subcell drift`` and the
bleaching table of ``subcell bleach``, recognised by their columns, said in a line and drawn over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BLEACH_COLUMNS", "DRIFT_TABLE_COLUMNS", "bleach_png", "correction_lines", "drift_png"]

DRIFT_TABLE_COLUMNS = ("t", "drift_z_um", "drift_y_um", "drift_x_um")
BLEACH_COLUMNS = ("channel", "t", "signal", "factor")


def drift_png(table: Any) -> bytes:
    """The drift along z, y and x (µm) over the frames."""
    from subcell.plotting import png_bytes, subplots

    fig, ax = subplots(figsize=(6, 3))
    for axis in "zyx":
        ax.plot(table["t"], table[f"drift_{axis}_um"], marker=".", label=axis)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("frame")
    ax.set_ylabel("drift (µm)")
    ax.legend(frameon=False)
    return png_bytes(fig)


def bleach_png(table: Any) -> bytes:
    """Each channel's signal above the background relative to frame 0's (points) and the level the applied
    factors assume (1 / factor, line)."""
    from subcell.plotting import png_bytes, subplots

    fig, ax = subplots(figsize=(6, 3))
    for i, (name, part) in enumerate(table.groupby("channel", sort=False)):
        signal = part["signal"].to_numpy(np.float64)
        ax.plot(part["t"], signal / signal[0], ".", color=f"C{i}", label=f"{name}: signal")
        ax.plot(part["t"], 1.0 / part["factor"].to_numpy(np.float64), "-", color=f"C{i}", label=f"{name}: 1 / factor")
    ax.set_xlabel("frame")
    ax.set_ylabel("relative to frame 0")
    ax.legend(frameon=False, fontsize=7)
    return png_bytes(fig)


def correction_lines(path: Path, table: Any) -> tuple[list[str], bytes] | None:
    """A report line and figure for a drift or bleaching table (None for any other table)."""
    columns = set(table.columns)
    if set(DRIFT_TABLE_COLUMNS) <= columns and len(table):
        from subcell.transforms.drift import drift_extent

        d = table[list(DRIFT_TABLE_COLUMNS[1:])].to_numpy(np.float64)
        return [f"{path.name}: stage drift over {len(d)} frames, {drift_extent(d, steps=True)}"], drift_png(table)
    if set(BLEACH_COLUMNS) <= columns and len(table):
        lines = []
        for name, part in table.groupby("channel", sort=False):
            signal = part["signal"].to_numpy(np.float64)
            lines.append(f"{path.name}: {name} bleached to {signal[-1] / signal[0]:.0%} of frame 0's signal by the "
                         f"last frame; largest factor applied {part['factor'].max():.3f}")  # fmt: skip
        return lines, bleach_png(table)
    return None
