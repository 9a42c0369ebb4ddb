"""Stage drift of a time-lapse: measured between frames by cross-correlation, and taken out.

A time-lapse drifts: the stage creeps, the dish settles, the focus wanders. Every object then moves by the same
displacement on top of its own motion: it adds to every speed and can carry links beyond the tracker's reach.
:func:`estimate_drift` measures where each frame's content lies relative to the first frame's, in µm, by
cross-correlation (scikit-image's ``phase_cross_correlation`` without its normalization, sub-voxel by an upsampled
DFT) of each frame against the previous one (the steps summed: a field whose cells move and divide changes little
from one frame to the next) or against the first (no summed error, for a field that stays alike). Plain
cross-correlation, not the phase correlation's whitened spectrum: its peak is the overlap-weighted mean
displacement of everything in the field, where the whitened peak follows single objects, so cells moving each
their own way pull it apart (a synthetic colony's lateral drift: 0.30 against 0.42 µm RMS on its DNA, 0.41
against 1.34 on its membranes; ``benchmarks/track/drift.py``). What is ours: each frame is tapered at its faces
first (a Tukey window) so the field's edges, the same in every frame, do not pull the peak to zero shift; the
estimate is refined on what is left and, against the first frame, starts from the previous frame's drift (see
``registered`` inside :func:`estimate_drift`); large frames are binned laterally to a bounded size; a blank frame
(no signal) takes no step.

:func:`correct_drift` moves each frame back by its drift: by whole voxels by default, so every value is kept as
it was (labels too), or with ``subpixel`` by linear interpolation of the remainder; on a canvas grown to hold
every frame whole (nothing is cut) or on the field's own grid. The canvas's first frame starts at ``origin`` voxels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from subcell.errors import ValueRangeError
from subcell.image import Image, VoxelSize

__all__ = ["DRIFT_COLUMNS", "DriftConfig", "correct_drift", "drift_canvas", "drift_extent", "estimate_drift"]

DRIFT_COLUMNS = ["drift_z_um", "drift_y_um", "drift_x_um"]
# A frame above this many voxels is binned laterally for the estimate (a 65 × 2048 × 2048 frame's complex128
# FFT alone would take 4 GB); the sub-voxel peak keeps the estimate finer than a binned voxel.
MAX_ESTIMATE_VOXELS = 1 << 24
TAPER_MIN_PLANES = 8  # an axis with fewer samples is not tapered (a Tukey window would blank half of 5 planes)
REFINE_ROUNDS = 6  # estimates of one step at most (the first and five of what is left)


class DriftConfig(BaseModel):
    """How ``subcell drift`` measures and takes out a time-lapse's drift."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    reference: Literal["previous", "first"] = Field(
        "previous", description="each frame against the previous one (steps summed) or against the first"
    )
    lateral_only: bool = Field(False, description="measure y and x only, on maximum projections along z")
    region_um: tuple[float, float, float, float] | None = Field(
        None, description="y0 y1 x0 x1 (µm from the field's corner): measure on this part of each frame only"
    )
    upsample_factor: int = Field(10, ge=1, le=100, description="sub-voxel precision of the peak: 1/this of a voxel")
    canvas: Literal["grow", "same"] = Field(
        "grow", description="grow: every frame whole on a larger grid; same: the field's grid, what drifts out is cut"
    )
    subpixel: bool = Field(False, description="move by the sub-voxel remainder too (linear interpolation)")


def _tapered(frame: np.ndarray) -> np.ndarray:
    """The frame less its mean, multiplied by a Tukey window (α = 0.5) along every axis long enough."""
    from scipy.signal.windows import tukey

    out = frame.astype(np.float32) - np.float32(frame.mean())
    for axis, n in enumerate(out.shape):
        if n >= TAPER_MIN_PLANES:
            shape = [1] * out.ndim
            shape[axis] = n
            out *= tukey(n, alpha=0.5).astype(np.float32).reshape(shape)
    return out


