"""Loaded label-free models kept per process: a worker loads each model once, not once per item or region."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["MODEL_CACHE", "ModelCache"]


class ModelCache:
    """Models kept per process when enabled (``subcell batch`` enables it on its workers; region tasks always
    keep theirs). Keyed by the model's name or folder, its files' fingerprint and the device, so a model
    retrained in place is loaded again. Off for the one-shot CLI, where it would only hold memory."""

    def __init__(self) -> None:
        self.enabled = False
        self.models: dict[tuple[str, str, str], Any] = {}
        self.loads = 0

    def load(self, spec: str, device: Any, *, keep: bool = False) -> Any:
        from subcell.labelfree.pretrained import load_model

        if not (self.enabled or keep):
            return load_model(spec, device=device)
        from subcell.batch.items import fingerprint

        key = (spec, fingerprint([Path(spec)]) if Path(spec).exists() else "shipped", str(device))
        if key not in self.models:
            self.models[key] = load_model(spec, device=device)
            self.loads += 1
        return self.models[key]


MODEL_CACHE = ModelCache()
