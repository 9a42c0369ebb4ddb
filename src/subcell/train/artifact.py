"""Model artifacts: a folder with ``weights.safetensors`` and ``model.json`` (nothing is ever unpickled).

``model.json`` holds everything needed to rebuild and use the model on another machine: the kind of model,
the resolved config, normalization, voxel size, channel meanings, training metrics and the subcell version.
Artifacts are written through the io layer's atomic writer (a unique hidden temporary folder, then one
replace), so an interrupted save leaves nothing that looks complete and two saves never collide.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from subcell._version import __version__
from subcell.errors import InputFileError, OutputExistsError

__all__ = ["ARTIFACT_FORMAT", "load_artifact", "load_metadata", "save_artifact", "save_tensors"]

ARTIFACT_FORMAT = "subcell-model/1"
WEIGHTS = "weights.safetensors"
META = "model.json"


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Tensors to a safetensors file that gets the permissions any other written file gets (``0o666`` less the
    umask). ``safetensors.torch.save_file`` creates its file owner-only (0600) whatever the umask, so a model saved on
    a shared cluster could not be loaded by the rest of the lab; the bytes are made by ``safetensors.torch.save`` and
    written here (a copy of the weights in memory for the moment of the write: megabytes for these networks).
    Reading the umask to chmod afterwards would set it process-wide for an instant, under other threads' writes."""
    from safetensors.torch import save

    Path(path).write_bytes(save(tensors, metadata=metadata))


def save_artifact(
    folder: str | Path,
    state_dict: dict[str, torch.Tensor],
    metadata: dict[str, Any],
    *,
    extra_files: dict[str, bytes] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write weights + metadata (+ small extra files, e.g. a training curve) to ``folder`` atomically.

    ``metadata["kind"]`` names the model type, checked again by :func:`load_artifact`.
    """
    from subcell.io._atomic import atomic_output

    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise OutputExistsError("model folder exists; pass overwrite=True / --overwrite to replace it", path=folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # the io layer's atomic writer: a unique temporary name (two saves never collide) and one replace at the
    # end, so a crash leaves either the old model or the new one, never neither
    with atomic_output(folder, overwrite=overwrite) as tmp:
        tmp.mkdir()
        tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
        save_tensors(tensors, tmp / WEIGHTS, metadata={"format": ARTIFACT_FORMAT})
        meta = {"format": ARTIFACT_FORMAT, "subcell_version": __version__, **metadata}
        (tmp / META).write_text(json.dumps(meta, indent=2, default=_json_default))
        for name, content in (extra_files or {}).items():
            (tmp / name).write_bytes(content)
    return folder


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"cannot store {type(obj).__name__} in model.json")


def load_artifact(folder: str | Path, *, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a model folder: (state dict, metadata). Errors name the file and what is wrong with it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = load_metadata(folder, kind=kind)
    weights_path = Path(folder) / WEIGHTS
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputFileError(f"weights are corrupted or not safetensors ({exc})", path=weights_path) from None
    return state, meta


def load_metadata(folder: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """A model folder's ``model.json``, checked as :func:`load_artifact` checks it, without reading the weights."""
    folder = Path(folder)
    if not folder.exists():
        raise InputFileError("model not found", path=folder)
    if not folder.is_dir():
        raise InputFileError("expected a model folder (with model.json and weights.safetensors)", path=folder)
    meta_path, weights_path = folder / META, folder / WEIGHTS
    for p in (meta_path, weights_path):
        if not p.exists():
            raise InputFileError(f"not a subcell model folder: {p.name} is missing", path=folder)
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"model.json is not valid JSON ({exc.__class__.__name__})", path=meta_path) from None
    if not isinstance(meta, dict) or meta.get("format") != ARTIFACT_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise InputFileError(f"expected format {ARTIFACT_FORMAT!r}, got {got!r}", path=meta_path, field="format")
    if kind is not None and meta.get("kind") != kind:
        raise InputFileError(f"expected a {kind} model, got {meta.get('kind')!r}", path=meta_path, field="kind")
    return meta