def _binned(frame: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` × ``factor`` lateral blocks (the last rows and columns that do not fill one dropped)."""
    if factor == 1:
        return frame
    z, y, x = frame.shape
    y, x = y - y % factor, x - x % factor
    f = frame[:, :y, :x].astype(np.float32)
    return f.reshape(z, y // factor, factor, x // factor, factor).mean(axis=(2, 4))


def estimate_drift(
    frames: Any,
    *,
    voxel_size: VoxelSize | Sequence[float],
    reference: Literal["previous", "first"] = "previous",
    lateral_only: bool = False,
    upsample: int = 10,
    method: Literal["cross", "phase"] = "cross",
    region_um: Sequence[float] | None = None,
) -> Any:
    """Where each frame's content lies relative to frame 0, in µm, from a ``(T, Z, Y, X)`` (or ``(T, Y, X)``)
    movie of one channel, NumPy or lazy (read a frame at a time).

    Returns
    -------
    pandas.DataFrame
        One row per frame: ``t``, :data:`DRIFT_COLUMNS` (0 at frame 0; ``drift_z_um`` 0 for a single plane or with
        ``lateral_only``, where the frames' maximum projections are compared) and ``error``, scikit-image's
        registration error of the frame, registered, against its reference (0 = a perfect match, 1 = none; NaN
        at frame 0 and for a frame without signal, which takes no step).

    ``method="phase"``: phase correlation (the whitened spectrum) instead of plain cross-correlation (see the
    module text for why cross-correlation is the default). ``region_um``: ``(y0, y1, x0, x1)`` in µm from the
    field's corner, the part of each frame the drift is measured on, every plane (what does not move of itself:
    fiducial beads, marks on the dish, a region without migrating cells), as Fiji's drift correction takes a ROI.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> field = rng.random((1, 64, 64)).astype(np.float32)
    >>> movie = np.stack([np.roll(field, (0, 2 * t, -t), axis=(0, 1, 2)) for t in range(3)])
    >>> d = estimate_drift(movie, voxel_size=(1.0, 0.5, 0.5))
    >>> d[["drift_y_um", "drift_x_um"]].round(2).values.tolist()
    [[0.0, 0.0], [1.0, -0.5], [2.0, -1.0]]
    """
    import pandas as pd
    from skimage.registration import phase_cross_correlation

    if method not in ("cross", "phase"):
        raise ValueRangeError(f"method must be 'cross' or 'phase', got {method!r}", field="method")
    if reference not in ("previous", "first"):
        raise ValueRangeError(f"reference must be 'previous' or 'first', got {reference!r}", field="reference")
    if frames.ndim == 3:
        frames = frames[:, None]
    if frames.ndim != 4:
        raise ValueRangeError(f"expected a (T, Z, Y, X) or (T, Y, X) movie, got {frames.ndim} axes", field="frames")
    n_t, n_z, n_y, n_x = (int(n) for n in frames.shape)
    if n_t < 2:
        raise ValueRangeError(f"a movie of {n_t} frame has no drift: it is measured between frames", field="T")
    vs = VoxelSize.of(voxel_size).as_tuple()
    cut = (slice(None), slice(None))
    if region_um is not None:
        cut = _region(region_um, vs, (n_y, n_x))
        n_y, n_x = cut[0].stop - cut[0].start, cut[1].stop - cut[1].start
    planar = lateral_only or n_z == 1
    factor = int(np.ceil(np.sqrt((1 if planar else n_z) * n_y * n_x / MAX_ESTIMATE_VOXELS)))
    um = np.array([vs[0], vs[1] * factor, vs[2] * factor])

    def prepared(t: int) -> np.ndarray | None:
        f = np.asarray(frames[t][(slice(None), *cut)])
        if f.dtype.kind == "f":
            f = np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)  # (a float canvas's NaN fill is no signal)
        if planar:
            f = f.max(axis=0, keepdims=True)
        f = _binned(f, factor)
        if not np.ptp(f) > 0:
            return None
        return f[0] if planar else f

    def registered(ref: np.ndarray, cur: np.ndarray, guess: np.ndarray) -> tuple[np.ndarray, float]:
        """The shift that registers ``cur`` onto ``ref`` (voxels), from ``guess`` and refined. Against the first
        frame, ``cur`` is first moved by the previous frame's shift: far from it, a field of cells of one size (a
        membrane channel) has side peaks that can outdo the true one as the overlap shrinks (measured: 15 µm RMS
        error, 61 µm at worst, on the synthetic colony without the guess). The correlation peak of finite,
        tapered frames lies short of the true shift (0.44 of a one-plane z drift where nuclei are as tall as the
        stack), so ``cur`` is moved by the estimate and what is left is measured again, ten times finer, until it
        is below half the precision asked for (``upsample``) or :data:`REFINE_ROUNDS` estimates were made."""
        from scipy.ndimage import shift as nd_shift

        norm = "phase" if method == "phase" else None
        tref = _tapered(ref)
        total = np.array(guess, np.float64)
        moved, err = (nd_shift(cur, total, order=1, mode="nearest") if np.any(total) else cur), np.nan
        for i in range(REFINE_ROUNDS):
            shift, err, _ = phase_cross_correlation(tref, _tapered(moved), normalization=norm,
                                                    upsample_factor=upsample * (1 if i == 0 else 10))  # fmt: skip
            total += np.asarray(shift, np.float64)
            if i > 0 and np.abs(shift).max() < 0.5 / upsample:
                break
            moved = nd_shift(cur, total, order=1, mode="nearest")
        return total, float(err)

    drift = np.zeros((n_t, 3))
    error = np.full(n_t, np.nan)
    first = prev = prepared(0)
    for t in range(1, n_t):
        cur = prepared(t)
        ref = prev if reference == "previous" else first
        if cur is None or ref is None:  # a blank frame: no step (and, for "previous", the next compares to it)
            step, base = np.zeros(3), (drift[t - 1] if reference == "previous" else np.zeros(3))
        else:
            guess = np.zeros(ref.ndim)
            if reference == "first":  # minus the previous frame's drift, in voxels of what is compared
                guess = -(drift[t - 1][1:] if planar else drift[t - 1]) / (um[1:] if planar else um)
            shift, err = registered(ref, cur, guess)
            vox = np.concatenate([[0.0], shift]) if planar else shift
            step = -vox * um  # the shift registers cur onto ref: its content moved by minus that
            base = drift[t - 1] if reference == "previous" else np.zeros(3)
            error[t] = err
        drift[t] = base + step
        prev = cur if cur is not None else prev
    table = pd.DataFrame({"t": np.arange(n_t, dtype=np.int64)})
    for i, col in enumerate(DRIFT_COLUMNS):
        table[col] = np.round(drift[:, i], 6) + 0.0  # (a nm is far below any voxel; no -0.0)
    table["error"] = error
    return table


def _region(region_um: Sequence[float], vs: Sequence[float], shape: Sequence[int]) -> tuple[slice, slice]:
    """The ``(y, x)`` voxel slices of a region ``(y0, y1, x0, x1)`` µm; one outside the field, or thinner than 8
    voxels (nothing to correlate), is refused."""
    if len(region_um) != 4:
        raise ValueRangeError(f"a region is y0 y1 x0 x1 (µm), got {list(region_um)}", field="region")
    y0, y1, x0, x1 = (float(v) for v in region_um)
    cut = []
    for (a, b), size, n in (((y0, y1), vs[1], shape[0]), ((x0, x1), vs[2], shape[1])):
        lo, hi = round(a / size), round(b / size)
        if not (lo >= 0 and hi <= n and hi - lo >= 8):
            raise ValueRangeError(f"region {y0:g}–{y1:g} µm in y, {x0:g}–{x1:g} in x lies outside the field "
                                  f"({shape[0] * vs[1]:.4g} × {shape[1] * vs[2]:.4g} µm) or spans fewer than 8 voxels",
                                  field="region")  # fmt: skip
        cut.append(slice(lo, hi))
    return cut[0], cut[1]


def drift_extent(drift_um: Any, *, steps: bool = False) -> str:
    """``at most 0.00 µm in z, 3.00 in y, 1.00 in x`` of a ``(T, 3)`` drift (µm), and with ``steps`` its largest
    step between frames (``; largest step 2.00 µm (frame 4)``): how every report of a drift says it."""
    d = np.asarray(drift_um, np.float64).reshape(-1, 3)
    top = np.abs(d).max(axis=0) if len(d) else np.zeros(3)
    said = f"at most {top[0]:.2f} µm in z, {top[1]:.2f} in y, {top[2]:.2f} in x"
    if steps and len(d) > 1:
        step = np.linalg.norm(np.diff(d, axis=0), axis=1)
        said += f"; largest step {step.max():.2f} µm (frame {int(step.argmax()) + 1})"
    return said


def drift_canvas(
    drift_um: Any, *, shape: Sequence[int], voxel_size: VoxelSize | Sequence[float], canvas: str = "grow"
) -> tuple[np.ndarray, tuple[int, int, int], tuple[int, int, int]]:
    """The whole-voxel shifts of a correction: ``(shifts, canvas_shape, origin)``: each frame's drift in voxels
    (``(T, 3)`` float), the corrected movie's ``(Z, Y, X)`` and where its frame 0 starts in it (voxels)."""
    if canvas not in ("grow", "same"):
        raise ValueRangeError(f"canvas must be 'grow' or 'same', got {canvas!r}", field="canvas")
    vs = np.array(VoxelSize.of(voxel_size).as_tuple())
    d = np.asarray(drift_um, np.float64).reshape(-1, 3) / vs
    n = np.array([int(s) for s in shape[-3:]])
    if n[0] == 1:
        d[:, 0] = 0.0  # a single plane cannot move in z
    r = np.rint(d).astype(np.int64)
    if canvas == "same":
        return d, (int(n[0]), int(n[1]), int(n[2])), (0, 0, 0)
    lo, hi = r.max(axis=0).clip(min=0), r.min(axis=0).clip(max=0)
    size = n + lo - hi
    return d, (int(size[0]), int(size[1]), int(size[2])), (int(lo[0]), int(lo[1]), int(lo[2]))


def _placed(frame: np.ndarray, shift: np.ndarray, origin: Sequence[int], canvas: Sequence[int], subpixel: bool) -> Any:
    """One frame's ``(C, Z, Y, X)`` block moved back by ``shift`` voxels onto the canvas (zeros elsewhere)."""
    whole = np.rint(shift).astype(np.int64)
    out = np.zeros((frame.shape[0], *canvas), frame.dtype)
    dst, src = [slice(None)], [slice(None)]
    for axis in range(3):
        start = int(origin[axis]) - int(whole[axis])  # where the frame's first voxel lands
        a, b = max(start, 0), min(start + frame.shape[axis + 1], canvas[axis])
        if b <= a:
            return out  # the frame lies wholly outside a same-size canvas
        dst.append(slice(a, b))
        src.append(slice(a - start, b - start))
    out[tuple(dst)] = frame[tuple(src)]
    rest = shift - whole
    if subpixel and np.any(np.abs(rest) > 1e-6):
        from scipy.ndimage import shift as nd_shift

        moved = np.stack([nd_shift(c.astype(np.float32), -rest, order=1, mode="constant", cval=0.0) for c in out])
        if np.issubdtype(out.dtype, np.integer):
            info = np.iinfo(out.dtype)
            moved = np.clip(np.rint(moved), info.min, info.max)
        out = moved.astype(out.dtype)
    return out


def correct_drift(
    image: Image,
    drift_um: Any,
    *,
    canvas: Literal["grow", "same"] = "grow",
    subpixel: bool = False,
    labels: bool = False,
) -> Image:
    """``image`` with each frame moved back by its drift (``(T, 3)`` µm, as :func:`estimate_drift` gives), lazily
    a frame at a time: by whole voxels (values and dtype kept), or ``subpixel`` (intensities only: the remainder
    by linear interpolation; integer images rounded back to their type). ``canvas="grow"``: every frame whole on
    a larger grid, frame 0 at ``origin`` (in the provenance); ``"same"``: the field's grid, what drifts out is cut.
    Voxels no frame covers are 0."""
    import dask
    import dask.array as da

    d = np.asarray(drift_um, np.float64)
    if d.ndim != 2 or d.shape != (image.shape[0], 3):
        raise ValueRangeError(f"drift must be one (z, y, x) row per frame, {image.shape[0]} rows; got shape "
                              f"{d.shape}", field="drift")  # fmt: skip
    if not np.isfinite(d).all():
        raise ValueRangeError("drift must be finite in every frame", field="drift")
    if labels and subpixel:
        raise ValueRangeError("labels move by whole voxels only (subpixel would interpolate their ids)",
                              field="subpixel")  # fmt: skip
    shifts, size, origin = drift_canvas(d, shape=image.shape, voxel_size=image.voxel_size, canvas=canvas)
    n_c = image.shape[1]
    frames = []
    for t in range(image.shape[0]):
        block = dask.delayed(_placed)(image.data[t], shifts[t], origin, size, subpixel)
        frames.append(da.from_delayed(block, shape=(n_c, *size), dtype=image.dtype))
    data = da.stack(frames)
    parameters = {"canvas": canvas, "subpixel": subpixel, "origin_voxels": list(origin),
                  "drift_um": [[round(float(v), 6) for v in row] for row in d]}  # fmt: skip
    return image.with_data(data, step="correct_drift", parameters=parameters)
