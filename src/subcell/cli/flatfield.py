"""``subcell flatfield``: a collection's uneven illumination estimated from its fields, and taken out of them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.options import AxesOpt, ForceOpt, OverwriteOpt, SceneOpt, VoxelSizeOpt, read_input

__all__ = ["flatfield_app"]

flatfield_app = typer.Typer(
    help="Uneven illumination (shading, vignetting): a flat-field estimated from many fields, and taken out.",
    no_args_is_help=True,
)

ChannelsOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--channel", "-c", help="Channel (name or index; repeat; default: every channel)."),
]


@flatfield_app.command("estimate")
def estimate(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Fields of one acquisition (the more the better; all of one size), then the output "
            "flat-field: *.ome.tif or *.ome.zarr."
        ),
    ],
    channel: ChannelsOpt = None,
    dark: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--dark", help="The camera's dark level (offset), taken off first (default 0)."),
    ] = None,
    smoothing: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--smoothing", help="Gaussian smoothing as a fraction of the field's longer side (default 0.05)."),
    ] = None,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    scene: SceneOpt = None,
    force_voxel_size: ForceOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Estimate a flat-field (per channel, mean 1) from many fields: each field's z-mean (of each frame) reduced
    and normalised, their per-pixel mean as a smooth surface."""
    import numpy as np

    from subcell.errors import InputFileError, ValueRangeError
    from subcell.image import Image, Provenance
    from subcell.io import write
    from subcell.io._atomic import check_output
    from subcell.io.writer import output_format
    from subcell.transforms.shading import FlatfieldConfig, estimate_flatfield, shading_sample

    if len(inputs) < 2:
        raise ValueRangeError("give the fields, then the output flat-field (FIELD... OUTPUT)", field="inputs")
    *fields, output = inputs
    output_format(output)
    check_output(output, overwrite=overwrite)
    cfg = FlatfieldConfig(**{k: v for k, v in {"dark": dark, "smoothing": smoothing}.items() if v is not None})
    first: Any = None
    names: list[str] = []
    samples: dict[str, list[np.ndarray]] = {}
    for path in fields:
        image = read_input(path, voxel_size=voxel_size, axes=axes, force=force_voxel_size, scene=scene)
        if first is None:
            first = image
            names = _chosen(image, channel, path)
            samples = {n: [] for n in names}
        elif tuple(image.shape[-2:]) != tuple(first.shape[-2:]):
            raise InputFileError(f"fields are {image.shape[-2]}×{image.shape[-1]} here but "
                                 f"{first.shape[-2]}×{first.shape[-1]} in {fields[0]}: one acquisition's fields "
                                 "share one size", path=path)  # fmt: skip
        for name in names:
            if name not in image.channel_names:
                raise InputFileError(f"no channel {name!r} (it has {list(image.channel_names)})", path=path)
            c = image.channel_names.index(name)
            for t in range(image.shape[0]):
                plane = np.asarray(image.data[t, c].mean(axis=0, dtype=np.float32))  # the z-stack's mean
                samples[name].append(shading_sample(plane, dark=cfg.dark))
    y, x = first.shape[-2:]
    flats = []
    for name in names:
        try:
            flat = estimate_flatfield(samples[name], (y, x), smoothing=cfg.smoothing)
        except ValueRangeError as e:
            raise ValueRangeError(f"channel {name!r}: {e.message}", field=e.field) from None
        flats.append(flat)
        usable = sum(bool(np.isfinite(s).all()) for s in samples[name])
        corner = float(np.mean([flat[0, 0], flat[0, -1], flat[-1, 0], flat[-1, -1]]) / flat[y // 2, x // 2])
        typer.echo(f"{name}: {usable} planes of {len(fields)} fields; flat-field {flat.min():.2f}–{flat.max():.2f}, "
                   f"corners at {corner:.0%} of the middle")  # fmt: skip
    profile = Image(
        np.stack(flats), voxel_size=first.voxel_size, dims="CYX", channel_names=names,
        provenance=Provenance(source=str(fields[0]), step="flatfield",
                              parameters={**cfg.model_dump(mode="json"), "fields": len(fields)}),
    )  # fmt: skip
    write(profile, output, overwrite=overwrite)
    typer.echo(f"wrote {output} (dark level {cfg.dark:g}: `flatfield apply` takes it off again)")


@flatfield_app.command("apply")
def apply(
    image_path: Annotated[Path, typer.Argument(metavar="IMAGE", help="A field (or time-lapse) of the acquisition.")],
    profile_path: Annotated[Path, typer.Argument(metavar="FLATFIELD", help="From `subcell flatfield estimate`.")],
    output: Annotated[Path, typer.Argument(help="(IMAGE − dark) / flat-field, float32: *.ome.tif or *.ome.zarr.")],
    channel: ChannelsOpt = None,
    dark: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--dark", help="The dark level to take off (default: the one the flat-field was estimated with)."),
    ] = None,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    scene: SceneOpt = None,
    force_voxel_size: ForceOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Take a flat-field out of a field: each channel the flat-field has (by name; -c to choose) becomes
    (IMAGE − dark) / flat-field, float32; the others are kept."""
    import dask.array as da
    import numpy as np

    from subcell.errors import InputFileError
    from subcell.io import read, write
    from subcell.io._atomic import check_output
    from subcell.io.writer import output_format
    from subcell.transforms.shading import correct_flatfield

    output_format(output)
    check_output(output, overwrite=overwrite)
    image = read_input(image_path, voxel_size=voxel_size, axes=axes, force=force_voxel_size, scene=scene)
    # the flat-field's pixel grid must be the image's (checked below); its voxel size does not matter
    profile = read(profile_path, voxel_size=image.voxel_size, force=True)
    flats = np.asarray(profile.numpy())[0, :, 0]  # (C, Y, X)
    recorded = (profile.provenance.parameters_of("flatfield") or {}).get("dark")
    level = float(dark if dark is not None else recorded if recorded is not None else 0.0)
    named = list(profile.channel_names)
    chosen = _chosen(image, channel, image_path) if channel else [n for n in image.channel_names if n in named]
    if not chosen and len(flats) == 1 and len(image.channel_names) == 1:
        chosen = list(image.channel_names)  # one channel each: whatever their names
    if not chosen:
        raise InputFileError(f"no channel of {image_path} ({list(image.channel_names)}) is in the flat-field "
                             f"({named}); choose them with -c", path=profile_path)  # fmt: skip
    flat_of = {}  # each chosen channel's flat-field: its namesake, or a one-channel flat-field's only one
    for name in chosen:
        if name not in named and len(flats) > 1:
            raise InputFileError(f"no flat-field for channel {name!r} (it has {named})", path=profile_path)
        flat_of[name] = flats[named.index(name)] if name in named else flats[0]
    if tuple(flats.shape[-2:]) != tuple(image.shape[-2:]):
        raise InputFileError(f"the flat-field is {flats.shape[-2]}×{flats.shape[-1]} but {image_path}'s fields are "
                             f"{image.shape[-2]}×{image.shape[-1]}", path=profile_path)  # fmt: skip
    planes = [correct_flatfield(da.asarray(image.data[:, c]), flat_of[name], dark=level) if name in flat_of
              else da.asarray(image.data[:, c]).astype(np.float32) for c, name in enumerate(image.channel_names)]  # fmt: skip
    done = image.with_data(da.stack(planes, axis=1), step="flatfield_apply",
                           parameters={"flatfield": str(profile_path), "channels": chosen, "dark": level})  # fmt: skip
    write(done, output, overwrite=overwrite)
    typer.echo(f"wrote {output}: {', '.join(chosen)} divided by the flat-field (dark level {level:g}; float32)")


def _chosen(image: Any, channel: list[str] | None, path: Path) -> list[str]:
    from subcell.cli.options import channel_of

    if not channel:
        return list(image.channel_names)
    with channel_of(path):
        return [image.channel_names[image.channel_index(c)] for c in channel]
