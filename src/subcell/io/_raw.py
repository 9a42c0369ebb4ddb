"""What a format reader found in a file, before the user's overrides are reconciled with it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subcell.errors import MetadataError, ValueRangeError
from subcell.image import AXES, Image, Provenance, VoxelSize

__all__ = ["RawImage", "resolve", "resolve_time_interval"]


@dataclass
class RawImage:
    """A lazily-read array plus the metadata the file states (``None`` where it states nothing usable).

    ``voxel_size`` entries are µm; ``voxel_size_note`` explains why the file's values were not trusted.
    """

    data: Any  # dask array with axes ``dims``
    dims: str
    voxel_size: tuple[float | None, float | None, float | None] = (None, None, None)
    voxel_size_note: str | None = None
    channel_names: list[str] | None = None
    time_interval: float | None = None
    scenes: tuple[str, ...] = ()
    scene: str | None = None
    fmt: str = ""
    provenance: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _parse_user_voxel_size(path: Path, voxel_size: Any) -> VoxelSize:
    try:
        return VoxelSize.of(voxel_size)
    except ValueRangeError as e:
        raise MetadataError(e.message, path=path, field=e.field or "voxel_size") from None


def resolve(
    raw: RawImage,
    path: Path,
    *,
    voxel_size: Any = None,
    channel_names: Any = None,
    force: bool = False,
    time_interval: float | None = None,
) -> Image:
    """Combine what the file says with what the user says; never invent a voxel size. A given ``time_interval``
    (seconds) follows the voxel size's rule: used where the file states none, an error where it contradicts the
    file's unless ``force``."""
    data = raw.data
    dims = raw.dims
    sizes = dict(zip(dims, data.shape, strict=True))
    n_z = sizes.get("Z", 1)
    file_vs = raw.voxel_size
    needed = ("z", "y", "x") if n_z > 1 else ("y", "x")
    file_complete = all(v is not None for v, a in zip(file_vs, "zyx", strict=True) if a in needed)
    vs_source = "file"
    if voxel_size is not None:
        user = _parse_user_voxel_size(path, voxel_size)
        if file_complete:
            mismatched = [
                f"{a}: file {f:.6g} vs given {u:.6g}"
                for a, f, u in zip("zyx", file_vs, user.as_tuple(), strict=True)
                # 0.5 %: a size quoted to three significant digits (0.331 for 0.331373) agrees with the file
                if a in needed and f is not None and not math.isclose(f, u, rel_tol=5e-3)
            ]
            if mismatched and not force:
                raise MetadataError(
                    f"the given voxel size contradicts the file's ({'; '.join(mismatched)} µm); "
                    "pass force=True (CLI: --force-voxel-size) to use the given value",
                    path=path,
                    field="voxel_size",
                )
        resolved = user
        vs_source = "user (forced over file)" if file_complete and force else "user"
    elif file_complete:
        z = file_vs[0]
        if z is None:  # single plane without a z spacing: recorded only, never used
            z = 1.0
            vs_source = "file (z not stated: single plane, z=1.0 recorded as a placeholder)"
        resolved = VoxelSize(z, file_vs[1], file_vs[2])  # type: ignore[arg-type]
    else:
        why = raw.voxel_size_note or "the file does not state its voxel size"
        raise MetadataError(
            f"voxel size unknown ({why}); pass voxel_size=(z, y, x) in µm (CLI: --voxel-size Z Y X)",
            path=path,
            field="voxel_size",
        )

    n_c = sizes.get("C", 1)
    names = raw.channel_names
    if channel_names is not None:
        names = [str(c) for c in channel_names]
        if len(names) != n_c:
            raise MetadataError(
                f"{len(names)} channel name(s) given ({','.join(names)}) but the image has {n_c} channel(s)",
                path=path,
                field="channel_names",
            )
    if names is not None and (len(set(names)) != len(names) or len(names) != n_c):
        names = None  # the file's names are unusable (duplicates); fall back to c0, c1, ...

    interval, ti_source = resolve_time_interval(raw.time_interval, time_interval, path, force=force)
    prov_params: dict[str, Any] = {"format": raw.fmt, "voxel_size_source": vs_source}
    if ti_source is not None:
        prov_params["time_interval_source"] = ti_source
    if raw.scene is not None:
        prov_params["scene"] = raw.scene
    if raw.notes:
        prov_params["notes"] = list(raw.notes)
    if raw.provenance:
        stored = Provenance.from_dict(raw.provenance)
        provenance = stored.then("read", {**prov_params, "path": str(path)})
    else:
        provenance = Provenance(source=str(path), step="read", parameters=prov_params)

    try:
        return Image(
            data,
            voxel_size=resolved,
            dims=dims,
            channel_names=names,
            time_interval=interval,
            provenance=provenance,
        )
    except ValueRangeError as e:
        raise MetadataError(e.message, path=path, field=e.field) from None


def resolve_time_interval(
    stated: float | None, given: Any, path: Path, *, force: bool
) -> tuple[float | None, str | None]:
    """(seconds between frames, where they came from: None = the file's or none) of a file that states ``stated``
    and a user who gives ``given``."""
    if given is None:
        return stated, None
    try:
        seconds = float(given)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise MetadataError(f"expected a positive number of seconds, got {given!r}", path=path, field="time_interval")
    if stated is None:
        return seconds, "user"
    if math.isclose(stated, seconds, rel_tol=5e-3):  # the same value quoted to three significant digits
        return seconds, "user (as in the file)"
    if not force:
        raise MetadataError(
            f"the given time interval contradicts the file's (file {stated:.6g} s vs given {seconds:.6g} s); "
            "pass force=True (CLI: --force-metadata) to use the given value",
            path=path,
            field="time_interval",
        )
    return seconds, "user (forced over file)"


def map_axes(path: Path, file_axes: str, shape: tuple[int, ...], axes: str | None) -> str:
    """Turn a file's axis letters into ``TCZYX`` letters, or apply the user's ``axes``.

    Unknown axes (tifffile's ``Q``/``I``) are never guessed, except the single leading axis of a plain stack,
    which is read as Z (the universal convention for a z-stack); that assumption is recorded.
    """
    if axes is not None:
        user = axes.upper()
        if len(user) != len(shape):
            raise MetadataError(
                f"axes {axes!r} has {len(user)} letters but the data has {len(shape)} axes {tuple(shape)}",
                path=path,
                field="axes",
            )
        if len(set(user)) != len(user) or not set(user) <= set(AXES) or "Y" not in user or "X" not in user:
            raise MetadataError(
                f"axes must be distinct letters from {AXES} including Y and X, got {axes!r}", path=path, field="axes"
            )
        return user
    mapped = []
    unknown = []
    for i, a in enumerate(file_axes.upper()):
        if a in AXES:
            mapped.append(a)
        elif a == "S" and "C" not in file_axes.upper():
            mapped.append("C")
        else:
            mapped.append("?")
            unknown.append(i)
    if not unknown:
        return "".join(mapped)
    if len(unknown) == 1 and "Z" not in mapped:
        mapped[unknown[0]] = "Z"
        return "".join(mapped)
    raise MetadataError(
        f"cannot tell which of the axes {file_axes} {tuple(shape)} are T, C and Z (the file does not say); "
        f"pass axes=, e.g. axes='TZYX' (CLI: --axes TZYX)",
        path=path,
        field="axes",
    )
