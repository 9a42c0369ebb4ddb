"""Run a workflow on an :class:`~subcell.image.Image`: channel mapping, timepoints, provenance, border flags."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import ChannelError, ValueRangeError
from subcell.image import Image, materialize
from subcell.segment.measure import border_ids
from subcell.segment.workflow import Workflow, run_workflow

__all__ = ["resolve_channels", "segment_image", "segment_to_file"]


def resolve_channels(
    image: Image, workflow: Workflow, channels: Mapping[str, str | int] | None = None
) -> dict[str, int]:
    """Which channel feeds each workflow input: given explicitly, else the channel of the same name, else the
    only channel of a single-channel image."""
    chosen: dict[str, int] = {}
    given = dict(channels or {})
    for name in workflow.inputs:
        if name in given:
            chosen[name] = image.channel_index(given.pop(name))
        elif name in image.channel_names:
            chosen[name] = image.channel_names.index(name)
        elif len(workflow.inputs) == 1 and len(image.channel_names) == 1:
            chosen[name] = 0
        else:
            raise ChannelError(
                f"workflow {workflow.name!r} needs a channel for input {name!r}; the image has "
                f"{list(image.channel_names)} (CLI: --channel {name}=NAME_OR_INDEX)",
                field="channel",
            )
    if given:
        raise ChannelError(
            f"workflow {workflow.name!r} has no input(s) {sorted(given)}; its inputs are {workflow.inputs}",
            field="channel",
        )
    return chosen


def _frames(image: Image, workflow: Workflow, chosen: Mapping[str, int]) -> Iterator[np.ndarray]:
    """The workflow's result for each timepoint, in order (its inputs read one timepoint at a time)."""
    for t in range(image.shape[0]):
        inputs = {}
        for name, c in chosen.items():
            arr = materialize(image.data[t, c])
            if arr.size == 0:
                raise ValueRangeError(f"channel {image.channel_names[c]!r} is empty", field="image")
            finite = arr[np.isfinite(arr)] if np.issubdtype(arr.dtype, np.floating) else arr
            if finite.size == 0 or finite.min() == finite.max():
                raise ValueRangeError(
                    f"channel {image.channel_names[c]!r} at t={t} has no contrast (all voxels equal or NaN); nothing to segment",
                    field="image",
                )
            inputs[name] = arr
        yield run_workflow(workflow, inputs, voxel_size=image.voxel_size)


def _dtype(workflow: Workflow) -> type[np.integer[Any]]:
    return np.int32 if workflow.kind == "instance" else np.uint8


def _parameters(
    image: Image, workflow: Workflow, chosen: Mapping[str, int], borders: list[list[int]]
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "workflow": workflow.to_dict(),
        "channels": {k: image.channel_names[v] for k, v in chosen.items()},
    }
    if workflow.kind == "instance":
        params["border_ids"] = borders
    return params


def _segmented(image: Image, workflow: Workflow, chosen: Mapping[str, int], borders: list[list[int]],
               on_frame: Callable[[int, np.ndarray, list[int]], None] | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """Each timepoint's labels (or mask) in the workflow's dtype, as :func:`_frames` makes them; every frame's
    border objects appended to ``borders`` (instance workflows) and handed to ``on_frame`` after the frame is taken."""
    dtype = _dtype(workflow)
    for t, res in enumerate(_frames(image, workflow, chosen)):
        border = sorted(border_ids(res)) if workflow.kind == "instance" else []
        if workflow.kind == "instance":
            borders.append(border)
        yield res.astype(dtype, copy=False)
        if on_frame is not None:
            on_frame(t, res, border)


def _described(image: Image, workflow: Workflow, chosen: Mapping[str, int], borders: list[list[int]], data: Any
               ) -> Image:  # fmt: skip
    """``data`` as the segmentation of ``image``: one channel named after the workflow, the segment step (its
    parameters naming every frame's border objects) in the provenance."""
    return image.with_data(data, step=f"segment:{workflow.name}", channel_names=[workflow.name],
                           parameters=_parameters(image, workflow, chosen, borders))  # fmt: skip


def segment_image(image: Image, workflow: Workflow, *, channels: Mapping[str, str | int] | None = None) -> Image:
    """Labels (instance workflows, int32) or masks (uint8) for every timepoint, as a one-channel Image."""
    chosen = resolve_channels(image, workflow, channels)
    out = np.zeros((image.shape[0], 1, *image.shape[2:]), _dtype(workflow))
    borders: list[list[int]] = []
    for t, res in enumerate(_segmented(image, workflow, chosen, borders)):
        out[t, 0] = res
    return _described(image, workflow, chosen, borders, out)


def segment_to_file(
    image: Image,
    workflow: Workflow,
    path: str | Path,
    *,
    channels: Mapping[str, str | int] | None = None,
    overwrite: bool = False,
    on_frame: Callable[[int, np.ndarray, list[int]], None] | None = None,
) -> Path:
    """:func:`segment_image` written to OME-Zarr or OME-TIFF (by the name, as :func:`subcell.io.write`) a timepoint
    at a time, as each is segmented: the file ``io.write(segment_image(...))`` writes, without the time-lapse's
    labels ever held whole (one frame's are). ``on_frame(t, labels, border_ids)`` sees each frame's result and its
    objects touching the border (none for a mask) before the next is made. The provenance, which names every frame's
    border objects, is written at close."""
    import dask.array as da

    from subcell.io.writer import write_frames

    chosen = resolve_channels(image, workflow, channels)
    shape, dtype = (image.shape[0], 1, *image.shape[2:]), _dtype(workflow)
    borders: list[list[int]] = []
    frames = _segmented(image, workflow, chosen, borders, on_frame)
    # the output's shape, dtype and metadata (never computed: its planes come from the frames as they are made)
    header = da.zeros(shape, dtype=dtype, chunks=(1, 1, *shape[2:]))

    def described() -> Image:  # the provenance names every frame's border objects: complete after the last frame
        return _described(image, workflow, chosen, borders, header)

    return write_frames(described(), path, (f[None] for f in frames), overwrite=overwrite, described=described,
                        is_label=workflow.kind == "instance")  # fmt: skip
