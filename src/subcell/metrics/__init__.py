"""Metrics shared by every feature (pure functions, no I/O, no torch)."""

from __future__ import annotations

from subcell.metrics.segmentation import (
    DEFAULT_THRESHOLDS,
    InstanceMatch,
    dice,
    evaluate_frames,
    iou,
    match_instances,
)

__all__ = ["DEFAULT_THRESHOLDS", "InstanceMatch", "dice", "evaluate_frames", "iou", "match_instances"]
