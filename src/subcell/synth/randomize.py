"""Domain randomization: everything a real transmitted-light microscope and a real colony vary, drawn per field.

A model pretrained on synthetic fields only transfers to real bright-field if it never learns the generator's
particular optics, camera or cells. :class:`Randomization` names the ranges (each factor can be switched off for
the ablation in ``benchmarks/labelfree``); :func:`randomized_config` draws one :class:`SynthConfig` from them and
:func:`camera_response` applies what happens after the photons: intensity nonlinearity, gain and offset, and
8- or 12-bit quantization.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from subcell.synth.config import SynthConfig

__all__ = ["FACTORS", "Randomization", "camera_response", "randomized_config"]

FACTORS = (
    "optics",  # NA, wavelength, condenser coherence
    "focus",  # defocus offset of the stack
    "voxel_size",  # lateral 0.1-0.4 µm, axial 0.2-1 µm
    "illumination",  # ramps, photons (shot noise), read noise
    "haze",  # out-of-focus haze / scatter
    "cells",  # density, size, height, wall irregularity, nucleus size, mitoses
    "index",  # refractive-index contrasts, granule density and size, boundary softness, cytoplasm texture
    "camera",  # nonlinearity, gain/offset, 8- vs 12-bit
)


class Randomization(BaseModel):
    """Which factors vary during pretraining (all by default); a switched-off factor keeps the generator default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    optics: bool = True
    focus: bool = True
    voxel_size: bool = True
    illumination: bool = True
    haze: bool = True
    cells: bool = True
    index: bool = True
    camera: bool = True

    def without(self, *factors: str) -> Randomization:
        unknown = set(factors) - set(FACTORS)
        if unknown:
            raise ValueError(f"unknown randomization factor(s) {sorted(unknown)}; expected some of {list(FACTORS)}")
        return self.model_copy(update=dict.fromkeys(factors, False))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def randomized_config(
    rng: np.random.Generator,
    *,
    extent_um: tuple[float, float, float] | None = None,
    shape: tuple[int, int, int] | None = None,
    voxel_size: tuple[float, float, float] | None = None,
    seed: int = 0,
    randomization: Randomization | None = None,
) -> SynthConfig:
    """One randomized generator config.

    Give either ``shape`` (voxels; with ``voxel_size`` fixed or drawn) or ``extent_um`` (the physical size of the
    field; the shape follows from the drawn voxel size). Every draw is taken from ``rng`` in a fixed order, whatever
    the switches, so switching one factor off leaves the others' draws unchanged.
    """
    r = randomization or Randomization()
    d = SynthConfig().model_dump()
    # draw everything first (fixed order), then apply what is switched on
    na = rng.uniform(0.7, 1.35)
    draws: dict[str, Any] = {
        "wavelength": rng.uniform(0.45, 0.75),
        "na": na,
        "condenser": rng.uniform(0.15, 0.65) * na,
        "focus": rng.uniform(-2.5, 2.5),
        "vs_xy": _log_uniform(rng, 0.1, 0.4),
        "vs_z": _log_uniform(rng, 0.2, 1.0),
        "photons": _log_uniform(rng, 800, 30000),
        "read": rng.uniform(1, 12),
        "ramp": rng.uniform(0, 0.35),
        "ramp_angle": rng.uniform(0, 2 * math.pi),
        "haze": rng.uniform(0, 0.4),
        "diameter": rng.uniform(8, 14),
        "diameter_spread": rng.uniform(1.3, 2.0),
        "height": rng.uniform(5, 11),
        "fill": rng.uniform(0.7, 1.0),
        "irregular": rng.uniform(0.2, 2.5),
        "nucleus_fraction": rng.uniform(0.3, 0.6),
        "mitotic": rng.uniform(0, 0.12),
        "index_scale": rng.uniform(0.6, 1.5, 8),
        "granules": _log_uniform(rng, 0.15, 2.0),
        "granule_radius": rng.uniform(0.15, 0.45),
        "dark": rng.uniform(0.1, 0.6),
        "smoothing": rng.uniform(0.1, 0.6),
        # drawn last so that adding them left every earlier draw (and older pretraining streams) unchanged
        "texture": rng.uniform(0.0, 0.012),
        "texture_lo": _log_uniform(rng, 0.3, 0.8),
        "texture_span": rng.uniform(2.0, 5.0),
    }
    bf, cells, ri = d["brightfield"], d["cells"], d["refractive_index"]
    if r.optics:
        bf.update(wavelength_um=draws["wavelength"], objective_na=draws["na"], condenser_na=draws["condenser"])
        d["optics"]["numerical_aperture"] = min(draws["na"], 1.3)
    if r.focus:
        bf["focus_offset_um"] = draws["focus"]
    if r.illumination:
        bf.update(photons=draws["photons"], read_noise=draws["read"], illumination_ramp=draws["ramp"],
                  ramp_angle=draws["ramp_angle"])  # fmt: skip
    if r.haze:
        bf["haze"] = draws["haze"]
    if r.cells:
        dm = draws["diameter"]
        cells.update(
            diameter_um=(dm, dm * draws["diameter_spread"]), height_um=(draws["height"], draws["height"] * 1.5),
            colony_fill=draws["fill"], wall_irregularity_um=draws["irregular"],
            nucleus_fraction=draws["nucleus_fraction"], mitotic_fraction=draws["mitotic"],
        )  # fmt: skip
    if r.index:
        names = ("cytoplasm", "nucleus", "nucleoli", "nuclear_envelope", "membrane", "mitochondria", "golgi",
                 "granule_index")  # fmt: skip
        for name, k in zip(names, draws["index_scale"], strict=True):
            ri[name] = ri[name] * float(k)
        ri.update(granules_per_um3=draws["granules"], granule_radius_um=draws["granule_radius"],
                  dark_granule_fraction=draws["dark"], smoothing_um=draws["smoothing"],
                  cytoplasm_texture=draws["texture"],
                  texture_scale_um=(draws["texture_lo"], draws["texture_lo"] * draws["texture_span"]))  # fmt: skip
    if voxel_size is None:
        voxel_size = (draws["vs_z"], draws["vs_xy"], draws["vs_xy"]) if r.voxel_size else tuple(d["voxel_size"])
    if shape is None:
        if extent_um is None:
            raise ValueError("give shape or extent_um")
        shape = tuple(max(8, round(e / v)) for e, v in zip(extent_um, voxel_size, strict=True))  # type: ignore[assignment]
    d.update(shape=tuple(shape), voxel_size=tuple(voxel_size), seed=int(seed))  # type: ignore[arg-type]
    return SynthConfig.model_validate(d)


def camera_response(
    image: np.ndarray, rng: np.random.Generator, *, randomization: Randomization | None = None
) -> np.ndarray:
    """What the camera and its software do to a bright-field stack: a gamma-like nonlinearity, gain and
    offset, and quantization to 8 bits (after an auto-contrast stretch, as in exported viewers) or 12 bits (a scientific camera's range).

    Returns float32 (the model z-scores its input, so only the shape of the response matters).
    """
    r = randomization or Randomization()
    gamma = rng.uniform(0.6, 1.6)
    eight_bit = rng.random() < 0.5
    lo_pct, hi_pct = rng.uniform(0, 2), rng.uniform(98, 100)
    x = image.astype(np.float32)
    if not r.camera:
        return x
    lo, hi = np.percentile(x, [lo_pct, hi_pct])
    x = np.clip((x - lo) / max(float(hi - lo), 1e-6), 0, 1) ** np.float32(gamma)
    levels = 255 if eight_bit else 4095
    return np.round(x * levels).astype(np.float32)
