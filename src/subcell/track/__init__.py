"""Dynamics: following objects of a label time-lapse through time, with divisions and gaps (µm, minutes)."""

from __future__ import annotations

from subcell.track.config import TrackConfig
from subcell.track.link import link_objects, max_displacement_um
from subcell.track.objects import frame_objects, timelapse_objects
from subcell.track.tracks import (
    Tracks,
    ctc_segments,
    lineage_table,
    napari_tracks,
    relabel,
    track_timelapse,
    tracks_from_lineage,
    write_frames,
)

__all__ = [
    "TrackConfig",
    "Tracks",
    "ctc_segments",
    "frame_objects",
    "lineage_table",
    "link_objects",
    "max_displacement_um",
    "napari_tracks",
    "relabel",
    "timelapse_objects",
    "track_timelapse",
    "tracks_from_lineage",
    "write_frames",
]
