"""Validated settings of single-cell extraction."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ExtractConfig"]


class ExtractConfig(BaseModel):
    """How cells are cut out of a field, aligned and resampled into a fixed box.

    Lengths are in µm. The box is (Z, Y, X) voxels of ``voxel_um`` each, centred on the nucleus centroid.
    """

    model_config = ConfigDict(extra="forbid")

    channels: list[str] | None = Field(None, description="image channels to keep (default: all)")
    voxel_um: float = Field(0.5, gt=0, le=10, description="isotropic voxel of the crops")
    box: tuple[int, int, int] = Field((32, 48, 48), description="crop size (Z, Y, X) in voxels")
    margin_um: float = Field(0.5, ge=0, le=20, description="space kept around the cell inside the box")
    mask_dilation_um: float = Field(
        0.5, ge=0, le=10, description="intensities farther than this from the cell (neighbours, medium) are zeroed"
    )
    align: bool = Field(True, description="rotate about z so the long axis is x, fix handedness")
    border: Literal["skip", "flag"] = Field("skip", description="cells touching the lateral field border")
    oversize: Literal["reject", "rescale"] = Field("reject", description="cells that do not fit the box")
    missing_nucleus: Literal["error", "skip"] = Field("error", description="cells that contain no nucleus")
    min_cell_volume_um3: float = Field(1.0, ge=0)

    @field_validator("box")
    @classmethod
    def _box(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(v) < 4:
            raise ValueError(f"box must be at least 4 voxels along each axis, got {v}")
        return v
