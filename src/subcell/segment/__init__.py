"""Classical segmentation: a filter vocabulary in µm, declarative workflows, measurements. Never imports torch."""

from __future__ import annotations

from subcell.segment import filters
from subcell.segment.measure import border_ids, mask_components, measure_frames, measure_objects, structures_per_cell
from subcell.segment.run import segment_image, segment_to_file
from subcell.segment.workflow import Workflow, builtin_workflows, load_workflow, run_workflow, workflow_yaml

__all__ = [
    "Workflow",
    "border_ids",
    "builtin_workflows",
    "filters",
    "load_workflow",
    "mask_components",
    "measure_frames",
    "measure_objects",
    "run_workflow",
    "segment_image",
    "segment_to_file",
    "structures_per_cell",
    "workflow_yaml",
]
