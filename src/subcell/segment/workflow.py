"""Declarative segmentation workflows: an ordered list of validated steps over named arrays.

A workflow file (YAML) names its input channels and lists steps; each step reads the previous result (or a named
array via ``input``) and writes the current result (or a named one via ``output``)::

    name: nucleus
    inputs: [dna]
    kind: instance
    steps:
      - normalize: {input: dna, method: percentile, low: 0.5, high: 99.5}
      - gaussian_smooth: {sigma_um: 0.4}
      - threshold: {method: otsu}
      - size_filter: {min_volume_um3: 20}
      - split_touching: {min_distance_um: 3.0}

Unknown steps, unknown parameters and out-of-range values are rejected with the step's position and name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from subcell.errors import InputFileError, ValueRangeError
from subcell.image import VoxelSize
from subcell.segment import filters

__all__ = ["STEPS", "Workflow", "builtin_workflows", "load_workflow", "run_workflow", "workflow_yaml"]

_BUILTIN = Path(__file__).parent / "workflows"


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    input: str | None = Field(None, description="named array to read (default: the previous step's result)")
    output: str | None = Field(None, description="name to store the result under (it also becomes the current one)")

    def reach_um(self) -> float:
        """How far (µm) a voxel's result depends on its neighbours; sets the halo of chunked execution."""
        return 0.0


class Normalize(_Step):
    method: Literal["percentile", "std", "minmax"] = "percentile"
    low: float = Field(0.5, ge=0, le=100)
    high: float = Field(99.5, ge=0, le=100)
    clip: bool = True


class GaussianSmooth(_Step):
    sigma_um: float = Field(..., ge=0, le=50)
    per_slice: bool = False

    def reach_um(self) -> float:
        return 3 * self.sigma_um


class EdgePreservingSmooth(_Step):
    iterations: int = Field(10, ge=1, le=200)
    conductance: float = Field(1.2, gt=0, le=100)
    time_step: float = Field(0.0625, gt=0, le=0.25)
    per_slice: bool = False

    def reach_um(self) -> float:
        return 0.5 * self.iterations  # diffusion spreads ~1 voxel per step; 0.5 µm is generous for 100x data


class SubtractBackground(_Step):
    radius_um: float = Field(..., gt=0, le=500, description="larger than the objects kept")
    per_slice: bool = True

    def reach_um(self) -> float:
        return 2 * self.radius_um


class SpotFilter(_Step):
    sigmas_um: list[float] = Field(..., min_length=1)
    per_slice: bool = False

    def reach_um(self) -> float:
        return 3 * max(self.sigmas_um)


class FilamentFilter(_Step):
    sigmas_um: list[float] = Field(..., min_length=1)
    per_slice: bool = False
    tau: float = Field(1.0, gt=0, le=1)

    def reach_um(self) -> float:
        return 3 * max(self.sigmas_um)


class Threshold(_Step):
    method: Literal["otsu", "triangle", "li", "yen", "absolute"] = "otsu"
    value: float | None = None
    factor: float = Field(1.0, gt=0, le=100)


class MaskedObjectThreshold(_Step):
    global_method: Literal["otsu", "triangle", "li", "yen"] = "triangle"
    global_factor: float = Field(1.0, gt=0, le=100)
    local_factor: float = Field(1.0, gt=0, le=100)
    min_object_um3: float = Field(0.0, ge=0)


class FillHoles(_Step):
    max_hole_um: float | None = Field(None, gt=0, description="µm² per slice, µm³ in 3D; None fills all")
    per_slice: bool = False
    close_lateral_border: bool = False

    def reach_um(self) -> float:
        return (self.max_hole_um or 0.0) ** (1 / 2 if self.per_slice else 1 / 3)


class FillBetweenMembranes(_Step):
    intensity: str = Field(..., description="named membrane image that places each membrane at its brightest plane")
    max_gap_um: float = Field(3.0, ge=0, le=50, description="largest lateral gap in the apical membrane bridged")

    def reach_um(self) -> float:
        return self.max_gap_um


