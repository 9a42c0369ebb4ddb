"""Loading validated configs: a YAML file, then a mapping of overrides, then ``key=value`` strings.

Every command that takes a config (``synth``, ``labelfree train``, …) goes through :func:`load_validated`, so
all of them report a bad value the same way: ``file: dotted.field: what was expected (got value)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from subcell.errors import InputFileError, ValueRangeError

__all__ = ["config_hash", "load_validated", "set_dotted"]

M = TypeVar("M", bound=BaseModel)


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable short hash of a JSON-able description of what is run (a batch's command and options, a training
    run's config): equal descriptions, equal hashes, whatever the key order."""
    import hashlib
    import json

    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree["a"]["b"] = value`` for ``dotted="a.b"``, creating groups as needed."""
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ValueRangeError(f"cannot set {dotted!r}: {k!r} is not a group", field=dotted)
    node[keys[-1]] = value


def load_validated(
    model: type[M],
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    assignments: Sequence[str] = (),
) -> M:
    """Build a validated ``model`` from an optional YAML file, a mapping and ``key=value`` strings (YAML values).

    Errors name the file (if any), the field and what was expected.
    """
    import yaml
    from pydantic import ValidationError

    tree: dict[str, Any] = {}
    if path is not None:
        from subcell.io.files import read_yaml

        p = Path(path)
        loaded = read_yaml(p, what="config file") or {}
        if not isinstance(loaded, dict):
            raise InputFileError("expected a mapping of settings at the top level", path=p)
        tree.update(loaded)
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(tree, key, value)
    for item in assignments:
        if "=" not in item:
            raise ValueRangeError(f"expected key=value, got {item!r}", field="override")
        key, raw = item.split("=", 1)
        set_dotted(tree, key.strip(), yaml.safe_load(raw))
    try:
        return model.model_validate(tree)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        suffix = "" if isinstance(got, dict) else f" (got {got!r})"
        raise ValueRangeError(f"{msg}{suffix}", path=path, field=where) from None
