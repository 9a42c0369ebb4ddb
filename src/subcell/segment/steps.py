"""The steps of a segmentation workflow: validated parameters, what each reads, how far it reaches, what it fits.

Every step declares how it behaves when a volume is processed in blocks, so a block-wise run equals the
whole-volume run by construction (:mod:`subcell.segment.execute` runs both through the same code):

- ``local`` steps compute each voxel from a neighbourhood of at most :meth:`Step.reach` voxels per axis
  (smoothing, filters, watershed with a bounded distance); blocks are read with that halo.
- ``fitted`` steps use a statistic of their whole input (a normalization range, a global threshold, the
  largest filament response, the mean gradient, the median membrane run): it is fitted once per field from
  summaries merged over blocks (:mod:`subcell.segment.fits`), then applied locally.
- ``objects`` steps judge connected objects as wholes (size filter, hole filling, labelling, per-object
  thresholds, splitting and thinning of each object): objects are joined across block faces first.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from subcell.image import VoxelSize
from subcell.segment.filters import DERIVATIVE_TRUNCATE, SMOOTH_TRUNCATE, gaussian_reach

__all__ = ["STEP_TYPES", "Step"]

Reach = tuple[int, int, int]


def _vox(um: float, vs: VoxelSize, *, per_slice: bool = False, extra: int = 1) -> Reach:
    """A distance in µm as voxels per axis (rounded up, plus ``extra``); z is 0 for per-slice operations."""
    z, y, x = (math.ceil(um / v - 1e-9) + extra for v in vs.as_tuple())
    return (0 if per_slice else z, y, x)


class Step(BaseModel):
    """Base of every step: where it reads from and what it is called."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[Literal["local", "fitted", "objects"]] = "local"
    makes: ClassVar[Literal["image", "mask", "labels", "same"]] = "image"
    input: str | None = Field(None, description="named array to read (default: the previous step's result)")
    output: str | None = Field(None, description="name to store the result under (it also becomes the current one)")

    def refs(self) -> dict[str, str]:
        """Named arrays this step reads besides its input: parameter name → array name."""
        return {f: getattr(self, f) for f in ("seeds", "mask", "other", "intensity") if getattr(self, f, None)}

    def reach(self, vs: VoxelSize) -> Reach:
        """Voxels per axis (z, y, x) a voxel's result depends on around it; None-like (-1) for unbounded."""
        return (0, 0, 0)


class Normalize(Step):
    kind: ClassVar = "fitted"
    method: Literal["percentile", "std", "minmax"] = "percentile"
    low: float = Field(0.5, ge=0, le=100)
    high: float = Field(99.5, ge=0, le=100)
    clip: bool = True


class GaussianSmooth(Step):
    sigma_um: float = Field(..., ge=0, le=50)
    per_slice: bool = False

    def reach(self, vs: VoxelSize) -> Reach:
        return gaussian_reach(self.sigma_um, vs, truncate=SMOOTH_TRUNCATE, per_slice=self.per_slice)


class EdgePreservingSmooth(Step):
    kind: ClassVar = "fitted"
    iterations: int = Field(10, ge=1, le=200)
    conductance: float = Field(1.2, gt=0, le=100)
    time_step: float = Field(0.0625, gt=0, le=0.25)
    per_slice: bool = False

    def reach(self, vs: VoxelSize) -> Reach:
        r = self.iterations + 2  # each iteration exchanges with face neighbours and their tangential differences
        return (0 if self.per_slice else r, r, r)


class SubtractBackground(Step):
    radius_um: float = Field(..., gt=0, le=500, description="larger than the objects kept")
    per_slice: bool = True

    def reach(self, vs: VoxelSize) -> Reach:
        # opening (erosion + dilation) and the smoothing of the background each reach one radius; the
        # subsampling grid adds up to two of its steps (radius / 8) for the interpolation back
        return _vox(3.25 * self.radius_um, vs, per_slice=self.per_slice, extra=2)


class SpotFilter(Step):
    sigmas_um: list[float] = Field(..., min_length=1)
    per_slice: bool = False

    def reach(self, vs: VoxelSize) -> Reach:
        return gaussian_reach(max(self.sigmas_um), vs, truncate=DERIVATIVE_TRUNCATE, per_slice=self.per_slice)


class FilamentFilter(Step):
    kind: ClassVar = "fitted"
    sigmas_um: list[float] = Field(..., min_length=1)
    per_slice: bool = False
    tau: float = Field(1.0, gt=0, le=1)

    def reach(self, vs: VoxelSize) -> Reach:
        return gaussian_reach(max(self.sigmas_um), vs, truncate=DERIVATIVE_TRUNCATE, per_slice=self.per_slice)


class Threshold(Step):
    makes: ClassVar = "mask"
    method: Literal["otsu", "triangle", "li", "yen", "noise", "absolute"] = "otsu"
    value: float | None = None
    # a multiple of the fitted threshold; for "noise", how many robust SDs (1.4826·MAD) above the median
    factor: float = Field(1.0, gt=0, le=100)

    @property
    def fitted(self) -> bool:
        return self.method != "absolute"


class MaskedObjectThreshold(Step):
    """Expanded by the executor into: global threshold → size filter → Otsu inside each object."""

    kind: ClassVar = "objects"
    makes: ClassVar = "mask"
    global_method: Literal["otsu", "triangle", "li", "yen"] = "triangle"
    global_factor: float = Field(1.0, gt=0, le=100)
    local_factor: float = Field(1.0, gt=0, le=100)
    min_object_um3: float = Field(0.0, ge=0)


