"""TrackMate XML written: the file Fiji's TrackMate (*Load a TrackMate file*), Mastodon and MaMuT open.

geff's converter reads TrackMate files (:func:`subcell.io.geff.read_graph`), but no maintained Python package
writes them, so the writer is here, streaming elements with the standard library's ``XMLGenerator``. It writes what TrackMate's reader
(``TmXmlReader``, file version ≥ 2.1) looks up: feature declarations for every spot, edge and track attribute
(their dimension names are TrackMate's ``Dimension`` enum), spots per frame, one ``Track`` per connected component
with its edges (TrackMate's track is a whole lineage; a spot without edges is in no track), the visible tracks,
and settings of a manual detection and tracking with the image's size and calibration (the reader dereferences
its initial and filter elements without checking for them). With no readable image file TrackMate shows the tracks
on an empty image of that size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import XMLGenerator
from xml.sax.xmlreader import AttributesImpl

__all__ = ["TRACKMATE_NAME", "Feature", "TrackMateImage", "write_trackmate_xml"]

TRACKMATE_NAME = "tracks.xml"
FILE_VERSION = "7.13.2"  # the TrackMate release whose file layout this follows (readers accept >= 2.1.0)


@dataclass(frozen=True)
class Feature:
    """A numeric feature as TrackMate declares it: its key (the node attribute and XML attribute), long and short
    names, TrackMate dimension (``NONE``, ``INTENSITY``, ``LENGTH``, …) and whether it is an integer."""

    key: str
    name: str
    short: str
    dimension: str = "NONE"
    isint: bool = False


# the spot features every TrackMate model has; a writer adds its own after them
SPOT_FEATURES = (
    Feature("QUALITY", "Quality", "Quality", "QUALITY", False),
    Feature("POSITION_X", "X", "X", "POSITION", False),
    Feature("POSITION_Y", "Y", "Y", "POSITION", False),
    Feature("POSITION_Z", "Z", "Z", "POSITION", False),
    Feature("POSITION_T", "T", "T", "TIME", False),
    Feature("FRAME", "Frame", "Frame", "NONE", True),
    Feature("RADIUS", "Radius", "R", "LENGTH", False),
    Feature("VISIBILITY", "Visibility", "Visibility", "NONE", True),
)
EDGE_FEATURES = (
    Feature("SPOT_SOURCE_ID", "Source spot ID", "Source ID", "NONE", True),
    Feature("SPOT_TARGET_ID", "Target spot ID", "Target ID", "NONE", True),
    Feature("LINK_COST", "Edge cost", "Cost", "COST", False),
)
TRACK_FEATURES = (
    Feature("TRACK_INDEX", "Track index", "Index", "NONE", True),
    Feature("TRACK_ID", "Track ID", "ID", "NONE", True),
    Feature("NUMBER_SPOTS", "Number of spots in track", "N spots", "NONE", True),
    Feature("NUMBER_SPLITS", "Number of split events", "N splits", "NONE", True),
    Feature("TRACK_START", "Track start", "Track start", "TIME", False),
    Feature("TRACK_STOP", "Track stop", "Track stop", "TIME", False),
    Feature("TRACK_DURATION", "Track duration", "Duration", "TIME", False),
)


@dataclass(frozen=True)
class TrackMateImage:
    """The image the tracks belong to, as TrackMate's settings state it: size in pixels, slices and frames, the
    pixel size in the model's space unit and the frame interval in seconds; ``filename`` relative to the XML
    file's folder (or empty: TrackMate then shows an empty image of this size)."""

    width: int
    height: int
    nslices: int
    nframes: int
    pixel_size: tuple[float, float, float]  # (z, y, x)
    time_interval_s: float
    filename: str = ""


def _number(value: Any, isint: bool) -> str:
    if isint:
        return str(int(value))
    v = float(value)
    return repr(v) if math.isfinite(v) else "NaN"


class _Writer:
    """Elements written as they come, indented (nothing of the file is held: a movie's million spots stream)."""

    def __init__(self, out: Any) -> None:
        self.gen = XMLGenerator(out, encoding="UTF-8", short_empty_elements=True)
        self.gen.startDocument()
        self.depth, self.started = 0, False

    def _indent(self) -> None:
        self.gen.ignorableWhitespace("\n" + "  " * self.depth if self.depth else "\n" * self.started)
        self.started = True

    def open(self, tag: str, attrs: Mapping[str, str] | None = None) -> None:
        self._indent()
        self.gen.startElement(tag, AttributesImpl(dict(attrs or {})))
        self.depth += 1

    def close(self, tag: str) -> None:
        self.depth -= 1
        self._indent()
        self.gen.endElement(tag)

    def leaf(self, tag: str, attrs: Mapping[str, str] | None = None, text: str = "") -> None:
        self._indent()
        self.gen.startElement(tag, AttributesImpl(dict(attrs or {})))
        if text:
            self.gen.characters(text)
        self.gen.endElement(tag)


