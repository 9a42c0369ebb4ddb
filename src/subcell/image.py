"""The one data model: :class:`Image`, an array in canonical ``TCZYX`` order with physical metadata.

An :class:`Image` wraps a NumPy or Dask array (lazy by default when it comes from a reader) together with its
voxel size in micrometres, channel names, time interval and provenance. Selection by channel and timepoint is
cheap (slicing, no computation); ``.numpy()`` / ``.compute()`` materialise explicitly.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from subcell._version import __version__
from subcell.errors import ChannelError, ValueRangeError

__all__ = [
    "AXES",
    "SAME_GRID_RTOL",
    "Image",
    "Provenance",
    "VoxelSize",
    "as_array",
    "dask_scheduler",
    "expand_to_tczyx",
    "is_lazy",
    "materialize",
]

AXES = "TCZYX"


def dask_scheduler() -> Any:
    """The scheduler to hand Dask's ``compute``/``store``: None (Dask chooses) or its threaded scheduler.

    Asked to compute without a scheduler, Dask imports ``distributed`` to look for a client: 0.3 s on the first
    call of every process (a tenth of a 32×512×512 prediction on a fast CPU). Where ``distributed`` was never
    imported no client can exist, so the threaded scheduler (Dask's own default for arrays) is passed as the
    function it is (a scheduler given by name also makes Dask import ``distributed``): the same result without
    the import. A client, or a scheduler set in ``dask.config``, is left to Dask.
    """
    if "distributed" in sys.modules:
        return None
    import dask
    import dask.threaded

    return None if dask.config.get("scheduler", None) else dask.threaded.get


def is_lazy(data: Any) -> bool:
    """True for a lazy (Dask) array: computed when read, block by block."""
    return hasattr(data, "map_blocks")


def as_array(data: Any) -> Any:
    """``data`` as it is when it is an array (NumPy, Dask, Zarr: code that reads it in parts takes only the parts it
    needs), anything else (a list) as NumPy."""
    return data if hasattr(data, "shape") and hasattr(data, "dtype") else np.asarray(data)


def materialize(data: Any) -> np.ndarray:
    """The values of an array, lazy (Dask) or not, as NumPy (computed with :func:`dask_scheduler`)."""
    if isinstance(data, np.ndarray):
        return data
    if not hasattr(data, "compute"):
        return np.asarray(data)
    return np.asarray(data.compute(scheduler=dask_scheduler()))


# voxel sizes that agree within this relative tolerance count as one grid: data on one is used on the other as it is,
# not resampled (a 2 % scale moves a voxel by one in fifty); one value for every such check (predict, cells, align, export)
SAME_GRID_RTOL = 0.02


@dataclass(frozen=True)
class VoxelSize:
    """Physical size of one voxel in micrometres, in ``(z, y, x)`` order."""

    z: float
    y: float
    x: float

    def __post_init__(self) -> None:
        for name in ("z", "y", "x"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise ValueRangeError(
                    f"expected a positive number of micrometres, got {value!r}", field=f"voxel_size.{name}"
                )
            if not math.isfinite(float(value)) or float(value) <= 0:
                raise ValueRangeError(
                    f"expected a positive, finite number of micrometres, got {value!r}", field=f"voxel_size.{name}"
                )
            object.__setattr__(self, name, float(value))

    @classmethod
    def of(cls, value: VoxelSize | Sequence[float]) -> VoxelSize:
        """Build from a ``VoxelSize`` or a ``(z, y, x)`` sequence in µm."""
        if isinstance(value, VoxelSize):
            return value
        values = tuple(value)
        if len(values) != 3:
            raise ValueRangeError(
                f"expected 3 values (z, y, x) in µm, got {len(values)}: {values!r}", field="voxel_size"
            )
        return cls(*values)

    def as_tuple(self) -> tuple[float, float, float]:
        """``(z, y, x)`` in µm."""
        return (self.z, self.y, self.x)

    def isclose(self, other: VoxelSize | Sequence[float], *, rtol: float = 1e-3) -> bool:
        """Whether two voxel sizes agree within a relative tolerance on every axis."""
        o = VoxelSize.of(other)
        return all(math.isclose(a, b, rel_tol=rtol) for a, b in zip(self.as_tuple(), o.as_tuple(), strict=True))

    def __str__(self) -> str:
        return f"(z={self.z:.6g}, y={self.y:.6g}, x={self.x:.6g}) µm"


@dataclass(frozen=True)
class Provenance:
    """Where an image came from and what produced it.

    ``history`` holds the earlier steps (oldest first) so a chain of transforms stays traceable.
    """

    source: str | None = None
    step: str = "created"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    version: str = __version__
    history: tuple[Mapping[str, Any], ...] = ()

    def then(self, step: str, parameters: Mapping[str, Any] | None = None) -> Provenance:
        """A new provenance recording ``step`` after this one."""
        return Provenance(
            source=self.source,
            step=step,
            parameters=dict(parameters or {}),
            version=__version__,
            history=(*self.history, self._own()),
        )

    def parameters_of(self, step: str) -> Mapping[str, Any] | None:
        """The parameters of the latest ``step`` of this provenance (itself or its history; reading a file adds a
        step of its own), or None where no step has that name."""
        for record in (self._own(), *reversed(self.history)):
            if record.get("step") == step:
                return dict(record.get("parameters") or {})
        return None

    def _own(self) -> dict[str, Any]:
        return {"step": self.step, "parameters": dict(self.parameters), "version": self.version}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in OME-Zarr attributes and OME-TIFF annotations)."""
        return {
            "source": self.source,
            "step": self.step,
            "parameters": _jsonable(dict(self.parameters)),
            "version": self.version,
            "history": [_jsonable(dict(h)) for h in self.history],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict`."""
        return cls(
            source=d.get("source"),
            step=str(d.get("step", "created")),
            parameters=dict(d.get("parameters") or {}),
            version=str(d.get("version", "unknown")),
            history=tuple(dict(h) for h in d.get("history") or ()),
        )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, VoxelSize):
        return list(obj.as_tuple())
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def expand_to_tczyx(data: Any, dims: str) -> Any:
    """Reorder and expand an array with axes ``dims`` (a subset of ``TCZYX``) to 5-D ``TCZYX``.

    Works on NumPy and Dask arrays without computing.
    """
    dims = dims.upper()
    if len(dims) != data.ndim:
        raise ValueRangeError(f"dims {dims!r} has {len(dims)} axes but the array has {data.ndim}", field="dims")
    if len(set(dims)) != len(dims) or not set(dims) <= set(AXES):
        raise ValueRangeError(f"dims must be distinct letters from {AXES!r}, got {dims!r}", field="dims")
    if "Y" not in dims or "X" not in dims:
        raise ValueRangeError(f"dims must include 'Y' and 'X', got {dims!r}", field="dims")
    present = [a for a in AXES if a in dims]
    order = [dims.index(a) for a in present]
    out = data.transpose(order) if order != list(range(len(order))) else data
    index = tuple(slice(None) if a in dims else None for a in AXES)
    return out[index]


class Image:
    """An image in canonical ``TCZYX`` order with physical metadata.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
        Pixel data; axes given by ``dims``.
    voxel_size : VoxelSize or (z, y, x) sequence
        Voxel size in micrometres. For a single-plane image ``z`` is still required (it is recorded, not used).
    dims : str, optional
        Axes of ``data``: distinct letters from ``TCZYX`` including ``Y`` and ``X``, in any order. Default ``"TCZYX"``.
    channel_names : sequence of str, optional
        One unique name per channel; defaults to ``c0, c1, ...``.
    time_interval : float, optional
        Seconds between timepoints, if known.
    provenance : Provenance, optional
        Source and producing step.

    Examples
    --------
    >>> import numpy as np
    >>> img = Image(np.zeros((2, 8, 16, 16), np.uint16), voxel_size=(0.29, 0.108, 0.108), dims="CZYX",
    ...             channel_names=["brightfield", "dna"])
    >>> img.shape
    (1, 2, 8, 16, 16)
    >>> img.channel("dna").shape
    (1, 1, 8, 16, 16)
    """

    __slots__ = ("_data", "channel_names", "provenance", "time_interval", "voxel_size")

    def __init__(
        self,
        data: Any,
        *,
        voxel_size: VoxelSize | Sequence[float],
        dims: str = AXES,
        channel_names: Sequence[str] | None = None,
        time_interval: float | None = None,
        provenance: Provenance | None = None,
    ) -> None:
        if not hasattr(data, "ndim") or not hasattr(data, "dtype"):
            data = np.asarray(data)
        self._data = expand_to_tczyx(data, dims)
        self.voxel_size = VoxelSize.of(voxel_size)
        n_c = self._data.shape[1]
        if channel_names is None:
            names: tuple[str, ...] = tuple(f"c{i}" for i in range(n_c))
        else:
            names = tuple(str(c) for c in channel_names)
        if len(names) != n_c:
            raise ValueRangeError(
                f"{len(names)} channel names given for {n_c} channels: {list(names)}", field="channel_names"
            )
        if len(set(names)) != len(names):
            raise ValueRangeError(f"channel names must be unique, got {list(names)}", field="channel_names")
        if any(not n.strip() for n in names):
            raise ValueRangeError(f"channel names must be non-empty, got {list(names)}", field="channel_names")
        self.channel_names = names
        if time_interval is not None:
            time_interval = float(time_interval)
            if not math.isfinite(time_interval) or time_interval <= 0:
                raise ValueRangeError(
                    f"expected a positive number of seconds, got {time_interval!r}", field="time_interval"
                )
        self.time_interval = time_interval
        self.provenance = provenance if provenance is not None else Provenance()

    # -- array access -------------------------------------------------------------------------------------------
    @property
    def data(self) -> Any:
        """The 5-D ``TCZYX`` array (NumPy or Dask)."""
        return self._data

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        return tuple(int(s) for s in self._data.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self._data.dtype)

    @property
    def sizes(self) -> dict[str, int]:
        """Axis name → length, e.g. ``{"T": 1, "C": 2, "Z": 60, "Y": 256, "X": 256}``."""
        return dict(zip(AXES, self.shape, strict=True))

    @property
    def is_lazy(self) -> bool:
        """True when the data is a Dask array (nothing loaded yet)."""
        return is_lazy(self._data)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def is_3d(self) -> bool:
        """True when the image has more than one z-plane."""
        return self.shape[2] > 1

    def numpy(self, *, squeeze: bool = False) -> np.ndarray:
        """Materialise as a NumPy array (``TCZYX``; ``squeeze=True`` drops length-1 axes)."""
        arr = materialize(self._data)
        return arr.squeeze() if squeeze else arr

    def compute(self) -> Image:
        """The same image with its data loaded into memory."""
        return self._replace(data=self.numpy())

    def to_dask(self, chunks: Any = "auto") -> Any:
        """The data as a Dask array (wrapping NumPy data without copying)."""
        import dask.array as da

        if isinstance(self._data, np.ndarray):
            return da.from_array(self._data, chunks=chunks)
        return self._data

    # -- selection ----------------------------------------------------------------------------------------------
    def channel_index(self, channel: str | int) -> int:
        """Index of a channel given by name or (possibly negative) index."""
        n = len(self.channel_names)
        if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
            if -n <= int(channel) < n:
                return int(channel) % n
            raise ChannelError(
                f"channel index {channel} out of range; the image has {n} channel(s): {list(self.channel_names)}",
                field="channel",
            )
        if isinstance(channel, str):
            if channel in self.channel_names:
                return self.channel_names.index(channel)
            if channel.lstrip("-").isdigit():
                return self.channel_index(int(channel))
        raise ChannelError(
            f"unknown channel {channel!r}; expected one of {list(self.channel_names)} or an index < {n}",
            field="channel",
        )

    def sel(
        self,
        *,
        channel: str | int | Sequence[str | int] | None = None,
        t: int | slice | Sequence[int] | None = None,
        z: int | slice | None = None,
    ) -> Image:
        """Select channels (names or indices), timepoints and z-planes; axes are kept (length 1 when an int)."""
        data = self._data
        names = self.channel_names
        if channel is not None:
            chans = [channel] if isinstance(channel, (str, int, np.integer)) else list(channel)
            idx = [self.channel_index(c) for c in chans]
            data = data[:, idx]
            names = tuple(self.channel_names[i] for i in idx)
        if t is not None:
            data = data[_keep_axis(t, self.shape[0], "t")]
        if z is not None:
            data = data[:, :, _keep_axis(z, self.shape[2], "z")]
        return self._replace(data=data, channel_names=names)

    def channel(self, channel: str | int) -> Image:
        """One channel, by name or index."""
        return self.sel(channel=channel)

    def timepoint(self, t: int) -> Image:
        """One timepoint."""
        return self.sel(t=t)

    # -- derivation ---------------------------------------------------------------------------------------------
    def with_data(
        self,
        data: Any,
        *,
        step: str,
        parameters: Mapping[str, Any] | None = None,
        dims: str = AXES,
        voxel_size: VoxelSize | Sequence[float] | None = None,
        channel_names: Sequence[str] | None = None,
    ) -> Image:
        """A new image produced from this one by ``step``; metadata carried over unless replaced."""
        expanded = expand_to_tczyx(data, dims)
        if channel_names is None:
            channel_names = self.channel_names if expanded.shape[1] == len(self.channel_names) else None
        return Image(
            expanded,
            voxel_size=self.voxel_size if voxel_size is None else voxel_size,
            channel_names=channel_names,
            time_interval=self.time_interval,
            provenance=self.provenance.then(step, parameters),
        )

    def _replace(self, *, data: Any, channel_names: Iterable[str] | None = None) -> Image:
        return Image(
            data,
            voxel_size=self.voxel_size,
            channel_names=tuple(channel_names) if channel_names is not None else self.channel_names,
            time_interval=self.time_interval,
            provenance=self.provenance,
        )

    def with_metadata(
        self,
        *,
        voxel_size: VoxelSize | Sequence[float] | None = None,
        channel_names: Sequence[str] | None = None,
        time_interval: float | None = None,
        provenance: Provenance | None = None,
    ) -> Image:
        """The same data with some metadata replaced."""
        return Image(
            self._data,
            voxel_size=self.voxel_size if voxel_size is None else voxel_size,
            channel_names=self.channel_names if channel_names is None else channel_names,
            time_interval=self.time_interval if time_interval is None else time_interval,
            provenance=self.provenance if provenance is None else provenance,
        )

    def __repr__(self) -> str:
        kind = "dask" if self.is_lazy else "numpy"
        dims = " ".join(f"{a}={n}" for a, n in self.sizes.items())
        ti = f", time_interval={self.time_interval:g}s" if self.time_interval else ""
        return (
            f"Image({dims}, dtype={self.dtype}, {kind}, voxel_size={self.voxel_size}, "
            f"channels={list(self.channel_names)}{ti})"
        )


def _keep_axis(sel: int | slice | Sequence[int], n: int, name: str) -> Any:
    if isinstance(sel, slice):
        return sel
    if isinstance(sel, (int, np.integer)):
        if not -n <= int(sel) < n:
            raise ValueRangeError(f"index {sel} out of range for {n} {name}-position(s)", field=name)
        i = int(sel) % n
        return slice(i, i + 1)
    idx = [int(i) for i in sel]
    for i in idx:
        if not -n <= i < n:
            raise ValueRangeError(f"index {i} out of range for {n} {name}-position(s)", field=name)
    return idx