class FillHoles(Step):
    kind: ClassVar = "objects"
    makes: ClassVar = "mask"
    max_hole_um: float | None = Field(None, gt=0, description="µm² per slice, µm³ in 3D; None fills all")
    per_slice: bool = False
    close_lateral_border: bool = False


class FillBetweenMembranes(Step):
    kind: ClassVar = "fitted"
    makes: ClassVar = "mask"
    intensity: str = Field(..., description="named membrane image that places each membrane at its brightest plane")
    max_gap_um: float = Field(3.0, ge=0, le=50, description="largest lateral gap in the apical membrane bridged")

    def reach(self, vs: VoxelSize) -> Reach:
        r = _vox(self.max_gap_um, vs, extra=2)
        return (0, r[1], r[2])  # columns span the whole z range of a block


class SizeFilter(Step):
    kind: ClassVar = "objects"
    makes: ClassVar = "same"
    min_volume_um3: float = Field(..., ge=0)
    per_slice: bool = False


class Thinning(Step):
    kind: ClassVar = "objects"
    makes: ClassVar = "mask"
    min_thickness_um: float = Field(..., gt=0)
    thin_um: float = Field(..., gt=0)


class Combine(Step):
    makes: ClassVar = "mask"
    op: Literal["or", "and", "and_not"] = "or"
    other: str


class MaskWith(Step):
    makes: ClassVar = "same"
    mask: str


class Label(Step):
    kind: ClassVar = "objects"
    makes: ClassVar = "labels"


class SplitTouching(Step):
    kind: ClassVar = "objects"
    makes: ClassVar = "labels"
    depth_um: float = Field(0.5, gt=0, le=50, description="a neck this much narrower than both lobes splits them")
    max_neck_ratio: float = Field(
        0.7, gt=0, le=1, description="lobes stay one object when their neck is wider than this share of the thinner"
    )
    max_radius_um: float = Field(8.0, gt=0, le=200, description="largest object radius (bounds an object's memory)")
    intensity: str | None = Field(
        None,
        description="named stain image (background near 0, e.g. after normalize) whose dim bands also split objects",
    )
    intensity_weight: float = Field(0.5, ge=0, le=2, description="exponent of the stain's relative brightness")


class SeededWatershed(Step):
    makes: ClassVar = "labels"
    seeds: str
    mask: str | None = None
    compactness: float = Field(0.0, ge=0)
    max_distance_um: float | None = Field(None, gt=0, description="regions grow at most this far from their seed")

    def reach(self, vs: VoxelSize) -> Reach:
        if self.max_distance_um is None:
            return (-1, -1, -1)  # a flood without a distance bound can reach across the whole field
        # a region stays within max_distance of its seed, but the flood that decides a voxel may detour around
        # a bright wall: 2× the distance was not enough on the synthetic cells test, 3× and 4× gave identical
        # labels there; 4× keeps a margin
        return _vox(4 * self.max_distance_um, vs, extra=2)


class PixelClassifier(Step):
    """The probability of one class from a classifier trained on scribbles (``subcell pixels train``)."""

    model: str = Field(..., description="folder written by `subcell pixels train` (relative: to the workflow file)")
    foreground: int = Field(..., ge=1, description="class id (scribble value) whose probability is the result")

    @field_validator("model")
    @classmethod
    def _a_classifier(cls, v: str) -> str:
        from subcell.errors import SubcellError
        from subcell.segment.pixels import model_sigmas

        try:
            model_sigmas(v)
        except SubcellError as e:
            raise ValueError(str(e)) from None
        return v

    @model_validator(mode="after")
    def _a_class_of_it(self) -> PixelClassifier:
        from subcell.segment.pixels import model_classes

        classes = model_classes(self.model)
        if self.foreground not in classes:
            raise ValueError(f"foreground {self.foreground} is not one of the classifier's classes {list(classes)}")
        return self

    def reach(self, vs: VoxelSize) -> Reach:
        from subcell.segment.pixels import feature_reach, model_sigmas

        return feature_reach(model_sigmas(self.model), vs)


STEP_TYPES: dict[str, type[Step]] = {
    "normalize": Normalize,
    "gaussian_smooth": GaussianSmooth,
    "edge_preserving_smooth": EdgePreservingSmooth,
    "subtract_background": SubtractBackground,
    "spot_filter": SpotFilter,
    "filament_filter": FilamentFilter,
    "threshold": Threshold,
    "masked_object_threshold": MaskedObjectThreshold,
    "fill_holes": FillHoles,
    "fill_between_membranes": FillBetweenMembranes,
    "size_filter": SizeFilter,
    "thinning": Thinning,
    "combine": Combine,
    "mask_with": MaskWith,
    "label": Label,
    "split_touching": SplitTouching,
    "seeded_watershed": SeededWatershed,
    "pixel_classifier": PixelClassifier,
}


def step_kind(step: Step) -> str:
    """``local``, ``fitted`` or ``objects`` for this instance (an absolute threshold fits nothing)."""
    if isinstance(step, Threshold):
        return "fitted" if step.fitted else "local"
    return step.kind


def result_kind(step: Step, source_kind: str) -> str:
    """What the step produces: ``image``, ``mask`` or ``labels`` (``same`` follows its input)."""
    return source_kind if step.makes == "same" else step.makes
