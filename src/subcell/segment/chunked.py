"""Block-wise segmentation of volumes larger than memory, streamed to OME-Zarr.

Blocks span the full z range and tile y/x. The workflow runs through :func:`subcell.segment.execute.execute`,
the code a whole-volume run uses too, so the result is the same: statistics are fitted once per timepoint on
the whole field (exact summaries merged over blocks), local steps read each block with the halo their reaches
add up to, and object steps (size filters, hole filling, splitting, labelling) judge every object whole,
joined across block faces. What later steps need is kept in scratch arrays inside the unfinished output store,
which disappear when it is closed. Peak memory is bounded by one block with its halo (and, for per-object
steps, by the largest object), whatever the volume size.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from subcell.blocks import BlockGrid, face_pairs
from subcell.errors import ValueRangeError
from subcell.image import Image
from subcell.segment.execute import execute
from subcell.segment.run import resolve_channels
from subcell.segment.workflow import Workflow

__all__ = ["merge_across_faces", "segment_chunked"]


def merge_across_faces(left: np.ndarray, right: np.ndarray, *, min_contact: float = 0.5) -> list[tuple[int, int]]:
    """Label pairs that continue across a face (see :func:`subcell.blocks.face_pairs`), as a list of tuples."""
    return [(int(a), int(b)) for a, b in face_pairs(left, right, min_contact=min_contact)]


def _chunk(block_yx: int) -> int:
    """Scratch chunk edge: a divisor of the block of at most 256 px where there is one (block writes stay aligned)."""
    c = block_yx
    while c > 256 and c % 2 == 0:
        c //= 2
    return min(c, 256)


def segment_chunked(
    image: Image,
    workflow: Workflow,
    output: str | Path,
    *,
    channels: Mapping[str, str | int] | None = None,
    block_yx: int = 512,
    overwrite: bool = False,
    executor: Any = None,
) -> Path:
    """Segment ``image`` (typically lazy, from :func:`subcell.io.read`) block by block into an OME-Zarr.

    ``executor`` (any object with an ordered ``map``) runs the blocks of each pass; serial by default.
    """
    from subcell.io import OmeZarrWriter

    if block_yx < 16:
        raise ValueRangeError(f"block_yx must be at least 16 px, got {block_yx}", field="block_yx")
    chosen = resolve_channels(image, workflow, channels)
    t_n, _, nz, ny, nx = image.shape
    vs = image.voxel_size
    instance = workflow.kind == "instance"
    if nz * (block_yx * 3) ** 2 * 4 * 16 > 16 << 30:
        raise ValueRangeError(
            f"a {nz}-plane block of {block_yx} px with its halo would need > 16 GB; use a smaller block_yx",
            field="block_yx",
        )
    provenance = image.provenance.then(
        f"segment:{workflow.name}", {"workflow": workflow.to_dict(), "block_yx": block_yx}
    )
    dtype = np.int32 if instance else np.uint8
    writer = OmeZarrWriter(
        output, shape=(t_n, 1, nz, ny, nx), dtype=dtype, voxel_size=vs,
        channel_names=[workflow.name], time_interval=image.time_interval, provenance=provenance,
        chunks=(1, 1, min(nz, 32), min(ny, 256), min(nx, 256)), overwrite=overwrite, is_label=instance,
    )  # fmt: skip
    c = _chunk(block_yx)
    try:
        for t in range(t_n):
            inputs = {name: image.data[t, ch] for name, ch in chosen.items()}

            def scratch(name: str, dt: Any, t: int = t) -> Any:
                return writer.scratch_array(
                    f"t{t}{name.replace('#', 's')}", shape=(nz, ny, nx), dtype=dt, chunks=(nz, c, c)
                )

            result = execute(workflow, inputs, voxel_size=vs, block_yx=block_yx, scratch=scratch, executor=executor)
            for block in BlockGrid((nz, ny, nx), (nz, block_yx, block_yx)):
                part = np.asarray(result[block.core])
                part = part.astype(np.int32) if instance else (part > 0).astype(np.uint8)
                writer.write_region((slice(t, t + 1), slice(0, 1), *block.core), part[None, None])
            writer.clear_scratch()
    except BaseException:
        writer.abort()
        raise
    return writer.close()
