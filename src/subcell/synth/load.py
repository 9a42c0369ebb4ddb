"""Config loading (YAML + ``key=value`` overrides) and the one writing entry point behind ``subcell synth``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from subcell.errors import InputFileError, ValueRangeError
from subcell.synth.config import SynthConfig

__all__ = ["LARGE_PIXELS", "load_config", "write_synth"]

LARGE_PIXELS = 1024 * 1024  # fields with more pixels per plane are streamed block by block


def load_config(
    path: str | Path | None = None, *, overrides: Mapping[str, Any] | None = None, assignments: Sequence[str] = ()
) -> SynthConfig:
    """Build a validated :class:`SynthConfig` from an optional YAML file, a mapping and ``key=value`` strings.

    Errors name the file (if any), the field and what was expected, e.g.
    ``cfg.yaml: cells.diameter_um: must be a (min, max) pair with 0 < min <= max``.
    """
    from subcell.config import load_validated

    return load_validated(SynthConfig, path, overrides=overrides, assignments=assignments)


def write_synth(
    config: SynthConfig,
    path: str | Path,
    *,
    overwrite: bool = False,
    large: bool | None = None,
    ngff_version: str = "0.4",
) -> Path:
    """Generate and write a field (OME-Zarr + NGFF labels + ``tables/*.parquet``) atomically.

    Large fields (``large=True``, or more than 1024×1024 pixels per plane) are streamed block by block with
    memory bounded by the block; time-lapses and smaller fields are generated in memory.
    """
    from subcell.io.writer import output_format
    from subcell.synth.generate import synth_field, write_field
    from subcell.synth.large import write_large_field

    if output_format(path) != "ome-zarr":
        raise InputFileError("synthetic fields are written as OME-Zarr (name ending in .ome.zarr)", path=path)
    is_large = large if large is not None else config.shape[1] * config.shape[2] > LARGE_PIXELS
    if is_large:
        if config.time.frames > 1:
            raise ValueRangeError(
                "large (block-wise) generation makes single frames; use time.frames=1", field="time.frames"
            )
        return write_large_field(config, path, overwrite=overwrite, ngff_version=ngff_version)
    return write_field(synth_field(config), path, overwrite=overwrite, ngff_version=ngff_version)
