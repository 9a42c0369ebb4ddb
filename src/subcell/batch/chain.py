"""A finished batch as the manifest of the next one: ``subcell batch measure seg/ tables/``.

The rows are the batch's finished items (done or skipped, output present): ``id`` and ``source`` = the item's
output. The other columns of the manifest that batch ran on (target, split, structure, masks, ``intensity``,
``label``, …) are carried over by id; the columns that describe the old source (``source_channel``, ``scene``,
``axes``, ``time_interval``, the voxel size, the ``label`` image inside it) are not, since the outputs carry their
own metadata. The labels of a ``segment`` batch get the image they segment as their ``intensity`` unless the row
names one: the image itself when they were written into it (``--into-labels``: ``field.ome.zarr/labels/nuclei``),
else the row's source (its scene of a multi-scene file as ``intensity_scene``, the axes it was read with as
``axes``), on whose grid ``segment`` writes them; so ``batch measure`` measures each object's intensities in the image it was found in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from subcell.batch.items import row_id
from subcell.batch.runner import TABLE, is_batch_folder, read_batch_state

__all__ = ["batch_manifest"]

# the other column that describes the old source's layout (its channel, scene, axes, time interval and voxel size
# are not taken at all)
_NOT_CARRIED = ("label",)  # the label image inside it


def batch_manifest(outdir: str | Path) -> tuple[Any, int]:
    """The manifest of a batch's finished outputs, and how many of its items were left out (failed or gone)."""
    from subcell.errors import ManifestError
    from subcell.io import manifest_from_records, read_table
    from subcell.io.ngff_labels import image_of_label

    folder = Path(outdir).resolve()
    table = read_table(folder / TABLE, what="batch table")
    carried, segmented = _carried(_source_manifest(folder))
    if read_batch_state(folder).get("command") != "segment":
        segmented = {}  # (other commands' labels, e.g. labelfree-nuclei's, need not be on their source's grid)
    records: list[dict[str, Any]] = []
    for item_id, status, output in zip(table["id"], table["status"], table["output"], strict=True):
        if status in ("done", "skipped") and Path(output).exists():
            row = {**carried.get(str(item_id), {}), "id": str(item_id), "source": str(output)}
            image = image_of_label(output)  # a label written into the image it segments: measured in it
            if image is not None and "intensity" not in row:
                row["intensity"] = str(image)
            elif "intensity" not in row and str(item_id) in segmented:  # the image segmented, on the labels' grid
                row.update(segmented[str(item_id)])
            records.append(row)
    left_out = len(table) - len(records)
    if not records:
        raise ManifestError(folder / TABLE, [f"no finished outputs to read ({left_out} items failed or are gone)"])
    columns = {c: None for r in records for c in r}  # every row has every column (mask columns are found by name)
    rows = [{**columns, **r} for r in records]
    return manifest_from_records(rows, folder / TABLE, check_files=False, require_files=False), left_out


def _source_manifest(folder: Path) -> Path | None:
    value = read_batch_state(folder).get("manifest")
    return Path(value) if value and Path(value).exists() else None


def _carried(manifest: Path | None) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """id -> the columns of the manifest a batch ran on that stay true of its outputs; id -> the row's image as the
    ``intensity`` (and ``intensity_scene``) columns of its labels."""
    from subcell.io import read_manifest

    if manifest is None:
        return {}, {}
    rows = batch_manifest(manifest)[0] if is_batch_folder(manifest) else read_manifest(manifest, check_files=False,
                                                                                     require_files=False)  # fmt: skip
    base = manifest.resolve().parent
    out: dict[str, dict[str, Any]] = {}
    images: dict[str, dict[str, str]] = {}
    for row in rows:
        images[row_id(row)] = {"intensity": str(Path(row.source).resolve()),
                               **({"intensity_scene": str(row.scene)} if row.scene is not None else {}),
                               # a plain TIFF read with the row's axes (`measure --axes` reaches plain TIFFs only)
                               **({"axes": row.axes} if row.axes is not None else {})}  # fmt: skip
        # other columns hold paths relative to the old manifest (intensity, labels, ...): a value naming a file
        # there is made absolute, so it still names it from the next manifest's folder
        meta = {k: str(base / v) if isinstance(v, str) and not Path(v).is_absolute() and (base / v).exists() else v
                for k, v in row.metadata.items()}  # fmt: skip
        record = {"target": row.target, "target_channel": row.target_channel, "split": row.split,
                  "structure": row.structure, **row.masks, **meta}  # fmt: skip
        kept = {k: str(v) if isinstance(v, Path) else v for k, v in record.items() if v is not None}
        out[row_id(row)] = {k: v for k, v in kept.items() if k not in _NOT_CARRIED}
    return out, images
