"""Find what a run folder holds that is worth showing, as report sections.

A run folder is whatever subcell commands wrote: the demo's folder, a ``labelfree train`` model folder, a
``segment`` output beside its image, ``track`` outputs, cell stores with a shape space, figures and tables.
Every section carries its provenance (command, config, subcell version, input files) as far as the files
record it: the demo's ``run.json``, a model's ``model.json``, an OME-Zarr's provenance history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from subcell._version import __version__

__all__ = ["KNOWN_FIGURES", "Section", "collect_sections"]

# figures subcell writes, by file name: (section, title)
KNOWN_FIGURES = {
    "labelfree_evaluation.png": ("Label-free prediction", "Held-out field: input, target and prediction (XY, XZ, YZ at "
                                 "physical aspect; target and prediction at the same contrast) and scores"),
    "labelfree_training_curve.png": ("Label-free prediction", "Training curve"),
    "training_curve.png": ("Label-free prediction", "Training curve"),
    "shape_modes.png": ("Shape space", "Walks along the first shape modes"),
    "integrated_samples.png": ("Integrated cell", "Real vs sampled structures in held-out cells"),
    "integrated_evaluation.png": ("Integrated cell", "Held-out ELBO with true vs shuffled reference; KL per latent"),
    "integrated_latent_walk.png": ("Integrated cell", "Latent walk of the reference model"),
    "latent_walk.png": ("Integrated cell", "Latent walk"),
    "evaluation.png": ("Integrated cell", "Evaluation"),
    "lineage.png": ("Dynamics", "Lineages of the tracked cells (colour = generation)"),
}  # fmt: skip
ORDER = ["Run", "Collection", "Segmentation", "Label-free prediction", "Shape space", "Integrated cell", "Dynamics",
         "Cell state", "Tables", "Other figures"]  # fmt: skip
MAX_TABLE_ROWS = 15


@dataclass
class Section:
    """A titled part of the report: text lines, figures (title, PNG bytes), tables (title, DataFrame), and the
    provenance of what it shows."""

    name: str
    lines: list[str] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)
    tables: list[tuple[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.lines or self.figures or self.tables)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _run_info(folder: Path) -> dict[str, Any]:
    """The run's own record (the demo writes ``run.json``: command, settings, version, lines)."""
    return _read_json(folder / "run.json")


def collect_sections(folder: str | Path) -> list[Section]:
    """Report sections for a run folder, in a fixed order; empty when nothing in it is reportable."""
    folder = Path(folder)
    run = _run_info(folder)
    base = {"subcell version (report)": __version__}
    if run:
        base |= {k: run[k] for k in ("command", "subcell_version", "settings", "inputs") if k in run}
    sections: dict[str, Section] = {}

    def section(name: str) -> Section:
        if name not in sections:
            sections[name] = Section(name, provenance=dict(base))
        return sections[name]

    if run.get("lines"):
        section("Run").lines.extend(str(x) for x in run["lines"])
    from subcell.batch.runner import is_batch_folder

    if is_batch_folder(folder):  # a collection: its summary, not a section per item (there may be thousands)
        _batch_section(folder, section)
        return [s for s in sections.values() if not s.empty()]
    used: set[Path] = set()
    for model_json in sorted(folder.glob("*/model.json")) + ([folder / "model.json"] if (folder / "model.json").exists()
                                                             else []):  # fmt: skip
        _model_section(model_json, section, used)
    _segmentation_sections(folder, section, used)
    _tracks_section(folder, section, used)
    for png in sorted(folder.glob("*.png")):
        if png in used:
            continue
        name, title = KNOWN_FIGURES.get(png.name, ("Other figures", png.stem.replace("_", " ")))
        if png.name.startswith("confusion"):
            name = "Cell state"
        sec = section(name)
        sec.figures.append((title, png.read_bytes()))
        sec.provenance.setdefault("files", []).append(png.name)
    for table in sorted([*folder.glob("*.csv"), *folder.glob("*.parquet")]):
        if table in used or table.name in ("manifest.csv",) or table.name.endswith("_manifest.csv"):
            continue
        _table(table, section)
    ordered = [sections[n] for n in ORDER if n in sections] + [s for n, s in sections.items() if n not in ORDER]
    return [s for s in ordered if not s.empty()]


