"""Chunk-by-chunk segmentation of volumes larger than memory, streamed to OME-Zarr.

Blocks span the full z range and tile y/x. Each block is read with a halo of the workflow's largest reach
(:meth:`Workflow.halo_um`), segmented with the same :func:`run_workflow` as a whole volume, cropped, and written.
Instance labels get block-unique ids; then objects that continue across a block face are merged (union-find
over the label pairs that meet on the face) and relabelled consecutively in a second streamed pass. Peak
memory is bounded by one block with its halo, whatever the volume size.

Image statistics (normalization percentiles, global thresholds) are fitted once per timepoint on the whole
field sampled every k-th pixel laterally (about two blocks of data) and then applied unchanged to every block
(``statistics="global"``, the default), so a block that happens to hold only background or one bright cell is
treated like the rest of the volume. ``statistics="per_block"`` refits them
in every block (the old behaviour; faster by the sample's cost, but thresholds then vary between blocks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import Image
from subcell.segment.run import resolve_channels
from subcell.segment.workflow import Workflow, run_workflow

__all__ = ["merge_across_faces", "segment_chunked"]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        root = a
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(a, a) != root:  # path compression
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def merge_across_faces(left: np.ndarray, right: np.ndarray, *, min_contact: float = 0.5) -> list[tuple[int, int]]:
    """Label pairs that continue across a face: ``left`` and ``right`` are the two voxel layers facing each other.

    A pair is merged when its contact covers at least ``min_contact`` of the smaller object's footprint on the
    face, so two different objects that merely touch at the block edge stay apart.
    """
    a, b = left.ravel(), right.ravel()
    both = (a > 0) & (b > 0)
    if not both.any():
        return []
    pairs, counts = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    area_a = dict(zip(*np.unique(a[a > 0], return_counts=True), strict=True))
    area_b = dict(zip(*np.unique(b[b > 0], return_counts=True), strict=True))
    out = []
    for (la, lb), n in zip(pairs.T, counts, strict=True):
        if n >= min_contact * min(area_a[la], area_b[lb]):
            out.append((int(la), int(lb)))
    return out


def segment_chunked(
    image: Image,
    workflow: Workflow,
    output: str | Path,
    *,
    channels: Mapping[str, str | int] | None = None,
    block_yx: int = 512,
    overwrite: bool = False,
    statistics: str = "global",
) -> Path:
    """Segment ``image`` (typically lazy, from :func:`subcell.io.read`) block by block into an OME-Zarr."""
    if statistics not in ("global", "per_block"):
        raise ValueRangeError(f"expected 'global' or 'per_block', got {statistics!r}", field="statistics")
    from subcell.io import OmeZarrWriter

    if block_yx < 16:
        raise ValueRangeError(f"block_yx must be at least 16 px, got {block_yx}", field="block_yx")
    chosen = resolve_channels(image, workflow, channels)
    t_n, _, nz, ny, nx = image.shape
    vs = image.voxel_size
    halo = [math.ceil(workflow.halo_um() / v) for v in (vs.y, vs.x)]
    instance = workflow.kind == "instance"
    dtype = np.int64 if instance else np.uint8
    provenance = image.provenance.then(
        f"segment:{workflow.name}", {"workflow": workflow.to_dict(), "block_yx": block_yx}
    )
    if nz * (block_yx + 2 * max(halo)) ** 2 * 4 * 16 > 8 << 30:
        raise ValueRangeError(
            f"a {nz}-plane block of {block_yx} px with its halo would need > 8 GB; use a smaller block_yx",
            field="block_yx",
        )
    writer = OmeZarrWriter(
        output, shape=(t_n, 1, nz, ny, nx), dtype=np.int32 if instance else np.uint8, voxel_size=vs,
        channel_names=[workflow.name], time_interval=image.time_interval, provenance=provenance,
        chunks=(1, 1, min(nz, 32), min(ny, 256), min(nx, 256)), overwrite=overwrite,
    )  # fmt: skip
    try:
        blocks = [(y0, x0) for y0 in range(0, ny, block_yx) for x0 in range(0, nx, block_yx)]
        uf = _UnionFind()
        next_id = 1
        raw = _Scratch(writer, (t_n, nz, ny, nx), dtype) if instance else None

        for t in range(t_n):
            fitted = None
            if statistics == "global" and len(blocks) > 1:
                fitted = _fit_statistics(workflow, image, chosen, t, len(blocks))
            for y0, x0 in blocks:
                y1, x1 = min(ny, y0 + block_yx), min(nx, x0 + block_yx)
                ey0, ex0 = max(0, y0 - halo[0]), max(0, x0 - halo[1])
                ey1, ex1 = min(ny, y1 + halo[0]), min(nx, x1 + halo[1])
                inputs = {
                    name: np.asarray(_compute(image.data[t, c, :, ey0:ey1, ex0:ex1])) for name, c in chosen.items()
                }
                res = run_workflow(workflow, inputs, voxel_size=vs, statistics=fitted)
                res = res[:, y0 - ey0 : y1 - ey0, x0 - ex0 : x1 - ex0]
                region = (slice(t, t + 1), slice(0, 1), slice(0, nz), slice(y0, y1), slice(x0, x1))
                if not instance:
                    writer.write_region(region, res[None, None])
                    continue
                ids = res.astype(np.int64)
                ids[ids > 0] += next_id - 1
                next_id = int(ids.max()) + 1 if ids.max() > 0 else next_id
                assert raw is not None
                raw.write(t, (y0, y1, x0, x1), ids)
            if instance:
                assert raw is not None
                for y in range(block_yx, ny, block_yx):  # every face between block rows, then columns
                    for a, b in merge_across_faces(raw.layer(t, y - 1, None), raw.layer(t, y, None)):
                        uf.union(a, b)
                for x in range(block_yx, nx, block_yx):
                    for a, b in merge_across_faces(raw.layer(t, None, x - 1), raw.layer(t, None, x)):
                        uf.union(a, b)
        if instance:
            assert raw is not None
            roots = np.arange(next_id, dtype=np.int64)
            for i in range(1, next_id):
                roots[i] = uf.find(i)
            _, consecutive = np.unique(roots, return_inverse=True)  # root ids → 0..n (0 stays background)
            lookup = consecutive.astype(np.int32)
            for t in range(t_n):
                for y0, x0 in blocks:
                    y1, x1 = min(ny, y0 + block_yx), min(nx, x0 + block_yx)
                    ids = raw.read(t, (y0, y1, x0, x1))
                    region = (slice(t, t + 1), slice(0, 1), slice(0, nz), slice(y0, y1), slice(x0, x1))
                    writer.write_region(region, lookup[ids][None, None])
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def _fit_statistics(
    workflow: Workflow, image: Image, chosen: Mapping[str, int], t: int, n_blocks: int
) -> dict[int, dict[str, float]]:
    """Statistics of every fitting step, fitted on the whole field sampled every k-th pixel in y and x.

    k is chosen so that the sampled field is about two blocks large (memory stays bounded); the workflow runs
    on it with the correspondingly coarser voxel size (filters keep their size in µm) and records what its
    normalization and threshold steps fitted.
    """
    k = max(1, math.ceil(math.sqrt(n_blocks / 2)))
    inputs = {name: np.asarray(_compute(image.data[t, c, :, ::k, ::k])) for name, c in chosen.items()}
    vs = image.voxel_size
    record: dict[int, dict[str, float]] = {}
    run_workflow(workflow, inputs, voxel_size=(vs.z, vs.y * k, vs.x * k), record=record)
    return record


def _compute(a: Any) -> Any:
    return a.compute() if hasattr(a, "compute") else a


class _Scratch:
    """Block-unique labels kept between the two passes, in a scratch array of the unfinished output store."""

    def __init__(self, writer: Any, shape: tuple[int, int, int, int], dtype: Any):
        self._arr = writer.scratch_array("ids", shape=shape, dtype=dtype, chunks=(1, shape[1], 256, 256))

    def write(self, t: int, box: tuple[int, int, int, int], ids: np.ndarray) -> None:
        self._arr[t, :, box[0] : box[1], box[2] : box[3]] = ids

    def read(self, t: int, box: tuple[int, int, int, int]) -> np.ndarray:
        return np.asarray(self._arr[t, :, box[0] : box[1], box[2] : box[3]])

    def layer(self, t: int, y: int | None, x: int | None) -> np.ndarray:
        """One y-row (``y``) or x-column (``x``) of the whole volume at timepoint ``t``: a block face."""
        if y is not None:
            return np.asarray(self._arr[t, :, y, :])
        assert x is not None
        return np.asarray(self._arr[t, :, :, x])
