"""How far a network's tile edges reach into its output: the trim a tiled prediction needs to equal a
whole-volume one.

A convolution network zero-pads at every tile edge, so the output near an edge differs from what the same voxels
get inside a larger volume. The receptive field bounds how far that reaches, but a trained network's response
falls below any useful tolerance well inside it (the default 3-level U-Net: a receptive field of tens of voxels,
an edge effect under 1e-5 after a few), and trimming the whole receptive field would compute each voxel up to
twice. So the reach is measured on the trained weights: the network runs on a fixed, seeded input and on a
crop of it, and the reach along an axis is how far from the crop's edges the two outputs still differ by more
than ``tolerance``. No library measures this for an arbitrary network (StarDist feeds an impulse and reports
where the output changes at all, i.e. the full receptive field), hence written here.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["TOLERANCE", "edge_reach"]

TOLERANCE = 1e-5  # output units (z-scored targets); a tenth of the tiled == whole aim, for inputs less smooth


def _probe(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A z-scored input with fine and coarse structure (sums of smoothed white noise), fixed by ``seed``."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    x = sum(ndi.gaussian_filter(rng.standard_normal(shape), s) * s for s in (1.0, 3.0))
    x = np.asarray(x, dtype=np.float64)
    return ((x - x.mean()) / x.std()).astype(np.float32)


def edge_reach(
    network: torch.nn.Module,
    patch_size: tuple[int, int, int],
    divisor: tuple[int, int, int],
    *,
    tolerance: float = TOLERANCE,
    in_channels: int = 1,
) -> tuple[int, int, int]:
    """Voxels from a tile edge, per axis (z, y, x), within which ``network``'s output (fp32, on its current
    device) differs by more than ``tolerance`` from the output inside a larger volume.

    Along each axis the network sees a volume of two patches of context, two patches of crop, two patches of
    context (lengths rounded up to the divisor, so the crop keeps the stride phase), and the crop alone; the
    other axes are half a patch. Where the effect reaches the middle of the crop, the probe doubles (up to
    four patches). An axis one voxel deep in the patch (a 2D model's z) reaches 0.
    """
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    try:
        return tuple(_axis_reach(network, ax, patch_size, divisor, tolerance, in_channels, device) for ax in range(3))  # type: ignore[return-value]
    finally:
        network.train(was_training)


def _up(n: int, d: int) -> int:
    return max(d, -(-n // d) * d)


def _axis_reach(
    network: torch.nn.Module,
    ax: int,
    patch_size: tuple[int, int, int],
    divisor: tuple[int, int, int],
    tolerance: float,
    in_channels: int,
    device: torch.device,
) -> int:
    if patch_size[ax] == 1:
        return 0
    length = patch_size[ax]
    while True:
        context = crop = _up(2 * length, divisor[ax])
        shape = [_up(-(-p // 2), d) if p > 1 else 1 for p, d in zip(patch_size, divisor, strict=True)]
        shape[ax] = context + crop + context
        x = _probe((in_channels, *shape))
        inner = [slice(None)] * 4
        inner[1 + ax] = slice(context, context + crop)
        with torch.inference_mode():
            whole = network(torch.from_numpy(x)[None].to(device)).float()[0]
            part = network(torch.from_numpy(np.ascontiguousarray(x[tuple(inner)]))[None].to(device)).float()[0]
        diff = (whole[tuple(inner)] - part).abs()
        # the largest difference at each distance from the crop's nearer edge
        along = diff.movedim(1 + ax, 0).reshape(crop, -1).amax(dim=1).cpu().numpy()
        half = crop // 2
        profile = np.maximum(along[:half], along[::-1][:half])
        over = np.flatnonzero(profile > tolerance)
        reach = int(over[-1]) + 1 if over.size else 0
        # trusted when it stays inside half the crop (and so well inside the context, where the larger volume's
        # own edges are); otherwise a longer stretch is probed
        if reach < half or length >= 4 * patch_size[ax]:
            return reach
        length *= 2
