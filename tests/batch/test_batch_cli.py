"""`subcell batch` on a real distributed.LocalCluster (processes): same outputs as the single command, resumable,
failure-isolated, and bad input refused before anything runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from subcell import io, synth
from subcell.cli.main import run
from subcell.io import read

N_FIELDS = 8  # enough for two workers to take several items each


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N_FIELDS small synthetic fields, a manifest naming them plus one missing and one corrupt file."""
    root = tmp_path_factory.mktemp("collection")
    rows = []
    for s in range(N_FIELDS):
        synth.write_field(synth.synth_field(shape=(12, 160, 160), n_cells=2, seed=100 + s), root / f"f{s:02d}.ome.zarr")
        rows.append({"id": f"f{s:02d}", "source": f"f{s:02d}.ome.zarr"})
    (root / "corrupt.ome.tif").write_bytes(b"II*\x00 this is not a TIFF")
    rows += [{"id": "missing", "source": "missing.ome.zarr"}, {"id": "corrupt", "source": "corrupt.ome.tif"}]
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def _labels(path: Path) -> np.ndarray:
    return np.asarray(read(path).numpy())


def test_batch_segment_equals_single_runs_isolates_failures_and_resumes(
    collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["batch", "segment", str(collection / "manifest.csv"), str(out), "-w", "nucleus", "-c", "dna",
            "--workers", "2", "--quiet"]  # fmt: skip
    assert run(args) == 1  # two rows fail, the rest finish
    msg = capsys.readouterr().out
    assert f"{N_FIELDS} done, 0 skipped, 2 failed: see {out / 'batch.parquet'}" in msg
    table = pd.read_parquet(out / "batch.parquet")
    assert list(table.id) == [f"f{s:02d}" for s in range(N_FIELDS)] + ["missing", "corrupt"]
    status = dict(zip(table.id, table.status, strict=True))
    assert status["missing"] == status["corrupt"] == "failed"
    errors = dict(zip(table.id, table.error, strict=True))
    assert "missing.ome.zarr: file not found" in errors["missing"]
    assert "corrupt.ome.tif" in errors["corrupt"] and "\n" not in errors["corrupt"]
    done = table[table.status == "done"]
    assert len(done) == N_FIELDS and (done.seconds > 0).all() and (done.peak_memory_mb > 50).all()
    assert (done.memory_estimate_mb > 0).all() and done.config_hash.nunique() == 1
    for _, runs in done.groupby("worker"):  # one thread per worker: its items never overlap in time
        runs = runs.sort_values("started")
        assert (runs.started.values[1:] >= (runs.started + runs.seconds).values[:-1] - 0.05).all()
    # every output is the single command's output on that row
    for s in range(N_FIELDS):
        single = tmp_path / f"single{s}.ome.zarr"
        assert run(["segment", str(collection / f"f{s:02d}.ome.zarr"), str(single), "-w", "nucleus", "-c", "dna"]) == 0
        np.testing.assert_array_equal(_labels(out / f"f{s:02d}.ome.zarr"), _labels(single))
    assert not list(out.glob(".*partial*"))

    # rerun: nothing done is redone, the failed ones are tried again
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("f*.ome.zarr")}
    assert run(args) == 1
    assert f"0 done, {N_FIELDS} skipped, 2 failed" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("f*.ome.zarr")} == mtimes

    # a changed input is stale: only that item is redone
    src = collection / "f03.ome.zarr"
    meta = src / "zarr.json" if (src / "zarr.json").exists() else src / ".zattrs"
    time.sleep(0.01)
    os.utime(meta)
    assert run(args) == 1
    assert f"1 done, {N_FIELDS - 1} skipped, 2 failed" in capsys.readouterr().out
    again = pd.read_parquet(out / "batch.parquet").set_index("id")
    assert again.loc["f03", "status"] == "done" and again.loc["f04", "status"] == "skipped"

    # the same folder with other options is another batch's: refused, nothing touched
    other = ["batch", "segment", str(collection / "manifest.csv"), str(out), "-w", "nucleoli", "-c", "nucleoli",
             "--workers", "1", "--quiet"]  # fmt: skip
    assert run(other) == 2
    err = capsys.readouterr().err
    assert "holds the outputs of another batch" in err and err.count("\n") == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("f0[0-2].ome.zarr")} == {
        k: v for k, v in mtimes.items() if k[:3] in ("f00", "f01", "f02")
    }


