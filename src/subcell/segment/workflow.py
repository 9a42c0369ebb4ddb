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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from subcell.errors import InputFileError, ValueRangeError
from subcell.image import VoxelSize
from subcell.segment.steps import STEP_TYPES, Step

__all__ = ["STEP_TYPES", "Workflow", "builtin_workflows", "load_workflow", "run_workflow", "workflow_yaml"]

_BUILTIN = Path(__file__).parent / "workflows"


class Workflow(BaseModel):
    """A validated workflow: inputs, ordered steps, and what its result is."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    version: Literal[1] = 1
    inputs: list[str] = Field(..., min_length=1)
    kind: Literal["instance", "mask"] = "mask"
    steps: list[tuple[str, Step]]

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


def _parse(raw: Mapping[str, Any], source: str, base: Path | None = None) -> Workflow:
    """Validate a workflow mapping; every problem in the file is reported at once (one line, ``; ``-separated).
    Relative paths in it (a pixel classifier's ``model``) are taken from ``base``, by default the file's folder."""
    if not isinstance(raw, Mapping):
        raise InputFileError("expected a mapping with name, inputs and steps", path=source)
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ValueRangeError("expected a non-empty list of steps", path=source, field="steps")
    steps: list[tuple[str, Step]] = []
    problems: list[tuple[str, str]] = []  # (field, message)
    known: set[str] = set(raw.get("inputs") or [])
    for i, entry in enumerate(steps_raw, start=1):
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, Mapping) or len(entry) != 1:
            problems.append(
                (
                    f"steps[{i}]",
                    f"each step must be a one-key mapping like 'threshold: {{method: otsu}}', got {entry!r}",
                )
            )
            continue
        ((name, params),) = entry.items()
        if name == "pixel_classifier" and isinstance(params, Mapping) and isinstance(params.get("model"), str):
            where = Path(params["model"])  # a classifier beside its workflow file travels with it
            params = {
                **params,
                "model": str(where if where.is_absolute() else ((base or Path(source).parent) / where).resolve()),
            }
        if isinstance(params, Mapping) and params.get("output"):
            known.add(str(params["output"]))
        if name not in STEP_TYPES:
            problems.append((f"steps[{i}]", f"unknown step {name!r}; expected one of {sorted(STEP_TYPES)}"))
            continue
        model = STEP_TYPES[name]
        try:
            step = model.model_validate(params or {})
        except ValidationError as e:
            for err in e.errors():
                param = ".".join(str(p) for p in err["loc"]) or "?"
                msg = err["msg"]
                if err["type"] == "extra_forbidden":
                    msg = f"unknown parameter; {name} accepts {sorted(set(model.model_fields) - {'input', 'output'})}"
                problems.append((f"steps[{i}] {name}.{param}", f"{msg} (got {err.get('input')!r})"))
            continue
        for ref_field, ref in [("input", step.input), *step.refs().items()]:
            if ref is not None and ref not in known - ({step.output} if step.output else set()):
                problems.append((
                    f"steps[{i}] {name}.{ref_field}",
                    f"refers to {ref!r}, which no input or earlier step provides (have {sorted(known)})",
                ))  # fmt: skip
        steps.append((name, step))
    if not problems:
        try:
            return Workflow.model_validate({**{k: v for k, v in raw.items() if k != "steps"}, "steps": steps})
        except ValidationError as e:
            problems = [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in e.errors()]
    if len(problems) == 1:
        raise ValueRangeError(problems[0][1], path=source, field=problems[0][0])
    listed = "; ".join(f"{f}: {m}" for f, m in problems)
    raise ValueRangeError(f"{len(problems)} problems: {listed}", path=source)


def builtin_workflows() -> dict[str, Path]:
    """Name → YAML file of the workflows shipped with subcell."""
    return {p.stem: p for p in sorted(_BUILTIN.glob("*.yaml"))}


def load_workflow(name_or_path: str | Path, *, relative_to: str | Path | None = None) -> Workflow:
    """A built-in workflow by name, a YAML file, or a folder that holds a `workflow.yaml` (a pixel classifier's).
    ``relative_to``: the folder relative paths in it are taken from (default: the file's), for a workflow edited
    and saved elsewhere (the napari widget validates its text in a temporary file)."""
    from subcell.io.files import read_yaml

    builtin = builtin_workflows()
    if isinstance(name_or_path, str) and name_or_path in builtin:
        path = builtin[name_or_path]
    else:
        path = Path(name_or_path)
        if path.is_dir() and (path / "workflow.yaml").is_file():  # a pixel classifier's folder holds its workflow
            path = path / "workflow.yaml"
        if not path.exists():
            raise InputFileError(
                f"no such workflow file, and not a built-in workflow (built-in: {sorted(builtin)})", path=path
            )
    return _parse(read_yaml(path, what="workflow file"), str(path), Path(relative_to) if relative_to else None)


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
    record: dict[int, dict[str, Any]] | None = None,
) -> np.ndarray:
    """Run ``workflow`` on named ``(Z, Y, X)`` arrays (a 2D image is one z-plane); returns its final result.

    Instance workflows return int32 labels (numbered by each object's first voxel in raster order), mask
    workflows uint8 0/1. ``record`` receives what every fitted step fitted (normalization ranges, thresholds),
    by step index. The same code runs block by block in :func:`subcell.segment.chunked.segment_chunked`.
    """
    from subcell.segment.execute import execute

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
    return np.asarray(execute(workflow, named, voxel_size=voxel_size, record=record))
