"""Open subcell outputs in napari with one drag-and-drop.

- OME-Zarr image (``subcell synth``, ``convert``, ``labelfree predict``, ``segment``): every channel as an Image
  layer at its physical scale (µm), lazily, with all pyramid levels (napari shows the level the view needs),
  named by channel, with contrast limits from the coarsest level; its NGFF labels as Labels layers at the same
  scale; a table in its ``tables/`` keyed by label id becomes the Labels layer's features. An integer image (a
  segmentation written as an image) opens as Labels.
- OME-TIFF / TIFF: the same through :func:`subcell.io.read`; every scene of a multi-series file, named after it.
- A ``subcell track`` output folder (or its ``tracks.parquet``): a Tracks layer (µm, with the division graph)
  and its track-consistent labels.
- A track graph: a geff group (``tracks.geff`` of ``subcell track``, or another tool's) or a TrackMate XML file:
  a Tracks layer with the division graph, and the label image a geff names; positions in µm where the file states
  a unit, else in pixels.
- A cell store (``cells.zarr``): the crops as one stack browsable along a ``cell`` axis, table as features.
- An OME-Zarr HCS plate: the whole plate as one mosaic per channel (wells in their rows and columns, a well's
  fields side by side), lazily and at every pyramid level the fields share, so the plate is browsed like one image;
  the layer's metadata says where each field lies. The same for an OME-TIFF whose OME-XML states a plate (an HCS
  export; its fields are scenes, one level each) and a bioformats2raw store whose OME-XML places its series in
  wells; any other bioformats2raw layout: its series as the scenes of a file.

Layer data are ``(data, kwargs, layer_type)`` tuples, napari's reader contract, so this module never imports
napari itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["get_reader", "image_layers", "read_layers"]

LayerData = tuple[Any, dict[str, Any], str]


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """napari's reader hook: a reader when ``path`` is something subcell wrote, else None (napari asks others)."""
    if isinstance(path, list):
        return None if not path or any(_kind(Path(p)) is None for p in path) else _read_all
    return _read_all if _kind(Path(path)) is not None else None


def _read_all(path: str | list[str]) -> list[LayerData]:
    paths = path if isinstance(path, list) else [path]
    return [layer for p in paths for layer in read_layers(p)]


def _kind(p: Path) -> str | None:
    if p.is_dir() and (p / "tracks.parquet").is_file():
        return "tracks"
    if p.is_file() and p.name == "tracks.parquet":
        return "tracks"
    if p.is_dir() and (p / "zarr.json").is_file() and (p / "cells.parquet").is_file():
        return "cells"
    from subcell.io.geff import is_geff, is_trackmate_xml

    if is_geff(p) or is_trackmate_xml(p):
        return "graph"
    from subcell.errors import SubcellError
    from subcell.io._ngff import ngff_kind
    from subcell.io.collection import collection_of, is_one_plate

    kind = ngff_kind(p)
    if kind == "plate":
        return "plate"
    is_tiff = p.is_file() and p.suffix.lower() in (".tif", ".tiff")
    if kind == "series" or is_tiff:  # a plate too when every image is in a well (--no-hcs; an HCS OME-TIFF export)
        try:
            one_plate = is_one_plate(collection_of(p))
        except SubcellError:
            one_plate = False  # (an unreadable plate: shown as the file's scenes; their reader says what is wrong)
        return "plate" if one_plate else "scenes" if kind == "series" else "tiff"
    if p.is_dir() and any((p / m).is_file() for m in ("zarr.json", ".zattrs")):
        return "ome-zarr"
    return None


def read_layers(path: str | Path) -> list[LayerData]:
    """The layers of one subcell output (see the module docstring)."""
    p = Path(path)
    kind = _kind(p)
    if kind == "tracks":
        return _tracks_layers(p if p.is_dir() else p.parent)
    if kind == "cells":
        return _cell_store_layers(p)
    if kind == "graph":
        return _graph_layers(p)
    if kind == "plate":
        return _plate_layers(p)
    if kind in ("tiff", "scenes"):
        return _scene_layers(p)
    if kind == "ome-zarr":
        return _image_layers(p)
    from subcell.errors import InputFileError

    raise InputFileError("not an output subcell can open (OME-Zarr, OME-TIFF, tracks, cell store)", path=p)


