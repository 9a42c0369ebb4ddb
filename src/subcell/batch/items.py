"""What a batch is made of: items (one output each), their fingerprints, and the record each leaves behind.

An item's *record* is a small JSON file written atomically next to the outputs (``OUTDIR/.batch/items/``) by
whoever finished the item — the worker, right after the output itself was committed — so a batch whose client
or workers are killed can be resumed from what is on disk alone: an item is done when its output exists and its
record says done with the same input fingerprint and config hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from subcell.config import config_hash

__all__ = [
    "Item", "ItemRecord", "attempts_path", "config_hash", "fingerprint", "read_record", "safe_name", "write_record",
]  # fmt: skip

_ZARR_META = (".zattrs", ".zarray", ".zgroup", "zarr.json")


@dataclass(frozen=True)
class Item:
    """One unit of work: ``id`` (unique in the batch), its input paths, its output path, and what the task needs.

    ``memory`` is the estimated peak in bytes (0 = unknown); ``resources`` Dask resource needs (e.g. ``GPU``).
    """

    id: str
    inputs: tuple[Path, ...]
    output: Path
    params: dict[str, Any] = field(default_factory=dict)
    memory: int = 0
    resources: dict[str, float] = field(default_factory=dict)


@dataclass
class ItemRecord:
    """The outcome of one item, as stored in its record file and in ``batch.parquet``."""

    id: str
    status: str
    output: str
    fingerprint: str
    config_hash: str
    source: str = ""
    error: str = ""
    message: str = ""
    started: float = 0.0  # Unix time the item started on its worker
    seconds: float = 0.0
    start_memory_mb: float = 0.0  # the worker's resident memory when the item started
    peak_memory_mb: float = 0.0  # its peak while the item ran
    memory_estimate_mb: float = 0.0
    attempts: int = 1
    worker: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_id(row: Any) -> str:
    """A manifest row's item id: its ``id``, else the source's name up to the first dot."""
    return str(row.id or row.source.name.split(".")[0])


def safe_name(text: str) -> str:
    """A file-name-safe version of an id (letters, digits, ``-_.``; anything else becomes ``_``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")
    return name or "item"


def _stat_key(path: Path, skip: tuple[Path, ...] = ()) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path}:missing"
    if not path.is_dir():
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    # a store: its metadata documents (shape, dtype, scale) and their times; chunk files are not walked, so a
    # 10,000-item manifest plans in seconds. Rewriting a store through any writer touches its metadata. Not walked
    # either: ``skip`` (the item's own output inside its input: a label written into the image, whose writing must
    # not make the item stale), temporaries, and the list of an image's labels (which another label changes)
    parts = [f"{path}:dir"]
    for root, dirs, files in os.walk(path):
        dirs.sort()
        depth = Path(root).relative_to(path).parts
        if len(depth) > 3:
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.isdigit() and d != "c" and not d.startswith(".")  # chunks (v2, v3 "c")
                   and Path(root, d) not in skip]  # fmt: skip
        for f in sorted(files):
            if f in _ZARR_META and depth != ("labels",):
                st = (Path(root) / f).stat()
                parts.append(f"{Path(root, f).relative_to(path)}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def fingerprint(paths: tuple[Path, ...] | list[Path], skip: tuple[Path, ...] = ()) -> str:
    """Identity of the inputs without reading pixels: path, size and modification time (metadata of stores; of a
    store, what lies at a path of ``skip`` is left out)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(_stat_key(Path(p), skip).encode())
    return h.hexdigest()[:16]


def record_path(state_dir: Path, item_id: str) -> Path:
    return state_dir / "items" / f"{safe_name(item_id)}.json"


def attempts_path(state_dir: Path, item_id: str) -> Path:
    """Where a running item counts its tries (it survives a worker that dies; removed once recorded)."""
    return state_dir / "items" / f"{safe_name(item_id)}.attempts"


def write_record(state_dir: Path, record: ItemRecord) -> None:
    """Write an item's record atomically (temporary name, then rename)."""
    from subcell.io._atomic import atomic_output

    path = record_path(state_dir, record.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(record.to_dict(), indent=1))


def read_record(state_dir: Path, item_id: str) -> ItemRecord | None:
    """The stored record of an item, or ``None`` (none yet, or unreadable: then the item is simply redone)."""
    path = record_path(state_dir, item_id)
    try:
        data = json.loads(path.read_text())
        return ItemRecord(**data)
    except (OSError, ValueError, TypeError):
        return None
