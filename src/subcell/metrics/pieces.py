"""How many voxels a metric handles at once.

Metrics of large volumes are sums over voxels (counts, products, SSIM map values), so they are computed piece by
piece and summed: the temporaries (masks, sorted copies, float64 products, ~15 arrays for SSIM) are those of one
piece, not of the volume. One setting for every metric (tests lower it to force many pieces).
"""

from __future__ import annotations

__all__ = ["PIECE_VOXELS"]

PIECE_VOXELS = 1 << 22  # 4 M voxels: ~160 MB of int64/float64 temporaries