def write_trackmate_xml(path: str | Path, graph: Any, *, track_of: str, image: TrackMateImage,
                        features: Sequence[Feature] = (), space_unit: str = "micron",
                        overwrite: bool = False) -> None:  # fmt: skip
    """Write a networkx DiGraph of spots as a TrackMate model at ``path``.

    Every node has integer ``FRAME`` and the standard positions ``POSITION_X/Y/Z`` (in ``space_unit``),
    ``POSITION_T`` (seconds), ``RADIUS``, plus each ``features`` key; ``track_of`` names the node attribute that
    numbers its connected component (its TrackMate ``TRACK_ID``). Edges go forward in time (source earlier).
    The file appears complete or not at all (written under a temporary name, then renamed); an existing file is
    replaced only with ``overwrite``.
    """
    from subcell.io._atomic import atomic_output

    spot_decl = [*SPOT_FEATURES, *features]
    isint = {f.key: f.isint for f in spot_decl}
    frame_of = {n: int(a["FRAME"]) for n, a in graph.nodes(data=True)}
    nodes = sorted(graph.nodes, key=lambda n: (frame_of[n], n))
    members: dict[int, list[Any]] = {}
    for n in nodes:
        members.setdefault(int(graph.nodes[n][track_of]), []).append(n)
    components: dict[int, list[tuple[Any, Any]]] = {}
    for u, v in sorted(graph.edges, key=lambda e: (frame_of[e[0]], e)):
        components.setdefault(int(graph.nodes[u][track_of]), []).append((u, v))
    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "w", encoding="utf-8") as out:
        w = _Writer(out)
        w.open("TrackMate", {"version": FILE_VERSION})
        w.leaf("Log", text="Written by subcell (manual detection and tracking: imported tracks).")
        w.open("Model", {"spatialunits": space_unit, "timeunits": "sec"})
        w.open("FeatureDeclarations")
        for group, rows in (
            ("SpotFeatures", spot_decl),
            ("EdgeFeatures", EDGE_FEATURES),
            ("TrackFeatures", TRACK_FEATURES),
        ):
            w.open(group)
            for f in rows:
                w.leaf("Feature", {"feature": f.key, "name": f.name, "shortname": f.short, "dimension": f.dimension,
                                   "isint": "true" if f.isint else "false"})  # fmt: skip
            w.close(group)
        w.close("FeatureDeclarations")

        w.open("AllSpots", {"nspots": str(len(nodes))})
        current = None
        for n in nodes:
            if frame_of[n] != current:
                if current is not None:
                    w.close("SpotsInFrame")
                current = frame_of[n]
                w.open("SpotsInFrame", {"frame": str(current)})
            a = graph.nodes[n]
            values = {"QUALITY": 1.0, "VISIBILITY": 1, **{k: a[k] for k in isint if k in a}}
            w.leaf("Spot", {"ID": str(int(n)), "name": f"ID{int(n)}",
                            **{k: _number(v, isint[k]) for k, v in values.items()}})  # fmt: skip
        if current is not None:
            w.close("SpotsInFrame")
        w.close("AllSpots")

        w.open("AllTracks")
        for index, (tid, edges) in enumerate(sorted(components.items())):
            times = [float(graph.nodes[n]["POSITION_T"]) for n in members[tid]]
            stats = {"TRACK_INDEX": index, "TRACK_ID": tid, "NUMBER_SPOTS": len(members[tid]),
                     "NUMBER_SPLITS": sum(1 for n in members[tid] if graph.out_degree(n) > 1),
                     "TRACK_START": min(times), "TRACK_STOP": max(times),
                     "TRACK_DURATION": max(times) - min(times)}  # fmt: skip
            w.open("Track", {"name": f"Track_{tid}", **{f.key: _number(stats[f.key], f.isint) for f in TRACK_FEATURES}})
            for u, v in edges:
                w.leaf("Edge", {"SPOT_SOURCE_ID": str(int(u)), "SPOT_TARGET_ID": str(int(v)), "LINK_COST": "0.0"})
            w.close("Track")
        w.close("AllTracks")
        w.open("FilteredTracks")
        for tid in sorted(components):
            w.leaf("TrackID", {"TRACK_ID": str(tid)})
        w.close("FilteredTracks")
        w.close("Model")
        _settings(w, image, graph)
        w.leaf("GUIState", {"state": "ConfigureViews"})
        w.close("TrackMate")
        w.gen.endDocument()
        out.write("\n")


def _settings(w: _Writer, image: TrackMateImage, graph: Any) -> None:
    """Settings of a manual detection and tracking on ``image`` (what TrackMate re-opens the model with)."""
    w.open("Settings")
    dz, dy, dx = image.pixel_size
    w.leaf("ImageData", {"filename": image.filename, "folder": "", "width": str(image.width),
                         "height": str(image.height), "nslices": str(image.nslices), "nframes": str(image.nframes),
                         "pixelwidth": repr(float(dx)), "pixelheight": repr(float(dy)), "voxeldepth": repr(float(dz)),
                         "timeinterval": repr(float(image.time_interval_s))})  # fmt: skip
    w.leaf("BasicSettings", {"xstart": "0", "xend": str(image.width - 1), "ystart": "0",
                             "yend": str(image.height - 1), "zstart": "0", "zend": str(image.nslices - 1),
                             "tstart": "0", "tend": str(image.nframes - 1)})  # fmt: skip
    radii = sorted(float(graph.nodes[n]["RADIUS"]) for n in graph.nodes)
    radius = radii[len(radii) // 2] if radii else 1.0
    w.leaf("DetectorSettings", {"DETECTOR_NAME": "MANUAL_DETECTOR", "RADIUS": repr(radius)})
    w.leaf("InitialSpotFilter", {"feature": "QUALITY", "value": "0.0", "isabove": "true"})
    w.leaf("SpotFilterCollection")
    w.leaf("TrackerSettings", {"TRACKER_NAME": "MANUAL_TRACKER"})
    w.leaf("TrackFilterCollection")
    w.open("AnalyzerCollection")
    for name in ("SpotAnalyzers", "EdgeAnalyzers", "TrackAnalyzers"):
        w.leaf(name)
    w.close("AnalyzerCollection")
    w.close("Settings")