def _table(path: Path, section: Any) -> None:
    from subcell.io import read_table

    try:
        df = read_table(path)
    except Exception:  # a table another tool wrote that does not parse is listed, not fatal
        section("Tables").lines.append(f"{path.name}: could not be read")
        return
    from subcell.report.corrections import correction_lines

    if (said := correction_lines(path, df)) is not None:  # a movie's drift or bleaching: said, drawn, and listed
        dyn = section("Dynamics")
        dyn.lines.extend(said[0])
        dyn.figures.append((path.stem.replace("_", " "), said[1]))
    name = "Integrated cell" if path.name.startswith("integrated") else "Tables"
    sec = section(name)
    title = f"{path.name} ({len(df)} rows{', first ' + str(MAX_TABLE_ROWS) if len(df) > MAX_TABLE_ROWS else ''})"
    sec.tables.append((title, df.head(MAX_TABLE_ROWS)))
    sec.provenance.setdefault("files", []).append(path.name)


def _model_section(model_json: Path, section: Any, used: set[Path]) -> None:
    meta = _read_json(model_json)
    kind = meta.get("kind")
    folder = model_json.parent
    if kind == "labelfree":
        sec = section("Label-free prediction")
        t = meta.get("training") or {}
        sec.lines.append(
            f"model {folder.name}: {', '.join(meta.get('targets', []))} from {', '.join(meta.get('input_channels', []))}"
            f", voxel size {meta.get('voxel_size_um')} µm, {meta.get('parameters', 0) / 1e6:.2f} M parameters; "
            f"{t.get('steps', '?')} steps in {float(t.get('seconds') or 0):.0f} s on {t.get('device', '?')}"
        )
        val = t.get("validation") or {}
        if val:
            import pandas as pd

            rows = [{"measure": k, "value": v} for k, v in val.items() if isinstance(v, (int, float))]
            sec.tables.append((f"{folder.name}: validation at the last check", pd.DataFrame(rows)))
        curve = folder / "training_curve.png"
        if curve.exists():
            sec.figures.append((f"{folder.name}: training curve", curve.read_bytes()))
            used.add(curve)
        sec.provenance[f"model {folder.name}"] = {
            "config": meta.get("config"), "subcell_version": meta.get("subcell_version"),
            "training data": t.get("train_images") or t.get("data"), "validation data": t.get("val_images"),
        }  # fmt: skip
    elif kind:
        name = {"integrated": "Integrated cell", "state": "Cell state"}.get(str(kind), "Other figures")
        sec = section(name)
        sec.lines.append(f"model {folder.name} ({kind})")
        sec.provenance[f"model {folder.name}"] = {"config": meta.get("config"),
                                                  "subcell_version": meta.get("subcell_version")}  # fmt: skip


def _label_stores(folder: Path) -> list[tuple[Path, Path, str]]:
    """(image store, segmentation store, workflow) for every ``<stem>_<workflow>.ome.zarr`` beside
    ``<stem>.ome.zarr`` whose data are integer labels."""
    from subcell.segment.workflow import builtin_workflows

    names = set(builtin_workflows())
    found = []
    for seg in sorted(folder.glob("*_*.ome.zarr")):
        stem, _, wf = seg.name[: -len(".ome.zarr")].rpartition("_")
        image = folder / f"{stem}.ome.zarr"
        if wf in names and image.exists():
            found.append((image, seg, wf))
    return found


