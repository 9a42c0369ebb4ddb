"""Options every command that reads an image shares, and reading an input the same way everywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

__all__ = [
    "AuthorOpt",
    "AxesOpt",
    "CellsVoxelSizeOpt",
    "ConfigOpt",
    "ForceOpt",
    "LicenseOpt",
    "NoTestOpt",
    "OverwriteOpt",
    "Reading",
    "SceneOpt",
    "SetOpt",
    "TimeIntervalOpt",
    "VoxelSizeOpt",
    "ZooNameOpt",
    "axes_among",
    "channel_of",
    "echo_export",
    "error_line",
    "one_channel",
    "read_assuming",
    "read_beside",
    "read_input",
    "scene_arg",
]

T = TypeVar("T")

VoxelSizeOpt = Annotated[
    Optional[tuple[float, float, float]],  # noqa: UP045 - typer needs Optional here
    typer.Option("--voxel-size", metavar="Z Y X", help="Voxel size in µm, for files without (trustworthy) metadata."),
]
CellsVoxelSizeOpt = Annotated[
    Optional[tuple[float, float, float]],  # noqa: UP045
    typer.Option("--cells-voxel-size", metavar="Z Y X",
                 help="Voxel size in µm of the cell labels, when their file states none and their grid is not the "
                      "image's (default: --voxel-size)."),
]  # fmt: skip
AxesOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--axes", help="Axes of a plain TIFF whose axes the file does not state, e.g. TZYX."),
]
SceneOpt = Annotated[Optional[str], typer.Option("--scene", help="Scene / series index or name.")]  # noqa: UP045
ForceOpt = Annotated[
    bool,
    typer.Option("--force-voxel-size", "--force-metadata",
                 help="Let --voxel-size and --time-interval override different values in the file."),
]  # fmt: skip
TimeIntervalOpt = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option("--time-interval", metavar="SECONDS",
                 help="Seconds between frames of a time-lapse whose file does not state them."),
]  # fmt: skip

OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML file of settings.")]  # noqa: UP045
SetOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--set", help="Override a setting, key=value (repeat), e.g. --set max_gap_frames=3"),
]


def error_line(e: Any) -> str:
    """What a user mistake (:class:`~subcell.errors.SubcellError`) prints: ``error: FILE: FIELD: …`` on one line (a
    manifest's problems one per line)."""
    from subcell.errors import ManifestError

    return f"error: {e}" if isinstance(e, ManifestError) else f"error: {' '.join(str(e).split())}"


def scene_arg(scene: str | None) -> int | str | None:
    return int(scene) if scene is not None and scene.isdigit() else scene


def read_input(
    path: Path,
    *,
    voxel_size: Any = None,
    axes: str | None = None,
    force: bool = False,
    scene: str | None = None,
    channel_names: list[str] | None = None,
    time_interval: float | None = None,
) -> Any:
    """Read an input image as every command does, and say on stderr what was assumed (e.g. a plain stack's
    unlabelled axis read as Z), so an assumption never hides in the provenance only."""
    from subcell.io import read

    image = read(
        path, scene=scene_arg(scene), voxel_size=voxel_size, axes=axes, force=force, channel_names=channel_names,
        time_interval=time_interval,
    )  # fmt: skip
    for note in image.provenance.parameters.get("notes", []):
        typer.echo(f"note: {path}: {note}", err=True)
    return image


@dataclass(frozen=True, kw_only=True)
class Reading:
    """The reader options one command was given for its main input (``--voxel-size``, ``--axes``,
    ``--force-voxel-size``, ``--scene``, ``--time-interval``, and the channel it takes, ``--input-channel``), handed
    on whole to where the input is read."""

    voxel_size: Any = None
    axes: str | None = None
    force: bool = False
    scene: str | None = None
    time_interval: float | None = None
    channel: str | None = None

    def read(self, path: Path, **kwargs: Any) -> Any:
        """:func:`read_input` of ``path`` with these options."""
        return read_input(path, voxel_size=self.voxel_size, axes=self.axes, force=self.force, scene=self.scene,
                          time_interval=self.time_interval, **kwargs)  # fmt: skip


def read_assuming(read: Callable[[Any], T], given: Any, assumed: Any) -> T:
    """``read(given)``; where the file states no voxel size and none was ``given``, ``read(assumed)``: for an input
    whose voxel size does not enter the result (labels counted by overlap) or must be another input's."""
    from subcell.errors import MetadataError

    try:
        return read(given)
    except MetadataError as e:
        if e.field != "voxel_size" or given is not None or assumed is None:
            raise
        return read(assumed)


def read_beside(path: Path, labels: Any, *, axes: str | None, what: str, scene: str | None = None) -> Any:
    """An input that must lie on the grid of ``labels`` (the intensity image or a structure measured in them; of a
    multi-scene file, its ``scene``): at the voxel size its file states, or at the labels' where it states none. A
    different voxel size is one line naming both (it read as "the given voxel size contradicts the file's", a size
    the user never gave)."""
    from subcell.errors import MetadataError

    image = read_assuming(lambda vs: read_input(path, voxel_size=vs, axes=axes, scene=scene), None,
                          labels.voxel_size.as_tuple())  # fmt: skip
    if not image.voxel_size.isclose(labels.voxel_size, rtol=5e-3):
        raise MetadataError(f"{what} has voxel size {image.voxel_size}, the labels {labels.voxel_size}; they must "
                            "share a grid (subcell convert --resample)", path=path, field="voxel_size")  # fmt: skip
    return image


def one_channel(image: Any, channel: str | None, path: Path) -> Any:
    """The one channel a command takes from ``image`` (read from ``path``): ``--channel``, or its only channel;
    several without ``--channel`` (or an unknown one) is a one-line error naming the file."""
    from subcell.errors import ValueRangeError

    if channel is None and image.shape[1] > 1:
        raise ValueRangeError(f"has {image.shape[1]} channels {list(image.channel_names)}; choose one with --channel",
                              path=path, field="channel")  # fmt: skip
    if channel is None:
        return image
    with channel_of(path):
        return image.channel(channel)


def label_channel(image: Any, path: Path, *, label_option: str | None = None) -> None:
    """Refuse ``image`` (read from ``path``) as labels when it has several channels (or is of floats) and, an
    OME-Zarr image holding NGFF label images (a synthetic field, an image segmented with ``--into-labels``), name
    those and how to choose one: the command's ``label_option`` (``--label``), else the label image's path; and
    when its first frame is a mask resampled with interpolation (:func:`subcell.segment.measure.interpolated_mask`;
    the middle of a large frame is read, nothing more)."""
    from subcell.errors import InputFileError, ValueRangeError
    from subcell.io import detect_format, label_names

    if image.shape[1] == 1 and image.dtype.kind != "f":
        from subcell.segment.measure import interpolated_mask

        if (said := interpolated_mask(image.data[0, 0])) is not None:
            raise ValueRangeError(said, path=path, field="labels")
        return
    names = label_names(path) if detect_format(path) == "ome-zarr" else []
    if names:
        how = f"{label_option} NAME" if label_option else f"its path, e.g. {path}/labels/{names[0]}"
        raise InputFileError(f"this is an image holding the label images {names}; choose one with {how}", path=path,
                             field="label")  # fmt: skip
    if image.shape[1] != 1:
        raise ValueRangeError(f"labels must have one channel, got {image.shape[1]}", path=path, field="labels")


@contextmanager
def channel_of(path: Path, field: str = "channel") -> Iterator[None]:
    """A channel picked in what follows from the image read from ``path`` (``--channel``, ``--input-channel``):
    the image itself does not know its file, so an unknown channel is said naming it."""
    from subcell.errors import ChannelError

    try:
        yield
    except ChannelError as e:
        if e.path is not None:
            raise
        raise ChannelError(e.message, path=path, field=field) from None


def axes_among(axes: str | None, paths: list[Path]) -> Callable[[Path], str | None]:
    """The ``--axes`` each of a command's inputs is read on: every plain TIFF among ``paths`` takes them (an
    OME-Zarr of labels next to a plain TIFF movie states its own); when none is a plain TIFF, each gets them, so the
    reader says that ``--axes`` applies to plain TIFFs only."""
    from subcell.io.reader import axes_for

    if axes is None or not any(axes_for(p, axes) for p in paths):
        return lambda path: axes
    return lambda path: axes_for(path, axes)


# bioimage.io exports (`labelfree export`, `integrated export`)
ZooNameOpt = Annotated[Optional[str], typer.Option("--name", help="Model name in the zoo.")]  # noqa: UP045
AuthorOpt = Annotated[Optional[list[str]], typer.Option("--author", help="Author (repeat for several).")]  # noqa: UP045
LicenseOpt = Annotated[str, typer.Option("--license", help="SPDX license of the weights.")]
NoTestOpt = Annotated[bool, typer.Option("--no-test", help="Skip bioimageio.core's test of the package.")]


def echo_export(result: Any) -> None:
    """The one line an export prints: where, how large, the test tensors and the bioimage.io test time."""
    tested = f"; bioimageio.core test passed in {result.test_seconds:.1f} s" if result.test_seconds else ""
    typer.echo(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, test tensors {result.test_shape}{tested})")


WorkersOpt = Annotated[
    Optional[int], typer.Option("--workers", help="Local Dask workers for --scheduler local.", min=1)  # noqa: UP045
]


@contextmanager
def cluster_executor(scheduler: str | None, *, workers: int | None, what: str) -> Iterator[tuple[Any, str]]:
    """(executor, " on SCHEDULER") for the parts of one volume on Dask, or (None, "") without a scheduler; prints
    the dashboard link. Shared by ``segment --block-yx`` and ``labelfree predict --region-yx``."""
    if scheduler is None:
        yield None, ""
        return
    from subcell.batch import DaskExecutor, connect
    from subcell.batch.cluster import dashboard_link

    with connect(scheduler, workers=workers) as client:
        typer.echo(f"{what} run on {scheduler}; {dashboard_link(client)}")
        yield DaskExecutor(client), f" on {scheduler}"


def movie_outputs(output: Path, table: Path | None, *, kind: str, overwrite: bool) -> Path:
    """The table a command writes beside its output movie (``table``, else ``OUTPUT's name + _KIND.csv``), both
    checked before anything is read: not the same file, neither there unless ``overwrite``."""
    from subcell.errors import InputFileError
    from subcell.io._atomic import check_output
    from subcell.io.manifest_make import image_stem
    from subcell.io.writer import output_format

    output_format(output)
    path = table or output.with_name(f"{image_stem(output)}_{kind}.csv")
    if path.resolve() == output.resolve():
        raise InputFileError(f"the {kind} table cannot be the output image", path=path, field="table")
    check_output(output, overwrite=overwrite)
    check_output(path, overwrite=overwrite)
    return path


def read_movie(path: Path, **reading: Any) -> Any:
    """A time-lapse read as :func:`read_input` reads it, refused as :func:`check_time_lapse` says."""
    image = read_input(path, **reading)
    check_time_lapse(image, path)
    return image


def check_time_lapse(image: Any, path: Path) -> None:
    """Refuse an image of one frame where a time-lapse is needed: one line naming its sizes and the ``--axes`` a
    plain TIFF whose time axis was read as Z may need."""
    from subcell.errors import ValueRangeError

    if image.shape[0] < 2:
        sizes = " ".join(f"{k}={v}" for k, v in image.sizes.items())
        raise ValueRangeError(f"expected a time-lapse (T > 1), got {image.shape[0]} frame (sizes {sizes}); a plain "
                              "TIFF may need --axes TZYX or TYX", path=path, field="T")  # fmt: skip
