"""Commands of dynamics: ``track`` (link a label time-lapse into tracks) and ``evaluate-tracks``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.options import (
    AxesOpt,
    ConfigOpt,
    ForceOpt,
    OverwriteOpt,
    SetOpt,
    TimeIntervalOpt,
    VoxelSizeOpt,
    axes_among,
    check_time_lapse,
    label_channel,
    one_channel,
    read_assuming,
    read_beside,
    read_input,
)

__all__ = ["evaluate_tracks", "load_tracks", "read_label_timelapse", "track"]

LabelOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--label", help="Name of the NGFF label image inside an OME-Zarr store (e.g. nucleus)."),
]


def read_label_timelapse(path: Path, *, label: str | None, voxel_size: Any, axes: str | None, force: bool,
                         time_interval: float | None = None, label_option: str | None = "--label") -> Any:  # fmt: skip
    """A label time-lapse as an :class:`Image` (T, 1, Z, Y, X), from an image file, an OME-Zarr store's NGFF label
    image, or a CTC folder; one-line errors for a missing T axis, several channels, or non-integer values. A given
    ``time_interval`` follows :func:`subcell.io.read`'s rule (used where the input states none). ``label_option``
    is the command's option naming the label image (None: the command has none, the label's path is asked for)."""
    from subcell.errors import InputFileError, MetadataError
    from subcell.image import Image
    from subcell.io import as_labels, label_names, read_labels
    from subcell.io._raw import resolve_time_interval
    from subcell.io.ctc import find_ctc, read_ctc

    if find_ctc(path) is not None:
        if voxel_size is None:  # CTC folders carry no voxel size, and costs are in µm: never invent one
            raise MetadataError("a CTC folder states no voxel size; give --voxel-size Z Y X (µm)", path=path,
                                field="voxel_size")  # fmt: skip
        masks, _ = read_ctc(path)
        img = Image(masks, voxel_size=voxel_size, dims="TZYX")
    else:
        names = label_names(path)
        if label is not None:
            if not names:
                raise InputFileError(f"--label {label}: the input has no NGFF label images", path=path, field="label")
            img = read_labels(path, label)
        else:
            img = read_input(path, voxel_size=voxel_size, axes=axes, force=force, time_interval=time_interval)
            if names:  # an image with label images inside: which to choose (before its other checks)
                label_channel(img, path, label_option=label_option)
    check_time_lapse(img, path)  # (before one channel: a movie read with T as C is told its --axes)
    label_channel(img, path)
    # (a CTC folder states no interval, a label image inside a store its own: the same rule as for files)
    img = img.with_metadata(time_interval=resolve_time_interval(img.time_interval, time_interval, path, force=force)[0])
    data = as_labels(img.data[:, 0], path=path, lazy=True)  # read lazily, it stays lazy: checked block by block
    return img.with_data(data[:, None], step="as_labels")


def track(
    labels: Annotated[Path, typer.Argument(help="Instance labels over time: OME-Zarr/OME-TIFF/TIFF or a CTC folder.")],
    output: Annotated[
        Path,
        typer.Argument(
            help="Output folder (labels.ome.zarr, tracks.parquet, tracks.geff, tracks.xml for TrackMate, ctc/, napari)."
        ),
    ],
    image: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--image", help="Intensity image (same T/Z/Y/X) for the intensity cost and mean intensities."),
    ] = None,
    channel: Annotated[
        Optional[str], typer.Option("--channel", "-c", help="Channel of --image (name or index).")  # noqa: UP045
    ] = None,
    image_scene: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--image-scene", help="Scene of --image in a multi-scene file (index or name)."),
    ] = None,
    label: LabelOpt = None,
    time_interval: TimeIntervalOpt = None,
    components: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--components/--no-components",
            help="Track each connected component as an object (default: in the frames that are masks, e.g. "
            "organelles or a thresholded channel: only 0 and 1, or 0 and 255); --no-components tracks a mask as one "
            "object.",
        ),
    ] = None,
    max_speed: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--max-speed-um-per-min", help="Fastest a cell moves (µm/min); default 1."),
    ] = None,
    max_gap: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--max-gap-frames", help="Frames an object may be missed (default 2)."),
    ] = None,
    divisions: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option("--divisions/--no-divisions", help="Link one parent to two daughters (default on)."),
    ] = None,
    drift: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--drift",
            metavar="TABLE|auto",
            help="Take out the stage's drift when linking and measuring "
            "motion: a table of `subcell drift` (measured on this movie), or auto: measured here on --image "
            "(its --channel), else on the labels' foreground.",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    force_voxel_size: ForceOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Link a label time-lapse into tracks with divisions and gap closing (costs in µm and minutes)."""
    import json

    import yaml

    from subcell._version import __version__
    from subcell.config import load_validated
    from subcell.errors import MetadataError, ValueRangeError
    from subcell.image import Provenance
    from subcell.io import write_bundle
    from subcell.io._atomic import check_output
    from subcell.io.ctc import find_ctc
    from subcell.io.geff import GEFF_NAME
    from subcell.io.trackmate import TRACKMATE_NAME
    from subcell.track import TrackConfig, napari_tracks, track_timelapse, write_frames
    from subcell.track.graph import write_geff, write_trackmate
    from subcell.track.objects import mask_frames_as_objects
    from subcell.track.tracks import fates

    check_output(output, overwrite=overwrite)
    cfg = load_validated(
        TrackConfig,
        config,
        overrides={"max_speed_um_per_min": max_speed, "max_gap_frames": max_gap, "divisions": divisions},
        assignments=set_ or (),
    )
    axes_of = axes_among(axes, [labels, *([image] if image else [])])  # e.g. OME-Zarr labels of a plain TIFF movie
    lab = read_label_timelapse(labels, label=label, voxel_size=voxel_size, axes=axes_of(labels),
                               force=force_voxel_size, time_interval=time_interval)  # fmt: skip
    interval = lab.time_interval
    if not interval:
        raise MetadataError("the file states no time interval; give --time-interval SECONDS", path=labels,
                            field="time_interval")  # fmt: skip
    intensity = None
    if image is not None:
        img = one_channel(read_beside(image, lab, axes=axes_of(image), what="the intensity image", scene=image_scene),
                          channel, image)  # fmt: skip
        if img.shape[0] != lab.shape[0] or img.shape[2:] != lab.shape[2:]:
            raise ValueRangeError(f"image T/Z/Y/X {(img.shape[0], *img.shape[2:])} differs from the labels' "
                                  f"{(lab.shape[0], *lab.shape[2:])}", path=image, field="shape")  # fmt: skip
        intensity = img.data[:, 0]
    vs = lab.voxel_size.as_tuple()
    # lazy reads stay lazy: objects are found frame by frame, and the relabelled labels and CTC masks are computed
    # frame by frame as they are written, so the movie is never held whole
    if components is None and labels.is_dir() and find_ctc(labels) is not None:
        components = False  # a CTC folder holds instance ids by definition (a frame of one cell is not a mask)
    movie, split = mask_frames_as_objects(lab.data[:, 0], components=components)
    drift_um = _drift(drift, lab, intensity)
    result = track_timelapse(movie, voxel_size=vs, time_interval_s=interval, config=cfg,
                             intensity=intensity, drift_um=drift_um)  # fmt: skip
    if split["split"] and components is None:
        typer.echo(f"note: {labels} holds masks: each connected component tracked as an object (26-connected, "
                   "numbered in each frame; --no-components for a mask as one object)", err=True)  # fmt: skip
    params = {"config": cfg.model_dump(mode="json"), "time_interval_s": interval, "voxel_size_um": list(vs),
              "labels": str(labels), "image": str(image) if image else None, "drift": drift}  # fmt: skip
    provenance = Provenance(source=str(labels), step="track", parameters=params)
    data, graph = napari_tracks(result.table)
    import pandas as pd

    # µm, and named so (read back as point tracks, `evaluate-tracks … napari_tracks.csv`, they are not pixels)
    napari = pd.DataFrame(data, columns=["track_id", "t", "z_um", "y_um", "x_um"]).astype({"track_id": int, "t": int})
    files = {"napari_graph.json": json.dumps({str(k): v for k, v in graph.items()}).encode(),
             "config.yaml": yaml.safe_dump({"subcell": __version__, **params}, sort_keys=False).encode()}  # fmt: skip
    # labels.ome.zarr and ctc/ from one read of each frame (write_frames), written as they are made
    store = {"voxel_size": vs, "channel_names": ["tracks"], "time_interval": interval, "provenance": provenance}
    write_bundle(
        output,
        tables={"tracks.parquet": result.table, "lineage.parquet": result.lineage, "napari_tracks.csv": napari},
        files=files,
        streams=[
            lambda folder: write_frames(folder, result, image=store),
            lambda folder: write_geff(
                folder / GEFF_NAME,
                result.table,
                two_d=lab.shape[2] == 1,
                time_interval_s=interval,
                labels_path="../labels.ome.zarr",
            ),
            lambda folder: write_trackmate(
                folder / TRACKMATE_NAME,
                result.table,
                shape=(lab.shape[0], *lab.shape[2:]),
                voxel_size=vs,
                time_interval_s=interval,
                image=_trackmate_image(image, output),
            ),
        ],
        overwrite=overwrite,
    )
    lin = result.lineage
    n_div = int((lin["parent_track"] > 0).sum() // 2)
    typer.echo(f"wrote {output}: {len(lin)} tracks over {lab.shape[0]} frames, {n_div} divisions, "
               f"{len(result.table)} objects (max {cfg.max_speed_um_per_min * interval / 60:.2f} µm per frame)")  # fmt: skip
    if begin_end := fates(lin):
        typer.echo(f"tracks {begin_end}")
    if drift_um is not None:
        from subcell.transforms.drift import drift_extent

        typer.echo(f"drift taken out: {drift_extent(drift_um)}")


def _drift(drift: str | None, lab: Any, intensity: Any) -> Any:
    """The ``(T, 3)`` drift (µm) ``--drift`` names: None, a table of ``subcell drift``, or ``auto``: measured on the
    intensity image where there is one, else on the labels' foreground."""
    if drift is None:
        return None
    if drift != "auto":
        from subcell.cli.drift import read_drift_table

        return read_drift_table(Path(drift), lab.shape[0])
    import numpy as np

    from subcell.transforms.drift import DRIFT_COLUMNS, estimate_drift

    frames = intensity if intensity is not None else (lab.data[:, 0] > 0).astype(np.float32)
    return estimate_drift(frames, voxel_size=lab.voxel_size)[DRIFT_COLUMNS].to_numpy()


def _trackmate_image(image: Path | None, output: Path) -> str:
    """The intensity image as TrackMate's settings name it (relative to the output folder), where ImageJ can open
    it (a TIFF file); empty otherwise (TrackMate then draws the tracks on an empty image of the movie's size)."""
    import os

    if image is None or not image.is_file() or not image.name.lower().endswith((".tif", ".tiff")):
        return ""
    return os.path.relpath(image.resolve(), output.resolve())


def _points(path: Path, voxel_size: Any, masks: Path, given: Any) -> Any:
    """Point tracks (:func:`subcell.track.points.read_point_tracks`) to score against the tracks with masks at
    ``masks`` (read at ``voxel_size``; ``given``: --voxel-size), with a note when a geff names label images that
    are not there (it is then scored as points). Points in µm against a CTC folder, which states no voxel size,
    need --voxel-size: placed on its voxels as if they were 1 µm, every point would miss."""
    from subcell.errors import MetadataError
    from subcell.io.ctc import find_ctc
    from subcell.io.geff import is_geff, related_labels
    from subcell.track.points import read_point_tracks

    named = related_labels(path) if is_geff(path) else None
    if named is not None:
        typer.echo(f"note: {path}: the label image it names ({named}) does not exist: scored as points", err=True)
    points = read_point_tracks(path, voxel_size=voxel_size)
    if given is None and points.attrs.get("positions_in_um") and masks.is_dir() and find_ctc(masks) is not None:
        raise MetadataError("a CTC folder states no voxel size and the point tracks are in µm: give --voxel-size Z Y "
                            "X (µm) to place them on its voxels", path=masks, field="voxel_size")  # fmt: skip
    return points


def load_tracks(path: Path, *, label: str | None, voxel_size: Any, axes: str | None, what: str,
                ids_are_tracks: bool = False, grid_of: Any = None, label_option: str | None = None) -> Any:  # fmt: skip
    """Tracks from a ``subcell track`` output, a CTC folder (result or truth layout), an OME-Zarr store with a
    track-consistent label image and ``tables/lineage.parquet`` (``subcell synth --frames``) or, with
    ``ids_are_tracks``, any label movie whose ids persist over frames (each id one track, no divisions: the CTC
    reference masks without ``man_track.txt``, TGMM / Mastodon or TrackMate label exports). Such a movie that
    states no voxel size takes ``grid_of``'s (the prediction's): scores match objects by overlap, and the
    shapes are checked. An NGFF label image inside such a store (``IMAGE/labels/NAME``) takes the store's lineage.
    ``label_option`` names the command's option choosing a label image (:func:`read_label_timelapse`). Returns the
    tracks and their voxel size."""
    from subcell.errors import InputFileError
    from subcell.image import VoxelSize
    from subcell.io import read_table, store_table
    from subcell.io.ctc import find_ctc, read_ctc
    from subcell.io.geff import is_geff, related_labels
    from subcell.io.ngff_labels import image_of_label
    from subcell.track import Tracks, lineage_table, tracks_from_lineage
    from subcell.track.graph import read_track_graph, tracks_from_graph

    if not path.exists():
        raise InputFileError(f"{what} not found", path=path)
    assumed = VoxelSize.of(grid_of).as_tuple() if grid_of is not None else None
    if is_geff(path):  # another tool's tracks (or ours alone): the graph names objects of a related label image
        labels_path = related_labels(path)
        if labels_path is None or not labels_path.exists():
            raise InputFileError(f"{what}: the track graph names no label image that exists "
                                 f"({labels_path or 'no related labels'}); without masks it is scored as point tracks, "
                                 "against masks", path=path, field="related_objects")  # fmt: skip
        from subcell.io.reader import axes_for

        img = read_assuming(lambda vs: read_label_timelapse(labels_path, label=None, voxel_size=vs, force=False,
                                                            axes=axes_for(labels_path, axes)), voxel_size, assumed)  # fmt: skip
        vs = img.voxel_size.as_tuple()
        points = read_track_graph(path, voxel_size=vs)
        return tracks_from_graph(img.data[:, 0], points, voxel_size=vs, time_interval_s=img.time_interval), vs
    if (path / "tracks.parquet").is_file() and (path / "labels.ome.zarr").exists():
        table = read_table(path / "tracks.parquet", what="tracks table")
        img = read_input(path / "labels.ome.zarr")  # stays lazy: scored a frame at a time
        return Tracks(labels=img.data[:, 0], table=table, lineage=lineage_table(table)), img.voxel_size
    if find_ctc(path) is not None:
        masks, rows = read_ctc(path)
        vs = voxel_size or (1.0, 1.0, 1.0)  # scores match objects by overlap: the voxel size does not enter them
        return tracks_from_lineage(masks, dict(zip(rows["L"], rows["P"], strict=True)), voxel_size=vs), vs
    lineage = store_table(path, "lineage") if path.is_dir() else None
    if lineage is None and (image := image_of_label(path)) is not None:  # a label image of a store with a lineage
        lineage = store_table(image, "lineage")
    if lineage is None and not ids_are_tracks:
        raise InputFileError(
            f"{what} has no lineage: give a `subcell track` output, a CTC folder (res_track.txt / man_track.txt), "
            "an OME-Zarr with tables/lineage.parquet, or a label movie whose ids are its tracks with --ids-are-tracks",
            path=path, field="lineage",
        )  # fmt: skip
    parents: dict[int, int] | None = None  # ids alone: their divisions unknown
    if lineage is not None:
        missing = {"track_id", "parent_id"} - set(lineage.columns)
        if missing:
            raise InputFileError(f"lineage table lacks columns {sorted(missing)}", path=path, field="lineage")
        parents = dict(zip(lineage["track_id"].astype(int), lineage["parent_id"].astype(int), strict=True))
    img = read_assuming(lambda vs: read_label_timelapse(path, label=label, voxel_size=vs, axes=axes, force=False,
                                                        label_option=label_option), voxel_size, assumed)  # fmt: skip
    vs = img.voxel_size.as_tuple()
    tracks = tracks_from_lineage(img.data[:, 0], parents, voxel_size=vs, time_interval_s=img.time_interval)
    if lineage is None:
        typer.echo(f"note: {path}: each id read as one track ({tracks.table['track_id'].nunique()} tracks; no "
                   "lineage, so no divisions)", err=True)  # fmt: skip
    return tracks, vs


def evaluate_tracks(
    pred: Annotated[
        Path,
        typer.Argument(
            help="Predicted tracks: `subcell track` output, a CTC result folder or a geff with its labels; or point "
            "tracks (TrackMate XML, a geff without labels, a table) against truth with masks."
        ),
    ],
    truth: Annotated[
        Path,
        typer.Argument(
            help="Truth: CTC folder, `subcell track` output, OME-Zarr with tables/lineage, geff, TrackMate XML or "
            "point tracks (.npy napari Tracks data in pixels; .csv/.parquet with track_id, t, y, x or y_um, x_um)."
        ),
    ],
    truth_label: Annotated[
        Optional[str], typer.Option("--truth-label", help="NGFF label image of a truth OME-Zarr (e.g. nucleus).")  # noqa: UP045
    ] = None,
    frame_tolerance: Annotated[
        int, typer.Option("--frame-tolerance", help="A division counts when found within this many frames.", min=0)
    ] = 1,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--output", "-o", help="Folder for metrics.json and per_track.csv."),
    ] = None,
    ids_are_tracks: Annotated[
        bool,
        typer.Option(
            "--ids-are-tracks",
            help="A label movie without a lineage (TIFF, OME-Zarr; truth or prediction) keeps each object's id over "
            "frames, e.g. CTC reference masks without man_track.txt or a TrackMate / Mastodon label export: read "
            "each id as one track (no divisions).",
        ),
    ] = False,
    voxel_size: VoxelSizeOpt = None,
    axes: AxesOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Score tracks against truth: TRA, DET, LNK, SEG (Cell Tracking Challenge) and division precision/recall/F1."""
    import json

    from subcell.errors import ValueRangeError
    from subcell.io import write_bundle
    from subcell.io._atomic import check_output
    from subcell.track.evaluate import evaluate_tracks as score
    from subcell.track.points import are_point_tracks, evaluate_point_tracks

    if output is not None:
        check_output(output, overwrite=overwrite)
    summary: dict[str, Any]
    per_track = None
    if are_point_tracks(pred):  # a point tool's tracks (TrackMate, a geff without labels) against true masks
        if are_point_tracks(truth):
            raise ValueRangeError("both the prediction and the truth are point tracks: TRA needs masks on one side "
                                  "(the truth's, or the prediction's label image)", path=truth, field="truth")  # fmt: skip
        t, t_vs = load_tracks(truth, label=truth_label, voxel_size=voxel_size, axes=axes, what="truth",
                              ids_are_tracks=ids_are_tracks, label_option="--truth-label")  # fmt: skip
        summary = evaluate_point_tracks(t, _points(pred, t_vs, truth, voxel_size), voxel_size=t_vs,
                                        frame_tolerance=frame_tolerance, points_are="prediction")  # fmt: skip
        typer.echo(f"point tracks: {summary['points_matched']:.1%} of {summary['predicted_objects']} predicted points "
                   f"inside a true object; {summary['objects_with_several_points']} true objects hold several points")  # fmt: skip
    else:
        p, p_vs = load_tracks(pred, label=None, voxel_size=voxel_size, axes=axes, what="prediction",
                              ids_are_tracks=ids_are_tracks)  # fmt: skip
        if are_point_tracks(truth):
            summary = evaluate_point_tracks(p, _points(truth, p_vs, pred, voxel_size), voxel_size=p_vs,
                                            frame_tolerance=frame_tolerance)  # fmt: skip
            typer.echo(f"point tracks: {summary['points_matched']:.1%} of {summary['true_objects']} points inside a "
                       f"predicted object; {summary['objects_with_several_points']} objects hold several points")  # fmt: skip
        else:
            t, _ = load_tracks(truth, label=truth_label, voxel_size=voxel_size, axes=axes, what="truth",
                               ids_are_tracks=ids_are_tracks, grid_of=p_vs, label_option="--truth-label")  # fmt: skip
            summary, per_track = score(p, t, frame_tolerance=frame_tolerance)
    typer.echo(" ".join(f"{k} {summary[k]:.4f}" for k in ("TRA", "DET", "LNK", "SEG")))
    if "BIO" in summary:  # the challenge's biological measures and overall scores too

        def num(key: str) -> str:  # n/a: undefined (no division in the truth; SEG against points)
            value = summary[key]
            return "n/a" if value is None or value != value else f"{value:.4f}"

        typer.echo(f"BIO {num('BIO')} (CT {num('CT')}, TF {num('TF')}, BC({frame_tolerance}) {num('BC')}, CCA "
                   f"{num('CCA')}); OP_CTB {num('OP_CTB')} OP_CSB {num('OP_CSB')} OP_CLB {num('OP_CLB')}")  # fmt: skip
    if summary["true_divisions"] is None:
        n = summary["predicted_divisions"]
        typer.echo(f"divisions: not scored, the truth has no lineage ({'?' if n is None else n} predicted)")
    elif summary["predicted_divisions"] is None:
        typer.echo(f"divisions: not scored, the prediction states no lineage ({summary['true_divisions']} true)")
    else:
        typer.echo(f"divisions (±{frame_tolerance} frames): precision {summary['division_precision']:.3f} recall "
                   f"{summary['division_recall']:.3f} F1 {summary['division_f1']:.3f} ({summary['true_divisions']} "
                   f"true, {summary['predicted_divisions']} predicted)")  # fmt: skip
    typer.echo(f"tracks: {summary['true_tracks']} true, {summary['predicted_tracks']} predicted; objects: "
               f"{summary['true_objects']} true, {summary['predicted_objects']} predicted")  # fmt: skip
    if output is not None:
        write_bundle(output, tables={"per_track.csv": per_track} if per_track is not None else {},
                     files={"metrics.json": json.dumps(summary, indent=2).encode()}, overwrite=overwrite)  # fmt: skip
        typer.echo(f"wrote {output}")