# Contrast limits are percentiles of a sample: at most this many voxels of one timepoint are read, so opening an
# image without a pyramid (one level, possibly tens of GB) does not read a whole volume to set two numbers.
_LIMITS_SAMPLE = 2**22


def _limits(level: Any, c: int) -> tuple[float, float]:
    """Contrast limits of channel ``c``: percentiles of the middle timepoint of ``level`` (the coarsest level),
    read on a sub-grid of at most ``_LIMITS_SAMPLE`` voxels (evenly spaced planes, strided rows and columns)."""
    t = level.shape[0] // 2
    vol = level[t, c]  # (Z, Y, X), lazy for dask / zarr
    nz, ny, nx = vol.shape
    planes = nz if nz * ny * nx <= _LIMITS_SAMPLE else min(nz, 8)
    step = max(1, int(np.ceil(np.sqrt(ny * nx * planes / _LIMITS_SAMPLE))))
    zs = np.unique(np.linspace(0, nz - 1, planes).round().astype(int))
    sample = np.stack([np.asarray(vol[int(z), ::step, ::step]) for z in zs])
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.8]))
    return lo, hi if hi > lo else lo + 1.0


def _scene_layers(p: Path) -> list[LayerData]:
    """Every scene of a multi-scene file (a multi-series OME-TIFF, a microscope file bioio reads) or series of a
    bioformats2raw store (each from its own group: its pyramid, its labels), each named after it, the first one
    shown; a one-scene file as :func:`_image_layers`."""
    from subcell import io
    from subcell.io._ngff import collection_images

    if p.is_dir():
        series = collection_images(p)
        return [layer for i, im in enumerate(series)
                for layer in _image_layers(p / im.path, prefix=f"{im.name} ", shown=i == 0)]  # fmt: skip
    scenes = io.describe(p)["scenes"]
    if len(scenes) <= 1:
        return _image_layers(p)
    return [layer for i, name in enumerate(scenes) for layer in _image_layers(p, scene=i, prefix=f"{name} ",
                                                                             shown=i == 0)]  # fmt: skip


def _image_layers(p: Path, *, scene: int | None = None, prefix: str = "", shown: bool = True) -> list[LayerData]:
    from subcell import io

    image = io.read(p, scene=scene)
    levels = io.pyramid_levels(p) if p.is_dir() else None
    levels = levels if levels and tuple(levels[0].shape) == tuple(image.shape) else [image.data]
    scale = (1.0, *image.voxel_size.as_tuple())  # T (frames), Z, Y, X in µm
    meta_common = {"scale": scale, "units": ("", "µm", "µm", "µm"), "axis_labels": ("t", "z", "y", "x")}
    layers: list[LayerData] = []
    if image.shape[1] == 1 and (io.is_label_image(p) or image.dtype in (np.int32, np.uint32, np.int64, np.uint64)):
        data = [lv[:, 0] for lv in levels]
        layers.append((data if len(data) > 1 else data[0],
                       {**meta_common, "name": f"{prefix}{p.name.split('.')[0]}", "multiscale": len(data) > 1,
                        "visible": shown}, "labels"))  # fmt: skip
    else:
        data = levels if len(levels) > 1 else levels[0]
        layers.append((
            data,
            {**meta_common, "channel_axis": 1, "name": [prefix + c for c in image.channel_names],
             "contrast_limits": [_limits(levels[-1], c) for c in range(image.shape[1])],
             "multiscale": len(levels) > 1, "blending": "additive",
             "visible": [shown and c == 0 for c in range(image.shape[1])]},
            "image",
        ))  # fmt: skip
    if p.is_dir():
        tables = _tables(p / "tables")
        for name in io.label_names(p):
            lab_levels = io.pyramid_levels(p, name) or [io.read_labels(p, name).data]
            data = [lv[:, 0] if lv.ndim == 5 else lv for lv in lab_levels]
            layer_name = f"{name} labels" if name in image.channel_names else name  # napari would append " [1]"
            kw = {
                **meta_common,
                "name": layer_name,
                "multiscale": len(data) > 1,
                "visible": name in ("nucleus", "cell"),
            }
            features = _features(tables, name)
            if features is not None:
                kw["features"] = features
            layers.append((data if len(data) > 1 else data[0], kw, "labels"))
    return layers


