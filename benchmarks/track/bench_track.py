"""Tracking: accuracy on synthetic truth and on the shared real time-lapses, against laptrack's defaults on the
same objects, and linking speed at 1,000 and 10,000 objects per frame.

    python benchmarks/track/bench_track.py [--sections synthetic window real speed] [--workdir DIR]
    SUBCELL_TEST_DATA=../shared/data python benchmarks/track/bench_track.py --sections real

Sections:
- synthetic: a 40-frame synthetic 3D time-lapse (about 28 cells, divisions; written once to --workdir by the
  `subcell synth` command printed in the results), segmented frame by frame with the built-in `nucleus` workflow
  (not from truth), tracked, and scored against the exact truth; the same with the truth labels as input.
- real: Fluo-N3DH-CHO (CTC subset) segmented by us and scored against its reference masks (track-consistent ids,
  no lineage); TGMM (automatic, track-consistent lineage labels) re-linked from its own masks.
- speed: seconds per frame of linking (with gap closing and divisions) at 1k and 10k objects per frame; timed
  alone (check `uptime`), one thing at a time.

Writes ``benchmarks/track/results.md`` and ``results.json`` (sections merge into earlier results); the hand-written
sections of results.md below its ``KEPT`` line are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
os.environ.setdefault("TQDM_DISABLE", "1")  # traccuracy's per-frame progress bars
SYNTH_CMD = ["synth", "synth40.ome.zarr", "--shape", "14", "384", "384", "--voxel-size", "0.5", "0.2", "0.2",
             "--frames", "40", "--seed", "7", "--set", "time.division_probability=0.01"]  # fmt: skip
# the same on a window of a larger colony (cells 20 µm beyond the field on every side drift in and out of view)
WINDOW_CMD = ["synth", "window40.ome.zarr", *SYNTH_CMD[2:], "--set", "cells.beyond_field_um=20"]


def _laptrack_defaults(objects: Any, n_frames: int) -> Any:
    """laptrack as a user would call it first: LapTrack() defaults on centroids (µm) plus splitting enabled at the
    linking cutoff (its default has no divisions at all)."""
    from laptrack import LapTrack

    from subcell.track.link import assign_tracks

    objs = objects.sort_values(["t", "label"]).reset_index(drop=True)
    coords = [objs.loc[objs.t == t, ["z_um", "y_um", "x_um"]].to_numpy() for t in range(n_frames)]
    lt = LapTrack(splitting_cutoff=LapTrack().cutoff)
    return assign_tracks(objs, lt.predict(coords))


def _as_tracks(table: Any, labels: np.ndarray) -> Any:
    from subcell.track import Tracks, lineage_table, relabel

    return Tracks(labels=relabel(labels, table), table=table, lineage=lineage_table(table))


def _score(pred: Any, truth: Any) -> dict[str, Any]:
    from subcell.track.evaluate import evaluate_tracks

    s, _ = evaluate_tracks(pred, truth, frame_tolerance=1)
    keys = ("TRA", "DET", "LNK", "SEG", "division_precision", "division_recall", "division_f1", "true_divisions",
            "predicted_divisions", "true_tracks", "predicted_tracks", "true_objects", "predicted_objects")  # fmt: skip
    return {k: (round(s[k], 4) if isinstance(s[k], float) else s[k]) for k in keys}


def _compare(name: str, labels: np.ndarray, truth: Any, vs: tuple, interval: float, cfg: Any) -> dict[str, Any]:
    from subcell.track import timelapse_objects, track_timelapse

    t0 = time.perf_counter()
    ours = track_timelapse(labels, voxel_size=vs, time_interval_s=interval, config=cfg)
    seconds = time.perf_counter() - t0
    objs = timelapse_objects(labels, voxel_size=vs)
    base = _as_tracks(_laptrack_defaults(objs, labels.shape[0]), labels)
    return {"case": name, "subcell": _score(ours, truth), "laptrack_defaults": _score(base, truth),
            "subcell_seconds": round(seconds, 2), "config": cfg.model_dump()}  # fmt: skip


def _synthetic_truth(workdir: Path, command: list[str]) -> tuple[Any, np.ndarray, Any]:
    """The synthetic movie ``command`` writes (generated once into ``workdir``): image, truth labels, truth tracks."""
    from subcell.io import read, read_labels, store_table
    from subcell.track import tracks_from_lineage

    store = workdir / command[1]
    if not store.exists():
        subprocess.run([str(Path(sys.executable).parent / "subcell"), *command], cwd=workdir, check=True)
    image = read(store)
    truth_lab = read_labels(store, "nucleus").numpy()[:, 0]
    lineage = store_table(store, "lineage")
    vs = image.voxel_size.as_tuple()
    truth = tracks_from_lineage(truth_lab, dict(zip(lineage.track_id, lineage.parent_id, strict=True)), voxel_size=vs,
                                time_interval_s=image.time_interval)  # fmt: skip
    return image, truth_lab, truth


def window(workdir: Path) -> list[dict[str, Any]]:
    """The same movie on a field that is a window on a larger colony: cells drift in and out of view. Tracked from
    the `nucleus_dense` segmentation and from the truth labels, with and without the border-entry rule."""
    from subcell.segment import load_workflow, segment_image
    from subcell.track import TrackConfig
    from subcell.track.tracks import fates

    image, truth_lab, truth = _synthetic_truth(workdir, WINDOW_CMD)
    vs = image.voxel_size.as_tuple()
    seg = segment_image(image.channel("dna"), load_workflow("nucleus_dense")).numpy()[:, 0]
    out = []
    for what, labels in (("nucleus_dense segmentation", seg), ("truth labels", truth_lab)):
        for rule in (True, False):
            cfg = TrackConfig(border_entries=rule)
            row = _compare(f"window 40 frames, {what}, border_entries {'on' if rule else 'off'}", labels, truth, vs,
                           image.time_interval, cfg)  # fmt: skip
            out.append(row)
    out[0]["truth_fates"] = fates(truth.lineage)
    return out


def synthetic(workdir: Path) -> list[dict[str, Any]]:
    from subcell.segment import load_workflow, segment_image
    from subcell.track import TrackConfig

    image, truth_lab, truth = _synthetic_truth(workdir, SYNTH_CMD)
    vs = image.voxel_size.as_tuple()
    cfg = TrackConfig()
    out = []
    for workflow in ("nucleus", "nucleus_dense"):
        t0 = time.perf_counter()
        seg = segment_image(image.channel("dna"), load_workflow(workflow)).numpy()[:, 0]
        seg_s = time.perf_counter() - t0
        out.append(_compare(f"synthetic 40 frames, {workflow} workflow segmentation", seg, truth, vs,
                            image.time_interval, cfg))  # fmt: skip
        out[-1]["segment_seconds"] = round(seg_s, 1)
    out.append(_compare("synthetic 40 frames, truth labels", truth_lab, truth, vs, image.time_interval, cfg))
    return out


def real(data: Path) -> list[dict[str, Any]]:
    import tifffile

    from subcell.image import Image
    from subcell.segment import load_workflow, segment_image
    from subcell.track import TrackConfig, tracks_from_lineage

    out = []
    cho = data / "ctc_fluo-n3dh-cho_3dt"
    ref = tifffile.imread(cho / "Fluo-N3DH-CHO_02_ERR_SEG.tif")  # (T, Z, Y, X), ids consistent over time
    img = tifffile.imread(cho / "Fluo-N3DH-CHO_02_img.tif").reshape(ref.shape)
    vs = (1.0, 0.202, 0.202)  # from the CTC documentation (the files carry none)
    truth = tracks_from_lineage(ref, None, voxel_size=vs)  # ids only: divisions unknown
    # CHO cells move a few µm per frame; the CTC gives no interval in these files: a nominal 1-minute frame and a
    # reach of 10 µm per frame, as a user would state them (--time-interval 60 --max-speed-um-per-min 10)
    cfg = TrackConfig(max_speed_um_per_min=10.0)
    for workflow in ("nucleus", "nucleus_dense"):
        seg = segment_image(Image(img, voxel_size=vs, dims="TZYX"), load_workflow(workflow)).numpy()[:, 0]
        out.append(_compare(f"Fluo-N3DH-CHO 02, {workflow} workflow vs reference masks", seg, truth, vs, 60.0, cfg))
    out.append(_compare("Fluo-N3DH-CHO 02, reference masks re-linked", _shuffle_ids(ref), truth, vs, 60.0, cfg))
    tg = tifffile.imread(data / "tgmm_tracks_3dt" / "tgmm-mini.tif")
    vs_tg = (5.0, 1.0, 1.0)  # z scale 5 (pixels), no physical size given
    truth_tg = tracks_from_lineage(tg, None, voxel_size=vs_tg)
    cfg_tg = TrackConfig(max_speed_um_per_min=6.0)
    out.append(_compare("TGMM mini, its masks re-linked (no lineage in truth)", _shuffle_ids(tg), truth_tg, vs_tg,
                        60.0, cfg_tg))  # fmt: skip
    out += points_2d(data)
    return out


def points_2d(data: Path) -> list[dict[str, Any]]:
    """The 2D CTC crop scored against its point tracks (napari sample data: LoG blobs linked by the package
    author, not CTC truth): the objects a point falls in are matched to it."""
    import tifffile

    from subcell.image import Image
    from subcell.segment import load_workflow, segment_image
    from subcell.track import TrackConfig, timelapse_objects, track_timelapse
    from subcell.track.points import evaluate_point_tracks, read_point_tracks

    folder = data / "ctc_2d_timelapse_tracks"
    movie = tifffile.imread(folder / "2D_timelapse.tif")  # (T, Y, X)
    # no physical size is given: 0.24 µm pixels (the CTC's Fluo-N2DH-GOWT1, which the crop resembles) and a
    # nominal 1-minute frame; the points move up to ~20 px (5 µm) per frame
    vs = (1.0, 0.24, 0.24)
    points = read_point_tracks(folder / "timelapse_track.npy", voxel_size=vs)
    cfg = TrackConfig(max_speed_um_per_min=5.0)
    keys = ("TRA", "DET", "LNK", "SEG", "division_precision", "division_recall", "division_f1", "true_divisions",
            "predicted_divisions", "true_tracks", "predicted_tracks", "true_objects", "predicted_objects",
            "points_matched", "objects_with_several_points")  # fmt: skip
    out = []
    for workflow in ("nucleus", "nucleus_dense"):
        seg = segment_image(Image(movie[:, None], voxel_size=vs, dims="TZYX"), load_workflow(workflow)).numpy()[:, 0]
        ours = track_timelapse(seg, voxel_size=vs, time_interval_s=60.0, config=cfg)
        base = _as_tracks(_laptrack_defaults(timelapse_objects(seg, voxel_size=vs), seg.shape[0]), seg)
        scores = [evaluate_point_tracks(t, points, voxel_size=vs) for t in (ours, base)]
        out.append({"case": f"CTC 2D crop, {workflow} workflow vs point tracks (automatic)",
                    "subcell": {k: scores[0][k] for k in keys}, "laptrack_defaults": {k: scores[1][k] for k in keys},
                    "config": cfg.model_dump()})  # fmt: skip
    return out


def _shuffle_ids(labels: np.ndarray) -> np.ndarray:
    """Per frame, a random permutation of the ids: the linker cannot lean on ids that already follow tracks."""
    rng = np.random.default_rng(0)
    out = np.zeros_like(labels)
    for t in range(labels.shape[0]):
        ids = np.unique(labels[t])
        ids = ids[ids > 0]
        lut = np.zeros(int(labels[t].max()) + 1, dtype=labels.dtype)
        lut[ids] = rng.permutation(ids) if len(ids) else ids
        out[t] = lut[labels[t]]
    return out


def speed() -> list[dict[str, Any]]:
    """Random-walk points in a 3D field at a density like a packed colony (one per ~8 µm spacing), 6 frames."""
    import pandas as pd

    from subcell.track import TrackConfig, link_objects

    rows = []
    for n in (1000, 10000):
        rng = np.random.default_rng(n)
        side = 8.0 * np.sqrt(n)
        pos = np.column_stack([rng.uniform(0, 10, n), rng.uniform(0, side, n), rng.uniform(0, side, n)])
        frames = []
        for t in range(6):
            pos = pos + rng.normal(0, 1.0, pos.shape) * [0.3, 1, 1]
            frames.append(pd.DataFrame({"t": t, "label": np.arange(1, n + 1), "z_um": pos[:, 0], "y_um": pos[:, 1],
                                        "x_um": pos[:, 2], "volume_um3": rng.uniform(200, 400, n),
                                        "mean_intensity": np.nan}))  # fmt: skip
        objs = pd.concat(frames, ignore_index=True)
        cfg = TrackConfig(max_speed_um_per_min=4.0)
        t0 = time.perf_counter()
        tab = link_objects(objs, n_frames=6, time_interval_s=60, config=cfg)
        sec = time.perf_counter() - t0
        correct = float((tab.groupby("track_id")["label"].nunique() == 1).mean())
        rows.append({"objects_per_frame": n, "frames": 6, "seconds": round(sec, 2),
                     "seconds_per_frame": round(sec / 5, 3), "frames_per_second": round(5 / sec, 2),
                     "tracks_with_one_true_identity": round(correct, 4),
                     "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})  # fmt: skip
    return rows


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| case | method | TRA | DET | LNK | SEG | div. P | div. R | div. F1 | divisions true/pred | tracks true/pred |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        for m in ("subcell", "laptrack_defaults"):
            s = r[m]
            lines.append(f"| {r['case']} | {m} | {s['TRA']:.4f} | {s['DET']:.4f} | {s['LNK']:.4f} | {s['SEG']:.4f} | "
                         f"{s['division_precision']:.3f} | {s['division_recall']:.3f} | {s['division_f1']:.3f} | "
                         f"{'?' if s['true_divisions'] is None else s['true_divisions']}/{s['predicted_divisions']} | "
                         f"{s['true_tracks']}/{s['predicted_tracks']} |")  # fmt: skip
    return lines


# results.md: what report() writes, then this line and the sections written by hand below it (kept on a rewrite)
KEPT = "<!-- the sections below are written by hand; bench_track.py keeps them when it rewrites the file -->"


def report(results: dict[str, Any]) -> str:
    lines = ["# Tracking benchmark", "", f"`python benchmarks/track/bench_track.py` — {results.get('when', '')}", ""]
    if "synthetic" in results:
        lines += [
            "## Synthetic 3D+t (exact truth)",
            "",
            f"Data: `subcell {' '.join(SYNTH_CMD)}`; segmentation: "
            f"built-in `nucleus` and `nucleus_dense` workflows on the DNA channel "
            f"({results['synthetic'][0].get('segment_seconds')} and {results['synthetic'][1].get('segment_seconds')} s "
            "for 40 frames). Tracking defaults (1 µm/min, 300 s frames, gaps up to 2 frames, divisions on).",
            "",
        ]
        lines += [*_table(results["synthetic"]), ""]
    if "window" in results:
        lines += [
            "## Synthetic 3D+t, a window on a larger colony (exact truth)",
            "",
            f"Data: `subcell {' '.join(WINDOW_CMD)}`: cells are cut by the field's border, drift in and out of view "
            "and divide out of view; the truth is what the field shows (a track per run of frames in view, parents "
            f"only for divisions in view). Truth tracks {results['window'][0].get('truth_fates', '')}. Each arm with "
            "the border-entry rule (`border_entries`, the default) and without it.",
            "",
        ]
        lines += [*_table(results["window"]), ""]
    if "real" in results:
        lines += [
            "## Real time-lapses (shared data)",
            "",
            "Divisions are not scored where the truth has no lineage "
            "(NaN; predicted divisions then count against precision only). CHO: the reference masks are the "
            "CTC's imperfect ERR_SEG; 5 of its 11 ids jump 17-24 µm between consecutive frames (per-frame "
            "numbering, not tracking), so TRA there is agreement with that numbering, not with true tracks. "
            "TGMM: its tracks are TGMM's automatic lineages, without parent links. CTC 2D crop: scored against point "
            "tracks (a point matches the object it falls in; SEG undefined), which are themselves automatic; most "
            "unmatched points lie on the crop's last row or column (the blob detector's responses at the border).",
            "",
        ]
        lines += [*_table(results["real"]), ""]
    if "speed" in results:
        lines += ["## Linking speed (random walks, gap closing and divisions on)", "",
                  "| objects per frame | s per frame | frames/s | tracks with one true identity | peak RSS MB |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for r in results["speed"]:
            lines.append(f"| {r['objects_per_frame']} | {r['seconds_per_frame']} | {r['frames_per_second']} | "
                         f"{r['tracks_with_one_true_identity']} | {r['peak_rss_mb']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="+", default=["synthetic", "window", "real", "speed"])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/subcell-bench-track"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = HERE / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for section in args.sections:
        if section == "synthetic":
            results["synthetic"] = synthetic(args.workdir)
        elif section == "window":
            results["window"] = window(args.workdir)
        elif section == "real":
            data = os.environ.get("SUBCELL_TEST_DATA")
            if not data:
                raise SystemExit("the real section needs SUBCELL_TEST_DATA")
            results["real"] = real(Path(data))
        elif section == "speed":
            results["speed"] = speed()
        path.write_text(json.dumps(results, indent=2, default=float))
        md = HERE / "results.md"
        old = md.read_text() if md.exists() else ""
        kept = old[old.index(KEPT) :] if KEPT in old else KEPT + "\n"  # later sessions' hand-written sections
        md.write_text(report(results) + "\n" + kept)
        print(report(results))


if __name__ == "__main__":
    main()
