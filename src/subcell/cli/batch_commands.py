"""What ``subcell batch`` can run: each command's path in the CLI, how a manifest row becomes its arguments, its
default output, the tables gathered over the collection and its memory estimate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subcell.cli.options import Reading

__all__ = [
    "ALIASES",
    "COMMANDS",
    "RUN_COLUMNS",
    "TORCH_BASE",
    "WORKER_BASE",
    "Gathered",
    "Spec",
    "row_cells",
    "row_cells_required",
    "row_reading",
]


@dataclass(frozen=True)
class Gathered:
    """A table of each item's output, copied with the item's ``id`` and ``source`` into ``OUTDIR/<folder>/<id>.parquet``
    (one Parquet dataset over the collection)."""

    folder: str
    table: str = ""  # the file inside the item's output folder; "" = the output is the table
    voxel_size: bool = False  # also the input's voxel size (voxel_size_z/y/x)
    optional: bool = False  # an output may lack it (e.g. no per-track table for point truth): nothing gathered then


@dataclass(frozen=True)
class Spec:
    """How a manifest row becomes the arguments of one command."""

    path: tuple[str, ...]  # the command in the CLI tree, e.g. ("labelfree", "predict")
    suffix: str  # default output suffix
    memory_factor: float  # item memory above the worker's base / uncompressed input bytes (benchmarks/batch)
    row_args: Callable[[Any, Path], tuple[list[str], list[str], list[Path]]]  # -> (positional inputs, options, inputs)
    gathered: tuple[Gathered, ...] = ()  # tables of each item gathered into one Parquet dataset per name
    sized_by: Callable[[Any], Path] | None = None  # the array whose size the memory estimate scales (default: source)
    output_option: str | None = None  # the output is this option's value (not the argument after the inputs)
    one_file_options: tuple[str, ...] = ()  # options naming one extra output file: every item would write it
    row_options: tuple[tuple[str, str], ...] = ()  # (option, column): each row gives its own (one for all refused)
    # the command holds one timepoint of an OME-Zarr input at a time: its estimate scales one frame's bytes
    per_frame: bool = False
    # the row's arguments when the model the options name takes the cell outlines as a second input (--cells)
    cells_args: Callable[[Any, Path], tuple[list[str], list[str], list[Path]]] | None = None
    labels_output: bool = False  # its output is a label image: `batch --into-labels NAME` can put it in the source


# the free manifest columns that tell a command how to run a row (its other inputs, the label image or channel
# inside them); every other free column describes the row (a plate's well, a condition, a state) and is added to
# the row's gathered tables
RUN_COLUMNS = frozenset({"drift", "exclude", "flatfield", "intensity", "intensity_channel", "intensity_scene", "label", "labels", "noise_control",
                         "nuclei", "second_acquisition", "tracks", "truth", "truth_label"})  # fmt: skip


def row_reading(row: Any, given: Reading | None = None) -> Reading:
    """How a manifest row's source is read: its voxel size, scene, axes and time interval columns, each in turn
    the command's own option (``given``) where the row leaves it empty."""
    given = given or Reading()
    return Reading(
        voxel_size=row.voxel_size.as_tuple() if row.voxel_size is not None else given.voxel_size,
        axes=row.axes or given.axes,
        force=given.force,
        scene=row.scene if row.scene is not None else given.scene,
        time_interval=row.time_interval or given.time_interval,
        channel=row.source_channel or given.channel,
    )


def _vs(row: Any, *, scene: bool = False, time: bool = False) -> list[str]:
    """The reader options of a row's source: ``--voxel-size`` and ``--axes`` (every command takes them), and
    ``--scene`` / ``--time-interval`` where ``scene`` / ``time``. A row's scene for a command that cannot take it is
    refused, never dropped (every row would read the file's first scene)."""
    r = row_reading(row)
    opts = ["--voxel-size", *map(str, r.voxel_size)] if r.voxel_size is not None else []
    if r.axes is not None:
        opts += ["--axes", r.axes]
    if r.scene is not None:
        if not scene:
            raise ValueError(f"column 'scene': value {r.scene!r}: this command reads a file's first scene only; "
                             "convert each scene first (`subcell batch convert` takes the column)")  # fmt: skip
        opts += ["--scene", r.scene]
    if time and r.time_interval is not None:
        opts += ["--time-interval", f"{r.time_interval:g}"]
    return opts


def _meta_path(row: Any, column: str, base: Path) -> Path | None:
    value = row.metadata.get(column)
    if value is None:
        return None
    p = Path(str(value))
    return p if p.is_absolute() else (base / p).resolve()


