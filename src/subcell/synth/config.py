"""Validated parameters of the synthetic-field generator (one pydantic model per concern, all lengths in µm).

The structure rules are data: each ``*Rule`` model documents where a structure sits relative to the cell and
the nucleus. The integrated-cell model is evaluated on whether it learns these rules.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# the stages a dividing cell passes through in a time-lapse, in order (interphase before and after)
MITOTIC_STAGES = ("prophase", "metaphase", "anaphase", "telophase")

__all__ = [
    "STRUCTURES",
    "BrightfieldOptics",
    "CellShape",
    "Noise",
    "Optics",
    "RefractiveIndex",
    "StructureRules",
    "SynthConfig",
    "TimeLapse",
]

# fluorescence channels, in output order
STRUCTURES = (
    "dna",
    "nuclear_envelope",
    "nucleoli",
    "membrane",
    "mitochondria",
    "microtubules",
    "golgi",
    "er",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Optics(_Model):
    """Widefield fluorescence optics; the PSF is the Gaussian approximation of Zhang et al. (Appl. Opt. 2007)."""

    numerical_aperture: float = Field(1.25, gt=0, le=1.7)
    emission_wavelength_um: float = Field(0.52, gt=0.2, lt=2.0)
    immersion_index: float = Field(1.33, ge=1.0, le=1.8)

    @model_validator(mode="after")
    def _na_below_index(self) -> Optics:
        if self.numerical_aperture >= self.immersion_index:
            raise ValueError(
                f"numerical_aperture {self.numerical_aperture} must be below immersion_index {self.immersion_index}"
            )
        return self

    @property
    def sigma_xy_um(self) -> float:
        """Lateral PSF standard deviation (µm): 0.21 λ / NA."""
        return 0.21 * self.emission_wavelength_um / self.numerical_aperture

    @property
    def sigma_z_um(self) -> float:
        """Axial PSF standard deviation (µm): 0.66 λ n / NA²."""
        return 0.66 * self.emission_wavelength_um * self.immersion_index / self.numerical_aperture**2


class BrightfieldOptics(_Model):
    """Transmitted light: weak phase-and-amplitude object under partially coherent Köhler illumination."""

    wavelength_um: float = Field(0.6, gt=0.2, lt=2.0)
    objective_na: float = Field(1.25, gt=0, le=1.7)
    condenser_na: float = Field(0.35, ge=0, le=1.5)
    medium_index: float = Field(1.337, ge=1.0, le=1.8)
    focus_offset_um: float = Field(0.0, description="focal plane of the stack centre relative to the cell mid-height")
    photons: float = Field(2000.0, gt=0, description="mean photons per pixel of the background")
    read_noise: float = Field(4.0, ge=0)
    illumination_ramp: float = Field(
        0.0, ge=0, le=0.8, description="relative change of the illumination across the field (a linear ramp)"
    )
    ramp_angle: float = Field(0.0, description="direction of the illumination ramp in the yx plane (radians)")
    haze: float = Field(
        0.0, ge=0, le=0.9, description="share of the contrast replaced by its out-of-focus blur (scatter, dirt)"
    )

    @model_validator(mode="after")
    def _coherence(self) -> BrightfieldOptics:
        if self.condenser_na > self.objective_na:
            raise ValueError(f"condenser_na {self.condenser_na} must not exceed objective_na {self.objective_na}")
        return self


class Noise(_Model):
    """Fluorescence camera: background + shot noise (Poisson) + Gaussian read noise, in photo-electrons."""

    peak_photons: float = Field(600.0, gt=0, description="photons at the brightest structure density")
    background: float = Field(100.0, ge=0)
    read_noise: float = Field(3.0, ge=0)
    offset: int = Field(100, ge=0, le=10000, description="camera offset (ADU) added before uint16 conversion")


class CellShape(_Model):
    """hiPSC colony geometry: tightly packed cells in a monolayer with domed apical surfaces."""

    diameter_um: tuple[float, float] = (10.0, 20.0)
    height_um: tuple[float, float] = (6.0, 12.0)
    nucleus_fraction: float = Field(0.5, gt=0.05, lt=0.9, description="nucleus volume / cell volume (hiPSCs: high)")
    mitotic_fraction: float = Field(0.05, ge=0, le=1)
    colony_fill: float = Field(0.85, gt=0, le=1.0, description="fraction of the field's area covered by the colony")
    wall_irregularity_um: float = Field(
        0.6, ge=0, le=5, description="amplitude of the smooth warp that bends cell walls away from straight lines"
    )
    beyond_field_um: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="the colony extends this far beyond the field on every side (its colony_fill and n_cells "
        "are of that larger area): cells there are outside the image, cut by its border, and in a time-lapse they "
        "drift in and out of view, as in a field of view inside a large colony",
    )

    @model_validator(mode="after")
    def _ranges(self) -> CellShape:
        for name in ("diameter_um", "height_um"):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi):
                raise ValueError(f"{name} must be a (min, max) pair with 0 < min <= max, got {(lo, hi)}")
        return self


class StructureRules(_Model):
    """Where each structure sits (the generator's ground-truth rules)."""

    nucleoli_count: tuple[int, int] = (2, 4)
    nucleolus_radius_um: float = Field(0.8, gt=0)
    envelope_thickness_um: float = Field(0.25, gt=0)
    membrane_thickness_um: float = Field(0.25, gt=0)
    mito_per_um3: float = Field(0.12, ge=0, description="mitochondrial tubules per µm³ of cytoplasm")
    mito_decay_um: float = Field(2.5, gt=0, description="density ∝ exp(-d / decay), d = distance to the nucleus")
    mito_length_um: float = Field(2.5, gt=0)
    mito_radius_um: float = Field(0.2, gt=0, le=2.0)
    microtubule_count: tuple[int, int] = (30, 50)
    golgi_blobs: tuple[int, int] = (6, 12)
    golgi_radius_um: float = Field(0.7, gt=0)
    golgi_apical_offset_um: float = Field(
        0.5, description="Golgi sits this far above the nuclear surface (apical side)"
    )
    er_sheet_um: float = Field(0.5, ge=0, le=5, description="perinuclear ER sheets reach this far out of the nucleus")
    er_tubules_per_um3: float = Field(0.6, ge=0, description="ER tubules per µm³ of cytoplasm")
    er_decay_um: float = Field(4.0, gt=0, description="tubule density ∝ exp(-d / decay) from the nuclear surface")
    er_length_um: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _counts(self) -> StructureRules:
        for name in ("nucleoli_count", "microtubule_count", "golgi_blobs"):
            lo, hi = getattr(self, name)
            if not (0 <= lo <= hi):
                raise ValueError(f"{name} must be a (min, max) pair with 0 <= min <= max, got {(lo, hi)}")
        return self


class RefractiveIndex(_Model):
    """Refractive-index increments over the medium (n ≈ 1.337), what bright-field sees.

    Orders of magnitude from tomographic phase microscopy of mammalian cells: cytoplasm ~1.36, nucleoplasm
    slightly lower, nucleoli and lipid-rich organelles higher. Granules stand for the many sub-micron organelles
    (vesicles, lysosomes, lipid droplets, peroxisomes) that give real cytoplasm its speckled texture; a share of
    them is below the cytoplasm's index (vacuoles, endosomes), so the speckles are dark and bright.
    """

    cytoplasm: float = Field(0.020, ge=0, le=0.2)
    nucleus: float = Field(0.012, ge=0, le=0.2)
    nucleoli: float = Field(0.032, ge=0, le=0.3)
    nuclear_envelope: float = Field(0.008, ge=-0.1, le=0.1, description="added on the envelope shell")
    membrane: float = Field(0.005, ge=-0.1, le=0.1, description="added on the plasma membrane (weak in real cells)")
    mitochondria: float = Field(0.012, ge=-0.1, le=0.2, description="added inside mitochondrial tubes")
    golgi: float = Field(0.010, ge=-0.1, le=0.2)
    granules_per_um3: float = Field(0.6, ge=0, le=10, description="granules per µm³ of cytoplasm")
    granule_radius_um: float = Field(0.25, gt=0, le=2.0)
    granule_index: float = Field(0.05, ge=0, le=0.3, description="mean index increment of a granule")
    dark_granule_fraction: float = Field(0.3, ge=0, le=1, description="share of granules below the cytoplasm")
    chromatin_texture: float = Field(0.004, ge=0, le=0.1, description="index contrast of chromatin foci")
    smoothing_um: float = Field(0.25, ge=0, le=3, description="index boundaries are this soft (Gaussian σ)")
    cytoplasm_texture: float = Field(
        0.006, ge=0, le=0.05,
        description="RMS index fluctuation of the cytoplasm's continuous organelle mesh (organelles packed too "
        "densely to be single granules: ER, mitochondria, vesicles); 0 switches it off",
    )  # fmt: skip
    texture_scale_um: tuple[float, float] = Field(
        (0.5, 2.0), description="smallest and largest blob size (wavelength, µm) of the cytoplasm's texture"
    )

    @field_validator("texture_scale_um")
    @classmethod
    def _texture_scale(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1] <= 20:
            raise ValueError(f"expected 0 < smallest <= largest <= 20 µm, got {tuple(v)}")
        return v


class TimeLapse(_Model):
    """Time-lapse: cells drift, change shape and divide; the lineage table is the tracking truth."""

    frames: int = Field(1, ge=1, le=10000)
    interval_s: float = Field(300.0, gt=0)
    speed_um_per_frame: float = Field(0.5, ge=0)
    division_probability: float = Field(0.05, ge=0, le=1, description="per cell and frame")
    stage_frames: dict[str, int] = Field(
        default_factory=lambda: {"prophase": 1, "metaphase": 1, "anaphase": 1, "telophase": 1},
        description="frames spent in each mitotic stage, in order; a cell divides after anaphase and its daughters "
        "spend telophase before interphase",
    )

    @field_validator("stage_frames")
    @classmethod
    def _stages(cls, v: dict[str, int]) -> dict[str, int]:
        if set(v) != set(MITOTIC_STAGES) or any(int(n) < 1 for n in v.values()):
            raise ValueError(f"give each of {list(MITOTIC_STAGES)} a whole number of frames >= 1, got {v}")
        return {k: int(v[k]) for k in MITOTIC_STAGES}


class SynthConfig(_Model):
    """Everything ``subcell synth`` needs; the same config and seed give bit-identical output."""

    version: Literal[1] = 1
    shape: tuple[int, int, int] = (64, 512, 512)
    voxel_size: tuple[float, float, float] = (0.29, 0.108, 0.108)
    n_cells: int | None = Field(
        None, ge=1, description="default: as many as the colony area holds at the mean diameter"
    )
    seed: int = Field(0, ge=0)
    cells: CellShape = CellShape()
    rules: StructureRules = StructureRules()
    optics: Optics = Optics()
    brightfield: BrightfieldOptics = BrightfieldOptics()
    refractive_index: RefractiveIndex = RefractiveIndex()
    noise: Noise = Noise()
    time: TimeLapse = TimeLapse()
    block_yx: int = Field(512, ge=64, description="large mode: lateral block size of lazy generation")

    @model_validator(mode="after")
    def _geometry(self) -> SynthConfig:
        if min(self.shape) < 1:
            raise ValueError(f"shape must be positive (Z, Y, X), got {self.shape}")
        if min(self.voxel_size) <= 0:
            raise ValueError(f"voxel_size must be positive µm, got {self.voxel_size}")
        if self.n_cells is not None:
            (y0, x0), (y1, x1) = self.colony_bounds_um
            area = (y1 - y0) * (x1 - x0) * self.cells.colony_fill
            d_min = self.cells.diameter_um[0]
            capacity = area / (math.pi * (d_min / 2) ** 2 * 0.75)
            if self.n_cells > capacity:
                raise ValueError(
                    f"n_cells={self.n_cells} cannot fit: the colony area ({area:.0f} µm²) holds at most "
                    f"{int(capacity)} cells of diameter >= {d_min} µm"
                )
        return self

    @property
    def colony_bounds_um(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Where the colony's cells may be, (y, x) µm from the field's origin: the field, widened by
        ``cells.beyond_field_um`` on every side."""
        m, (_, ey, ex) = self.cells.beyond_field_um, self.field_um
        return (-m, -m), (ey + m, ex + m)

    @property
    def field_um(self) -> tuple[float, float, float]:
        """Physical extent (z, y, x) in µm."""
        return tuple(n * v for n, v in zip(self.shape, self.voxel_size, strict=True))  # type: ignore[return-value]
