"""The classical vocabulary: pure 3D (and slice-by-slice 2D) filters with lengths in micrometres.

Every function takes a ``(Z, Y, X)`` array (a 2D image is a single z-plane) and keyword-only options, and
returns a new array; lengths are µm and converted with ``voxel_size``. Nothing here opens files or imports torch.
The functions live in modules by topic (``intensity``, ``smoothing``, ``detection``, ``morphology``); every
public name is importable from ``subcell.segment.filters``.
"""

from __future__ import annotations

from subcell.segment.filters._common import (
    DERIVATIVE_TRUNCATE,
    SMOOTH_TRUNCATE,
    derivative_order,
    gaussian_reach,
    sigma_voxels,
)
from subcell.segment.filters.detection import (
    eigenvalues_by_magnitude,
    filament_filter,
    filament_top,
    hessian_eigenvalues,
    spot_filter,
)
from subcell.segment.filters.intensity import (
    apply_range,
    masked_object_threshold,
    normalize,
    normalize_range,
    threshold,
    threshold_value,
)
from subcell.segment.filters.morphology import (
    basal_run_lengths,
    fill_between_membranes,
    fill_holes,
    seeded_watershed,
    size_filter,
    topology_preserving_thinning,
)
from subcell.segment.filters.smoothing import edge_preserving_smooth, gaussian_smooth, gradient_sq, subtract_background

__all__ = [
    "DERIVATIVE_TRUNCATE",
    "SMOOTH_TRUNCATE",
    "apply_range",
    "basal_run_lengths",
    "derivative_order",
    "edge_preserving_smooth",
    "eigenvalues_by_magnitude",
    "filament_filter",
    "filament_top",
    "fill_between_membranes",
    "fill_holes",
    "gaussian_reach",
    "gaussian_smooth",
    "gradient_sq",
    "hessian_eigenvalues",
    "masked_object_threshold",
    "normalize",
    "normalize_range",
    "seeded_watershed",
    "sigma_voxels",
    "size_filter",
    "spot_filter",
    "subtract_background",
    "threshold",
    "threshold_value",
    "topology_preserving_thinning",
]
