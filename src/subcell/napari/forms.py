"""magicgui forms generated from subcell's pydantic configs, so a widget offers exactly the fields, defaults,
limits and help texts the CLI validates — the two cannot drift apart."""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

__all__ = ["ConfigForm"]

BIG = 2**31 - 1


def _bounds(field: Any) -> dict[str, Any]:
    """min/max options from the field's ge/gt/le/lt constraints (magicgui spin boxes default to 0..999)."""
    opts: dict[str, Any] = {}
    for m in field.metadata:
        for attr, key in (("ge", "min"), ("gt", "min"), ("le", "max"), ("lt", "max")):
            v = getattr(m, attr, None)
            if v is not None:
                opts[key] = v
    return opts


def _is_optional(annotation: Any) -> tuple[bool, Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return True, args[0]
    return False, annotation


class ConfigForm:
    """A magicgui ``Container`` with one widget per chosen field of ``model`` (a pydantic config class).

    ``values()`` returns the validated config (pydantic raises with the field's name when a value is refused).
    Optional fields are text boxes where empty means the config's default (None, "automatic"); tuples are text
    boxes of space-separated numbers ("0.29 0.108 0.108").
    """

    def __init__(self, model: type[BaseModel], fields: Sequence[str], *, values: dict[str, Any] | None = None):
        from magicgui.widgets import Container, LineEdit, create_widget

        self.model = model
        self.widgets: dict[str, Any] = {}
        self.text: set[str] = set()
        for name in fields:
            info = model.model_fields[name]
            default = (values or {}).get(name, info.get_default(call_default_factory=True))
            optional, ann = _is_optional(info.annotation)
            tooltip = info.description or ""
            if optional or typing.get_origin(ann) is tuple:
                # text: "Z Y X" for tuples (spin boxes would round voxel sizes), empty = automatic for optionals
                text = "" if default is None else " ".join(map(str, default)) if isinstance(default, tuple) else str(
                    default)  # fmt: skip
                w: Any = LineEdit(value=text, label=name, tooltip=tooltip or ("empty: automatic" if optional else ""))
                self.text.add(name)
            else:
                opts = _bounds(info)
                if ann in (int, float):
                    opts.setdefault("min", -BIG)
                    opts.setdefault("max", BIG)
                    if ann is float:
                        opts["step"] = 0.0001  # magicgui shows the step's decimals
                if ann is Path:
                    opts = {"mode": "r"}
                w = create_widget(value=default, annotation=ann, label=name, options=opts)
                w.tooltip = tooltip
            self.widgets[name] = w
        self.container = Container(widgets=list(self.widgets.values()))

    def raw(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, w in self.widgets.items():
            v = w.value
            if name in self.text:
                v = v.strip()
                if v == "":
                    continue  # the config's default
                parts = v.replace(",", " ").split()
                v = parts if len(parts) > 1 else v  # "32 64 64" for a tuple field
            out[name] = v
        return out

    def values(self, **extra: Any) -> BaseModel:
        """The validated config from the form (plus ``extra`` fields the widget sets itself)."""
        return self.model.model_validate({**self.raw(), **extra})
