"""What an OME-XML document says about its images as a collection: each image's name, and for a plate (an HCS
acquisition exported by Bio-Formats, bioformats2raw's ``OME/METADATA.ome.xml``) the well and field of each image.

OME-XML states a plate as ``Plate`` › ``Well`` (``Row``, ``Column``: 0-based) › ``WellSample`` › ``ImageRef``.
Rows are named as plates label them (0 → ``A``, 26 → ``AA``) and columns by number from 1, as NGFF plates and
:mod:`subcell.io.plate_writer` name them; a well's fields are numbered from 0 in the order of their samples'
``Index``. The standard library's parser: a few attributes do not need ome-types' full model (nor its import
time).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from subcell.io.wells import row_letters

__all__ = ["OmeCollection", "ome_collection"]


@dataclass(frozen=True)
class OmeCollection:
    """The images of an OME-XML document in order: their ``Name`` (``""`` when unnamed), and for each image a plate
    places, its manifest columns (``plate``, ``well`` as ``B3``, ``row``, ``column``, ``field``) by image index.
    ``problems``: what made a plate unreadable (its images then have no columns)."""

    names: list[str]
    wells: dict[int, dict[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    local: frozenset[int] = frozenset()  # the images whose pixels are in the file itself (see ome_collection)


def ome_collection(xml: str | bytes | Path, file_name: str | None = None) -> OmeCollection:
    """Parse OME-XML text (or a file of it); an unreadable document gives no images. ``file_name``: the OME-TIFF
    the text came from; an image stored in another file of a multi-file set is not ``local`` (each file of a set
    carries the whole set's OME-XML): its ``TiffData`` name another file's UUID than the document's own (the
    ``UUID`` of its root; a renamed file keeps it), or, in a document without one, another file name."""
    try:
        root = ET.parse(xml).getroot() if isinstance(xml, Path) else ET.fromstring(xml)
    except (OSError, ET.ParseError):
        return OmeCollection([])
    images = [el for el in root if _tag(el) == "Image"]
    own = root.get("UUID")
    local = frozenset(i for i, im in enumerate(images) if file_name is None or _stored_in(im, own, file_name))
    index = {el.get("ID", ""): i for i, el in enumerate(images)}
    wells: dict[int, dict[str, str]] = {}
    problems: list[str] = []
    plates = [el for el in root if _tag(el) == "Plate"]
    for p, plate in enumerate(plates):
        name = plate.get("Name") or plate.get("ID") or f"plate{p}"
        try:
            wells.update(_plate_wells(plate, name, index))
        except ValueError as e:
            problems.append(f"OME-XML plate {name!r}: {e}")
    return OmeCollection([el.get("Name", "") for el in images], wells, problems, local)


def _stored_in(image: ET.Element, own_uuid: str | None, file_name: str) -> bool:
    """Whether ``image``'s planes are in the document's own file: no ``TiffData`` refers to another file's UUID
    (or, where the document states no UUID of its own, to another file name)."""
    for el in image.iter():
        if _tag(el) != "UUID":
            continue
        other = (el.text or "").strip() != own_uuid if own_uuid else el.get("FileName", file_name) != file_name
        if other:
            return False
    return True


def _plate_wells(plate: ET.Element, name: str, index: dict[str, int]) -> dict[int, dict[str, str]]:
    """Each placed image's columns; of a plate imaged more than once (several ``PlateAcquisition``s, whose
    ``WellSampleRef`` list their samples) also its ``acquisition`` (the run's name, else its ID), as an NGFF
    plate's acquisitions give it."""
    runs = [el for el in plate if _tag(el) == "PlateAcquisition"]
    run_of = {ref.get("ID", ""): str(run.get("Name") or run.get("ID", "")) for run in runs for ref in run
              if _tag(ref) == "WellSampleRef"} if len(runs) > 1 else {}  # fmt: skip
    out: dict[int, dict[str, str]] = {}
    for well in (el for el in plate if _tag(el) == "Well"):
        try:
            row, column = int(well.get("Row", "")), int(well.get("Column", ""))
        except ValueError:
            raise ValueError(f"well {well.get('ID')!r}: expected whole-number Row and Column, got "
                             f"{well.get('Row')!r} and {well.get('Column')!r}") from None  # fmt: skip
        if row < 0 or column < 0:
            raise ValueError(f"well {well.get('ID')!r}: Row {row} and Column {column} must be >= 0")
        samples = sorted((el for el in well if _tag(el) == "WellSample"), key=lambda s: int(s.get("Index") or 0))
        for f, sample in enumerate(samples):
            ref = next((el.get("ID", "") for el in sample if _tag(el) == "ImageRef"), None)
            if ref is None:
                continue  # a position with no image acquired
            if ref not in index:
                raise ValueError(f"well {well.get('ID')!r} refers to image {ref!r}, which the document lacks")
            r, c = row_letters(row + 1), str(column + 1)
            out[index[ref]] = {"plate": name, "well": f"{r}{c}", "row": r, "column": c, "field": str(f)}
            if run_of:
                out[index[ref]]["acquisition"] = run_of.get(sample.get("ID", ""), "")
    return out


def _tag(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1]