def image_layers(image: Any, labels: dict[str, np.ndarray] | None = None, *, prefix: str = "") -> list[LayerData]:
    """Layers of an in-memory :class:`~subcell.image.Image` (and ``(T, Z, Y, X)`` label arrays) at physical scale,
    as the widgets add them."""
    scale = (1.0, *image.voxel_size.as_tuple())
    common = {"scale": scale, "units": ("", "µm", "µm", "µm"), "axis_labels": ("t", "z", "y", "x")}
    data = image.numpy()
    layers: list[LayerData] = [(
        data, {**common, "channel_axis": 1, "name": [prefix + c for c in image.channel_names],
               "contrast_limits": [_limits(data, c) for c in range(data.shape[1])], "blending": "additive",
               "visible": [c == 0 for c in range(data.shape[1])]}, "image",
    )]  # fmt: skip
    for name, lab in (labels or {}).items():
        layers.append((np.asarray(lab), {**common, "name": prefix + name}, "labels"))
    return layers


def _tables(folder: Path) -> dict[str, Any]:
    from subcell.io import read_table

    return {t.stem: read_table(t) for t in sorted(folder.glob("*.parquet"))} if folder.is_dir() else {}


def _features(tables: dict[str, Any], label_name: str) -> Any:
    """The table rows of a labels layer, one per label value (napari's ``index`` column), or None."""
    keys = [f"{label_name}_id", "label", "label_id", "object_id"]
    if label_name in ("cell", "cells", "nucleus", "nuclei"):
        keys.append("cell_id")  # the synthetic truth numbers cells and their nuclei alike
    for table in tables.values():
        key = next((k for k in keys if k in table.columns), None)
        if key is None:
            continue
        if "frame" in table.columns:  # a time-lapse table: the first frame's rows describe the labels' ids
            table = table[table["frame"] == table["frame"].min()]
        if table[key].duplicated().any():
            continue
        return table.rename(columns={key: "index"}).reset_index(drop=True)
    return None


def _tracks_layers(folder: Path) -> list[LayerData]:
    from subcell import io
    from subcell.track.tracks import napari_tracks

    table = io.read_table(folder / "tracks.parquet")
    data, graph = napari_tracks(table)
    features = table.sort_values(["track_id", "t"]).reset_index(drop=True)
    layers: list[LayerData] = [
        (data, {"name": f"{folder.name} tracks", "graph": graph, "features": features, "tail_length": 10,
                "units": ("", "µm", "µm", "µm"), "axis_labels": ("t", "z", "y", "x")}, "tracks"),
    ]  # fmt: skip
    labels = folder / "labels.ome.zarr"
    if labels.is_dir():
        layers = _image_layers(labels) + layers
    return layers


def _graph_layers(p: Path) -> list[LayerData]:
    """A geff group or TrackMate XML file: its tracklets as a Tracks layer (divisions in the graph), and the label
    image a geff names, where it exists."""
    from subcell.io.geff import related_labels
    from subcell.track.graph import read_track_graph
    from subcell.track.tracks import napari_tracks

    points = read_track_graph(p, voxel_size=(1.0, 1.0, 1.0))  # a file without units stays in pixels
    data, graph = napari_tracks(points)
    features = points.sort_values(["track_id", "t"]).reset_index(drop=True)
    layers: list[LayerData] = [
        (data, {"name": f"{p.name} tracks", "graph": graph, "features": features, "tail_length": 10,
                "axis_labels": ("t", "z", "y", "x")}, "tracks"),
    ]  # fmt: skip
    labels = related_labels(p)
    if labels is not None and labels.exists():
        layers = _image_layers(labels) + layers
    return layers


