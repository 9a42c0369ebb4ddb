"""Reading and writing microscopy images and dataset manifests. The only layer that opens files."""

from __future__ import annotations

from subcell.io._cast import as_labels
from subcell.io.cell_store import CellStore, CellStoreWriter, read_cell_store
from subcell.io.files import parquet_rows, read_table, read_yaml, store_table, write_bundle, write_table
from subcell.io.info import describe
from subcell.io.manifest import Manifest, ManifestRow, manifest_from_records, read_manifest
from subcell.io.manifest_make import make_manifest
from subcell.io.ome_zarr_writer import OmeZarrWriter
from subcell.io.reader import detect_format, is_label_image, label_names, pyramid_levels, read, read_labels
from subcell.io.writer import output_format, write, write_frames

__all__ = [
    "CellStore",
    "CellStoreWriter",
    "Manifest",
    "ManifestRow",
    "OmeZarrWriter",
    "as_labels",
    "describe",
    "detect_format",
    "is_label_image",
    "label_names",
    "make_manifest",
    "manifest_from_records",
    "output_format",
    "parquet_rows",
    "pyramid_levels",
    "read",
    "read_cell_store",
    "read_labels",
    "read_manifest",
    "read_table",
    "read_yaml",
    "store_table",
    "write",
    "write_bundle",
    "write_frames",
    "write_table",
]
