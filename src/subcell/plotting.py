"""Matplotlib (Agg) figures returned as PNG bytes, so compute modules never open files themselves."""

from __future__ import annotations

import io as _io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "LIMIT_SAMPLE_VOXELS",
    "OrthoPlanes",
    "PanelSummary",
    "contrast_limits",
    "middle_planes",
    "orthoviews_png",
    "overlapping_text",
    "panel_summary",
    "png_bytes",
    "subplots",
]

# Set (to anything) to make png_bytes refuse a figure whose texts overlap: the test suite sets it, so a figure
# with colliding titles or tick labels fails the tests that draw it.
CHECK_ENV = "SUBCELL_CHECK_FIGURES"


def subplots(*args: Any, **kwargs: Any) -> Any:
    """``plt.subplots`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def png_bytes(fig: Any, *, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes and close it."""
    import os

    import matplotlib.pyplot as plt

    if os.environ.get(CHECK_ENV):
        pairs = overlapping_text(fig)
        if pairs:
            plt.close(fig)
            raise ValueError(f"figure texts overlap: {pairs[:3]}")
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _drawn_texts(fig: Any) -> list[Any]:
    """The text artists a render of ``fig`` draws: titles, axis labels, the tick labels inside the view limits,
    texts and legends of every visible axes, and the figure's own texts (each once)."""
    texts: list[Any] = list(fig.texts)
    if getattr(fig, "_suptitle", None) is not None:
        texts.append(fig._suptitle)
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None)]
        texts += [ax.xaxis.label, ax.yaxis.label, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            tol = (hi - lo) * 1e-6
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if lo - tol <= tick.get_loc() <= hi + tol:
                    texts += [tick.label1, tick.label2]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            texts += [*legend.get_texts(), legend.get_title()]
    seen: set[int] = set()
    out = []
    for t in texts:
        if t is not None and id(t) not in seen and t.get_visible() and str(t.get_text()).strip():
            seen.add(id(t))
            out.append(t)
    return out


def overlapping_text(fig: Any) -> list[tuple[str, str]]:
    """Pairs of texts that a render of ``fig`` draws over each other (titles on tick labels, crowded ticks, ...)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = []
    for t in _drawn_texts(fig):
        try:
            bb = t.get_window_extent(renderer)
        except (RuntimeError, ValueError):
            continue
        if bb.width > 0 and bb.height > 0:
            boxes.append((str(t.get_text()), bb.shrunk(0.98, 0.9)))
    pairs = []
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1 :]:
            if a.overlaps(b):
                pairs.append((ta, tb))
    return pairs


def contrast_limits(vol: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> tuple[float, float]:
    lo, hi = (float(v) for v in np.percentile(vol, percentiles))
    return lo, hi if hi > lo else lo + 1.0


@dataclass(frozen=True)
class OrthoPlanes:
    """The three middle planes of a ``(Z, Y, X)`` volume as :func:`orthoviews_png` draws them, and the volume's
    shape: all a figure needs of a volume too large to hold (:func:`middle_planes` of a Dask array)."""

    xy: np.ndarray  # (Y, X), plane Z // 2
    xz: np.ndarray  # (Z, X), row Y // 2: z down
    yz: np.ndarray  # (Y, Z), column X // 2: z across, y down as in XY
    shape: tuple[int, int, int]

    def views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.xy, self.xz, self.yz

    def map(self, f: Any) -> OrthoPlanes:
        """The planes with ``f`` applied to each (a point-wise function of the values)."""
        return OrthoPlanes(f(self.xy), f(self.xz), f(self.yz), self.shape)

    @classmethod
    def of(cls, vol: Any) -> OrthoPlanes:
        """The middle planes of a NumPy, Dask or Zarr ``(Z, Y, X)`` volume, read (only they) in one pass."""
        import dask

        from subcell.image import dask_scheduler, is_lazy

        views = middle_planes(vol)
        if is_lazy(vol):
            views = dask.compute(*views, scheduler=dask_scheduler())
        xy, xz, yz = (np.asarray(v) for v in views)
        return cls(xy, xz, yz, tuple(int(s) for s in vol.shape))  # type: ignore[arg-type]


def middle_planes(vol: Any) -> tuple[Any, Any, Any]:
    """XY, XZ (z down) and YZ (z across, y down as in XY) through the middle of a ``(Z, Y, X)`` array, as slices
    of it (of a Dask array: still lazy)."""
    z, y, x = (s // 2 for s in vol.shape)
    return vol[z], vol[:, y, :], vol[:, :, x].T


# the contrast limits of a volume larger than this many voxels are the percentiles of every s-th row and column of
# each plane (at least this many voxels): a display setting, read without holding the volume
LIMIT_SAMPLE_VOXELS = 1 << 24


@dataclass(frozen=True)
class PanelSummary:
    """What the figure needs of a volume: its middle planes, mean and standard deviation (float64, over
    every voxel) and the values its contrast limits are the percentiles of (all of them, or a regular sample)."""

    planes: OrthoPlanes
    mean: float
    std: float
    sample: np.ndarray


def panel_summary(vol: Any) -> PanelSummary:
    """:class:`PanelSummary` of a ``(Z, Y, X)`` NumPy or Dask array in one pass over its blocks: a field that does
    not fit in memory is never held whole (mean and std are sums over blocks; the limits' sample is every s-th row and
    column of each plane once the volume has more than :data:`LIMIT_SAMPLE_VOXELS` voxels)."""
    import math

    import dask

    from subcell.image import dask_scheduler

    z, y, x = (int(n) for n in vol.shape)
    step = math.isqrt(z * y * x // LIMIT_SAMPLE_VOXELS) + 2  # rounding up rows and columns may allow one more
    while step > 1 and z * -(-y // step) * -(-x // step) < LIMIT_SAMPLE_VOXELS:
        step -= 1  # from just above √(voxels / limit) down to the first step that keeps the limit's voxels
    xy, xz, yz, mean, std, sample = dask.compute(
        *middle_planes(vol),
        vol.mean(dtype=np.float64),
        vol.std(dtype=np.float64),
        vol[:, ::step, ::step],
        scheduler=dask_scheduler(),
    )
    planes = OrthoPlanes(np.asarray(xy, np.float32), np.asarray(xz, np.float32), np.asarray(yz, np.float32), (z, y, x))
    return PanelSummary(planes, float(mean), float(std), np.asarray(sample, np.float32))


def orthoviews_png(
    panels: Mapping[str, np.ndarray | OrthoPlanes],
    voxel_size: Sequence[float],
    *,
    limits: Mapping[str, tuple[float, float]] | None = None,
    contours: Mapping[str, np.ndarray | OrthoPlanes] | None = None,
    columns: int = 3,
) -> bytes:
    """Orthogonal views of ``(Z, Y, X)`` volumes, one block per panel: XY with YZ to its right and XZ below
    (the microscopist's layout), every view at its physical aspect on one µm scale, all three with the panel's
    contrast limits (``limits[title]``, else its own 0.5–99.5 percentiles: give target and prediction the same
    limits to compare them; of the three planes for :class:`OrthoPlanes`). ``contours[title]`` is a label volume (or
    its :class:`OrthoPlanes`) whose object outlines are drawn on top."""
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    vz, vy, vx = (float(v) for v in voxel_size)
    first = next(iter(panels.values()))
    zdim, ydim, xdim = first.shape[0] * vz, first.shape[1] * vy, first.shape[2] * vx
    planes = {t: v if isinstance(v, OrthoPlanes) else OrthoPlanes.of(v) for t, v in panels.items()}
    outlines = {t: v if isinstance(v, OrthoPlanes) else OrthoPlanes.of(v) for t, v in (contours or {}).items()}
    n = len(panels)
    cols = min(columns, n)
    rows = -(-n // cols)
    scale = 3.0 / (xdim + zdim)  # inches per µm: a block is about 3 inches wide
    gap = 0.22 * (ydim + zdim)  # a spacer row between block rows keeps the labels of one off the titles of the next
    fig = plt.figure(figsize=(cols * (xdim + zdim) * scale * 1.35, rows * (ydim + zdim + gap) * scale * 1.3))
    grid = fig.add_gridspec(
        3 * rows, 2 * cols, width_ratios=[xdim, zdim] * cols, height_ratios=[ydim, zdim, gap] * rows,
        wspace=0.12, hspace=0.08,
    )  # fmt: skip
    for k, (title, vol) in enumerate(panels.items()):
        r, c = 3 * (k // cols), 2 * (k % cols)
        whole = np.concatenate([v.ravel() for v in planes[title].views()]) if isinstance(vol, OrthoPlanes) else vol
        lo, hi = (limits or {}).get(title) or contrast_limits(whole)
        lab = outlines.get(title)
        views = planes[title].views()
        slots = [grid[r, c], grid[r + 1, c], grid[r, c + 1]]
        extents = [(0, xdim, ydim, 0), (0, xdim, zdim, 0), (0, zdim, ydim, 0)]
        for j, (view, slot, ext) in enumerate(zip(views, slots, extents, strict=True)):
            ax = fig.add_subplot(slot)
            ax.imshow(view, cmap="gray", vmin=lo, vmax=hi, extent=ext, aspect="equal", interpolation="nearest")
            if lab is not None:
                edge = find_boundaries(lab.views()[j], mode="inner")
                overlay = np.zeros((*edge.shape, 4), np.float32)
                overlay[edge] = (1.0, 0.85, 0.0, 1.0)
                ax.imshow(overlay, extent=ext, aspect="equal", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_title(title, fontsize=8, loc="left")
                ax.set_ylabel(f"y · {ydim:.0f} µm", fontsize=7)
            elif j == 1:
                ax.set_xlabel(f"x · {xdim:.0f} µm (XZ below)", fontsize=7)
                ax.set_ylabel(f"z · {zdim:.0f} µm", fontsize=6)
            else:
                ax.set_xlabel("YZ", fontsize=7)
    return png_bytes(fig)