def _cell_store_layers(p: Path) -> list[LayerData]:
    """Crops as one (cell, C, Z, Y, X) stack: a slider walks through the cells; the table rows are features."""
    import dask.array as da

    from subcell.io import read_cell_store

    store = read_cell_store(p)
    crops = da.from_zarr(store.crops)
    s = store.voxel_um
    rows = store.extracted
    md: dict[str, Any] = {"table": rows, "source": str(p)}  # row i describes cell i along the slider
    return [(
        crops,
        {"channel_axis": 1, "name": [f"cells {c}" for c in store.channel_names], "scale": (1.0, s, s, s),
         "units": ("", "µm", "µm", "µm"), "axis_labels": ("cell", "z", "y", "x"), "metadata": md,
         "contrast_limits": [_limits(crops[: min(16, crops.shape[0])], c) for c in range(crops.shape[1])]},
        "image",
    )]  # fmt: skip


PLATE_GAP = 1 / 8  # blank between wells, as a fraction of a field's width


def _plate_layers(p: Path) -> list[LayerData]:
    """An HCS plate (OME-Zarr, or an OME-TIFF whose OME-XML is one) as one mosaic per channel: a well's fields side by side (a near-square grid of them), wells at
    their row and column with a blank gap between, empty wells blank. One mosaic per pyramid level all fields have
    (napari reads the level a zoom needs, and of it only the fields in view); fields of another size are padded to
    the largest. Voxel size and channels are the first field's. Each NGFF label the fields hold (``subcell batch
    segment --into-labels``) is a Labels mosaic on the same layout, blank where a field lacks it."""
    import math

    from subcell import io
    from subcell.io.collection import collection_of, image_source
    from subcell.report.plate import plate_grid

    images = collection_of(p)
    sources = [image_source(p, im) for im in images]  # (a store's group, no scene) or (the file, its scene)
    first = io.read(sources[0][0], scene=sources[0][1])
    # a field stored in other axes than (T, C, Z, Y, X) (another tool's czyx, zyx), or a file's scene, is shown at
    # its full resolution, as the reader gives it
    pyramids = [levels if scene is None and (levels := io.pyramid_levels(f)) and levels[0].ndim == 5
                else [io.read(f, scene=scene).data] for f, scene in sources]  # fmt: skip
    fields = [f for f, scene in sources if scene is None]  # (the fields that are groups of a store hold labels)
    label_names = list(dict.fromkeys(name for f in fields for name in io.label_names(f)))
    labels = {name: [_label_pyramid(f, name) if scene is None and name in io.label_names(f) else None
                     for f, scene in sources] for name in label_names}  # fmt: skip
    n_levels = min(len(v) for v in [*pyramids, *(lv for pyr in labels.values() for lv in pyr if lv is not None)])
    wells: dict[str, list[int]] = {}
    for i, im in enumerate(images):
        wells.setdefault(im.columns["well"], []).append(i)
    cells_of = {(images[v[0]].columns["row"], images[v[0]].columns["column"]): v for v in wells.values()}
    rows, columns, _ = plate_grid({"row": [r for r, _ in cells_of], "column": [c for _, c in cells_of],
                                   "n": [0] * len(cells_of)}, "n")  # fmt: skip
    per_well = max(len(v) for v in wells.values())
    across = math.ceil(math.sqrt(per_well))
    layout = _PlateLayout(rows, columns, cells_of, across, math.ceil(per_well / across))
    dims = [tuple(max(int(levels[k].shape[a]) for levels in pyramids) for a in (2, 3, 4)) for k in range(n_levels)]
    mosaics = [layout.mosaic([levels[k] for levels in pyramids], dims[k]) for k in range(n_levels)]
    origins = {images[i].name: yx for i, yx in layout.origins(dims[0]).items()}
    scale = (1.0, *first.voxel_size.as_tuple())
    common = {"scale": scale, "units": ("", "µm", "µm", "µm"), "axis_labels": ("t", "z", "y", "x"),
              "multiscale": n_levels > 1, "metadata": {"source": str(p), "field_origin_px": origins}}  # fmt: skip
    layers: list[LayerData] = [(
        mosaics if n_levels > 1 else mosaics[0],
        {**common, "channel_axis": 1, "name": [f"{p.name.split('.')[0]} {c}" for c in first.channel_names],
         "contrast_limits": [_limits(pyramids[0][-1], c) for c in range(first.shape[1])], "blending": "additive",
         "visible": [c == 0 for c in range(first.shape[1])]},
        "image",
    )]  # fmt: skip
    for name, per_field in labels.items():
        levels = [layout.mosaic([lv[k] if lv is not None else None for lv in per_field], dims[k])[:, 0]
                  for k in range(n_levels)]  # fmt: skip
        layers.append((levels if n_levels > 1 else levels[0], {**common, "name": name}, "labels"))
    # each well's name at its first field's corner: a 2D layer, shown on every plane and frame
    corners = {images[v[0]].columns["well"]: origins[images[v[0]].name] for v in wells.values()}
    layers.append((
        np.asarray(list(corners.values()), dtype=float).reshape(-1, 2),
        {"name": "wells", "scale": scale[-2:], "units": ("µm", "µm"), "features": {"well": list(corners)},
         "text": {"string": "{well}", "size": 10, "color": "yellow", "anchor": "upper_left"}, "size": 1,
         "face_color": "transparent", "border_width": 0, "metadata": {"source": str(p)}},
        "points",
    ))  # fmt: skip
    return layers


