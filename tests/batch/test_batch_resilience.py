"""Batches survive what clusters do: a client killed with SIGKILL, a worker that dies, a remote scheduler; one large
volume spread over workers equals the serial run. All on real distributed clusters (processes), no mocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from subcell import synth
from subcell.batch import Item, connect, run_batch
from subcell.cli.main import run
from subcell.io import read

SYNTH = ["--shape", "8", "128", "160", "--n-cells", "1"]


def _subcell() -> list[str]:
    exe = Path(sys.executable).parent / "subcell"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "subcell"]


def _session_alive(sid: int) -> bool:
    import psutil

    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return False


def test_client_killed_mid_batch_then_rerun_finishes_only_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    n = 10
    cmd = [*_subcell(), "batch", "synth", f"0:{n}", str(out), *SYNTH, "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    records = out / ".batch" / "items"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(records.glob("*.json")) if records.exists() else []) < 3:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # the client (its scheduler and nannies live in it): nothing cleans up
    proc.wait()
    deadline = time.time() + 60  # its worker processes notice and exit; none keeps writing into OUTDIR
    while time.time() < deadline and _session_alive(proc.pid):
        time.sleep(0.2)
    assert not _session_alive(proc.pid)
    done_before = sorted(p.stem for p in records.glob("*.json"))
    assert 3 <= len(done_before) < n, done_before
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("seed*.ome.zarr")}
    for p in finished:  # whatever is under its final name is complete
        assert read(out / p).shape[2:] == (8, 128, 160)
    assert set(done_before) <= {p.removesuffix(".ome.zarr") for p in finished}

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{n - len(done_before)} done, {len(done_before)} skipped, 0 failed" in r.stdout
    table = pd.read_parquet(out / "batch.parquet")
    assert len(table) == n and set(table.status) <= {"done", "skipped"}
    assert sorted(table[table.status == "skipped"].id) == done_before
    for name in done_before:  # not redone
        assert (out / f"{name}.ome.zarr").stat().st_mtime_ns == finished[f"{name}.ome.zarr"]
    assert not list(out.glob(".*partial*"))  # the killed run's temporaries were cleared
    assert len(list(out.glob("seed*.ome.zarr"))) == n


def _dies_on_first_attempt(item: Item) -> str:
    flag = item.output.parent / f"{item.id}.first-attempt"
    if not flag.exists():
        flag.write_text("x")
        os._exit(1)  # the worker process dies mid-item, as under the OOM killer
    item.output.write_text(item.id)
    return f"wrote {item.output}"


def test_an_item_whose_worker_died_is_retried_then_recorded(tmp_path: Path) -> None:
    items = [Item(f"i{k}", (), tmp_path / "out" / f"i{k}.txt", memory=2**28) for k in range(2)]
    too_big = Item("huge", (), tmp_path / "out" / "huge.txt", memory=8 * 2**30)
    with connect("local", workers=1, retries=2, resources={"MEMORY": 2**30}) as client:
        summary = run_batch([*items, too_big], _dies_on_first_attempt, tmp_path / "out", client, description={"t": 1})
    assert summary.counts == {"done": 2, "failed": 1, "skipped": 0}
    assert [r.attempts for r in summary.records[:2]] == [2, 2]
    refused = summary.records[2]  # refused before it ran: it would have killed its worker once, leaving a flag
    assert "needs about 8.0 GB; workers have 1.0 GB" in refused.error
    assert not (tmp_path / "out" / "huge.first-attempt").exists()
    assert (tmp_path / "out" / "i0.txt").read_text() == "i0"

    items = [Item("j0", (), tmp_path / "out2" / "j0.txt")]
    with connect("local", workers=1, retries=0) as client:
        summary = run_batch(items, _dies_on_first_attempt, tmp_path / "out2", client, description={"t": 1})
    rec = summary.records[0]
    assert rec.status == "failed" and "worker lost" in rec.error and "KilledWorker" in rec.error
    assert pd.read_parquet(tmp_path / "out2" / "batch.parquet").status.tolist() == ["failed"]


def test_joining_an_existing_scheduler_gives_the_same_outputs(tmp_path: Path) -> None:
    dask = Path(sys.executable).parent / "dask"
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([str(dask), "scheduler", "--scheduler-file", str(sched_file), "--port", "0",
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]  # fmt: skip
    try:
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        procs.append(subprocess.Popen([str(dask), "worker", "--scheduler-file", str(sched_file), "--nworkers", "1",
                                       "--nthreads", "1", "--no-dashboard"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))  # fmt: skip
        import json

        address = json.loads(sched_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(1, timeout=60)
        remote = tmp_path / "remote"
        assert run(["batch", "synth", "3:5", str(remote), *SYNTH, "--scheduler", address, "--quiet"]) == 0
        local = tmp_path / "local"
        assert run(["batch", "synth", "3:5", str(local), *SYNTH, "--workers", "1", "--quiet"]) == 0
        for name in ("seed00003.ome.zarr", "seed00004.ome.zarr"):
            np.testing.assert_array_equal(read(remote / name).numpy(), read(local / name).numpy())
        workers = set(pd.read_parquet(remote / "batch.parquet").worker)
        assert all(w.split(":")[1] != str(os.getpid()) for w in workers)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_one_volume_block_wise_on_two_workers_equals_the_serial_run(tmp_path: Path) -> None:
    field = tmp_path / "field.ome.zarr"
    synth.write_field(synth.synth_field(shape=(12, 256, 256), n_cells=4, seed=11), field)
    serial, spread = tmp_path / "serial.ome.zarr", tmp_path / "spread.ome.zarr"
    for wf, ch in (("nucleus", "dna"), ("nucleoli", "nucleoli")):
        assert run(["segment", str(field), str(serial), "-w", wf, "-c", ch, "--overwrite"]) == 0
        assert run(["segment", str(field), str(spread), "-w", wf, "-c", ch, "--block-yx", "64",
                    "--scheduler", "local", "--workers", "2", "--overwrite"]) == 0  # fmt: skip
        a, b = read(serial).numpy(), read(spread).numpy()
        assert a.max() > 0
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def two_fields(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("two")
    for s in range(2):
        synth.write_field(synth.synth_field(shape=(12, 160, 160), n_cells=2, seed=40 + s), root / f"g{s}.ome.zarr")
    pd.DataFrame({"id": ["g0", "g1"], "source": ["g0.ome.zarr", "g1.ome.zarr"],
                  "labels": ["g0.ome.zarr", "g1.ome.zarr"], "structure": ["dna", "dna"]}).to_csv(
        root / "m.csv", index=False)  # fmt: skip
    return root


def _model_loads() -> int:
    from subcell.labelfree.cache import MODEL_CACHE  # the worker's own, not a copy of the client's

    return MODEL_CACHE.loads


def _allocator_env() -> tuple[str | None, ...]:
    return tuple(os.environ.get(k) for k in ("MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS"))


def test_predict_loads_the_model_once_per_worker_and_matches_the_single_command(
    two_fields: Path, tmp_path: Path
) -> None:
    from subcell.cli.batch import CommandTask, build_items

    out = tmp_path / "pred"
    out.mkdir()
    opts = ["--model", "dna", "--device", "cpu"]
    items = build_items("labelfree-predict", str(two_fields / "m.csv"), out, opts)
    assert all(i.memory > 2 * 2**30 for i in items)  # the --memory-limit (default 2 GB) is part of the estimate
    with connect("local", workers=1) as client:
        summary = run_batch(items, CommandTask(("labelfree", "predict")), out, client, description={"o": opts})
        loads = client.run(_model_loads)
        env = client.run(_allocator_env)
    assert summary.counts["done"] == 2
    # one malloc arena (a worker thread's own arena would mmap every large activation), no 64 kB trim threshold
    assert list(env.values()) == [("1", None, "1")]
    assert list(loads.values()) == [1]  # two items, one load
    single = tmp_path / "single.ome.zarr"
    assert run(["labelfree", "predict", str(two_fields / "g1.ome.zarr"), str(single), *opts, "--quiet"]) == 0
    np.testing.assert_allclose(read(out / "g1.ome.zarr").numpy(), read(single).numpy(), atol=1e-5)


def test_convert_and_cells_extract_batches_match_single_commands(two_fields: Path, tmp_path: Path) -> None:
    conv, cells = tmp_path / "conv", tmp_path / "cells"
    m = str(two_fields / "m.csv")
    assert run(["batch", "convert", m, str(conv), "--suffix", ".ome.tif", "--workers", "1", "--quiet"]) == 0
    assert run(["convert", str(two_fields / "g0.ome.zarr"), str(tmp_path / "g0.ome.tif")]) == 0
    a, b = read(conv / "g0.ome.tif"), read(tmp_path / "g0.ome.tif")
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a.voxel_size.isclose(b.voxel_size)
    assert run(["batch", "cells", "extract", m, str(cells), "--border", "flag", "--workers", "1", "--quiet"]) == 0
    one = tmp_path / "one.zarr"
    assert run(["cells", "extract", str(two_fields / "g1.ome.zarr"), str(two_fields / "g1.ome.zarr"), str(one),
                "--border", "flag", "--structure", "dna"]) == 0  # fmt: skip
    from subcell.io.cell_store import read_cell_store

    s_batch, s_one = read_cell_store(cells / "g1.zarr"), read_cell_store(one)
    assert len(s_one.table) > 0
    pd.testing.assert_frame_equal(s_batch.table, s_one.table)
    np.testing.assert_array_equal(np.asarray(s_batch.crops[:]), np.asarray(s_one.crops[:]))


def test_nuclei_batch_reads_each_rows_cells_and_matches_the_single_command(
    two_fields: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = tmp_path / "cells.csv"
    pd.DataFrame({"id": ["g0", "g1"], "source": [str(two_fields / f"g{s}.ome.zarr") for s in range(2)],
                  "mask_cell": [str(two_fields / f"g{s}.ome.zarr" / "labels" / "cell") for s in range(2)]}).to_csv(
        m, index=False)  # fmt: skip
    out = tmp_path / "nuclei"
    assert run(["batch", "labelfree", "nuclei", str(m), str(out), "--model", "nucleus", "--device", "cpu",
                "--workers", "1", "--quiet"]) == 0  # fmt: skip
    single = tmp_path / "g1.ome.zarr"
    cells = two_fields / "g1.ome.zarr" / "labels" / "cell"
    assert (
        run(["labelfree", "nuclei", str(two_fields / "g1.ome.zarr"), str(cells), str(single), "--device", "cpu"]) == 0
    )
    a, b = read(out / "g1.ome.zarr").numpy(), read(single).numpy()
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) - {0} == set(np.unique(read(cells).numpy())) - {0}  # a nucleus in every cell
    bad = tmp_path / "no_cells.csv"
    pd.DataFrame({"source": [str(two_fields / "g0.ome.zarr")]}).to_csv(bad, index=False)
    capsys.readouterr()
    assert run(["batch", "labelfree", "nuclei", str(bad), str(tmp_path / "x"), "--workers", "1", "--quiet"]) == 2
    assert (
        "row 1, column 'mask_cell' (or 'labels'): expected the path of the field's cell labels"
        in capsys.readouterr().err
    )


def test_a_model_that_takes_the_cells_gets_each_rows_cells_in_a_batch_and_a_manifest(
    two_fields: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = tmp_path / "cells.csv"
    cells = [two_fields / f"g{s}.ome.zarr" / "labels" / "cell" for s in range(2)]
    pd.DataFrame({"id": ["g0", "g1"], "source": [str(two_fields / f"g{s}.ome.zarr") for s in range(2)],
                  "mask_cell": [str(c) for c in cells]}).to_csv(m, index=False)  # fmt: skip
    opts = ["--model", "nucleus-in-cells", "--device", "cpu"]
    out = tmp_path / "pred"
    assert run(["batch", "labelfree", "predict", str(m), str(out), *opts, "--workers", "1", "--quiet"]) == 0
    in_manifest = tmp_path / "manifest_pred"
    assert run(["labelfree", "predict", str(m), str(in_manifest), *opts, "--quiet"]) == 0
    for s in range(2):  # each row with its own cells, as the single command given them
        single = tmp_path / f"single{s}.ome.zarr"
        assert run(["labelfree", "predict", str(two_fields / f"g{s}.ome.zarr"), str(single), *opts,
                    "--cells", str(cells[s]), "--quiet"]) == 0  # fmt: skip
        expected = read(single).numpy()
        np.testing.assert_array_equal(read(out / f"g{s}.ome.zarr").numpy(), expected)
        np.testing.assert_array_equal(read(in_manifest / f"g{s}_prediction.ome.zarr").numpy(), expected)
    # the other row's cells make another prediction: the rows' cells are not interchangeable
    assert not np.array_equal(read(out / "g0.ome.zarr").numpy(), read(tmp_path / "single1.ome.zarr").numpy())

    bad = tmp_path / "no_cells.csv"
    pd.DataFrame({"source": [str(two_fields / "g0.ome.zarr")]}).to_csv(bad, index=False)
    missing = "row 1, column 'mask_cell' (or 'labels'): expected the path of the field's cell labels (the model takes"
    for args in (["batch", "labelfree", "predict", str(bad), str(tmp_path / "x"), *opts, "--workers", "1"],
                 ["labelfree", "predict", str(bad), str(tmp_path / "y"), *opts, "--quiet"]):  # fmt: skip
        capsys.readouterr()
        assert run(args) == 2
        assert missing in capsys.readouterr().err
    assert not (tmp_path / "y" / "g0_prediction.ome.zarr").exists()
    # one --cells for the whole collection is refused; a model without the cell input gets none from the column
    capsys.readouterr()
    assert run(["batch", "labelfree", "predict", str(m), str(tmp_path / "z"), *opts, "--cells", str(cells[0])]) == 2
    assert "--cells belongs to one field" in capsys.readouterr().err
    from subcell.cli.batch import build_items

    plain = build_items("labelfree-predict", str(m), tmp_path / "w", ["--model", "dna"])
    assert all("--cells" not in i.params["args"] for i in plain)
    conditioned = build_items("labelfree-predict", str(m), tmp_path / "w", opts)
    assert all(a.memory > b.memory for a, b in zip(conditioned, plain, strict=True))
