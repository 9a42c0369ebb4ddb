"""Length and time units as OME-XML, NGFF and tracking tools (TrackMate's ``micron``, ``sec``) spell them, converted
to µm and seconds."""

from __future__ import annotations

__all__ = ["LENGTH_UM", "TIME_S"]

LENGTH_UM = {
    "µm": 1.0, "um": 1.0, "micrometer": 1.0, "micron": 1.0, "microns": 1.0, "nm": 1e-3, "nanometer": 1e-3,
    "mm": 1e3, "millimeter": 1e3, "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6, "Å": 1e-4, "angstrom": 1e-4, "pm": 1e-6, "picometer": 1e-6,
}  # fmt: skip
TIME_S = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "ms": 1e-3, "millisecond": 1e-3, "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hour": 3600.0,
}  # fmt: skip
