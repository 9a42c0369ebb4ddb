"""Package version (single source: pyproject's dynamic version reads this)."""

__version__ = "0.1.0"
