"""Images put on another image's grid (its voxel size and field): resampled when the voxel sizes differ (linear for
intensities, nearest neighbour for labels), then cropped or padded by a voxel at most. Whole in memory
(:func:`align_to`), or lazily a stored chunk layer at a time (:func:`aligned_lazily`), optionally into arrays the
caller makes (:func:`aligned_into`, e.g. scratch Zarr). One implementation for evaluation, prediction's cell input
and figures. No I/O of its own, no torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from subcell.errors import MetadataError
from subcell.image import SAME_GRID_RTOL, Image, is_lazy

__all__ = ["align_to", "aligned_into", "aligned_lazily", "chunk_layer", "fitted_shape", "on_grid_of"]


def on_grid_of(image: Image, reference: Image) -> bool:
    """Whether ``image`` already lies on ``reference``'s grid: the same (Z, Y, X) shape and voxel size (within
    ``SAME_GRID_RTOL``, the tolerance :func:`align_to` resamples beyond), so aligning it would change nothing."""
    return image.shape[2:] == reference.shape[2:] and image.voxel_size.isclose(
        reference.voxel_size, rtol=SAME_GRID_RTOL
    )


def align_to(image: Image, reference: Image, *, labels: bool = False) -> np.ndarray:
    """``image`` data (TCZYX) on ``reference``'s grid: resampled when voxel sizes differ, then cropped/padded."""
    from subcell.transforms.resample import resample, resample_linear

    data = image.numpy()
    if not image.voxel_size.isclose(reference.voxel_size, rtol=SAME_GRID_RTOL):
        if labels:
            data = resample(data, voxel_size=image.voxel_size, target_voxel_size=reference.voxel_size, labels=True)
        else:
            data = resample_linear(data, voxel_size=image.voxel_size, target_voxel_size=reference.voxel_size)
    want = fitted_shape(image, tuple(data.shape[2:]), reference)
    if tuple(data.shape[2:]) == want:
        return data
    out = np.zeros((*data.shape[:2], *want), data.dtype)
    sl = tuple(slice(0, min(a, b)) for a, b in zip(data.shape[2:], want, strict=True))
    out[(slice(None), slice(None), *sl)] = data[(slice(None), slice(None), *sl)]
    return out


def fitted_shape(image: Image, shape: tuple[int, ...], reference: Image) -> tuple[int, ...]:
    """``reference``'s (Z, Y, X), which ``image`` covers as ``shape`` voxels on that grid: cropped or padded by a
    voxel at most (rounding), else refused."""
    want = tuple(reference.shape[2:])
    if any(abs(a - b) > 1 for a, b in zip(shape, want, strict=True)):
        raise MetadataError(
            f"image covers {shape} voxels on the grid of {reference.provenance.source or 'the image it goes with'}, "
            f"which has {want}; they do not show the same field",
            path=image.provenance.source,
            field="shape",
        )
    return want


def chunk_layer(image: Image, reference: Image) -> int:
    """Planes of ``reference``'s grid that one stored chunk layer of ``image`` covers (8 planes for an image in
    memory): resampled that many at a time, each stored chunk is decoded once."""
    chunks = getattr(image.data, "chunks", None)
    return max(1, round((int(chunks[2][0]) if chunks else 8) * image.voxel_size.z / reference.voxel_size.z))


def aligned_lazily(image: Image, t: int, reference: Image, *, labels: bool = False, chunk_z: int | None = None) -> Any:
    """Frame ``t`` of ``image`` on ``reference``'s grid, ``(C, Z, Y, X)``: :func:`align_to`'s values as a Dask array
    computed ``chunk_z`` planes at a time (default :func:`chunk_layer`;
    :func:`~subcell.transforms.resample.resample_lazy`), then cropped or padded with zeros as :func:`align_to` does."""
    import dask.array as da

    from subcell.transforms.resample import resample_lazy, resampled_shape

    chunk_z = chunk_z or chunk_layer(image, reference)
    data = image.data[t] if is_lazy(image.data) else da.from_array(image.data[t], chunks=(1, chunk_z, -1, -1))
    vs, ref = image.voxel_size, reference.voxel_size
    if not vs.isclose(ref, rtol=SAME_GRID_RTOL):
        data = resample_lazy(data, voxel_size=vs, target_voxel_size=ref, labels=labels, chunk_z=chunk_z,
                             out_shape=resampled_shape(data.shape, vs, ref))  # fmt: skip
    want = fitted_shape(image, tuple(data.shape[1:]), reference)
    data = data[:, : want[0], : want[1], : want[2]]
    return da.pad(data, [(0, 0)] + [(0, w - n) for w, n in zip(want, data.shape[1:], strict=True)])


def aligned_into(image: Image, t: int, reference: Image, *, labels: bool = False, new: Callable[..., Any]) -> list[Any]:
    """:func:`aligned_lazily` of frame ``t`` stored into one array per channel, ``new(i, shape=, dtype=, chunks=)``
    (e.g. a scratch Zarr array), a stored chunk layer of ``image`` at a time: each of its chunks is decoded once, and
    each block of the store covers whole chunks of the arrays along z (a padding plane joins the last block), so no
    two threads write one chunk."""
    import dask.array as da

    from subcell.image import dask_scheduler

    layer = chunk_layer(image, reference)
    aligned = aligned_lazily(image, t, reference, labels=labels, chunk_z=layer).rechunk({1: layer})
    out = [
        new(i, shape=aligned.shape[1:], dtype=aligned.dtype, chunks=(layer, 128, 128)) for i in range(aligned.shape[0])
    ]
    da.store(list(aligned), out, lock=False, scheduler=dask_scheduler())
    return out
