"""Matplotlib (Agg) figures returned as PNG bytes, so compute modules never open files themselves."""

from __future__ import annotations

import io as _io
from typing import Any

__all__ = ["png_bytes", "subplots"]


def subplots(*args: Any, **kwargs: Any) -> Any:
    """``plt.subplots`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def png_bytes(fig: Any, *, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
