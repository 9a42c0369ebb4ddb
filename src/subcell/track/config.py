"""The one validated config of ``subcell track``: linking costs in µm and minutes, never in pixels or frames."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrackConfig"]


class TrackConfig(BaseModel):
    """How objects are linked over time.

    The largest displacement between consecutive frames is ``max_speed_um_per_min`` × the time interval, so the
    same config works at any frame rate and voxel size. A link's cost is the squared distance between the two
    centroids (µm, anisotropic voxels honoured) plus, squared, ``size_weight`` × the change of the objects'
    equivalent diameter (µm) and ``intensity_weight`` × the largest displacement × the relative change of mean
    intensity (when an image is given). Links costing more than the largest displacement squared are never made.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    max_speed_um_per_min: float = Field(
        1.0, gt=0, description="fastest a cell moves (µm/min); with the time interval it bounds every link"
    )
    max_gap_frames: int = Field(2, ge=0, le=50, description="frames an object may be missed and its track go on")
    divisions: bool = Field(True, description="link one parent to two daughters")
    division_distance_factor: float = Field(
        1.5, gt=0, le=10, description="a daughter lies within this × the largest displacement of its parent"
    )
    resolve_merges: bool = Field(
        True,
        description="two tracks that run into one object (touching nuclei segmented as one) and leave it again as two "
        "keep their identities instead of ending in a false division",
    )
    max_merge_frames: int = Field(10, ge=1, le=200, description="longest merge that is resolved (frames)")
    border_entries: bool = Field(
        True,
        description="an object that appears at the field's border beside a cell that goes on clear of the border "
        "with at least 90 % of its volume entered the field: it starts its own track instead of making a false "
        "division (in a division each daughter takes about half)",
    )
    size_weight: float = Field(0.5, ge=0, le=10, description="cost weight of the change of equivalent diameter")
    intensity_weight: float = Field(0.0, ge=0, le=10, description="cost weight of the relative intensity change")
    min_track_frames: int = Field(1, ge=1, description="tracks shorter than this (and without relatives) are dropped")
