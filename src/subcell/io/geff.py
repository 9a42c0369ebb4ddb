"""Track graphs on disk: geff groups (the Graph Exchange File Format: a Zarr group of nodes, edges and their
properties, with axes and related objects in its metadata) written and read, and TrackMate XML read through geff's
own converter. Graphs go in and out as networkx graphs with their :class:`geff_spec.GeffMetadata`; what the nodes
mean as tracks is :mod:`subcell.track.graph`'s business."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

from subcell.errors import InputFileError

__all__ = ["GEFF_NAME", "is_geff", "is_trackmate_xml", "read_graph", "related_labels", "write_graph"]

GEFF_NAME = "tracks.geff"


def is_geff(path: str | Path) -> bool:
    """Whether ``path`` is a geff group (a Zarr group whose attributes hold ``geff`` metadata)."""
    p = Path(path)
    for name in (".zattrs", "zarr.json"):
        if (p / name).is_file() and '"geff"' in (p / name).read_text(errors="replace"):
            return True
    return False


def is_trackmate_xml(path: str | Path) -> bool:
    """Whether ``path`` is an XML file whose root element is TrackMate's (the first kilobyte is read)."""
    p = Path(path)
    if p.suffix.lower() != ".xml" or not p.is_file():
        return False
    with p.open("rb") as f:
        return b"<TrackMate" in f.read(1024)


def related_labels(path: str | Path) -> Path | None:
    """The label image a geff group names as related (its path resolved against the group), or None: no such
    object, or not a geff group (a TrackMate XML file)."""
    p = Path(path)
    if not is_geff(p):
        return None
    from geff_spec import GeffMetadata

    try:
        meta = GeffMetadata.read(p)
    except Exception as err:  # any reader failure is a bad file
        raise InputFileError(f"unreadable geff metadata: {_first_line(err)}", path=p, field="geff") from err
    rel = next((o.path for o in meta.related_objects or [] if o.type == "labels"), None)
    return (p / rel).resolve() if rel else None


def read_graph(path: str | Path) -> tuple[Any, Any]:
    """A geff group or a TrackMate XML file as ``(networkx graph, GeffMetadata)``; a one-line error naming the file
    for anything else or anything unreadable."""
    import geff

    p = Path(path)
    if p.suffix.lower() == ".xml":
        if not p.is_file():
            raise InputFileError("TrackMate XML not found", path=p)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # missing display settings, undeclared features: not needed
                    from geff.convert import from_trackmate_xml_to_geff

                    from_trackmate_xml_to_geff(p, Path(tmp) / "tm.geff")
                    return geff.read(Path(tmp) / "tm.geff")  # type: ignore[no-any-return]
            except Exception as err:  # any converter failure is a bad file
                raise InputFileError(f"not a readable TrackMate XML ({_first_line(err)})", path=p,
                                     field="tracks") from err  # fmt: skip
    if not p.is_dir() or not is_geff(p):
        raise InputFileError("not a geff group (a Zarr group with geff metadata)", path=p, field="tracks")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # geff warns of units outside OME's list; the reader checks units
            return geff.read(p)  # type: ignore[no-any-return]
    except Exception as err:  # any reader failure is a bad file
        raise InputFileError(f"unreadable geff: {_first_line(err)}", path=p, field="tracks") from err


def write_graph(path: str | Path, graph: Any, *, axes: list[tuple[str, str, str | None, float | None, str | None]],
                track_node_props: dict[str, str] | None = None, labels_path: str | None = None,
                label_prop: str | None = None) -> None:  # fmt: skip
    """Write a networkx graph as a geff group at ``path``. ``axes``: ``(name, type, unit, scale, scaled_unit)`` of
    the node properties that place a node; ``labels_path`` (relative to ``path``) is recorded as the related label
    image whose ids the nodes' ``label_prop`` holds."""
    import geff
    from geff_spec import GeffMetadata, RelatedObject

    names, types, units, scales, scaled = (list(column) for column in zip(*axes, strict=True))
    geff.write(graph, Path(path), axis_names=names, axis_types=types, axis_units=units, axis_scales=scales,
               scaled_units=scaled)  # fmt: skip
    meta = GeffMetadata.read(Path(path))  # the node and edge properties' metadata as geff derives it, then ours
    if track_node_props:
        meta.track_node_props = track_node_props
    if labels_path:
        meta.related_objects = [RelatedObject(type="labels", path=labels_path, label_prop=label_prop)]
    meta.write(Path(path))


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__
