"""Chunk-by-chunk segmentation of volumes larger than memory, streamed to OME-Zarr.

Blocks span the full z range and tile y/x. Each block is read with a halo of the workflow's largest reach
(:meth:`Workflow.halo_um`), segmented with the same :func:`run_workflow` as a whole volume, cropped, and written.
Instance labels get block-unique ids; then objects that continue across a block face are merged (union-find
over the label pairs that meet on the face) and relabelled consecutively in a second streamed pass. Peak
memory is bounded by one block with its halo, whatever the volume size.

Image statistics (normalization percentiles, global thresholds) are fitted once per timepoint on a sample of
blocks spread over the field (the median of each statistic over up to ``sample_blocks`` blocks) and then
applied unchanged to every block (``statistics="global"``, the default), so a block that happens to hold only
background or one bright cell is treated like the rest of the volume. ``statistics="per_block"`` refits them
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
    sample_blocks: int = 8,
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

        def block_inputs(t: int, y0: int, x0: int) -> tuple[dict[str, np.ndarray], tuple[int, int, int, int]]:
            y1, x1 = min(ny, y0 + block_yx), min(nx, x0 + block_yx)
            ey0, ex0 = max(0, y0 - halo[0]), max(0, x0 - halo[1])
            ey1, ex1 = min(ny, y1 + halo[0]), min(nx, x1 + halo[1])
            inputs = {name: np.asarray(_compute(image.data[t, c, :, ey0:ey1, ex0:ex1])) for name, c in chosen.items()}
            return inputs, (y0 - ey0, y1 - ey0, x0 - ex0, x1 - ex0)

        for t in range(t_n):
            fitted = None
            if statistics == "global" and len(blocks) > 1:
                fitted = _fit_statistics(workflow, image, chosen, t, blocks, block_yx, halo, sample_blocks)
            for y0, x0 in blocks:
                y1, x1 = min(ny, y0 + block_yx), min(nx, x0 + block_yx)
                inputs, (cy0, cy1, cx0, cx1) = block_inputs(t, y0, x0)
                res = run_workflow(workflow, inputs, voxel_size=vs, statistics=fitted)[:, cy0:cy1, cx0:cx1]
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


def _fit_statistics(workflow: Workflow, image: Image, chosen: Mapping[str, int], t: int,
                    blocks: list[tuple[int, int]], block_yx: int, halo: list[int], sample_blocks: int
                    ) -> dict[int, dict[str, float]]:  # fmt: skip
    """Statistics of every fitting step on a mosaic of tiles spread over the field.

    Up to ``sample_blocks`` tiles of half a block (with their halo) are cut from blocks spread evenly over the
    field and laid side by side along x; the workflow runs once on that mosaic and records what its
    normalization and threshold steps fitted. The mosaic is about two blocks large, so memory stays bounded.
    """
    _, _, nz, ny, nx = image.shape
    picks = np.unique(np.linspace(0, len(blocks) - 1, min(sample_blocks, len(blocks))).round().astype(int))
    side = max(16, block_yx // 2)
    tiles: dict[str, list[np.ndarray]] = {name: [] for name in chosen}
    height = None
    for k in picks:
        y0, x0 = blocks[k]
        cy, cx = min(y0 + block_yx // 2, ny), min(x0 + block_yx // 2, nx)  # the block's centre
        ty0, tx0 = max(0, cy - side // 2 - halo[0]), max(0, cx - side // 2 - halo[1])
        ty1, tx1 = min(ny, cy + side // 2 + halo[0]), min(nx, cx + side // 2 + halo[1])
        height = ty1 - ty0 if height is None else min(height, ty1 - ty0)
        for name, c in chosen.items():
            tiles[name].append(np.asarray(_compute(image.data[t, c, :, ty0:ty1, tx0:tx1])))
    mosaic = {name: np.concatenate([a[:, :height] for a in arrs], axis=2) for name, arrs in tiles.items()}
    record: dict[int, dict[str, float]] = {}
    run_workflow(workflow, mosaic, voxel_size=image.voxel_size, record=record)
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