def _segmentation_sections(folder: Path, section: Any, used: set[Path]) -> None:
    """One entry per segmentation store beside its image: an overlay figure and, where the image carries the true
    labels, the matching scores and the worst objects. The volumes stay lazy: each is read in blocks (the figure's
    middle planes and contrast sample, the matching a block of chunks at a time), so a field larger than memory is
    reported without being held."""
    from subcell import io
    from subcell.metrics import match_instances
    from subcell.plotting import OrthoPlanes, contrast_limits, orthoviews_png, panel_summary
    from subcell.segment import load_workflow

    for image_path, seg_path, wf in _label_stores(folder):
        labels = io.read(seg_path)
        if not np.issubdtype(labels.dtype, np.integer):
            continue
        image = io.read(image_path)
        workflow = load_workflow(wf)
        channel = next((c for c in workflow.inputs if c in image.channel_names), image.channel_names[0])
        vol = image.channel(channel).data[0, 0]
        lab = labels.data[0, 0]
        if lab.shape != vol.shape:
            continue
        sec = section("Segmentation")
        title = f"{seg_path.name}: {wf} on {image_path.name} ({channel})"
        shown = panel_summary(vol)
        panel = f"{wf} on {channel}"
        sec.figures.append((title, orthoviews_png({panel: shown.planes}, image.voxel_size.as_tuple(),
                                                  limits={panel: contrast_limits(shown.sample)},
                                                  contours={panel: OrthoPlanes.of(lab)})))  # fmt: skip
        truth_name = {"cells": "cell"}.get(wf, wf)
        if truth_name in io.label_names(image_path):
            truth = io.read_labels(image_path, truth_name).data[0, 0]
            m = match_instances(lab, truth)
            line = f"{seg_path.name}: {m.n_pred} objects ({wf} workflow on channel {channel})"
            line += f"; vs labels/{truth_name}: F1@0.5 {m.f1(0.5):.3f}, mean matched IoU {m.mean_matched_iou():.3f}"
            worst = m.objects().sort_values("iou").head(8)
            sec.tables.append((f"{seg_path.name}: the worst true objects (lowest IoU with their match)", worst))
            if len(worst):
                from subcell.report.figures import worst_objects_png

                pairs = [(int(r.true_id), int(r.pred_id), float(r.iou)) for r in worst.head(4).itertuples()]
                sec.figures.append((
                    f"{seg_path.name}: the {len(pairs)} worst true objects, XY and XZ through each (green truth, "
                    "yellow prediction)",
                    worst_objects_png(vol, truth, lab, pairs, image.voxel_size.as_tuple()),
                ))  # fmt: skip
        else:
            line = f"{seg_path.name}: {_object_count(lab)} objects ({wf} workflow on channel {channel})"
        sec.lines.append(line)
        sec.provenance[seg_path.name] = labels.provenance.to_dict()


def _object_count(labels: Any) -> int:
    """The number of distinct non-zero ids of a label volume, read a block of chunks at a time."""
    from subcell.image import materialize
    from subcell.metrics.pieces import stored_blocks

    blocks = stored_blocks(labels) if getattr(labels, "chunks", None) is not None else [Ellipsis]
    ids = np.unique(np.concatenate([np.unique(materialize(labels[b])) for b in blocks]))
    return int(np.count_nonzero(ids))


