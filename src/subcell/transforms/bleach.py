"""Photobleaching of a fluorescence time-lapse: the loss of signal frame by frame, measured and made up for.

Every exposure bleaches some fluorophores, so a time-lapse dims as it goes: a nucleus's mean intensity falls
though its DNA content does not, and a reporter's rise can be hidden. :func:`bleach_curve` is each frame's mean
above the background (the camera's offset, which does not bleach); :func:`bleach_factors` the factor that brings
each frame back to frame 0's level, by one of the three methods of Fiji's *Bleach Correction* (Miura 2020):

- ``exponential`` (default): ``A·exp(−k·t) + C`` fitted to the curve by least squares (scipy), the factor
  ``fit(0) / fit(t)``; smooth, so a frame's own changes (cells entering, dividing, a mitotic cell's bright
  chromatin) are not taken for bleaching;
- ``ratio``: frame 0's mean over frame t's; exact for pure bleaching, but every change of the field's content is
  taken out with it;
- ``histogram``: each frame's histogram matched to frame 0's (scikit-image); for display and segmentation only,
  intensities are no longer proportional to the fluorophores.

:func:`correct_bleach` applies the factors: ``(I − background) · factor + background``, as float32 (a uint16 frame
brightened would clip).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from subcell.errors import ValueRangeError
from subcell.image import Image

__all__ = ["BleachConfig", "bleach_curve", "bleach_factors", "correct_bleach"]

METHODS = ("exponential", "ratio", "histogram")


class BleachConfig(BaseModel):
    """How ``subcell bleach`` makes up for photobleaching."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    method: Literal["exponential", "ratio", "histogram"] = Field(
        "exponential", description="exponential fit of the mean (default), frame ratio, or histogram matching"
    )
    background: float | None = Field(
        None, description="intensity that does not bleach (camera offset); default: frame 0's 1st percentile"
    )


def bleach_curve(frames: Any, *, background: float | None = None) -> Any:
    """Each frame's mean intensity of a ``(T, ...)`` movie of one channel, NumPy or lazy (a frame at a time).

    Returns
    -------
    pandas.DataFrame
        ``t``, ``mean`` (the whole frame's), ``signal`` (the mean less the background) and ``background`` (given,
        or frame 0's 1st percentile: the camera's offset in a field with any background).
    """
    import pandas as pd

    n_t = int(frames.shape[0])
    means = np.empty(n_t)
    bg = np.nan if background is None else float(background)
    for t in range(n_t):
        f = np.asarray(frames[t])  # (as stored: a float64 copy of a uint16 frame would take 4× its bytes)
        if t == 0 and background is None:
            bg = float(np.nanpercentile(f, 1) if f.dtype.kind == "f" else np.percentile(f, 1))
        means[t] = np.nanmean(f, dtype=np.float64) if f.dtype.kind == "f" else f.mean(dtype=np.float64)
    table = pd.DataFrame({"t": np.arange(n_t, dtype=np.int64), "mean": means, "signal": means - bg})
    table["background"] = bg
    return table


def bleach_factors(curve: Any, method: str = "exponential") -> tuple[np.ndarray, dict[str, float]]:
    """The factor of each frame (frame 0: 1) from a :func:`bleach_curve`, and what the fit found (``exponential``:
    ``rate_per_frame`` k and ``half_life_frames`` ln 2 / k, NaN where the curve does not fall)."""
    signal = curve["signal"].to_numpy(np.float64)
    if method not in ("exponential", "ratio"):
        raise ValueRangeError(f"method must be one of {', '.join(METHODS[:2])} here, got {method!r}", field="method")
    if signal[0] <= 0:
        raise ValueRangeError(f"frame 0 has no signal above the background (mean {signal[0]:.4g} above it): nothing "
                              "to bring the other frames back to", field="background")  # fmt: skip
    if method == "ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            factors = np.where(signal > 0, signal[0] / signal, np.nan)
        if not np.isfinite(factors).all():
            bad = np.flatnonzero(~np.isfinite(factors)).tolist()
            raise ValueRangeError(f"frames {bad} have no signal above the background; use --method exponential",
                                  field="signal")  # fmt: skip
        return factors, {}
    from scipy.optimize import curve_fit

    t = np.arange(len(signal), dtype=np.float64)

    def model(x: np.ndarray, a: float, k: float, c: float) -> np.ndarray:
        return a * np.exp(-k * x) + c

    start = (float(signal[0] - signal[-1]) or 1e-6, 1.0 / max(len(t), 2), float(signal[-1]))
    try:
        (a, k, c), _ = curve_fit(model, t, signal, p0=start, maxfev=10000)
    except RuntimeError:  # no exponential fits: a flat or rising curve
        a, k, c = 0.0, 0.0, float(signal.mean())
    fit = model(t, a, k, c)
    if fit.min() <= 0 or not np.isfinite(fit).all():
        raise ValueRangeError("the fitted bleaching curve reaches no signal within the movie; use --method ratio",
                              field="signal")  # fmt: skip
    half = float(np.log(2) / k) if k > 0 and a > 0 else float("nan")
    return fit[0] / fit, {"rate_per_frame": float(k), "half_life_frames": half}


def correct_bleach(
    image: Image,
    factors: Any = None,
    *,
    background: Any = 0.0,
    method: str = "exponential",
    channels: Sequence[int] | None = None,
) -> Image:
    """``image`` with each frame brought back to frame 0's level, lazily a frame at a time, as float32:
    ``(I − background) · factor + background`` with ``factors`` ``(T, C)`` (:func:`bleach_factors` per channel)
    and ``background`` per channel; ``method="histogram"`` matches each frame's histogram to frame 0's instead (no
    factors). Only ``channels`` (indices; default all) are corrected, the others kept as they are."""
    import dask
    import dask.array as da

    if method not in METHODS:
        raise ValueRangeError(f"method must be one of {', '.join(METHODS)}, got {method!r}", field="method")
    n_t, n_c = image.shape[:2]
    chosen = list(range(n_c)) if channels is None else [int(c) for c in channels]
    f = np.ones((n_t, n_c)) if factors is None else np.asarray(factors, np.float64).reshape(n_t, n_c)
    bg = np.broadcast_to(np.asarray(background, np.float64), (n_c,))
    first = {c: np.asarray(image.data[0, c]) for c in chosen} if method == "histogram" else {}

    def frame(block: np.ndarray, t: int) -> np.ndarray:
        out = np.array(block, dtype=np.float32)  # (one copy, whatever the stored type)
        for c in chosen:
            if method == "histogram":
                if t > 0:
                    from skimage.exposure import match_histograms

                    out[c] = match_histograms(np.asarray(block[c]), first[c])
            else:
                out[c] = (out[c] - np.float32(bg[c])) * np.float32(f[t, c]) + np.float32(bg[c])
        return out

    frames = [da.from_delayed(dask.delayed(frame)(image.data[t], t), shape=image.shape[1:], dtype=np.float32)
              for t in range(n_t)]  # fmt: skip
    parameters = {"method": method, "channels": [image.channel_names[c] for c in chosen],
                  "factors": [[round(float(v), 6) for v in row] for row in f], "background": [float(v) for v in bg]}  # fmt: skip
    return image.with_data(da.stack(frames), step="correct_bleach", parameters=parameters)
