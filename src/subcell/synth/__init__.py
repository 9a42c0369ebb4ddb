"""Synthetic fields with exact ground truth (a first, simple generator; the physical one is issue #3)."""

from __future__ import annotations

from subcell.synth.blobs import blob_field

__all__ = ["blob_field"]
