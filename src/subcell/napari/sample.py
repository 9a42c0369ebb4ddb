"""napari sample data: a small synthetic hiPSC field with its nucleus and cell truth labels."""

from __future__ import annotations

from typing import Any

from subcell.napari.reader import image_layers

__all__ = ["sample_field"]


def sample_field() -> list[tuple[Any, dict[str, Any], str]]:
    """A 24 × 192 × 192 field (seed 0): bright-field, the fluorescent structures and the truth labels."""
    from subcell import synth

    field = synth.synth_field(shape=(24, 192, 192), seed=0)
    return image_layers(field.image, {k: field.labels[k] for k in ("nucleus", "cell")})