def _convert(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    return [str(row.source)], _vs(row, scene=True, time=True), [row.source]


def _channel(row: Any, option: str = "--input-channel") -> list[str]:
    """The row's ``source_channel`` as the command's option naming it (``--input-channel`` of labelfree predict |
    nuclei, ``--channel`` of segment)."""
    return [option, row.source_channel] if row.source_channel else []


def _segment(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    opts = _vs(row, scene=True, time=True) + _channel(row, "--channel")
    return [str(row.source)], opts, [row.source]


def _measure(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    labels = _meta_path(row, "labels", base)
    if labels is not None and _meta_path(row, "intensity", base) is None:  # an image and its labels beside it (as
        # `manifest make --companion labels=SUFFIX` pairs them): the labels measured, in the image's intensities
        measured, opts, inputs = labels, [*_vs(row), "--intensity", str(row.source)], [labels, row.source]
    else:
        measured, opts, inputs = row.source, _vs(row), [row.source]
        if (intensity := _meta_path(row, "intensity", base)) is not None:
            opts += ["--intensity", str(intensity), *_intensity_scene(row, "--intensity-scene")]
            inputs.append(intensity)
    # e.g. the nuclei: cells measured as their cytoplasm (exclude), or with their nucleus and cytoplasm (nuclei)
    for column in ("exclude", "nuclei"):
        if (path := _meta_path(row, column, base)) is not None:
            opts += [f"--{column}", str(path)]
            inputs.append(path)
    return [str(measured)], opts, inputs


def _intensity_scene(row: Any, option: str) -> list[str]:
    """The row's ``intensity_scene`` (the scene of its intensity image in a multi-scene file) as ``option``."""
    scene = row.metadata.get("intensity_scene")
    return [option, str(scene).removesuffix(".0")] if scene is not None else []


def _predict(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    return [str(row.source)], _vs(row, scene=True, time=True) + _channel(row), [row.source]


def row_cells(row: Any, base: Path) -> Path | None:
    """The field's cell labels: column ``mask_cell``, or ``labels`` (relative to the manifest's folder ``base``)."""
    return row.masks.get("mask_cell") or _meta_path(row, "labels", base)


def row_cells_required(row: Any, base: Path, why: str) -> Path:
    """:func:`row_cells`, which the command cannot do without (``why``): a ``ValueError`` naming the column."""
    cells = row_cells(row, base)
    if cells is None:
        raise ValueError(f"column 'mask_cell' (or 'labels'): expected the path of the field's cell labels ({why})")
    return cells


def _predict_in_cells(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    cells = row_cells_required(row, base, "the model takes the cell outlines as a second input")
    opts = [*_vs(row, scene=True, time=True), *_channel(row), "--cells", str(cells)]
    return [str(row.source)], opts, [row.source, cells]


def _target(row: Any, base: Path, expected: str) -> Path:
    """Column ``target`` (or ``truth``): what the row's ``source`` is scored against."""
    target = row.target or _meta_path(row, "truth", base)
    if target is None:
        raise ValueError(f"column 'target' (or 'truth'): expected the path of {expected}")
    return Path(target)


def _nuclei(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    cells = row_cells_required(row, base, "the nuclei are found one per cell")
    return [str(row.source), str(cells)], _vs(row, scene=True, time=True) + _channel(row), [row.source, cells]


def _extract(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    labels = _meta_path(row, "labels", base) or row.masks.get("mask") or row.masks.get("mask_cell")
    if labels is None:
        raise ValueError("column 'labels' (or 'mask'): expected the path of the field's cell/nucleus labels")
    opts, inputs = _vs(row, scene=True), [row.source, labels]
    if (nuclei := _meta_path(row, "nuclei", base) or row.masks.get("mask_nucleus")) is not None:
        opts += ["--nuclei", str(nuclei)]
        inputs.append(nuclei)
    if row.structure:
        opts += ["--structure", row.structure]
    if row.metadata.get("state") is not None:
        opts += ["--state", str(row.metadata["state"])]
    return [str(row.source), str(labels)], opts, inputs


def _evaluate_seg(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    truth = _target(row, base, "the ground-truth labels")
    return [str(row.source), str(truth)], _vs(row), [row.source, truth]


def _labelfree_evaluate(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    target = _target(row, base, "the measured target (a mask: --mask-target)")
    opts, inputs = _vs(row), [row.source, target]
    optional = (("--cells", row_cells(row, base)),
                ("--noise-control", _meta_path(row, "noise_control", base)),
                ("--second-acquisition", _meta_path(row, "second_acquisition", base)))  # fmt: skip
    for option, path in optional:
        if path is not None:
            opts += [option, str(path)]
            inputs.append(path)
    return [str(row.source), str(target)], opts, inputs


def _evaluate_tracks(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    truth = _target(row, base, "the true tracks (CTC folder, tracks folder, geff, TrackMate XML or point table)")
    opts = _vs(row)
    if row.metadata.get("truth_label") is not None:  # the NGFF label image of a truth OME-Zarr
        opts += ["--truth-label", str(row.metadata["truth_label"])]
    return [str(row.source), str(truth)], opts, [row.source, truth]


def _tracked_labels(row: Any) -> Path:
    """The label image of the predicted tracks (what evaluating them reads a frame at a time): a tracks folder's, a
    geff's related one, else the source itself (a CTC result folder of numbered masks); for point tracks (a
    TrackMate XML, a geff without labels) the target's, the masks they are scored against."""
    from subcell.io.geff import is_geff, related_labels
    from subcell.track.points import are_point_tracks

    source = Path(row.source)
    if are_point_tracks(source) and row.target is not None:
        source = Path(row.target)
    labels = related_labels(source) if is_geff(source) else source / "labels.ome.zarr"
    return labels if labels is not None and labels.exists() else source


def _state_predict(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    opts, inputs = [], [row.source]
    if (tracks := _meta_path(row, "tracks", base)) is not None:  # the movie's tracks: states smoothed along them
        opts += ["--tracks", str(tracks)]
        inputs.append(tracks)
    return [str(row.source)], opts, inputs


def _track_labels(row: Any) -> Path:
    label = row.metadata.get("label")
    return row.source / "labels" / str(label) if label is not None else row.source


def _track(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    opts, inputs = _vs(row, time=True), [row.source]
    if row.metadata.get("label") is not None:  # the NGFF label image inside an OME-Zarr source
        opts += ["--label", str(row.metadata["label"])]
    if (intensity := _meta_path(row, "intensity", base)) is not None:
        opts += ["--image", str(intensity), *_intensity_scene(row, "--image-scene")]
        inputs.append(intensity)
        if row.metadata.get("intensity_channel") is not None:
            opts += ["--channel", str(row.metadata["intensity_channel"])]
    if str(row.metadata.get("drift")).strip() == "auto":  # the movie's drift: measured here, or its own table
        opts += ["--drift", "auto"]
    elif (drift := _meta_path(row, "drift", base)) is not None:
        opts += ["--drift", str(drift)]
        inputs.append(drift)
    return [str(row.source)], opts, inputs


def _drift(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    opts, inputs = _vs(row, scene=True, time=True) + _channel(row, "--channel"), [row.source]
    if (table := _meta_path(row, "drift", base)) is not None:  # the movie's drift, measured before: applied
        opts += ["--apply", str(table)]
        inputs.append(table)
    return [str(row.source)], opts, inputs


def _flatfield_apply(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    flat = _meta_path(row, "flatfield", base)
    if flat is None:
        raise ValueError(
            "column 'flatfield': the flat-field to take out (from `subcell flatfield estimate`) is missing"
        )
    return [str(row.source), str(flat)], _vs(row, scene=True, time=True), [row.source, flat]


def _bleach(row: Any, base: Path) -> tuple[list[str], list[str], list[Path]]:
    return [str(row.source)], _vs(row, scene=True, time=True) + _channel(row, "--channel"), [row.source]


_CELLS = ("cells", "mask_cell, or labels")
_TRACK_TABLES = (Gathered("tracks", "tracks.parquet"), Gathered("lineage", "lineage.parquet"))

COMMANDS: dict[str, Spec] = {
    "convert": Spec(("convert",), ".ome.zarr", 1.0, _convert),  # streams chunk by chunk
    # 1.9 (nucleus) … 6.2 (mitochondria) a whole field; a time-lapse is segmented and written a frame at a time (to
    # OME-Zarr, the default output, and to OME-TIFF)
    "segment": Spec(("segment",), ".ome.zarr", 4.0, _segment, per_frame=True, labels_output=True),
    # a frame of labels, intensity and structures at a time (benchmarks/segment/timelapse_results.md)
    "measure": Spec(
        ("measure",), ".parquet", 4.0, _measure, gathered=(Gathered("measurements", voxel_size=True),), per_frame=True
    ),
    # + --memory-limit; a model conditioned on the cell outlines gets each row's cells, whose depth a frame of it
    # holds up to predict_input.DEPTH_HELD_BYTES (added), beyond it in a scratch array
    "labelfree-predict": Spec(
        ("labelfree", "predict"), ".ome.zarr", 2.0, _predict, row_options=(_CELLS,), cells_args=_predict_in_cells
    ),
    # as labelfree-predict: the cells become labels slab by slab and the nuclei are written cell by cell, both into
    # scratch stores; the prediction's tiles, then the cell cache, within --memory-limit (added)
    "labelfree-nuclei": Spec(("labelfree", "nuclei"), ".ome.zarr", 2.0, _nuclei, labels_output=True),
    # one timepoint of the image (whole up to 1 GB, else region by region) and of the labels at a time
    "cells-extract": Spec(("cells", "extract"), ".zarr", 4.0, _extract, per_frame=True),
    "synth": Spec(("synth",), ".ome.zarr", 0.0, lambda row, base: ([], [], [])),
    # the movie with its drift out + OUTDIR/<id>_drift.csv; two frames at a time: 1.14 GB peak for frames of
    # 48x1024x1024 uint16 (100 MB; `/usr/bin/time -v subcell drift`), the estimate on frames binned to 16 M voxels
    "drift": Spec(("drift",), ".ome.zarr", 7.0, _drift, per_frame=True),
    # + OUTDIR/<id>_bleach.csv; a frame at a time (its mean and 1st percentile, then corrected as float32): 875 MB
    # peak for frames of 48x1024x1024 uint16 (100 MB; `/usr/bin/time -v subcell bleach`)
    "bleach": Spec(("bleach",), ".ome.zarr", 6.0, _bleach, per_frame=True),
    # a row's `flatfield` column (the same file for a whole acquisition) taken out; written as float32 from the
    # lazily read frames (a frame's input, its float32 copy and result: ~3× a uint16 frame; not measured)
    "flatfield-apply": Spec(("flatfield", "apply"), ".ome.zarr", 3.0, _flatfield_apply, per_frame=True),
    # a folder (labels.ome.zarr, tables, ctc/); the estimate scales the labels' size: an OME-Zarr, OME-TIFF or ImageJ
    # TIFF is tracked frame by frame (one frame's bytes); 4.5 was measured for a movie read whole (benchmarks/track)
    "track": Spec(("track",), ".tracks", 5.0, _track, gathered=_TRACK_TABLES, sized_by=_track_labels, per_frame=True),
    # the per-threshold table (tp, fp, fn, precision, recall, F1, AP) of each item; both label images are read a
    # block of chunks (4 M voxels) at a time, a time-lapse frame by frame: 397-425 MB peak for 64x1024x1024 int32
    # labels, 417 MB for 64x2048x2048 (benchmarks/metrics/matching_results.md), the interpreter and one block's
    # ~160 MB of temporaries; 0.6 of the smaller frame's 268 MB covers those, a larger frame is over-estimated
    "evaluate-seg": Spec(
        ("evaluate-seg",),
        ".parquet",
        0.6,
        _evaluate_seg,
        gathered=(Gathered("scores"),),
        output_option="--out",
        one_file_options=("objects",),
        per_frame=True,
    ),
    # one metrics row per structure; frames read one at a time, kept up to 512 MB, else slab by slab (1.3 GB peak for
    # 64x1536x1536 with cells, benchmarks/labelfree/bench_evaluate_memory.py): the estimate scales the prediction's
    # size by its worst measured ratio, a kept 64x512x512 frame with two target channels and cells (~700 MB over 67 MB)
    "labelfree-evaluate": Spec(
        ("labelfree", "evaluate"),
        ".parquet",
        11.0,
        _labelfree_evaluate,
        gathered=(Gathered("metrics"),),
        output_option="--out",
        one_file_options=("figure",),
        row_options=(_CELLS, ("noise_control", "noise_control"), ("second_acquisition", "second_acquisition")),
    ),
    # a folder per item (metrics.json, per_track.csv); the matching reads a frame of both movies at a time: 846 MB
    # peak for 4 frames of 48x768x768 uint32 track labels against their truth, 3.5 of a frame's 113 MB above the
    # worker's base (`/usr/bin/time -v subcell evaluate-tracks`; a CHO movie of 4.5 MB frames: 420 MB, the base)
    "evaluate-tracks": Spec(
        ("evaluate-tracks",),
        ".scores",
        3.5,
        _evaluate_tracks,
        gathered=(Gathered("tracking_scores", "metrics.json"), Gathered("per_track", "per_track.csv", optional=True)),
        sized_by=_tracked_labels,
        output_option="--output",
        per_frame=True,
    ),
    # a cell store states no array size in a header: no memory estimate (the cells are read one table at a time)
    "state-predict": Spec(
        ("state", "predict"),
        ".parquet",
        0.0,
        _state_predict,
        gathered=(Gathered("states"),),
        one_file_options=("transitions",),
    ),
}
# A worker's resident memory with a command's libraries loaded and an item done (measured 300-450 MB; with torch
# 600-650 MB): every estimate starts from it, since the workers' memory limits are limits of the whole process.
WORKER_BASE = 450 << 20
TORCH_BASE = 250 << 20
ALIASES = {"predict": "labelfree-predict", "nuclei": "labelfree-nuclei", "extract": "cells-extract"}
