"""Synthetic hiPSC-like fields with exact ground truth (``subcell synth``).

``synth_field`` makes one field or a time-lapse in memory; ``lazy_field`` a Dask-backed field of any size;
``write_synth`` writes either to OME-Zarr with NGFF labels and Parquet tables, streaming large fields block by
block.
"""

from __future__ import annotations

from subcell.synth.config import STRUCTURES, SynthConfig
from subcell.synth.generate import LABEL_NAMES, SynthField, channel_names, synth_field, write_field
from subcell.synth.large import lazy_field, write_large_field
from subcell.synth.load import load_config, write_synth

__all__ = [
    "LABEL_NAMES",
    "STRUCTURES",
    "SynthConfig",
    "SynthField",
    "channel_names",
    "lazy_field",
    "load_config",
    "synth_field",
    "write_field",
    "write_large_field",
    "write_synth",
]