class SizeFilter(_Step):
    min_volume_um3: float = Field(..., ge=0)
    per_slice: bool = False


class Thinning(_Step):
    min_thickness_um: float = Field(..., gt=0)
    thin_um: float = Field(..., gt=0)

    def reach_um(self) -> float:
        return self.min_thickness_um + self.thin_um


class Combine(_Step):
    op: Literal["or", "and", "and_not"] = "or"
    other: str


class MaskWith(_Step):
    mask: str


class Label(_Step):
    pass


class SplitTouching(_Step):
    depth_um: float = Field(0.5, gt=0, le=50, description="a neck this much narrower than both lobes splits them")
    max_neck_ratio: float = Field(
        0.7, gt=0, le=1, description="lobes stay one object when their neck is wider than this share of the thinner"
    )
    max_radius_um: float = Field(8.0, gt=0, le=200, description="largest object radius (sets the chunk halo)")

    def reach_um(self) -> float:
        return 2 * self.max_radius_um


class SeededWatershed(_Step):
    seeds: str
    mask: str | None = None
    compactness: float = Field(0.0, ge=0)
    max_distance_um: float | None = Field(None, gt=0, description="regions grow at most this far from their seed")

    def reach_um(self) -> float:
        return self.max_distance_um or 0.0


def _label(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.label(mask)[0].astype(np.int32)


def _split_touching(mask: np.ndarray, p: SplitTouching, vs: VoxelSize) -> np.ndarray:
    """Separate touching round objects: watershed of the distance map from its h-maxima.

    Two lobes are split when the distance map (µm) dips by more than ``depth_um`` between their centres, i.e.
    when the neck between them is narrower than both by that much, and the neck is at most ``max_neck_ratio`` of
    the thinner lobe's radius (a wider neck is a bulge of one kidney-shaped or flattened nucleus). Objects
    without such a maximum keep one id.
    """
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima

    m = np.asarray(mask).astype(bool)
    if not m.any():
        return np.zeros(m.shape, np.int32)
    dist = ndi.distance_transform_edt(m, sampling=vs.as_tuple()).astype(np.float32)
    markers = _label(h_maxima(dist, p.depth_um).astype(bool))
    objects = _label(m)
    seeded = np.zeros(int(objects.max()) + 1, bool)
    seeded[np.unique(objects[markers > 0])] = True
    unseeded = ~seeded[objects] & m
    if unseeded.any():  # e.g. objects thinner than the depth: the whole object is its own seed
        markers = np.where(unseeded, objects + int(markers.max()), markers)
    lobes = filters.seeded_watershed(-dist, seeds=markers, mask=m)
    return _merge_wide_necks(lobes, dist, p.max_neck_ratio)


def _merge_wide_necks(lobes: np.ndarray, dist: np.ndarray, max_neck_ratio: float) -> np.ndarray:
    """Join touching lobes whose neck (largest distance-map value on their shared face) is wider than
    ``max_neck_ratio`` × the thinner lobe's radius (its distance-map peak): a plateau or a bulge, not two objects.
    """
    from scipy import ndimage as ndi

    n = int(lobes.max())
    if n < 2:
        return lobes
    codes, necks = [], []
    for ax in range(lobes.ndim):
        a, b = np.moveaxis(lobes, ax, 0), np.moveaxis(dist, ax, 0)
        face = (a[:-1] != a[1:]) & (a[:-1] > 0) & (a[1:] > 0)
        lo, hi = np.minimum(a[:-1][face], a[1:][face]), np.maximum(a[:-1][face], a[1:][face])
        codes.append(lo.astype(np.int64) * (n + 1) + hi)
        necks.append(np.minimum(b[:-1][face], b[1:][face]))
    code, neck = np.concatenate(codes), np.concatenate(necks)
    if code.size == 0:
        return lobes
    order = np.argsort(code, kind="stable")
    code, neck = code[order], neck[order]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    pair, widest = code[starts], np.maximum.reduceat(neck, starts)
    peak = np.asarray(ndi.maximum(dist, lobes, index=np.arange(n + 1)))
    root = np.arange(n + 1)

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = int(root[i])
        return i

    for c, w in zip(pair.tolist(), widest.tolist(), strict=True):
        i, j = divmod(c, n + 1)
        if w >= max_neck_ratio * min(peak[i], peak[j]):
            root[find(i)] = find(j)
    final = np.array([find(i) for i in range(n + 1)])
    if np.array_equal(final, np.arange(n + 1)):
        return lobes
    _, dense = np.unique(final, return_inverse=True)
    return dense.astype(np.int32)[lobes]


def _combine(a: np.ndarray, b: np.ndarray, op: str) -> np.ndarray:
    x, y = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    if op == "or":
        return x | y
    if op == "and":
        return x & y
    return x & ~y


Runner = Callable[[np.ndarray, Any, VoxelSize, Mapping[str, np.ndarray]], np.ndarray]

# steps that fit image statistics (normalization range, global threshold): (fit, apply from fitted values)
Fit = Callable[[np.ndarray, Any], dict[str, float]]
Apply = Callable[[np.ndarray, Any, dict[str, float]], np.ndarray]
STATISTIC_STEPS: dict[str, tuple[Fit, Apply]] = {
    "normalize": (
        lambda a, p: dict(
            zip(("lo", "hi"), filters.normalize_range(a, method=p.method, low=p.low, high=p.high), strict=True)
        ),
        lambda a, p, s: filters.apply_range(a, s["lo"], s["hi"], clip=p.clip),
    ),
    "threshold": (
        lambda a, p: {"t": filters.threshold_value(a, method=p.method, value=p.value, factor=p.factor)},
        lambda a, p, s: np.asarray(a) > s["t"],
    ),
}


def _fit_and_apply(name: str) -> Runner:
    """The plain step of a statistic step: fit its statistics on the image, then apply them."""
    fit, apply = STATISTIC_STEPS[name]
    return lambda a, p, vs, ns: apply(a, p, fit(a, p))


STEPS: dict[str, tuple[type[_Step], Runner]] = {
    "normalize": (Normalize, _fit_and_apply("normalize")),
    "gaussian_smooth": (
        GaussianSmooth,
        lambda a, p, vs, ns: filters.gaussian_smooth(a, sigma_um=p.sigma_um, voxel_size=vs, per_slice=p.per_slice),
    ),
    "edge_preserving_smooth": (
        EdgePreservingSmooth,
        lambda a, p, vs, ns: filters.edge_preserving_smooth(
            a,
            voxel_size=vs,
            iterations=p.iterations,
            conductance=p.conductance,
            time_step=p.time_step,
            per_slice=p.per_slice,
        ),
    ),
    "subtract_background": (
        SubtractBackground,
        lambda a, p, vs, ns: filters.subtract_background(
            a, radius_um=p.radius_um, voxel_size=vs, per_slice=p.per_slice
        ),
    ),
    "spot_filter": (
        SpotFilter,
        lambda a, p, vs, ns: filters.spot_filter(a, sigmas_um=p.sigmas_um, voxel_size=vs, per_slice=p.per_slice),
    ),
    "filament_filter": (
        FilamentFilter,
        lambda a, p, vs, ns: filters.filament_filter(
            a, sigmas_um=p.sigmas_um, voxel_size=vs, per_slice=p.per_slice, tau=p.tau
        ),
    ),
    "threshold": (Threshold, _fit_and_apply("threshold")),
    "masked_object_threshold": (
        MaskedObjectThreshold,
        lambda a, p, vs, ns: filters.masked_object_threshold(
            a,
            global_method=p.global_method,
            global_factor=p.global_factor,
            local_factor=p.local_factor,
            min_object_um3=p.min_object_um3,
            voxel_size=vs,
        ),
    ),
    "fill_holes": (
        FillHoles,
        lambda a, p, vs, ns: filters.fill_holes(
            a,
            max_hole_um=p.max_hole_um,
            voxel_size=vs,
            per_slice=p.per_slice,
            close_lateral_border=p.close_lateral_border,
        ),
    ),
    "fill_between_membranes": (
        FillBetweenMembranes,
        lambda a, p, vs, ns: filters.fill_between_membranes(a, ns[p.intensity], voxel_size=vs, max_gap_um=p.max_gap_um),
    ),
    "size_filter": (
        SizeFilter,
        lambda a, p, vs, ns: filters.size_filter(
            a, min_volume_um3=p.min_volume_um3, voxel_size=vs, per_slice=p.per_slice
        ),
    ),
    "thinning": (
        Thinning,
        lambda a, p, vs, ns: filters.topology_preserving_thinning(
            a, min_thickness_um=p.min_thickness_um, thin_um=p.thin_um, voxel_size=vs
        ),
    ),
    "combine": (Combine, lambda a, p, vs, ns: _combine(a, ns[p.other], p.op)),
    "mask_with": (
        MaskWith,
        lambda a, p, vs, ns: np.where(np.asarray(ns[p.mask]).astype(bool), a, 0).astype(np.asarray(a).dtype),
    ),
    "label": (Label, lambda a, p, vs, ns: _label(a)),
    "split_touching": (SplitTouching, lambda a, p, vs, ns: _split_touching(a, p, vs)),
    "seeded_watershed": (
        SeededWatershed,
        lambda a, p, vs, ns: filters.seeded_watershed(
            a,
            seeds=ns[p.seeds],
            mask=None if p.mask is None else ns[p.mask],
            compactness=p.compactness,
            max_distance_um=p.max_distance_um,
            voxel_size=vs,
        ),
    ),
}


class Workflow(BaseModel):
    """A validated workflow: inputs, ordered steps, and what its result is."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    version: Literal[1] = 1
    inputs: list[str] = Field(..., min_length=1)
    kind: Literal["instance", "mask"] = "mask"
    steps: list[tuple[str, _Step]]

    def halo_um(self) -> float:
        """The largest neighbourhood any step looks at (µm): the halo for chunk-by-chunk execution."""
        return max((s.reach_um() for _, s in self.steps), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        steps = [{name: s.model_dump(exclude_defaults=True)} for name, s in self.steps]
        return {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "inputs": self.inputs,
            "kind": self.kind,
            "steps": steps,
        }


def _parse(raw: Mapping[str, Any], source: str) -> Workflow:
    if not isinstance(raw, Mapping):
        raise InputFileError("expected a mapping with name, inputs and steps", path=source)
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ValueRangeError("expected a non-empty list of steps", path=source, field="steps")
    steps: list[tuple[str, _Step]] = []
    known: set[str] = set(raw.get("inputs") or [])
    for i, entry in enumerate(steps_raw, start=1):
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, Mapping) or len(entry) != 1:
            raise ValueRangeError(
                f"each step must be a one-key mapping like 'threshold: {{method: otsu}}', got {entry!r}",
                path=source,
                field=f"steps[{i}]",
            )
        ((name, params),) = entry.items()
        if name not in STEPS:
            raise ValueRangeError(
                f"unknown step {name!r}; expected one of {sorted(STEPS)}", path=source, field=f"steps[{i}]"
            )
        model = STEPS[name][0]
        try:
            step = model.model_validate(params or {})
        except ValidationError as e:
            err = e.errors()[0]
            param = ".".join(str(p) for p in err["loc"]) or "?"
            got = err.get("input")
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = f"unknown parameter; {name} accepts {sorted(set(model.model_fields) - {'input', 'output'})}"
            raise ValueRangeError(f"{msg} (got {got!r})", path=source, field=f"steps[{i}] {name}.{param}") from None
        for ref_field in ("input", "seeds", "mask", "other", "intensity"):
            ref = getattr(step, ref_field, None)
            if ref is not None and ref not in known:
                raise ValueRangeError(
                    f"refers to {ref!r}, which no input or earlier step provides (have {sorted(known)})",
                    path=source, field=f"steps[{i}] {name}.{ref_field}",
                )  # fmt: skip
        if step.output:
            known.add(step.output)
        steps.append((name, step))
    try:
        return Workflow.model_validate({**{k: v for k, v in raw.items() if k != "steps"}, "steps": steps})
    except ValidationError as e:
        err = e.errors()[0]
        raise ValueRangeError(err["msg"], path=source, field=".".join(str(p) for p in err["loc"])) from None


def builtin_workflows() -> dict[str, Path]:
    """Name → YAML file of the workflows shipped with subcell."""
    return {p.stem: p for p in sorted(_BUILTIN.glob("*.yaml"))}


def load_workflow(name_or_path: str | Path) -> Workflow:
    """A built-in workflow by name, or a YAML file."""
    from subcell.io.files import read_yaml

    builtin = builtin_workflows()
    if isinstance(name_or_path, str) and name_or_path in builtin:
        path = builtin[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise InputFileError(
                f"no such workflow file, and not a built-in workflow (built-in: {sorted(builtin)})", path=path
            )
    return _parse(read_yaml(path, what="workflow file"), str(path))


def workflow_yaml(name: str) -> str:
    """The YAML text of a built-in workflow (what ``subcell workflows show`` prints)."""
    builtin = builtin_workflows()
    if name not in builtin:
        raise InputFileError(f"unknown built-in workflow; expected one of {sorted(builtin)}", path=name)
    return builtin[name].read_text()


def run_workflow(
    workflow: Workflow,
    inputs: Mapping[str, np.ndarray],
    *,
    voxel_size: VoxelSize | Sequence[float],
    statistics: Mapping[int, Mapping[str, float]] | None = None,
    record: dict[int, dict[str, float]] | None = None,
) -> np.ndarray:
    """Run ``workflow`` on named ``(Z, Y, X)`` arrays (a 2D image is one z-plane); returns its final result.

    Instance workflows return int32 labels, mask workflows uint8 0/1. Steps that fit image statistics
    (``normalize`` ranges, global ``threshold`` values) use ``statistics[step index]`` when given (fitted
    elsewhere, e.g. on a sample of blocks of a large volume) and report what they used into ``record``.
    """
    vs = VoxelSize.of(voxel_size)
    missing = [n for n in workflow.inputs if n not in inputs]
    if missing:
        raise ValueRangeError(f"workflow {workflow.name!r} needs inputs {missing}", field="inputs")
    named: dict[str, np.ndarray] = {}
    shape = None
    for n in workflow.inputs:
        a = np.asarray(inputs[n])
        a = a[None] if a.ndim == 2 else a
        if a.ndim != 3:
            raise ValueRangeError(f"input {n!r} must be (Z, Y, X) or (Y, X), got shape {a.shape}", field=n)
        if a.size == 0:
            raise ValueRangeError(f"input {n!r} is empty", field=n)
        if shape is not None and a.shape != shape:
            raise ValueRangeError(f"input {n!r} has shape {a.shape}, the others {shape}", field=n)
        shape = a.shape
        named[n] = a
    current = named[workflow.inputs[0]]
    for i, (_name, step) in enumerate(workflow.steps):
        src = named[step.input] if step.input else current
        if _name in STATISTIC_STEPS:
            fit, apply = STATISTIC_STEPS[_name]
            stats = dict(statistics[i]) if statistics is not None and i in statistics else fit(src, step)
            if record is not None:
                record[i] = stats
            current = np.asarray(apply(src, step, stats))
        else:
            current = np.asarray(STEPS[_name][1](src, step, vs, named))
        if step.output:
            named[step.output] = current
    if workflow.kind == "instance":
        return (
            current.astype(np.int32)
            if np.issubdtype(current.dtype, np.integer) and current.dtype != np.bool_
            else _label(current)
        )
    return (current > 0).astype(np.uint8)