def test_batch_measure_gathers_one_parquet_dataset(collection: Path, tmp_path: Path) -> None:
    rows = [{"id": f"f{s:02d}", "source": f"f{s:02d}.ome.zarr"} for s in range(3)]
    pd.DataFrame(rows).to_csv(collection / "three.csv", index=False)
    labels = tmp_path / "labels"
    assert run(["batch", "segment", str(collection / "three.csv"), str(labels), "-w", "nucleus", "-c", "dna",
                "--workers", "1", "--quiet"]) == 0  # fmt: skip
    pd.DataFrame([{"id": r["id"], "source": str(labels / f"{r['id']}.ome.zarr")} for r in rows]).to_csv(
        tmp_path / "labels.csv", index=False
    )
    out = tmp_path / "measured"
    assert run(["batch", "measure", str(tmp_path / "labels.csv"), str(out), "--workers", "1", "--quiet"]) == 0
    data = pd.read_parquet(out / "measurements")  # a folder of parquet files: one dataset
    singles = [pd.read_parquet(out / f"{r['id']}.parquet") for r in rows]
    assert len(data) == sum(len(t) for t in singles) > 0
    assert {"id", "source", "voxel_size_z", "voxel_size_y", "voxel_size_x"} <= set(data.columns)
    vs = read(labels / "f00.ome.zarr").voxel_size.as_tuple()
    first = data[data.id == "f00"]
    assert tuple(first[["voxel_size_z", "voxel_size_y", "voxel_size_x"]].iloc[0]) == pytest.approx(vs)
    pd.testing.assert_frame_equal(
        first.drop(columns=["id", "source", "voxel_size_z", "voxel_size_y", "voxel_size_x"]).reset_index(drop=True),
        singles[0],
    )
    # rows of an image and its labels beside it (`manifest make --companion labels=…`): the labels measured in the
    # image's intensities, as the single command does (the labels column was ignored: the image measured as labels)
    pd.DataFrame([{"id": r["id"], "source": str(collection / r["source"]), "labels": str(labels / f"{r['id']}.ome.zarr")}
                  for r in rows]).to_csv(tmp_path / "pairs.csv", index=False)  # fmt: skip
    assert run(["batch", "measure", str(tmp_path / "pairs.csv"), str(tmp_path / "paired"), "--workers", "1",
                "--quiet"]) == 0  # fmt: skip
    assert run(["measure", str(labels / "f01.ome.zarr"), str(tmp_path / "single.parquet"), "--intensity",
                str(collection / "f01.ome.zarr")]) == 0  # fmt: skip
    single = pd.read_parquet(tmp_path / "single.parquet")
    assert "dna_mean" in single.columns and len(single) > 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "paired" / "f01.parquet"), single)
    # the neighbourhood, compartments (a `nuclei` column) and radial shells of every item, gathered: the same as
    # the single command's, its text column of neighbour ids included
    pd.DataFrame([{"id": r["id"], "source": str(collection / r["source"]), "labels": str(labels / f"{r['id']}.ome.zarr"),
                   "nuclei": str(labels / f"{r['id']}.ome.zarr")} for r in rows]).to_csv(tmp_path / "nc.csv", index=False)  # fmt: skip
    opts = ["--neighbours", "--neighbour-um", "3", "--radial", "2"]
    assert run(["batch", "measure", str(tmp_path / "nc.csv"), str(tmp_path / "nc"), *opts, "--workers", "1",
                "--quiet"]) == 0  # fmt: skip
    assert run(["measure", str(labels / "f01.ome.zarr"), str(tmp_path / "nc1.parquet"), "--intensity",
                str(collection / "f01.ome.zarr"), "--nuclei", str(labels / "f01.ome.zarr"), *opts]) == 0  # fmt: skip
    single = pd.read_parquet(tmp_path / "nc1.parquet")
    assert {"neighbour_ids", "nuclei", "dna_nc_ratio", "dna_radial_mean"} <= set(single.columns)
    gathered = pd.read_parquet(tmp_path / "nc" / "measurements")
    got = gathered[gathered.id == "f01"].drop(columns=["id", "source", "voxel_size_z", "voxel_size_y", "voxel_size_x"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), single)


def test_batch_synth_range_matches_single_synth(tmp_path: Path) -> None:
    out = tmp_path / "fields"
    opts = ["--shape", "8", "128", "160", "--n-cells", "1"]
    assert run(["batch", "synth", "5:7", str(out), *opts, "--workers", "1", "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.ome.zarr")) == ["seed00005.ome.zarr", "seed00006.ome.zarr"]
    assert run(["synth", str(tmp_path / "one.ome.zarr"), *opts, "--seed", "6"]) == 0
    np.testing.assert_array_equal(read(out / "seed00006.ome.zarr").numpy(), read(tmp_path / "one.ome.zarr").numpy())


