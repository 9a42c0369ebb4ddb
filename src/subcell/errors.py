"""Errors that describe a user's mistake.

Every error raised for bad input derives from :class:`SubcellError`. Its message is one line that names the
file (or config), the field, the value received and what was expected, so the CLI can print it verbatim and
exit with status 2. Programming errors (bugs) are ordinary Python exceptions and keep their traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ChannelError",
    "ClusterError",
    "InputFileError",
    "ManifestError",
    "MetadataError",
    "OutputExistsError",
    "SubcellError",
    "ValueRangeError",
]


class SubcellError(Exception):
    """Base class of all user-facing errors: a one-line, actionable message."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.field = field
        self.message = message
        prefix = f"{self.path}: " if self.path else ""
        where = f"{field}: " if field else ""
        super().__init__(f"{prefix}{where}{message}")


class InputFileError(SubcellError):
    """A file is missing, unreadable, truncated or of an unsupported format."""


class MetadataError(SubcellError):
    """Physical metadata (voxel size, axes, channels) is missing, untrustworthy or contradicts the user."""


class ChannelError(SubcellError, KeyError):
    """A channel name or index that the image does not have."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return Exception.__str__(self)


class ClusterError(SubcellError):
    """A scheduler cannot be reached, or a cluster cannot be built from its config."""


class OutputExistsError(SubcellError):
    """The output exists and ``overwrite`` was not requested."""


class ValueRangeError(SubcellError, ValueError):
    """A parameter or array content is outside what the operation accepts (e.g. all-NaN data)."""


class ManifestError(SubcellError):
    """A manifest has problems; ``issues`` lists every one (row, column, value, expected)."""

    def __init__(self, path: str | Path, issues: list[str]) -> None:
        self.issues = list(issues)
        n = len(self.issues)
        summary = f"{n} problem{'s' if n != 1 else ''} found"
        super().__init__(summary + ":\n" + "\n".join(f"  {i}" for i in self.issues), path=path)