def _label_pyramid(field: Path, name: str) -> list[Any]:
    """The levels of a field's NGFF label as (T, C, Z, Y, X) arrays (stored in other axes: its full level only)."""
    from subcell import io

    levels = io.pyramid_levels(field, name)
    return levels if levels and levels[0].ndim == 5 else [io.read_labels(field, name).data]


class _PlateLayout:
    """Where a plate's fields go in its mosaic: ``rows`` × ``columns`` wells (``cells_of``: (row, column) → field
    indices), a well's fields ``across`` × ``down``, a blank gap of :data:`PLATE_GAP` of a field after each well."""

    def __init__(self, rows: list[str], columns: list[str], cells_of: dict[tuple[str, str], list[int]], across: int,
                 down: int) -> None:  # fmt: skip
        self.rows, self.columns, self.cells_of, self.across, self.down = rows, columns, cells_of, across, down

    def origins(self, dims: tuple[int, ...]) -> dict[int, tuple[int, int]]:
        """Field index → (y, x) of its first pixel in a mosaic of fields ``dims`` = (Z, Y, X)."""
        _, h, w = dims
        gap = max(1, round(w * PLATE_GAP))
        out = {}
        for (r, col), members in self.cells_of.items():
            y0 = self.rows.index(r) * (self.down * h + gap)
            x0 = self.columns.index(col) * (self.across * w + gap)
            for k, i in enumerate(members):
                out[i] = (y0 + (k // self.across) * h, x0 + (k % self.across) * w)
        return out

    def mosaic(self, arrays: list[Any], dims: tuple[int, ...]) -> Any:
        """One ``(T, C, Z, Y, X)`` array of the fields' ``arrays`` (None: a blank field) at (Z, Y, X) ``dims`` each,
        lazily (a field padded only if it is smaller)."""
        import dask.array as da

        z, h, w = dims
        given = next(a for a in arrays if a is not None)
        t, c, dtype = int(given.shape[0]), int(given.shape[1]), given.dtype
        gap = max(1, round(w * PLATE_GAP))

        def blank(*yx: int) -> Any:
            return da.zeros((t, c, z, *yx), dtype=dtype, chunks=(1, 1, z, *yx))

        empty = blank(h, w)
        tiles = [empty if a is None else a if a.shape[2:] == (z, h, w) else  # padding costs a graph: only if needed
                 da.pad(a, [(0, 0), (0, 0), (0, z - a.shape[2]), (0, h - a.shape[3]), (0, w - a.shape[4])])
                 for a in arrays]  # fmt: skip
        gap_x, gap_y = blank(self.down * h, gap), blank(gap, len(self.columns) * (self.across * w + gap))
        plate_rows = []
        for r in self.rows:
            blocks = []
            for col in self.columns:
                members = self.cells_of.get((r, col), [])
                cells = [[tiles[members[k]] if (k := j * self.across + i) < len(members) else empty
                          for i in range(self.across)] for j in range(self.down)]  # fmt: skip
                blocks += [da.block(cells), gap_x]
            plate_rows += [da.concatenate(blocks, axis=4), gap_y]
        return da.concatenate(plate_rows, axis=3)