def test_dry_run_plans_without_running(collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "planned"
    assert run(["batch", "segment", str(collection / "manifest.csv"), str(out), "-w", "nucleus", "--dry-run"]) == 0
    assert f"{N_FIELDS + 2} items planned" in capsys.readouterr().out
    assert not out.exists()


def test_bad_input_is_refused_before_anything_runs(
    collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # every manifest problem at once
    pd.DataFrame({"id": ["a", "a", "b"], "source": ["f00.ome.zarr", "f01.ome.zarr", "f02.ome.zarr"],
                  "split": ["train", "train", "nope"]}).to_csv(collection / "bad.csv", index=False)  # fmt: skip
    out = tmp_path / "never"
    assert run(["batch", "segment", str(collection / "bad.csv"), str(out), "-w", "nucleus"]) == 2
    err = capsys.readouterr().err
    assert "2 problems found" in err and "column 'id'" in err and "column 'split'" in err
    # the command's own options are checked by the command's parser
    assert run(["batch", "segment", str(collection / "manifest.csv"), str(out), "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert "segment options" in err and "--no-such-option" in err and err.count("\n") == 1
    assert run(["batch", "frobnicate", str(collection / "manifest.csv"), str(out)]) == 2
    assert "COMMAND" in capsys.readouterr().err
    assert run(["batch", "segment", str(collection), str(out), "-w", "nucleus"]) == 2  # a folder, not a batch's
    err = capsys.readouterr().err
    assert "a folder: expected a .csv or .parquet manifest (or a batch OUTDIR" in err and err.count("\n") == 1
    # a scheduler that is not there
    t0 = time.perf_counter()
    code = run(["batch", "segment", str(collection / "manifest.csv"), str(out), "-w", "nucleus",
                "--scheduler", "tcp://127.0.0.1:9", "--quiet"])  # fmt: skip
    assert code == 2 and time.perf_counter() - t0 < 5  # a refused connection fails at once
    err = capsys.readouterr().err
    assert "cannot reach the scheduler at tcp://127.0.0.1:9" in err and err.count("\n") == 1
    assert not out.exists()  # nothing was started, not even the output folder


def test_queue_config_is_validated_and_builds_a_slurm_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from subcell.batch import build_jobqueue_cluster, load_jobqueue_config

    good = tmp_path / "slurm.yaml"
    good.write_text("queue_system: slurm\njobs: 4\ncores: 8\nmemory: 32GB\nprocesses: 2\nwalltime: '02:00:00'\n"
                    "queue: gpu\naccount: cellsci\ngpus_per_job: 2\njob_extra_directives: ['--exclusive']\n")  # fmt: skip
    cfg = load_jobqueue_config(good)
    cluster = build_jobqueue_cluster(cfg)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p gpu", "#SBATCH -A cellsci", "#SBATCH -t 02:00:00", "#SBATCH --exclusive",
                 "#SBATCH --gres=gpu:2", "--nworkers 2", "--resources GPU=1",
                 "MALLOC_TRIM_THRESHOLD_=None", "MALLOC_ARENA_MAX=1"):  # fmt: skip
        assert line in script, line
    assert "#SBATCH --mem=30G" in script or "#SBATCH --mem=" in script
    bad = tmp_path / "bad.yaml"
    bad.write_text("queue_system: slurm\ncores: 8\nmemory: lots\nwaltime: '1:00:00'\n")
    code = run(["batch", "synth", "0:2", str(tmp_path / "x"), "--scheduler", str(bad), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and "memory" in err and err.count("\n") == 1
    assert not (tmp_path / "x" / "seed00000.ome.zarr").exists()
    assert json.loads(json.dumps(cfg.model_dump()))["jobs"] == 4


def test_batch_track_equals_single_runs_and_gathers_the_tables(tmp_path: Path) -> None:
    from subcell.synth import synth_field, write_field

    rows = []
    for s in range(2):
        f = synth_field(shape=(8, 128, 128), seed=30 + s, **{"time.frames": 4, "time.division_probability": 0.2})
        write_field(f, tmp_path / f"m{s}.ome.zarr")
        rows.append({"id": f"m{s}", "source": f"m{s}.ome.zarr", "label": "nucleus"})
    # per-row options (the interval contradicts the file's 300 s: taken as the batch's --force-metadata says)
    rows[1] |= {"intensity": "m1.ome.zarr", "intensity_channel": "dna", "time_interval": 120}
    rows.append({"id": "nolabel", "source": "m0.ome.zarr", "label": None})  # an image with labels inside: which?
    pd.DataFrame(rows).to_csv(tmp_path / "movies.csv", index=False)
    out = tmp_path / "tracked"
    assert run(["batch", "track", str(tmp_path / "movies.csv"), str(out), "--max-speed-um-per-min", "2",
                "--force-metadata", "--workers", "1", "--quiet"]) == 1  # fmt: skip
    status = pd.read_parquet(out / "batch.parquet").set_index("id")
    assert list(status.status) == ["done", "done", "failed"]
    assert "choose one with --label NAME" in status.loc["nolabel", "error"]
    from subcell.cli.batch import COMMANDS, WORKER_BASE
    from subcell.io.info import array_nbytes

    labels = array_nbytes(tmp_path / "m0.ome.zarr" / "labels" / "nucleus")  # what is read, not the image
    from subcell.io import read_labels

    frame = labels / read_labels(tmp_path / "m0.ome.zarr", "nucleus").shape[0]  # tracked a frame at a time
    want_mb = (WORKER_BASE + COMMANDS["track"].memory_factor * frame) / 2**20
    assert status.loc["m0", "memory_estimate_mb"] == pytest.approx(want_mb, abs=1)
    tracks, lineage = pd.read_parquet(out / "tracks"), pd.read_parquet(out / "lineage")  # one dataset each
    for s, extra in enumerate([[], ["--image", str(tmp_path / "m1.ome.zarr"), "-c", "dna", "--time-interval", "120"]]):
        single = tmp_path / f"single{s}"
        assert run(["track", str(tmp_path / f"m{s}.ome.zarr"), str(single), "--label", "nucleus",
                    "--max-speed-um-per-min", "2", "--force-metadata", *extra]) == 0  # fmt: skip
        want = pd.read_parquet(single / "tracks.parquet")
        assert want.mean_intensity.notna().all() if extra else want.mean_intensity.isna().all()
        assert f"time_interval_s: {120.0 if extra else 300.0}" in (out / f"m{s}.tracks" / "config.yaml").read_text()
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"m{s}.tracks" / "tracks.parquet"), want)
        mine = tracks[tracks.id == f"m{s}"]
        assert (mine.source == str(tmp_path / f"m{s}.ome.zarr")).all()
        pd.testing.assert_frame_equal(mine.drop(columns=["id", "source"]).reset_index(drop=True), want)
        assert (lineage.id == f"m{s}").sum() == len(pd.read_parquet(single / "lineage.parquet")) > 0
        np.testing.assert_array_equal(read(out / f"m{s}.tracks" / "labels.ome.zarr").numpy(),
                                      read(single / "labels.ome.zarr").numpy())  # fmt: skip
    # every movie's tracks scored against its truth (the synthetic lineage), and one against points (a geff whose
    # label image is not beside it): a metrics row each, per-track rows where the truth has masks
    import json
    import shutil

    shutil.copytree(out / "m1.tracks" / "tracks.geff", tmp_path / "points.geff")
    pd.DataFrame({"id": ["m0", "m1", "m1pts", "m0geff", "m1xml"],
                  "source": [*(str(out / f"m{s}.tracks") for s in (0, 1, 1)), str(out / "m0.tracks" / "tracks.geff"),
                             str(out / "m1.tracks" / "tracks.xml")],
                  "target": ["m0.ome.zarr", "m1.ome.zarr", "points.geff", "m0.ome.zarr", "m1.ome.zarr"],
                  "truth_label": ["nucleus", "nucleus", None, "nucleus", "nucleus"]}).to_csv(tmp_path / "scored.csv",
                                                                                            index=False)  # fmt: skip
    scores = tmp_path / "scores"
    assert run(["batch", "evaluate-tracks", str(tmp_path / "scored.csv"), str(scores), "--workers", "1",
                "--quiet"]) == 0  # fmt: skip
    gathered = pd.read_parquet(scores / "tracking_scores").set_index("id")
    for item, truth in (("m0", ["m0.ome.zarr", "--truth-label", "nucleus"]), ("m1pts", ["points.geff"])):
        single = tmp_path / f"single_{item}"
        assert run(["evaluate-tracks", str(out / f"{item[:2]}.tracks"), str(tmp_path / truth[0]), *truth[1:],
                    "-o", str(single)]) == 0  # fmt: skip
        want = json.loads((single / "metrics.json").read_text())
        assert (
            gathered.loc[item, "TRA"] == pytest.approx(want["TRA"])
            and gathered.loc[item, "true_tracks"] == want["true_tracks"]
        )
    assert np.isnan(gathered.loc["m1pts", "SEG"]) and gathered.loc["m1pts", "TRA"] == pytest.approx(1.0)
    # the geff with its labels as the prediction: the same tracks as the folder, the same scores
    assert gathered.loc["m0geff", ["TRA", "LNK", "SEG"]].tolist() == gathered.loc["m0", ["TRA", "LNK", "SEG"]].tolist()
    status = pd.read_parquet(scores / "batch.parquet").set_index("id")
    assert status.loc["m0geff", "memory_estimate_mb"] == pytest.approx(status.loc["m0", "memory_estimate_mb"])
    # the TrackMate model as a point tool's prediction against the true masks, sized by them
    # every row's columns in the gathered table, though the first row (scored on masks) has no point measures
    assert gathered.loc["m1xml", "points_are"] == "prediction" and gathered.loc["m1pts", "points_are"] == "truth"
    assert gathered.loc["m1xml", "TRA"] >= 0.9 and pd.isna(gathered.loc["m0", "points_matched"])
    true_frame = array_nbytes(tmp_path / "m1.ome.zarr", per_frame=True)  # the true movie's frames, not the XML file
    want_mb = (WORKER_BASE + COMMANDS["evaluate-tracks"].memory_factor * true_frame) / 2**20
    assert status.loc["m1xml", "memory_estimate_mb"] == pytest.approx(want_mb, abs=1)
    per_track = pd.read_parquet(scores / "per_track")
    assert set(per_track.id) == {"m0", "m1", "m0geff"}  # points on either side have no per-track table


def test_a_finished_batch_is_the_manifest_of_the_next(
    collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from subcell.batch.chain import batch_manifest

    rows = [{"id": f"f{s:02d}", "source": f"f{s:02d}.ome.zarr", "source_channel": "dna", "structure": "nucleoli",
             "intensity": f"f{s:02d}.ome.zarr", "label": "nucleus"} for s in range(2)]  # fmt: skip
    rows.append({"id": "missing", "source": "missing.ome.zarr", "source_channel": "dna"})
    pd.DataFrame(rows).to_csv(collection / "chain.csv", index=False)
    seg, measured = tmp_path / "seg", tmp_path / "measured"
    assert run(["batch", "segment", str(collection / "chain.csv"), str(seg), "-w", "nucleus", "--workers", "1",
                "--quiet"]) == 1  # fmt: skip
    capsys.readouterr()
    assert (
        run(["batch", "measure", str(seg), str(measured), "--workers", "1", "--quiet"]) == 0
    )  # the folder as manifest
    assert f"note: {seg}: 1 items of that batch failed or have no output; left out" in capsys.readouterr().err
    table = pd.read_parquet(measured / "batch.parquet")
    assert list(table.id) == ["f00", "f01"] and list(table.source) == [
        str(seg / "f00.ome.zarr"),
        str(seg / "f01.ome.zarr"),
    ]
    for s in range(2):  # the intensity column was carried: each table is the single command's with --intensity
        single = tmp_path / f"single{s}.parquet"
        assert run(["measure", str(seg / f"f{s:02d}.ome.zarr"), str(single), "--intensity",
                    str(collection / f"f{s:02d}.ome.zarr")]) == 0  # fmt: skip
        pd.testing.assert_frame_equal(pd.read_parquet(measured / f"f{s:02d}.parquet"), pd.read_parquet(single))
    # what described the old source (its channel, the label image inside it) is not carried; the rest is, also over
    # two batches
    m, left_out = batch_manifest(measured)
    assert left_out == 0 and [r.source_channel for r in m] == [None, None]
    assert [r.structure for r in m] == ["nucleoli"] * 2
    assert m[0].metadata["intensity"] == str(collection / "f00.ome.zarr") and "label" not in m[0].metadata


def test_the_report_of_a_batch_summarises_the_collection(collection: Path, tmp_path: Path) -> None:
    from subcell.report.collect import collect_sections

    labels, measured = tmp_path / "labels", tmp_path / "measured"
    assert run(["batch", "segment", str(collection / "manifest.csv"), str(labels), "-w", "nucleus", "-c", "dna",
                "--workers", "2", "--quiet"]) == 1  # fmt: skip
    assert run(["batch", "measure", str(labels), str(measured), "--workers", "1", "--quiet"]) == 0
    sections = collect_sections(labels)
    assert [s.name for s in sections] == ["Collection"]  # the summary, no section per item
    sec = sections[0]
    assert f"{N_FIELDS + 2} items, {N_FIELDS} done in this run, 0 done before, 2 failed" in sec.lines[0]
    assert len(sec.figures) == 1 and sec.figures[0][1][:4] == b"\x89PNG"
    failed = sec.tables[0][1]
    assert list(failed.id) == ["missing", "corrupt"] and failed.error.str.contains("file not found").any()
    assert sec.provenance["command"] == "segment" and sec.provenance["manifest"] == str(collection / "manifest.csv")
    objects = sum(len(pd.read_parquet(measured / f"f{s:02d}.parquet")) for s in range(N_FIELDS))
    lines = collect_sections(measured)[0].lines
    assert any(ln.startswith(f"measurements/: {objects} rows from {N_FIELDS} items") for ln in lines), lines


def test_batch_evaluate_seg_scores_every_row_against_its_truth(
    collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels, scores = tmp_path / "labels", tmp_path / "scores"
    rows = [{"id": f"f{s:02d}", "source": f"f{s:02d}.ome.zarr"} for s in range(2)]
    pd.DataFrame(rows).to_csv(collection / "two.csv", index=False)
    assert run(["batch", "segment", str(collection / "two.csv"), str(labels), "-w", "nucleus", "-c", "dna",
                "--workers", "1", "--quiet"]) == 0  # fmt: skip
    truth = [str(collection / f"f{s:02d}.ome.zarr" / "labels" / "nucleus") for s in range(2)]
    pd.DataFrame({"id": ["f00", "f01", "notruth"], "source": [str(labels / "f00.ome.zarr"), str(labels / "f01.ome.zarr"),
                  str(labels / "f00.ome.zarr")], "target": [*truth, None]}).to_csv(tmp_path / "pairs.csv", index=False)  # fmt: skip
    capsys.readouterr()
    assert run(["batch", "evaluate-seg", str(tmp_path / "pairs.csv"), str(scores), "--workers", "1", "--quiet"]) == 2
    assert (
        "row 3, column 'target' (or 'truth'): expected the path of the ground-truth labels" in capsys.readouterr().err
    )
    assert not scores.exists()  # a manifest problem: nothing started
    pd.read_csv(tmp_path / "pairs.csv").head(2).to_csv(tmp_path / "pairs.csv", index=False)  # the row without truth
    assert run(["batch", "evaluate-seg", str(tmp_path / "pairs.csv"), str(scores), "--workers", "1", "--quiet"]) == 0
    gathered = pd.read_parquet(scores / "scores")
    for s in range(2):
        single = tmp_path / f"single{s}.parquet"
        assert run(["evaluate-seg", str(labels / f"f{s:02d}.ome.zarr"), truth[s], "--out", str(single)]) == 0
        want = pd.read_parquet(single)
        pd.testing.assert_frame_equal(pd.read_parquet(scores / f"f{s:02d}.parquet"), want)
        mine = gathered[gathered.id == f"f{s:02d}"].drop(columns=["id", "source"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, want)
    assert (gathered.tp > 0).any() and set(gathered.iou_threshold) == {0.5, 0.6, 0.7, 0.8, 0.9}


def test_batch_labelfree_evaluate_scores_every_row_as_the_single_command(
    collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each row's prediction (here the field's noise-free DNA) against its target (the noisy DNA) inside its cells:
    the table `labelfree evaluate` writes for that row, gathered into one dataset; one figure for all is refused."""
    fields = [collection / f"f{s:02d}.ome.zarr" for s in range(2)]
    pd.DataFrame({"id": ["f00", "f01"], "source": [str(f) for f in fields], "target": [str(f) for f in fields],
                  "mask_cell": [str(f / "labels" / "cell") for f in fields]}).to_csv(tmp_path / "rows.csv", index=False)  # fmt: skip
    out, opts = tmp_path / "metrics", ["--channel", "dna_noise_free=dna"]
    batch = ["batch", "labelfree", "evaluate", str(tmp_path / "rows.csv"), str(out), *opts, "--workers", "1", "--quiet"]
    capsys.readouterr()
    assert run([*batch, "--figure", str(tmp_path / "f.png")]) == 2
    assert "--figure names one file" in capsys.readouterr().err and not out.exists()
    assert run(batch) == 0
    gathered = pd.read_parquet(out / "metrics")
    for s, field in enumerate(fields):
        single = tmp_path / f"single{s}.parquet"
        assert run(["labelfree", "evaluate", str(field), str(field), *opts, "--cells", str(field / "labels" / "cell"),
                    "--out", str(single)]) == 0  # fmt: skip
        want = pd.read_parquet(single)
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"f{s:02d}.parquet"), want)
        mine = gathered[gathered.id == f"f{s:02d}"].drop(columns=["id", "source"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, want)
        assert want.noise_source[0] == "noise-free truth" and want.cells[0] >= 1 and 0 < want.pearson_r[0] < 1


def _nuclei_field(n: int, *, speck: bool = False) -> np.ndarray:
    """A (12, 64, 64) field of ``n`` separate bright ellipsoids (nuclei at 0.5 × 0.2 × 0.2 µm voxels) on noise;
    ``speck``: a well without cells instead, flat but for a speck far smaller than a nucleus."""
    rng = np.random.default_rng(n)
    z, y, x = np.ogrid[:12, :64, :64]
    vol = np.full((12, 64, 64), 10.0) if speck else rng.normal(10, 2, (12, 64, 64))
    vol[5:7, 30:32, 30:32] += 2 if speck else 0
    for i in range(n):
        cy, cx = 16 + 32 * (i // 2), 16 + 32 * (i % 2)
        vol[((z - 6) / 4.0) ** 2 + ((y - cy) / 10.0) ** 2 + ((x - cx) / 10.0) ** 2 < 1] += 200
    return vol.astype(np.uint16)


def test_a_plate_runs_field_by_field_and_its_tables_keep_the_wells(tmp_path: Path) -> None:
    from tests.conftest import write_plate

    write_plate(tmp_path / "p1.zarr", {"A/1": [_nuclei_field(1), _nuclei_field(2)], "B/2": [_nuclei_field(4)],
                                       "B/1": [_nuclei_field(0, speck=True)]})  # fmt: skip
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path / "p1.zarr")]) == 0
    seg, measured = tmp_path / "seg", tmp_path / "measured"
    assert run(["batch", "segment", str(tmp_path / "m.csv"), str(seg), "-w", "nucleus", "--workers", "1",
                "--quiet"]) == 0  # fmt: skip
    assert run(["batch", "measure", str(seg), str(measured), "--workers", "1", "--quiet"]) == 0
    data = pd.read_parquet(measured / "measurements")
    assert data.groupby("well").size().to_dict() == {"A1": 3, "B2": 4}  # objects per well (B1's field: none)
    assert data.groupby("id").field.first().to_dict() == {"p1_A_1_0": "0", "p1_A_1_1": "1", "p1_B_2_0": "0"}
    from subcell.report.collect import collect_sections

    (collection,) = collect_sections(measured)  # the plate's readout: the empty well counts 0, not blank
    assert any(title == "measurements/ per well of plate p1: 3 wells" for title, _ in collection.figures)
    wells = next(t for title, t in collection.tables if title.startswith("measurements/ per well"))
    assert wells[["well", "fields", "objects"]].values.tolist() == [["A1", 2, 3], ["B1", 1, 0], ["B2", 1, 4]]
    single = tmp_path / "single.parquet"  # each field is the single command's run on the field's own path
    assert run(["segment", str(tmp_path / "p1.zarr" / "B" / "2" / "0"), str(tmp_path / "b2.ome.zarr"), "-w",
                "nucleus"]) == 0  # fmt: skip
    assert run(["measure", str(tmp_path / "b2.ome.zarr"), str(single)]) == 0
    pd.testing.assert_frame_equal(
        data[data.id == "p1_B_2_0"][pd.read_parquet(single).columns].reset_index(drop=True), pd.read_parquet(single)
    )


def test_a_plates_labels_go_into_its_fields_and_a_rerun_skips_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import cli_user_error, write_plate

    write_plate(tmp_path / "p1.zarr", {"A/1": [_nuclei_field(1), _nuclei_field(3)]})
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path / "p1.zarr")]) == 0
    seg = tmp_path / "seg"
    args = ["batch", "segment", str(tmp_path / "m.csv"), str(seg), "--into-labels", "nuclei", "-w", "nucleus",
            "--workers", "1", "--quiet"]  # fmt: skip
    assert run(args) == 0
    for f, n in (("0", 1), ("1", 3)):  # each field holds its own labels, as the single command writes them
        field = tmp_path / "p1.zarr" / "A" / "1" / f
        assert io.label_names(field) == ["nuclei"]
        assert run(["segment", str(field), str(tmp_path / f"single{f}.ome.zarr"), "-w", "nucleus"]) == 0
        np.testing.assert_array_equal(
            io.read_labels(field, "nuclei").numpy(), _labels(tmp_path / f"single{f}.ome.zarr")
        )
        assert len(np.unique(_labels(tmp_path / f"single{f}.ome.zarr"))) == n + 1
    capsys.readouterr()
    assert run(args) == 0 and "0 done, 2 skipped, 0 failed" in capsys.readouterr().out  # writing them changed nothing
    measured = tmp_path / "measured"  # the finished batch as the next one's manifest: the labels are its sources
    assert run(["batch", "measure", str(seg), str(measured), "--workers", "1", "--quiet"]) == 0
    measurements = pd.read_parquet(measured / "measurements")
    assert measurements.groupby("field").size().to_dict() == {"0": 1, "1": 3}
    # each nucleus measured in the field it was found in (the chain's intensity: the label's own image)
    single = tmp_path / "single_m.parquet"
    field = tmp_path / "p1.zarr" / "A" / "1" / "1"
    assert run(["measure", str(field / "labels" / "nuclei"), str(single), "--intensity", str(field)]) == 0
    mine = measurements[measurements.id == "p1_A_1_1"][pd.read_parquet(single).columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, pd.read_parquet(single))
    assert "c0_mean" in mine.columns  # the field's one channel
    from subcell.report.collect import collect_sections

    (collection,) = collect_sections(measured)  # the plate's readout has the wells' intensity
    wells = next(t for title, t in collection.tables if title.startswith("measurements/ per well"))
    assert wells.median_c0_mean.iloc[0] == pytest.approx(measurements.c0_mean.median(), rel=1e-3)
    err = cli_user_error(capsys, "batch", "measure", str(tmp_path / "m.csv"), str(tmp_path / "x"), "--into-labels",
                         "nuclei")  # fmt: skip
    assert "measure does not write labels; --into-labels is for segment, labelfree-nuclei" in err
    import tifffile  # a source that is no OME-Zarr image has nowhere to take a label: its row is refused

    tifffile.imwrite(tmp_path / "pos.ome.tif", _nuclei_field(1), ome=True, metadata={"axes": "ZYX"})
    pd.DataFrame({"source": ["pos.ome.tif"], "voxel_size_z": [0.5], "voxel_size_y": [0.2], "voxel_size_x": [0.2]}
                 ).to_csv(tmp_path / "tif.csv", index=False)  # fmt: skip
    assert run(["batch", "segment", str(tmp_path / "tif.csv"), str(tmp_path / "y"), "--into-labels", "nuclei", "-w",
                "nucleus"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert (
        "row 1, column 'source'" in err
        and "--into-labels needs an OME-Zarr image" in err
        and not (tmp_path / "y").exists()
    )


def _per_well_tables(manifest: Path, tmp_path: Path) -> dict[str, pd.DataFrame]:
    """The per-well tables of the report of `batch segment --into-labels` then `batch measure` over ``manifest``."""
    from subcell.report.collect import collect_sections

    seg, measured = tmp_path / "seg", tmp_path / "measured"
    assert run(["batch", "segment", str(manifest), str(seg), "--into-labels", "nuclei", "-w", "nucleus",
                "--workers", "1", "--quiet"]) == 0  # fmt: skip
    assert run(["batch", "measure", str(seg), str(measured), "--workers", "1", "--quiet"]) == 0
    (collection,) = collect_sections(measured)
    return {title.split(" (")[0]: t for title, t in collection.tables if "per well" in title}


def test_a_batch_over_two_plates_maps_each_plate(tmp_path: Path) -> None:
    from tests.conftest import write_plate

    (tmp_path / "screen").mkdir()
    write_plate(tmp_path / "screen" / "day1.zarr", {"A/1": [_nuclei_field(1)], "A/2": [_nuclei_field(2)]})
    write_plate(tmp_path / "screen" / "day2.zarr", {"A/1": [_nuclei_field(3)]})
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path / "screen")]) == 0
    tables = _per_well_tables(tmp_path / "m.csv", tmp_path)
    assert set(tables) == {"measurements/ per well of plate day1", "measurements/ per well of plate day2"}
    day1, day2 = tables["measurements/ per well of plate day1"], tables["measurements/ per well of plate day2"]
    assert day1[["well", "objects"]].values.tolist() == [["A1", 1], ["A2", 2]]  # A1 of each plate kept apart
    assert day2[["well", "objects"]].values.tolist() == [["A1", 3]]


def test_a_plate_imaged_twice_maps_each_acquisition(tmp_path: Path) -> None:
    """NGFF acquisitions: a plate imaged at 0 h and 24 h holds both runs' fields in its wells; each field's
    acquisition is a manifest column, and the plate readout is per acquisition, not pooled."""
    from tests.conftest import write_plate

    write_plate(tmp_path / "p.zarr", {"A/1": [_nuclei_field(1), _nuclei_field(3)], "A/2": [_nuclei_field(2)]},
                acquisitions={1: "0h", 2: "24h"}, field_acquisitions={"A/1": [1, 2], "A/2": [1]})  # fmt: skip
    assert run(["manifest", "make", str(tmp_path / "m.csv"), str(tmp_path / "p.zarr")]) == 0
    assert pd.read_csv(tmp_path / "m.csv", dtype=str).acquisition.tolist() == ["0h", "24h", "0h"]
    assert io.describe(tmp_path / "p.zarr")["plate"]["acquisitions"] == 2
    tables = _per_well_tables(tmp_path / "m.csv", tmp_path)
    first, second = (
        "measurements/ per well of plate p, acquisition 0h",
        "measurements/ per well of plate p, acquisition 24h",
    )
    assert set(tables) == {first, second}
    assert tables[first][["well", "objects"]].values.tolist() == [["A1", 1], ["A2", 2]]
    assert tables[second][["well", "objects", "fields"]].values.tolist() == [["A1", 3, 1]]


def test_segmented_labels_are_measured_in_their_plain_tiff_movie_read_with_its_axes(tmp_path: Path) -> None:
    """`batch segment` of a plain TIFF movie (axes TZYX given in the manifest: the file states none), then `batch
    measure` of its outputs: the chain's intensity image is that movie, read with the row's axes (else its T would
    be read as Z and the item fail)."""
    movie = np.stack([_nuclei_field(2), _nuclei_field(3)])  # (T, Z, Y, X)
    tifffile.imwrite(tmp_path / "movie.tif", movie, photometric="minisblack")
    pd.DataFrame([{"id": "m", "source": "movie.tif", "axes": "TZYX", "voxel_size_z": 0.5, "voxel_size_y": 0.2,
                   "voxel_size_x": 0.2, "time_interval": 60}]).to_csv(tmp_path / "m.csv", index=False)  # fmt: skip
    seg, measured = tmp_path / "seg", tmp_path / "measured"
    assert run(["batch", "segment", str(tmp_path / "m.csv"), str(seg), "-w", "nucleus", "--workers", "1",
                "--quiet"]) == 0  # fmt: skip
    assert run(["batch", "measure", str(seg), str(measured), "--workers", "1", "--quiet"]) == 0
    table = pd.read_parquet(measured / "m.parquet")
    assert table.groupby("t").size().tolist() == [2, 3] and table.c0_mean.gt(150).all()  # inside bright nuclei
