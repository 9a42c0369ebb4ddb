"""Single cells: extraction from segmented fields (crop, mask, align, resample), shape features and shape space.

No torch here: the classical path runs without the deep-learning stack.
"""

from __future__ import annotations

from subcell.cells.align import Alignment, fit_alignment
from subcell.cells.config import ExtractConfig
from subcell.cells.extract import MASK_CHANNELS, CellCrop, extract_cells, extract_to_store, match_nuclei
from subcell.cells.harmonics import fit_harmonics, rasterize
from subcell.cells.shape_report import ShapeSpaceResult, shape_space_of_store
from subcell.cells.shape_space import ShapeSpace, fit_shape_space, shape_coefficients

__all__ = [
    "MASK_CHANNELS",
    "Alignment",
    "CellCrop",
    "ExtractConfig",
    "ShapeSpace",
    "ShapeSpaceResult",
    "extract_cells",
    "extract_to_store",
    "fit_alignment",
    "fit_harmonics",
    "fit_shape_space",
    "match_nuclei",
    "rasterize",
    "shape_coefficients",
    "shape_space_of_store",
]
