"""``subcell pixels train``: a pixel classifier from scribbles, written as a folder that ``segment -w`` runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.options import (
    AxesOpt,
    ForceOpt,
    OverwriteOpt,
    SceneOpt,
    TimeIntervalOpt,
    VoxelSizeOpt,
    axes_among,
    one_channel,
    read_beside,
    read_input,
)

__all__ = ["pixels_app"]

ChannelOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--channel", "-c", help="Channel of the image(s) to classify (name or index)."),
]
pixels_app = typer.Typer(help="Pixel classifiers trained on scribbles (random forest on filters in µm).",
                         no_args_is_help=True)  # fmt: skip


@pixels_app.command("train")
def train(
    output: Annotated[Path, typer.Argument(help="Folder to write: the classifier and a workflow for `segment -w`.")],
    pairs: Annotated[
        list[Path],
        typer.Argument(
            help="IMAGE SCRIBBLES [IMAGE SCRIBBLES …]: scribbles hold class ids (1, 2, …), 0 unmarked; in a "
            "time-lapse, the frames that hold scribbles are trained on."
        ),
    ],
    foreground: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--foreground", help="The class the workflow segments (default: the second of two classes)."),
    ] = None,
    kind: Annotated[
        str, typer.Option("--kind", help="What the workflow writes: mask, or instance (connected objects).")
    ] = "mask",
    channel: ChannelOpt = None,
    sigmas_um: Annotated[
        Optional[list[float]],  # noqa: UP045
        typer.Option("--sigma-um", help="Feature scale in µm (repeat; default 0.3 0.7 1.6 3.5)."),
    ] = None,
    trees: Annotated[int, typer.Option("--trees", help="Trees in the forest.", min=1, max=1000)] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (voxels drawn, forest).")] = 0,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    force_voxel_size: ForceOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Train a pixel classifier on images with scribbles; `subcell segment IMAGE OUT -w FOLDER` then segments."""
    from subcell.errors import ValueRangeError
    from subcell.image import materialize
    from subcell.io import as_labels
    from subcell.io._atomic import check_output
    from subcell.segment.filters import normalize
    from subcell.segment.pixels import (
        DEFAULT_SIGMAS_UM,
        NORMALIZE,
        held_out_summary,
        save_model_folder,
        train_pixel_classifier,
    )

    if kind not in ("mask", "instance"):
        raise ValueRangeError(f"expected mask or instance, got {kind!r}", field="kind")
    if len(pairs) < 2 or len(pairs) % 2:
        raise ValueRangeError(f"expected IMAGE SCRIBBLES pairs, got {len(pairs)} paths", field="pairs")
    sig = tuple(sigmas_um) if sigmas_um else DEFAULT_SIGMAS_UM
    if any(s <= 0 for s in sig):
        raise ValueRangeError(f"feature scales must be positive µm, got {list(sig)}", field="sigma_um")
    check_output(output, overwrite=overwrite)  # before any training
    axes_of = axes_among(axes, pairs)  # e.g. OME-TIFF images with scribbles drawn and saved as plain TIFFs
    data: list[tuple[Any, Any]] = []
    sizes = []
    for image_path, scribble_path in zip(pairs[::2], pairs[1::2], strict=True):
        image = read_input(image_path, voxel_size=voxel_size, axes=axes_of(image_path), force=force_voxel_size)
        image = one_channel(image, channel, image_path)
        marks = read_beside(scribble_path, image, axes=axes_of(scribble_path), what="the scribbles")
        if marks.shape[2:] != image.shape[2:] or marks.shape[0] not in (1, image.shape[0]):
            raise ValueRangeError(f"scribbles T, Z, Y, X {(marks.shape[0], *marks.shape[2:])} but the image "
                                  f"{(image.shape[0], *image.shape[2:])}", path=scribble_path, field="shape")  # fmt: skip
        if marks.shape[1] != 1:
            raise ValueRangeError(f"scribbles must have one channel, got {marks.shape[1]}", path=scribble_path,
                                  field="C")  # fmt: skip
        # a time-lapse: the frames that hold scribbles (one frame of scribbles: the image's first)
        for t in range(marks.shape[0]):
            scribbles = as_labels(materialize(marks.data[t, 0]), path=scribble_path)
            if scribbles.any():
                data.append((normalize(materialize(image.data[t, 0]), **NORMALIZE), scribbles))
                sizes.append(image.voxel_size)
    if not data:
        raise ValueRangeError("the scribbles mark no voxel (every value is 0)", field="scribbles")
    clf = train_pixel_classifier(data, voxel_size=sizes, sigmas_um=sig, trees=trees, seed=seed)
    clf.meta.update(trained_on=[str(p) for p in pairs], voxel_sizes_um=[list(v.as_tuple()) for v in sizes])
    save_model_folder(clf, output, foreground=foreground, kind=kind, overwrite=overwrite)
    typer.echo(f"wrote {output}: classes {list(clf.classes)} ({', '.join(f'{c}: {n} voxels' for c, n in clf.meta['voxels_per_class'].items())}), "
               f"{trees} trees, foreground {clf.meta['foreground']}")  # fmt: skip
    typer.echo(held_out_summary(clf))
    pick = f" -c image={channel}" if channel is not None else ""
    typer.echo(f"segment with: subcell segment IMAGE OUT.ome.zarr -w {output}{pick}")


@pixels_app.command("predict")
def predict(
    image: Annotated[Path, typer.Argument(help="Image to classify (a time-lapse: every frame).")],
    model: Annotated[Path, typer.Argument(help="Folder written by `subcell pixels train`.")],
    output: Annotated[Path, typer.Argument(help="Probabilities, a channel per class: *.ome.zarr or *.ome.tif.")],
    channel: ChannelOpt = None,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    force_voxel_size: ForceOpt = False,
    scene: SceneOpt = None,
    time_interval: TimeIntervalOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Each class's probability for every voxel (float32, a channel per class: class1, class2, …), a frame at a time,
    features a block at a time: the maps ilastik exports, e.g. for `segment -w nucleus_from_prediction`."""
    import dask.array as da
    import numpy as np

    from subcell.image import materialize
    from subcell.io.writer import output_format, write_frames
    from subcell.segment.filters import normalize
    from subcell.segment.pixels import NORMALIZE, load_pixel_classifier

    output_format(output)
    clf = load_pixel_classifier(model)  # a damaged model is said before the image is read
    img = read_input(image, voxel_size=voxel_size, axes=axes, force=force_voxel_size, scene=scene,
                     time_interval=time_interval)  # fmt: skip
    img = one_channel(img, channel, image)
    shape = (img.shape[0], len(clf.classes), *img.shape[2:])
    header = img.with_data(da.zeros(shape, dtype=np.float32, chunks=(1, *shape[1:])), step="pixels:predict",
                           channel_names=[f"class{c}" for c in clf.classes],
                           parameters={"model": str(model.resolve()), "normalize": NORMALIZE})  # fmt: skip
    frames = (clf.probabilities(normalize(materialize(img.data[t, 0]), **NORMALIZE), voxel_size=img.voxel_size)
              for t in range(img.shape[0]))  # fmt: skip
    write_frames(header, output, frames, overwrite=overwrite)
    typer.echo(f"wrote {output}: {len(clf.classes)} class probabilities ({', '.join(header.channel_names)}) over "
               f"{img.shape[0]} frame{'s' if img.shape[0] > 1 else ''}")  # fmt: skip
