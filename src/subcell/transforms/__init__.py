"""Pure array transforms in physical units: resampling, normalization, cropping and padding, channels stacked,
a time-lapse's drift and bleaching.
No I/O, no torch."""

from __future__ import annotations

from subcell.transforms.bleach import bleach_curve, bleach_factors, correct_bleach
from subcell.transforms.channels import stack_channels
from subcell.transforms.crop import crop_or_pad, crop_physical, pad_to_multiple
from subcell.transforms.drift import correct_drift, estimate_drift
from subcell.transforms.normalize import percentile_normalize, zscore
from subcell.transforms.resample import resample, resample_image, resampled_shape

__all__ = [
    "bleach_curve",
    "bleach_factors",
    "correct_bleach",
    "correct_drift",
    "crop_or_pad",
    "crop_physical",
    "estimate_drift",
    "pad_to_multiple",
    "percentile_normalize",
    "resample",
    "resample_image",
    "resampled_shape",
    "stack_channels",
    "zscore",
]