def _tracks_section(folder: Path, section: Any, used: set[Path]) -> None:
    from subcell.io import read_table
    from subcell.track.tracks import fates

    for scores in sorted([folder / "metrics.json", *folder.glob("*/metrics.json")]):  # evaluate-tracks -o
        m = _read_json(scores) if scores.exists() else {}
        if not {"TRA", "DET", "LNK"} <= set(m):
            continue
        where = scores.parent.name if scores.parent == folder else str(scores.parent.relative_to(folder))
        sec = section("Dynamics")
        sec.lines.append(f"{where}: tracking scores " + " ".join(f"{k} {float(m[k]):.4f}" for k in
                                                                ("TRA", "DET", "LNK", "SEG") if k in m))  # fmt: skip
        bio = [f"{k} {float(m[k]):.4f}" for k in ("BIO", "CT", "TF", "BC", "CCA", "OP_CTB", "OP_CLB")
               if m.get(k) is not None]  # fmt: skip
        if bio:
            sec.lines.append(f"{where}: biological measures and overall scores " + " ".join(bio))
        if m.get("true_divisions") is None:
            sec.lines.append(f"{where}: divisions not scored, the truth has no lineage "
                             f"({m.get('predicted_divisions')} predicted)")  # fmt: skip
        else:
            sec.lines.append(f"{where}: divisions precision {float(m['division_precision']):.3f} recall "
                             f"{float(m['division_recall']):.3f} F1 {float(m['division_f1']):.3f} "
                             f"({m['true_divisions']} true, {m.get('predicted_divisions')} predicted)")  # fmt: skip
        sec.lines.append(f"{where}: {m.get('true_tracks')} true tracks, {m.get('predicted_tracks')} predicted")
        sec.provenance[str(scores.relative_to(folder))] = m

    for tracks in sorted([folder / "tracks.parquet", *folder.glob("*/tracks.parquet")]):
        if not tracks.exists():
            continue
        df = read_table(tracks)
        if not {"track_id", "t"} <= set(df.columns):
            continue
        sec = section("Dynamics")
        n_div = int((df.groupby("track_id")["parent_track"].first() > 0).sum() // 2) if "parent_track" in df else 0
        sec.lines.append(
            f"{tracks.relative_to(folder)}: {df.track_id.nunique()} tracks over {df.t.nunique()} frames, "
            f"{n_div} divisions, {len(df)} detections"
        )
        used.add(tracks)
        lineage_png_path = tracks.parent / "lineage.png"
        lineage_table = tracks.parent / "lineage.parquet"
        lineage = read_table(lineage_table) if lineage_table.exists() else None
        if lineage is not None and "mean_speed_um_per_min" in lineage and lineage.mean_speed_um_per_min.notna().any():
            q = lineage[["mean_speed_um_per_min", "net_displacement_um", "straightness"]].median()
            sec.lines.append(f"{tracks.relative_to(folder)}: per track (median) speed {q.mean_speed_um_per_min:.2f} "
                             f"µm/min, net displacement {q.net_displacement_um:.2f} µm, straightness "
                             f"{q.straightness:.2f}; fastest step {lineage.max_speed_um_per_min.max():.2f} µm/min")  # fmt: skip
        if {"drift_y_um", "drift_x_um"} <= set(df.columns):  # tracked with the stage's drift taken out
            from subcell.transforms.drift import DRIFT_COLUMNS, drift_extent

            per_frame = df.groupby("t")[DRIFT_COLUMNS].first().to_numpy()
            sec.lines.append(f"{tracks.relative_to(folder)}: linked and measured without the stage's drift "
                             f"({drift_extent(per_frame)})")  # fmt: skip
        if lineage is not None and (begin_end := fates(lineage)):
            sec.lines.append(f"{tracks.relative_to(folder)}: tracks {begin_end}")
        if lineage is not None and "growth_rate_per_h" in lineage and lineage.growth_rate_per_h.notna().any():
            sec.lines.append(_growth_line(lineage, str(tracks.relative_to(folder))))
        if lineage_png_path.exists() and tracks.parent != folder:
            sec.figures.append((f"{tracks.parent.name}: lineages", lineage_png_path.read_bytes()))
            used.add(lineage_png_path)
        elif lineage is not None and len(lineage) and not lineage_png_path.exists():  # (no tracks: no figure)
            from subcell.track.figures import lineage_png

            sec.figures.append((f"{tracks.parent.name}: lineages (colour = generation)",
                                lineage_png(df, lineage)))  # fmt: skip
            used.add(lineage_table)
        config = tracks.parent / "config.yaml"
        if config.exists():
            import yaml

            sec.provenance[str(tracks.relative_to(folder))] = yaml.safe_load(config.read_text())


def _batch_section(folder: Path, section: Any) -> None:
    """A ``subcell batch`` OUTDIR: what ran, how many items finished, their time and memory against the estimates,
    the failures with their errors, and the tables gathered over the collection."""
    from subcell.batch.runner import TABLE, read_batch_state
    from subcell.io import parquet_rows, read_table
    from subcell.report.figures import batch_items_png

    table = read_table(folder / TABLE, what="batch table")
    state = read_batch_state(folder)
    sec = section("Collection")
    sec.provenance.update(
        {k: state[k] for k in ("command", "options", "files", "config_hash", "manifest") if k in state}
    )
    counts = table["status"].value_counts()
    sec.lines.append(
        f"subcell batch {state.get('command', '?')} {' '.join(map(str, state.get('options', [])))}: {len(table)} "
        f"items, {counts.get('done', 0)} done in this run, {counts.get('skipped', 0)} done before, "
        f"{counts.get('failed', 0)} failed"
    )
    ran = table[table["status"] == "done"]
    if len(ran):
        sec.lines.append(
            f"items run: {ran['seconds'].sum():.0f} item-seconds, median {ran['seconds'].median():.1f} s per item; "
            f"peak memory median {ran['peak_memory_mb'].median():.0f} MB, largest {ran['peak_memory_mb'].max():.0f} MB"
        )
        sec.figures.append(("Items of this run: seconds per item; peak memory against its estimate",
                            batch_items_png(ran["seconds"].to_numpy(float), ran["peak_memory_mb"].to_numpy(float),
                                            ran["memory_estimate_mb"].to_numpy(float))))  # fmt: skip
    failed = table[table["status"] == "failed"]
    if len(failed):
        title = (
            f"Failed items ({len(failed)}{', first ' + str(MAX_TABLE_ROWS) if len(failed) > MAX_TABLE_ROWS else ''})"
        )
        sec.tables.append((title, failed[["id", "source", "error"]].head(MAX_TABLE_ROWS)))
    # the tables gathered over the collection (measurements/, tracks/, lineage/): folders named without a suffix
    # that hold only Parquet files (the items' own outputs are named <id><suffix>)
    for dataset in sorted(p for p in folder.iterdir() if p.is_dir() and "." not in p.name):
        parts = sorted(dataset.glob("*.parquet"))
        if not parts or len(parts) != len(list(dataset.iterdir())):
            continue
        per_item = np.array([parquet_rows(p) for p in parts])  # one file per item
        sec.lines.append(f"{dataset.name}/: {per_item.sum()} rows from {len(parts)} items (one Parquet dataset), "
                         f"{per_item.min()}-{per_item.max()} rows per item (median {np.median(per_item):.0f})")  # fmt: skip
        _plate_part(dataset, sec)


def _growth_line(lineage: Any, where: str) -> str:
    """How the tracked objects grew: the median growth rate and doubling time over tracks, and of the tracks that
    span a full cycle their number, median duration and added volume."""
    rate = lineage.growth_rate_per_h.median()
    doubling = f", doubling in {np.log(2) / rate:.1f} h" if rate > 0 else ""
    line = f"{where}: per track (median) growth rate {rate:.3f} /h{doubling}"
    full = lineage[lineage.full_cycle] if "full_cycle" in lineage else lineage.iloc[:0]
    if len(full):
        line += (f"; {len(full)} full cycles (born at a division, ending in one): median {full.duration_min.median() / 60:.1f} h, "
                 f"volume added {full.volume_added_um3.median():.0f} µm³")  # fmt: skip
    return line


def _plate_part(dataset: Path, sec: Any) -> None:
    """A gathered per-object table of a plate (rows with ``well``, ``row``, ``column``, from a manifest of an
    OME-Zarr plate): its wells summarised (:func:`subcell.report.plate.well_summary`) as plate maps and a table.
    Only the columns it needs are read (a screen's table may hold millions of objects)."""
    import pyarrow.parquet as pq

    from subcell.report.plate import PLATE_COLUMNS, plate_map_png, readout_columns, readouts, well_summary

    names = set(pq.read_schema(next(dataset.glob("*.parquet"))).names)  # one schema: unified at the run's end
    if not set(PLATE_COLUMNS) <= names or not ({"label", "track_id"} & names):  # per object (measure, track)
        return
    wanted = [*PLATE_COLUMNS, *(c for c in ("plate", "acquisition", "t") if c in names), *readout_columns(names)]
    table, fields = pq.read_table(dataset, columns=wanted).to_pandas(), _fields_run(dataset.parent)
    panels = [("objects_per_field", "objects per field")]
    panels += [(f"median_{c}", title) for c, title in readouts(names).items()]
    # a batch over several plates, or a plate imaged several times: a map each (their wells share names)
    keys = [c for c in ("plate", "acquisition") if c in table.columns]
    plates = table.groupby(keys, sort=False) if keys else [((), table)]
    for key, part in plates:
        values = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        known = fields
        for c, v in values.items():
            known = None if known is None or c not in known else known[known[c].astype(str) == str(v)]
        summary = well_summary(part, known)
        of = ", ".join(f"{c} {v}" for c, v in values.items())
        name = f"{dataset.name}/ per well{f' of {of}' if of else ''}"
        sec.figures.append((f"{name}: {len(summary)} wells", plate_map_png(summary, panels)))
        first = f", first {MAX_TABLE_ROWS}" if len(summary) > MAX_TABLE_ROWS else ""
        sec.tables.append((f"{name} ({len(summary)} wells{first})", summary.head(MAX_TABLE_ROWS).round(3)))


def _fields_run(folder: Path) -> Any:
    """``id``, ``plate``, ``well``, ``row``, ``column`` of the items a batch finished, with the columns its manifest
    gave them (:func:`subcell.batch.chain.batch_manifest`: a field without objects has no row in the gathered
    tables, yet ran); None when they are not known."""
    import pandas as pd

    from subcell.batch.chain import batch_manifest
    from subcell.errors import SubcellError

    try:
        rows, _ = batch_manifest(folder)
    except SubcellError:
        return None
    known = [{"id": r.id, **{c: r.metadata.get(c) for c in ("plate", "acquisition", "well", "row", "column")}}
             for r in rows]  # fmt: skip
    table = pd.DataFrame([k for k in known if k["well"] is not None]).dropna(axis=1, how="all")
    return table if len(table) else None
