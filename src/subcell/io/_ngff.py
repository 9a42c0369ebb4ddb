"""OME-Zarr (NGFF 0.4 / 0.5) images read with ``zarr`` and ``dask`` directly, units from the NGFF metadata.

Written here rather than through ``bioio-ome-zarr``: NGFF stores its axes, scales and channel labels as plain
JSON next to the arrays, which ``zarr`` already reads, while the bioio plugin costs 2.2 s of imports (ome-types,
xarray, s3fs) on top of zarr + dask in every process that opens a store. bioio stays the reader of vendor formats,
where it parses what no other library does, and of OME-TIFF files whose tifffile series do not map onto their OME
images (``_bioio``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import InputFileError
from subcell.io._raw import RawImage
from subcell.io._tiff import scene_index
from subcell.io._units import LENGTH_UM, TIME_S

__all__ = ["group_attrs", "read_ome_zarr"]

_AXES = "TCZYX"


def group_attrs(group: Any) -> dict[str, Any]:
    """A zarr group's attributes with NGFF 0.5's ``ome`` block merged in (``ngff_version`` added)."""
    attrs: dict[str, Any] = dict(group.attrs)
    if "ome" in attrs:
        ome: dict[str, Any] = dict(attrs["ome"])
        merged = {k: v for k, v in attrs.items() if k != "ome"}
        merged.update(ome)
        merged["ngff_version"] = ome.get("version", "0.5")
        return merged
    ms: list[dict[str, Any]] = attrs.get("multiscales") or [{}]
    attrs["ngff_version"] = ms[0].get("version", "0.4")
    return attrs


def _open_group(path: Path) -> Any:
    import zarr

    try:
        return zarr.open_group(str(path), mode="r")
    except zarr.errors.ContainsArrayError:
        raise InputFileError(
            "is a plain zarr array, not an OME-Zarr image (no NGFF metadata: axes and voxel size unknown); convert "
            "it, e.g. with numpy + subcell.io.write, giving its axes and voxel size",
            path=path,
        ) from None
    except Exception as e:
        raise InputFileError(f"not a readable OME-Zarr store ({type(e).__name__}: {e})", path=path) from None


def _multiscale(
    path: Path, scene: int | str | None
) -> tuple[Any, dict[str, Any], dict[str, Any], tuple[str, ...], int]:
    """The store's group, its attributes, the scene's multiscale metadata, the scene names and the scene's index."""
    group = _open_group(path)
    attrs = group_attrs(group)
    multiscales: list[dict[str, Any]] = attrs.get("multiscales") or []
    if not multiscales:
        raise InputFileError("folder has no NGFF 'multiscales' metadata; is it an OME-Zarr image?", path=path)
    names = [str(ms.get("name") or "") for ms in multiscales]
    # unnamed or clashing images are numbered the way OME-XML names them, as bioio does
    scenes: tuple[str, ...] = (
        tuple(names)
        if all(names) and len(set(names)) == len(names)
        else tuple(f"Image:{i}" for i in range(len(multiscales)))
    )
    idx = scene_index(path, scene, scenes)
    return group, attrs, multiscales[idx], scenes, idx


def _level0(path: Path, group: Any, ms: dict[str, Any]) -> Any:
    try:
        return group[ms["datasets"][0]["path"]]
    except Exception as e:
        raise InputFileError(f"OME-Zarr could not be opened ({type(e).__name__}: {e})", path=path) from None


class Volume:
    """Volume ``(t, c)`` of a ``(T, C, Z, Y, X)`` Zarr array as a ``(Z, Y, X)`` array whose boxes are read straight
    from the store. For many small reads: through Dask each builds and runs a graph, 2-3x the time (592 cells'
    boxes of a 64 × 1024 × 1024 prediction: 8.4 s against 4.8 s)."""

    def __init__(self, array: Any, t: int, c: int) -> None:
        self.array, self.index = array, (t, c)
        self.shape, self.dtype = tuple(array.shape[2:]), array.dtype

    def __getitem__(self, box: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self.array[(*self.index, *box)])


def level0_volume(path: Path, t: int, c: int, *, scene: int | str | None = None) -> Volume:
    """Timepoint ``t``, channel ``c`` of the full-resolution level of an OME-Zarr image written as ``TCZYX`` (as
    :class:`~subcell.io.OmeZarrWriter` writes), read box by box straight from the store (:class:`Volume`)."""
    group, _, ms, _, _ = _multiscale(path, scene)
    array = _level0(path, group, ms)
    if array.ndim != 5:
        raise InputFileError(f"expected a (T, C, Z, Y, X) array, got {array.ndim} dimensions", path=path)
    return Volume(array, t, c)


def read_ome_zarr(path: Path, *, scene: int | str | None = None) -> RawImage:
    """One multiscale image (a scene) of an OME-Zarr store, its full-resolution level as a lazy dask array."""
    import dask.array as da

    group, attrs, ms, scenes, idx = _multiscale(path, scene)
    data = da.from_zarr(_level0(path, group, ms))
    axes = [a if isinstance(a, dict) else {"name": a} for a in ms.get("axes", [])]
    # NGFF before 0.4 had no axes: its arrays were always the trailing axes of TCZYX
    dims = "".join(str(a.get("name", "")).upper() for a in axes) if axes else _AXES[len(_AXES) - data.ndim :]
    if len(dims) != data.ndim or not set(dims) <= set(_AXES) or len(set(dims)) != len(dims):
        raise InputFileError(
            f"NGFF axes {[a.get('name') for a in axes]} do not match the array's {data.ndim} dimensions, or are not "
            f"distinct letters of {_AXES}",
            path=path,
        )
    scale = _level0_scale(ms, len(dims))
    spatial: dict[str, float | None] = {}
    time_interval = None
    unitless = []
    for ax, s in zip(axes, scale, strict=False):
        name = str(ax.get("name", "")).lower()
        unit = ax.get("unit")
        if name in ("z", "y", "x"):
            factor = LENGTH_UM.get(str(unit)) if unit else None
            if factor is None:
                unitless.append(name)
            spatial[name] = s * factor if factor is not None else None
        elif name == "t" and unit in TIME_S and s and s > 0:
            time_interval = s * TIME_S[unit]
    subcell_attrs = attrs.get("subcell", {})
    if "time_interval" in subcell_attrs:
        time_interval = subcell_attrs["time_interval"]
    vs = (spatial.get("z"), spatial.get("y"), spatial.get("x"))
    note = f"its NGFF axes {unitless} have no length unit" if unitless else None
    channels = (attrs.get("omero") or {}).get("channels") or []
    channel_names = [str(c.get("label", "")) for c in channels] or None
    return RawImage(
        data=data, dims=dims, voxel_size=vs, voxel_size_note=note, channel_names=channel_names,
        time_interval=time_interval, scenes=scenes, scene=scenes[idx] if len(scenes) > 1 else None,
        fmt=f"ome-zarr (NGFF {attrs.get('ngff_version')})", provenance=subcell_attrs.get("provenance"),
    )  # fmt: skip


def _level0_scale(ms: dict[str, Any], n: int) -> list[float]:
    scale = [1.0] * n
    for transforms in (
        ms.get("coordinateTransformations") or [],
        ms["datasets"][0].get("coordinateTransformations") or [],
    ):
        for t in transforms:
            if t.get("type") == "scale":
                scale = [a * float(b) for a, b in zip(scale, t["scale"], strict=False)]
    return scale
