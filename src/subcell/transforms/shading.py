"""Uneven illumination (shading, vignetting) estimated from a collection's own fields, and taken out.

A widefield or spinning-disk field is lit unevenly: its corners read 10–40 % darker than its middle, the same way
in every field of an acquisition. Intensities measured per object (a nucleus's DNA content, a tagged protein's
amount) then depend on where the object lay in the field, and fields stitched side by side show seams. The model
(Peng et al. 2017, BaSiC; Smith et al. 2015, CIDRE): a recorded image ``I = S · R + D``, with ``S`` the flat-field
(smooth, mean 1), ``R`` what the sample emits or transmits and ``D`` the camera's dark level (its offset).
Taken out: ``R = (I − D) / S``.

Estimated from the fields themselves (retrospectively), or from images of a uniform slide (prospectively; the
same functions, one image suffices; :func:`estimate_flatfield`): each
field's plane, its dark level taken off, reduced to at most ``SAMPLE_SIDE`` pixels along its longer side (the
shading varies over the whole field: nothing finer is needed) and divided by its own mean (a bright and a dim
field weigh alike); per pixel the mean over the fields (what the fields hold — cells, nuclei, their density —
lies anywhere from one field to the next, while the shading stays put, so the mean of many fields is the shading
times a constant; a median would lose sparse fluorescence, background at a pixel in most fields); a quadratic
surface plus the rest smoothed, scaled back to the field's size, mean 1. The content's own variation averages
out over fields: bright-field, whose transmitted light fills every field, needs a few (0.3 % RMS error from 4 in
``benchmarks/transforms/flatfield.py``). Sparse fluorescence over a black background may not be estimable from
the fields at all — where no field has signal, no field says how it is lit (synthetic DNA: 15 % off from 256
fields; mitochondria refused) — so for fluorescence, image a uniform dye slide and estimate from that.

Written here because BaSiCPy, the maintained implementation of BaSiC, pins NumPy < 2 and SciPy 1.12 (installing
it would downgrade the stack), and no other well-kept library estimates a flat-field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from subcell.errors import ValueRangeError

__all__ = ["SAMPLE_SIDE", "FlatfieldConfig", "correct_flatfield", "estimate_flatfield", "shading_sample"]

SAMPLE_SIDE = 128  # pixels along a sample's longer side


class FlatfieldConfig(BaseModel):
    """How a flat-field is estimated (``subcell flatfield estimate``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dark: float = Field(0.0, description="The camera's dark level (offset), taken off before anything else.")
    smoothing: float = Field(
        0.05, gt=0, le=0.5, description="Gaussian smoothing of the estimate, as a fraction of the field's longer side."
    )


def shading_sample(plane: np.ndarray, *, dark: float = 0.0, side: int = SAMPLE_SIDE) -> np.ndarray:
    """One field's (Y, X) plane as a sample for :func:`estimate_flatfield`: its dark level taken off, reduced to at
    most ``side`` pixels along its longer side (anti-aliased), divided by its mean. NaN (no signal) where its mean
    is not positive."""
    from skimage.transform import resize

    p = np.asarray(plane, np.float32)
    if p.ndim != 2:
        raise ValueRangeError(f"a shading sample is one (Y, X) plane, got shape {p.shape}", field="plane")
    scale = min(1.0, side / max(p.shape))
    small = resize(p - np.float32(dark), (max(1, round(p.shape[0] * scale)), max(1, round(p.shape[1] * scale))),
                   order=1, anti_aliasing=scale < 1, preserve_range=True).astype(np.float32)  # fmt: skip
    level = float(np.mean(small))
    return small / level if level > 0 else np.full(small.shape, np.nan, np.float32)


def estimate_flatfield(
    samples: Iterable[np.ndarray] | np.ndarray, shape: Sequence[int], *, smoothing: float = 0.05
) -> np.ndarray:
    """The flat-field (``shape`` (Y, X), float32, mean 1) of samples made by :func:`shading_sample` from many
    fields of one acquisition (all of one size): their per-pixel mean, as a quadratic surface fitted to it plus
    the rest smoothed by a Gaussian of ``smoothing`` × the samples' longer side (reflected at the edges), scaled
    to ``shape`` (cubic), divided by its mean."""
    from scipy import ndimage as ndi
    from skimage.transform import resize

    stack = np.asarray([np.asarray(s, np.float32) for s in samples])
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise ValueRangeError(f"expected (fields, y, x) samples, got shape {stack.shape}", field="samples")
    usable = np.isfinite(stack).all(axis=(1, 2))
    if not usable.any():
        raise ValueRangeError(
            "no field has signal to estimate a flat-field from (every sample is empty)", field="samples"
        )
    mean = stack[usable].mean(axis=0).astype(np.float64)
    # a quadratic surface (vignetting and a tilt are nearly one), plus the rest smoothed: smoothing alone, reflected
    # at the edges, takes the rim off a bowl (3.6 % RMS error on the tests' shading, 0.3 % so)
    y, x = np.meshgrid(np.linspace(-1, 1, mean.shape[0]), np.linspace(-1, 1, mean.shape[1]), indexing="ij")
    terms = np.stack([np.ones_like(x), y, x, y * y, x * y, x * x], axis=-1)
    coef = np.linalg.lstsq(terms.reshape(-1, terms.shape[-1]), mean.ravel(), rcond=None)[0]
    trend = terms @ coef
    smooth = trend + ndi.gaussian_filter(mean - trend, smoothing * max(mean.shape), mode="reflect")
    full = resize(smooth, tuple(int(n) for n in shape), order=3, mode="edge", anti_aliasing=False)
    full = full / float(full.mean())
    if not (full > 0).all():
        raise ValueRangeError("the estimated flat-field is not positive everywhere: too few fields for what this "
                              "channel shows, or a dark level above its background", field="samples")  # fmt: skip
    return full.astype(np.float32)


def correct_flatfield(data: np.ndarray, flat: np.ndarray, *, dark: float = 0.0) -> np.ndarray:
    """``(data − dark) / flat`` as float32: ``data`` (..., Y, X) of the flat-field's (Y, X) (lazy arrays stay lazy)."""
    f = np.asarray(flat, np.float32)
    if tuple(data.shape[-2:]) != f.shape:
        raise ValueRangeError(f"the flat-field is {f.shape[0]}×{f.shape[1]} but the image's planes are "
                              f"{data.shape[-2]}×{data.shape[-1]}", field="flatfield")  # fmt: skip
    return (data.astype(np.float32) - np.float32(dark)) / f
