"""subcell: machine learning and classical analysis for 3D and 3D+time live-cell microscopy.

The top-level namespace is small and cheap to import; subpackages (``subcell.io``, ``subcell.transforms``, ...)
are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from subcell._version import __version__

__all__ = ["Image", "Provenance", "VoxelSize", "__version__", "io", "transforms"]

_LAZY_ATTRS = {"Image": "subcell.image", "VoxelSize": "subcell.image", "Provenance": "subcell.image"}
_LAZY_MODULES = {"io", "transforms", "synth", "errors"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(_LAZY_ATTRS[name]), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(f"subcell.{name}")
    raise AttributeError(f"module 'subcell' has no attribute {name!r}")
