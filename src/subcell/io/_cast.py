"""The one rule for storing values in another dtype: only when nothing is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.image import is_lazy, materialize

__all__ = ["as_labels", "lossless_cast"]


def lossless_cast(data: Any, dtype: Any, *, path: str | Path | None = None, what: str = "data") -> np.ndarray:
    """``data`` as ``dtype``, refusing casts that would change values (one-line error naming both dtypes).

    Integers and booleans go to any dtype that holds their range; floats go to floats (rounding to the target
    precision is accepted) and to integers only when every value is a whole number in range; NaN never goes to
    an integer dtype.
    """
    a = materialize(data)
    dt = np.dtype(dtype)
    if a.dtype == dt or a.size == 0 or np.issubdtype(dt, np.floating) or a.dtype == np.bool_:
        return a.astype(dt, copy=False)
    if dt == np.bool_:
        if np.isin(a, (0, 1)).all():
            return a.astype(dt)
        raise ValueRangeError(
            f"cannot store {what} of dtype {a.dtype} as bool: values other than 0 and 1", path=path, field="dtype"
        )
    info = np.iinfo(dt)
    lo, hi = a.min(), a.max()
    problem = ""
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            problem = "NaN or infinite values"
        elif not np.array_equal(a, np.round(a)):
            problem = "fractional values"
    if not problem and (lo < info.min or hi > info.max):
        problem = f"values {lo}..{hi} outside {info.min}..{info.max}"
    if problem:
        raise ValueRangeError(
            f"cannot store {what} of dtype {a.dtype} as {dt} without loss ({problem}); convert it explicitly first",
            path=path,
            field="dtype",
        )
    return a.astype(dt)


def _labels_dtype(dtype: Any) -> np.dtype:
    kind = np.dtype(dtype)
    return np.dtype(np.uint8) if kind == np.bool_ else kind if np.issubdtype(kind, np.integer) else np.dtype(np.int64)


def as_labels(data: Any, *, path: str | Path | None = None, what: str = "labels", lazy: bool = False) -> Any:
    """The one rule for label inputs everywhere: integer ids (0 = background) or a mask.

    Integers are kept (negative ids are refused), booleans become 0/1, floats are accepted only when every
    value is a whole, non-negative number (e.g. labels saved as float32) — fractional values are refused, never
    truncated. ``lazy=True`` keeps a Dask array lazy: each block is checked and converted as it is read (the
    error comes then), so a time-lapse larger than memory is never held whole.
    """
    if lazy and is_lazy(data):
        return data.map_blocks(as_labels, path=path, what=what, dtype=_labels_dtype(data.dtype))
    a = materialize(data)
    if a.dtype == np.bool_:
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        if a.size and np.issubdtype(a.dtype, np.signedinteger) and a.min() < 0:
            raise ValueRangeError(f"{what} must be non-negative ids, found {a.min()}", path=path, field="labels")
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueRangeError(f"{what} must be integer ids, got dtype {a.dtype}", path=path, field="labels")
    if a.size and a.min() < 0:
        raise ValueRangeError(f"{what} must be non-negative ids, found {a.min()}", path=path, field="labels")
    try:
        return lossless_cast(a, np.int64, path=path, what=what)
    except ValueRangeError:
        raise ValueRangeError(
            f"{what} are floats with fractional values (e.g. {a[a != np.round(a)].flat[0]}); expected integer ids",
            path=path,
            field="labels",
        ) from None
