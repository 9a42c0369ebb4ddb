"""Label-free models shipped with subcell: pretrained on synthetic fields only, so they carry no data license.

Each entry of ``index.json`` names a model folder in this package (weights + ``model.json`` + model card), the
recipe that reproduces it (``recipes/<folder>.yaml``, run with ``subcell labelfree pretrain``) and the SHA-256 of
its weights, checked on every load. Short names pick one output of a multi-target network (``dna`` is the 3D
model restricted to its DNA channel); ``--model NAME`` and ``init=NAME`` accept them wherever a model folder is
accepted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subcell.errors import InputFileError

__all__ = ["ShippedModel", "list_models", "load_model", "shipped_folder", "takes_cells"]

HERE = Path(__file__).parent
INDEX = HERE / "index.json"


@dataclass(frozen=True)
class ShippedModel:
    name: str
    folder: str
    targets: list[str]
    description: str
    sha256: str


def _index() -> dict[str, ShippedModel]:
    if not INDEX.exists():
        return {}
    try:
        raw = json.loads(INDEX.read_text())
        return {name: ShippedModel(name=name, **entry) for name, entry in raw["models"].items()}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputFileError(f"the shipped-model index is damaged ({exc}); reinstall subcell", path=INDEX) from None


def shipped_folder(name: str) -> Path:
    """The package folder of a shipped model (after its checksum is verified)."""
    entry = _entry(name)
    folder = HERE / entry.folder
    weights = folder / "weights.safetensors"
    if not weights.exists():
        raise InputFileError(f"shipped model {name!r} is missing its weights; reinstall subcell", path=weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if digest != entry.sha256:
        raise InputFileError(
            f"shipped model {name!r} is corrupted (SHA-256 {digest[:12]}… != {entry.sha256[:12]}…); reinstall subcell",
            path=weights,
        )
    return folder


def _entry(name: str) -> ShippedModel:
    index = _index()
    if name not in index:
        names = ", ".join(sorted(index)) or "none are installed"
        raise InputFileError(f"no model folder or shipped model of this name; shipped models: {names}", path=name)
    return index[name]


def list_models() -> list[dict[str, Any]]:
    """One row per shipped name: targets, voxel size, parameters, size on disk, what it is for."""
    rows = []
    for name, e in sorted(_index().items()):
        folder = HERE / e.folder
        meta = json.loads((folder / "model.json").read_text()) if (folder / "model.json").exists() else {}
        weights = folder / "weights.safetensors"
        rows.append({
            "name": name, "targets": ",".join(e.targets), "folder": e.folder,
            "voxel_size_um": tuple(meta.get("voxel_size_um", ())),
            "dims": "2D" if meta.get("network", {}).get("z_levels") == 0 else "3D",
            "parameters": meta.get("parameters"),
            "size_mb": round(weights.stat().st_size / 1e6, 2) if weights.exists() else None,
            "description": e.description,
        })  # fmt: skip
    return rows


def _kind(spec: str | Path) -> str:
    """What ``spec`` names: ``package`` (bioimage.io ``.zip`` or ``rdf.yaml``), ``folder`` (a model folder; a
    missing one is reported by its path) or ``shipped`` (a bare name: shipped, or an error listing the names)."""
    path = Path(spec)
    if path.suffix in (".zip", ".yaml") or (path.is_dir() and (path / "rdf.yaml").exists()):
        return "package"
    if path.exists() or (len(path.parts) > 1 and str(spec) not in _index()):
        return "folder"
    return "shipped"


def takes_cells(spec: str | Path) -> bool:
    """Whether the model ``spec`` names takes the cell outlines as a second input, from its ``model.json`` alone
    (no weights read): what a batch needs to know to give each item its cells before anything is scheduled. A
    bioimage.io package has one image input. An unknown name or a missing folder fails here as in
    :func:`load_model`."""
    from subcell.labelfree.model import KIND, takes_cell_depth
    from subcell.train.artifact import load_metadata

    kind = _kind(spec)
    if kind == "package":
        if not Path(spec).exists():
            raise InputFileError("model not found", path=spec)
        return False
    folder = Path(spec) if kind == "folder" else HERE / _entry(str(spec)).folder
    meta = load_metadata(folder, kind=KIND)
    try:  # the rule LabelFreeModel.load reads model.json by
        return takes_cell_depth(meta.get("input_channels"))
    except ValueError as exc:
        raise InputFileError(f"model.json: {exc}", path=folder / "model.json", field="input_channels") from None


def load_model(spec: str | Path, *, device: Any = "cpu") -> Any:
    """A :class:`~subcell.labelfree.LabelFreeModel` from a model folder or a shipped model's name, or a
    :class:`~subcell.zoo.package.PackagedModel` from a bioimage.io package (``.zip`` or ``rdf.yaml``)."""
    from subcell.labelfree.model import LabelFreeModel

    path = Path(spec)
    kind = _kind(spec)
    if kind == "package":
        from subcell.zoo.package import load_package

        return load_package(path / "rdf.yaml" if path.is_dir() else path, device=device)
    if kind == "folder":
        return LabelFreeModel.load(path, device=device)
    entry = _entry(str(spec))  # a bare name: shipped, or an error that lists the shipped names
    model = LabelFreeModel.load(shipped_folder(entry.name), device=device)
    if model.targets != entry.targets:
        model = model.select(entry.targets)
    model.training = {**model.training, "shipped_name": entry.name}
    return model
