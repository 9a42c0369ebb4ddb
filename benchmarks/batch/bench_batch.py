"""Collections on Dask: throughput and overhead of ``subcell batch`` against a plain serial loop, planning cost of
a 10,000-row manifest, peak memory per item against the estimate, and one large volume on 1 vs 2 workers.

Everything is measured in this one run, one thing at a time (nothing else may run: check ``uptime``):

    python benchmarks/batch/bench_batch.py [--items 200] [--fields 10] [--shape 32 256 256] [--plan-rows 10000]
        [--volume 32 2048 2048] [--sections throughput plan volume]

Writes ``benchmarks/batch/results.md`` and ``results.json``. Items repeat ``--fields`` distinct synthetic fields
(rows with different ids and outputs), so generating the inputs does not dominate the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
EXE = [str(Path(sys.executable).parent / "subcell")]

SERIAL = """
import sys, time, pandas as pd
from pathlib import Path
from subcell.cli.main import run
rows = pd.read_csv(sys.argv[1]); out = Path(sys.argv[2]); out.mkdir(exist_ok=True)
t0 = time.perf_counter()
for r in rows.itertuples():
    assert run(["segment", r.source, str(out / f"{r.id}.ome.zarr"), "-w", "nucleus", "-c", "dna", "--overwrite"]) == 0
print(time.perf_counter() - t0)
"""


SELF_RSS = (  # VmHWM: this process's own peak (ru_maxrss survives exec and counts the forking parent's pages)
    "import sys\nfrom subcell.cli.main import run\ncode = run(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "print('MAXRSS', hwm)\nsys.exit(code)"
)


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the client process itself (it reports its own), its stdout.

    ``subcell …`` commands run as ``python -c <run(argv)>`` so the peak is the client's own, not the largest of
    every child this benchmark has waited for (what RUSAGE_CHILDREN would give).
    """
    if cmd[: len(EXE)] == EXE:
        cmd = [sys.executable, "-c", SELF_RSS, *cmd[len(EXE) :]]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    peak = [float(ln.split()[1]) / 1024 for ln in r.stdout.splitlines() if ln.startswith("MAXRSS ")]
    out = "\n".join(ln for ln in r.stdout.splitlines() if not ln.startswith("MAXRSS "))
    return wall, peak[0] if peak else float("nan"), out


def throughput(tmp: Path, n_items: int, n_fields: int, shape: tuple[int, int, int]) -> dict:
    import pandas as pd

    from subcell import synth

    for s in range(n_fields):
        synth.write_field(synth.synth_field(shape=shape, seed=500 + s), tmp / f"f{s}.ome.zarr")
    rows = [{"id": f"item{i:04d}", "source": str(tmp / f"f{i % n_fields}.ome.zarr")} for i in range(n_items)]
    pd.DataFrame(rows).to_csv(tmp / "m.csv", index=False)
    res: dict = {"items": n_items, "shape": list(shape)}
    wall, _, out = _timed([sys.executable, "-c", SERIAL, str(tmp / "m.csv"), str(tmp / "serial")])
    res["serial"] = {"wall_s": wall, "loop_s": float(out.strip().splitlines()[-1])}
    print("serial", res["serial"], flush=True)
    for workers in (1, 2):
        out_dir = tmp / f"batch{workers}"
        wall, _, _ = _timed([*EXE, "batch", "segment", str(tmp / "m.csv"), str(out_dir), "-w", "nucleus", "-c", "dna",
                             "--workers", str(workers), "--quiet"])  # fmt: skip
        t = pd.read_parquet(out_dir / "batch.parquet")
        assert (t.status == "done").all(), t[t.status != "done"].error.tolist()[:3]
        item_s = float(t.seconds.sum())
        res[f"batch{workers}"] = {
            "wall_s": wall, "item_s_sum": item_s, "item_s_mean": float(t.seconds.mean()),
            "peak_mb_max": float(t.peak_memory_mb.max()), "peak_mb_median": float(t.peak_memory_mb.median()),
            "item_mb_max": float((t.peak_memory_mb - t.start_memory_mb).max()),
            "start_mb_median": float(t.start_memory_mb.median()), "estimate_mb": float(t.memory_estimate_mb.max()),
        }  # fmt: skip
        print(f"batch {workers}", res[f"batch{workers}"], flush=True)
        # rerun: everything is skipped; the time is planning + cluster start + table
        wall2, _, _ = _timed([*EXE, "batch", "segment", str(tmp / "m.csv"), str(out_dir), "-w", "nucleus", "-c",
                              "dna", "--workers", str(workers), "--quiet"])  # fmt: skip
        res[f"batch{workers}"]["rerun_all_skipped_s"] = wall2
    # identical outputs
    import numpy as np

    from subcell.io import read

    for i in (0, n_items // 2, n_items - 1):
        name = f"item{i:04d}.ome.zarr"
        a = read(tmp / "serial" / name).numpy()
        assert np.array_equal(a, read(tmp / "batch2" / name).numpy()), name
    return res


def cells(tmp: Path, n_items: int, n_fields: int, shape: tuple[int, int, int]) -> dict:
    """Single cells through `subcell batch cells-extract`: cells/s with 1 and 2 workers."""
    import pandas as pd

    from subcell import synth
    from subcell.io import read_cell_store

    for s in range(n_fields):
        if not (tmp / f"f{s}.ome.zarr").exists():
            synth.write_field(synth.synth_field(shape=shape, seed=500 + s), tmp / f"f{s}.ome.zarr")
    rows = [{"id": f"c{i:04d}", "source": str(tmp / f"f{i % n_fields}.ome.zarr"),
             "labels": str(tmp / f"f{i % n_fields}.ome.zarr")} for i in range(n_items)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp / "cells.csv", index=False)
    res: dict = {"items": n_items, "shape": list(shape)}
    for workers in (1, 2):
        out = tmp / f"cells{workers}"
        wall, _, _ = _timed([*EXE, "batch", "cells-extract", str(tmp / "cells.csv"), str(out), "--border", "flag",
                             "--skip-cells-without-nucleus", "--box", "48", "64", "64", "--oversize", "rescale", "--workers", str(workers),
                             "--quiet"])  # fmt: skip
        t = pd.read_parquet(out / "batch.parquet")
        assert (t.status == "done").all(), t[t.status != "done"].error.tolist()[:3]
        n_cells = sum(int((read_cell_store(out / f"{r['id']}.zarr").table.crop_index >= 0).sum()) for r in rows)
        res[f"workers{workers}"] = {"wall_s": wall, "cells": n_cells, "item_s_sum": float(t.seconds.sum())}
        print("cells", workers, res[f"workers{workers}"], flush=True)
    return res


def plan(tmp: Path, n_rows: int) -> dict:
    import numpy as np
    import pandas as pd
    import tifffile

    folder = tmp / "many"
    folder.mkdir()
    data = np.zeros((4, 32, 32), np.uint16)
    for i in range(n_rows):
        tifffile.imwrite(folder / f"c{i:05d}.ome.tif", data, metadata={"axes": "ZYX", "PhysicalSizeX": 0.1,
                         "PhysicalSizeY": 0.1, "PhysicalSizeZ": 0.29})  # fmt: skip
    pd.DataFrame({"source": [f"many/c{i:05d}.ome.tif" for i in range(n_rows)]}).to_csv(tmp / "big.csv", index=False)
    wall, peak, out = _timed([*EXE, "batch", "segment", str(tmp / "big.csv"), str(tmp / "planned"), "-w", "nucleus",
                              "--dry-run"])  # fmt: skip
    print("plan", wall, peak, out.strip(), flush=True)
    return {"rows": n_rows, "wall_s": wall, "client_peak_mb": peak, "output": out.strip()}


def _tiled_dna(tmp: Path, shape: tuple[int, int, int], base: tuple[int, int, int]) -> Path:
    """A DNA-only OME-Zarr of ``shape`` made by repeating the DNA channel of a ``base`` synthetic field (no
    filament walks): a volume of billions of voxels in minutes instead of hours; segmentation time depends on
    the voxels and the objects' density, not on the field being unique."""
    import numpy as np

    from subcell.io import OmeZarrWriter, read
    from subcell.synth import SynthConfig, write_large_field
    from subcell.synth.config import StructureRules

    rules = StructureRules(mito_per_um3=0.0, microtubule_count=(0, 0), er_tubules_per_um3=0.0)
    cfg = SynthConfig(shape=base, seed=0, block_yx=512, rules=rules)
    write_large_field(cfg, tmp / "base.ome.zarr")
    img = read(tmp / "base.ome.zarr")
    dna = np.asarray(img.channel("dna").data[0, 0])
    reps = [-(-n // b) for n, b in zip(shape, base, strict=True)]
    big = tmp / "big.ome.zarr"
    with OmeZarrWriter(big, shape=(1, 1, *shape), dtype=dna.dtype, voxel_size=img.voxel_size,
                       channel_names=["dna"]) as w:  # fmt: skip
        for z0 in range(0, shape[0], 32):  # one 32-plane slab (a chunk layer) at a time
            z1 = min(z0 + 32, shape[0])
            planes = [dna[z % base[0]] for z in range(z0, z1)]
            slab = np.tile(np.stack(planes), (1, reps[1], reps[2]))[:, : shape[1], : shape[2]]
            w.write_region((slice(0, 1), slice(0, 1), slice(z0, z1)), slab[None, None])
    return big


def _same_volume(a: Path, b: Path) -> bool:
    """Two label volumes equal, compared a slab at a time (they need not fit in memory together)."""
    import numpy as np

    from subcell.io import read

    x, y = read(a).data, read(b).data
    return all(np.array_equal(np.asarray(x[:, :, z : z + 8]), np.asarray(y[:, :, z : z + 8]))
               for z in range(0, x.shape[2], 8))  # fmt: skip


def volume(
    tmp: Path,
    shape: tuple[int, int, int],
    tile_from: tuple[int, int, int] | None = None,
    worker_counts: tuple[int, ...] = (1, 2),
) -> dict:
    from subcell.synth import SynthConfig, write_large_field

    field = tmp / "big.ome.zarr"
    if tile_from is not None:
        field = _tiled_dna(tmp, shape, tile_from)
    else:
        write_large_field(SynthConfig(shape=shape, seed=0, block_yx=512), field)
    res: dict = {"shape": list(shape), "tiled_from": list(tile_from) if tile_from else None}
    for workers in worker_counts:
        out = tmp / f"vol{workers}.ome.zarr"
        code = WATCHED.format(argv=["segment", str(field), str(out), "-w", "nucleus", "-c", "dna", "--block-yx", "512",
                                    "--scheduler", "local", "--workers", str(workers)])  # fmt: skip
        _, _, outp = _timed([sys.executable, "-c", code])
        wall, worker_peak, client_peak = _watched_numbers(outp)
        res[f"workers{workers}"] = {"wall_s": wall, "worker_peak_mb": worker_peak, "client_peak_mb": client_peak}
        print("volume", workers, res[f"workers{workers}"], flush=True)
    if len(worker_counts) > 1:
        res["identical"] = _same_volume(*(tmp / f"vol{n}.ome.zarr" for n in worker_counts[:2]))
    return res


def predict_regions(tmp: Path, shape: tuple[int, int, int]) -> dict:
    """The shipped `dna` model over one bright-field volume: the plain streamed command (one process), then by
    1024-px regions on 1 and 2 local workers (one thread each); wall time, peak RSS, and equality."""
    import numpy as np

    from subcell.io import read
    from subcell.synth import SynthConfig, write_large_field
    from subcell.synth.config import StructureRules

    field = tmp / "bf.ome.zarr"
    # no filament walks (most of the generator's time; the speed of prediction does not depend on the content)
    rules = StructureRules(mito_per_um3=0.0, microtubule_count=(0, 0), er_tubules_per_um3=0.0)
    write_large_field(SynthConfig(shape=shape, voxel_size=(0.29, 0.29, 0.29), seed=1, block_yx=512, rules=rules),
                      field)  # fmt: skip
    # one explicit tile for all three runs: the same tile grid, so the outputs can be compared bit for bit
    common = ["--model", "dna", "--precision", "bf16", "--tile", "32", "256", "512", "--quiet", "--overwrite"]
    res: dict = {"shape": list(shape)}
    wall, peak, _ = _timed([*EXE, "labelfree", "predict", str(field), str(tmp / "p0.ome.zarr"), *common])
    res["serial"] = {"wall_s": wall, "client_peak_mb": peak}
    print("predict serial", res["serial"], flush=True)
    for workers in (1, 2):
        code = WATCHED.format(argv=["labelfree", "predict", str(field), str(tmp / f"p{workers}.ome.zarr"), *common,
                                    "--region-yx", "1024", "--scheduler", "local", "--workers", str(workers)])  # fmt: skip
        _, _, outp = _timed([sys.executable, "-c", code])
        wall, worker_peak, client_peak = _watched_numbers(outp)
        res[f"workers{workers}"] = {"wall_s": wall, "worker_peak_mb": worker_peak, "client_peak_mb": client_peak}
        print("predict regions", workers, res[f"workers{workers}"], flush=True)
    ref = read(tmp / "p0.ome.zarr").numpy()
    res["max_abs_diff"] = {str(w): float(np.abs(read(tmp / f"p{w}.ome.zarr").numpy() - ref).max()) for w in (1, 2)}
    return res


def _watched_numbers(stdout: str) -> tuple[float, float, float]:
    """Wall, worker peak and client peak from WATCHED's last line of three numbers (the command's own output
    may come after it: click writes to the binary stream, print to the buffered text one)."""
    for line in reversed(stdout.strip().splitlines()):
        parts = line.split()
        try:
            a, b, c = map(float, parts)
        except ValueError:
            continue
        return a, b, c
    raise SystemExit(f"no measurements in:\n{stdout[-2000:]}")


# a command run in-process while a thread samples the RSS of every worker process it starts
WATCHED = """
import time, psutil, threading
from subcell.cli.main import run
peaks = {{}}
stop = threading.Event()
def watch():
    me = psutil.Process()
    while not stop.is_set():
        for c in me.children(recursive=True):
            try:
                peaks[c.pid] = max(peaks.get(c.pid, 0), c.memory_info().rss)
            except psutil.Error:
                pass
        stop.wait(0.1)
threading.Thread(target=watch, daemon=True).start()
t0 = time.perf_counter()
assert run({argv!r}) == 0
wall = time.perf_counter() - t0
stop.set()
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(wall, max(peaks.values()) / 2**20, int(hwm) / 1024)
"""


def report(r: dict) -> str:
    lines = [
        "# Collections on Dask: `subcell batch` (issue 13)", "",
        "Generated by `python benchmarks/batch/bench_batch.py` (one run, one measurement at a time; "
        f"machine: {os.cpu_count()} cores; `{r.get('uptime', '')}` before the run).", "",
    ]  # fmt: skip
    if "throughput" in r:
        t = r["throughput"]
        n = t["items"]
        s = t["serial"]
        lines += [
            f"## Throughput: {n} fields of {'×'.join(map(str, t['shape']))}, `segment --workflow nucleus`", "",
            "| run | wall (s) | items/s | speed-up vs serial | item time mean (s) | overhead per item |",
            "|---|---:|---:|---:|---:|---:|",
            f"| serial loop in one process (`run(['segment', …])`) | {s['wall_s']:.1f} | {n / s['wall_s']:.2f} | 1.00 | "
            f"{s['loop_s'] / n:.2f} | – |",
        ]  # fmt: skip
        for w in (1, 2):
            b = t[f"batch{w}"]
            over = (b["wall_s"] * w - b["item_s_sum"]) / n
            lines.append(
                f"| `subcell batch`, {w} worker{'s' if w > 1 else ''} | {b['wall_s']:.1f} | {n / b['wall_s']:.2f} | "
                f"{s['wall_s'] / b['wall_s']:.2f} | {b['item_s_mean']:.2f} | {over:.3f} s ({100 * over / b['item_s_mean']:.1f} %) |"
            )
        b1 = t["batch1"]
        b2 = t["batch2"]
        per_item = b2["wall_s"] * 2 / n  # worker-seconds per item, overhead included (2-worker run)
        lines += [
            "",
            "Extrapolation on paper (this item: one 32×256×256 field, nucleus workflow, "
            f"{per_item:.2f} worker-seconds per item including overhead; a typical 65×624×924 Allen FOV has "
            f"{65 * 624 * 924 / (t['shape'][0] * t['shape'][1] * t['shape'][2]):.0f}× the voxels, and segmentation "
            "scales about linearly with voxels):",
            "",
            "| 10,000 items of | 2 workers (this VM) | 32 workers | 256 workers |",
            "|---|---:|---:|---:|",
            f"| this size | {10_000 * per_item / 2 / 3600:.1f} h | {10_000 * per_item / 32 / 3600:.2f} h | "
            f"{10_000 * per_item / 256 / 60:.0f} min |",
        ]  # fmt: skip
        scale = 65 * 624 * 924 / (t["shape"][0] * t["shape"][1] * t["shape"][2])
        lines += [
            f"| Allen FOV size | {10_000 * per_item * scale / 2 / 3600:.0f} h | "
            f"{10_000 * per_item * scale / 32 / 3600:.1f} h | {10_000 * per_item * scale / 256 / 3600:.1f} h |",
            "",
            "assuming workers of the same speed as these cores, storage that keeps up, and the scheduler overhead "
            "measured here (it is per item, not per voxel, so it shrinks relative to larger items).",
        ]
        lines += [
            "",
            f"Worker resident memory at item start (median) {b1.get('start_mb_median', float('nan')):.0f} MB; the "
            f"largest rise during one item {b1.get('item_mb_max', float('nan')):.0f} MB.",
            "",
            "Overhead per item = (wall × workers − Σ item seconds measured inside the workers) / items: cluster start,"
            " scheduling, records, the table, and the client's planning, spread over the items.",
            (f"A rerun with everything done (all skipped) takes {b1['rerun_all_skipped_s']:.1f} s (1 worker) / "
             f"{t['batch2']['rerun_all_skipped_s']:.1f} s (2 workers): cluster start + planning."
             if "rerun_all_skipped_s" in b1 else f"({t.get('note', '')}.)"),
            "",
            "Peak memory per item (worker RSS sampled every 20 ms while the item runs) vs the estimate used for "
            f"scheduling: median {b1['peak_mb_median']:.0f} MB, max {b1['peak_mb_max']:.0f} MB, estimate "
            f"{b1['estimate_mb']:.0f} MB ({b1['estimate_mb'] / b1['peak_mb_max']:.2f}× the max peak).",
            "",
        ]  # fmt: skip
    if "cells" in r:
        c = r["cells"]
        w1, w2 = c["workers1"], c["workers2"]
        lines += [
            f"## Single cells through `subcell batch cells-extract` ({c['items']} synthetic fields of "
            f"{'×'.join(map(str, c['shape']))})", "",
            "| workers | wall (s) | cells | cells/s | cells/s per core (Σ item time) |", "|---:|---:|---:|---:|---:|",
            f"| 1 | {w1['wall_s']:.1f} | {w1['cells']} | {w1['cells'] / w1['wall_s']:.2f} | "
            f"{w1['cells'] / w1['item_s_sum']:.2f} |",
            f"| 2 | {w2['wall_s']:.1f} | {w2['cells']} | {w2['cells'] / w2['wall_s']:.2f} | "
            f"{w2['cells'] / w2['item_s_sum']:.2f} |", "",
            "The per-core speed-up of extraction + shape space itself (84 real mitotic cells, before/after in one "
            "run) is in `benchmarks/cells/results.md`.", "",
        ]  # fmt: skip
    if "plan" in r:
        p = r["plan"]
        lines += [
            f"## Planning a {p['rows']:,}-row manifest (`--dry-run`, distinct files)", "",
            f"{p['wall_s']:.1f} s wall for the whole command (interpreter start, manifest validation, a header read "
            f"and a fingerprint per file), client peak RSS {p['client_peak_mb']:.0f} MB. Aim: < 10 s, < 500 MB.",
            f"Output: `{p['output']}`", "",
        ]  # fmt: skip
    for key in ("volume", "volume_tiled"):
        if key not in r:
            continue
        v = r[key]
        if not {"workers1", "workers2"} <= set(v):
            continue  # one worker count measured so far
        made = (f"; DNA channel only, made by repeating a {'×'.join(map(str, v['tiled_from']))} synthetic field"
                if v.get("tiled_from") else "")  # fmt: skip
        w1, w2 = v["workers1"], v["workers2"]
        lines += [
            f"## One volume of {'×'.join(map(str, v['shape']))} block-wise (`segment --block-yx 512 --scheduler "
            f"local`{made})",
            "",
            "| workers | wall (s) | speed-up | peak RSS per worker (MB) | client peak RSS (MB) |",
            "|---:|---:|---:|---:|---:|",
            f"| 1 | {w1['wall_s']:.1f} | 1.00 | {w1['worker_peak_mb']:.0f} | {w1['client_peak_mb']:.0f} |",
            f"| 2 | {w2['wall_s']:.1f} | {w1['wall_s'] / w2['wall_s']:.2f} | {w2['worker_peak_mb']:.0f} | "
            f"{w2['client_peak_mb']:.0f} |",
            "", f"Outputs identical: {v.get('identical', 'not compared in this run')}.", "",
            *([v["provenance"], ""] if "provenance" in v else []),
        ]  # fmt: skip
    if "predict" in r:
        v = r["predict"]
        s0, w1, w2 = v["serial"], v["workers1"], v["workers2"]
        lines += [
            f"## One bright-field volume of {'×'.join(map(str, v['shape']))} predicted by regions "
            "(`labelfree predict --model dna --precision bf16 --tile 32 256 512 --region-yx 1024 --scheduler local`)", "",
            "| run | wall (s) | speed-up vs streamed | peak RSS per worker (MB) | client peak RSS (MB) | max abs diff vs streamed |",
            "|---|---:|---:|---:|---:|---:|",
            f"| streamed, one process | {s0['wall_s']:.1f} | 1.00 | – | {s0['client_peak_mb']:.0f} | – |",
            f"| regions, 1 worker | {w1['wall_s']:.1f} | {s0['wall_s'] / w1['wall_s']:.2f} | {w1['worker_peak_mb']:.0f} | "
            f"{w1['client_peak_mb']:.0f} | {v['max_abs_diff']['1']:.2g} |",
            f"| regions, 2 workers | {w2['wall_s']:.1f} | {s0['wall_s'] / w2['wall_s']:.2f} | {w2['worker_peak_mb']:.0f} | "
            f"{w2['client_peak_mb']:.0f} | {v['max_abs_diff']['2']:.2g} |",
            "",
        ]  # fmt: skip
        if "predict_before_arena" in r:
            b = r["predict_before_arena"]
            lines += [
                "Before workers used one malloc arena (a67b51f; a worker thread's own arena page-faulted every large "
                f"activation in again), same benchmark: streamed {b['serial']['wall_s']:.1f} s, regions on 1 worker "
                f"{b['workers1']['wall_s']:.1f} s, on 2 workers {b['workers2']['wall_s']:.1f} s. The rest of the "
                "per-core cost of regions is tiles computed twice where they straddle a region border (1.31× the "
                "tiles of the whole run for 1024-px regions of a 2048² plane with 256×512 tiles).", "",
            ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--fields", type=int, default=10)
    ap.add_argument("--shape", type=int, nargs=3, default=(32, 256, 256))
    ap.add_argument("--plan-rows", type=int, default=10_000)
    ap.add_argument("--volume", type=int, nargs=3, default=(32, 2048, 2048))
    ap.add_argument("--cell-items", type=int, default=40)
    ap.add_argument("--tile-from", type=int, nargs=3, help="build --volume (DNA only) by repeating a field this size")
    ap.add_argument(
        "--volume-workers", type=int, nargs="+", default=[1, 2], help="worker counts for the volume sections"
    )
    ap.add_argument("--report-only", action="store_true", help="rewrite results.md from results.json")
    ap.add_argument("--predict-volume", type=int, nargs=3, default=(32, 2048, 2048))
    ap.add_argument("--sections", nargs="*", default=["throughput", "cells", "plan", "volume", "predict"])
    args = ap.parse_args()
    results_path = HERE / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if args.report_only:
        (HERE / "results.md").write_text(report(results))
        return
    results["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sections = {
            "throughput": lambda: throughput(tmp, args.items, args.fields, tuple(args.shape)),
            "cells": lambda: cells(tmp, args.cell_items, args.fields, tuple(args.shape)),
            "plan": lambda: plan(tmp, args.plan_rows),
            "volume": lambda: volume(
                tmp, tuple(args.volume), tuple(args.tile_from) if args.tile_from else None, tuple(args.volume_workers)
            ),
            "volume_tiled": lambda: volume(
                tmp, tuple(args.volume), tuple(args.tile_from or (32, 2048, 2048)), tuple(args.volume_workers)
            ),
            "predict": lambda: predict_regions(tmp, tuple(args.predict_volume)),
        }
        for name, fn in sections.items():
            if name in args.sections:
                new = fn()
                old = results.get(name, {})
                if name.startswith("volume") and old.get("shape") == new.get("shape"):
                    new = {**old, **new}  # a run of some worker counts keeps the others' numbers (same volume)
                results[name] = new
                results_path.write_text(json.dumps(results, indent=1))  # each section kept as soon as measured
    (HERE / "results.md").write_text(report(results))
    print(report(results))


if __name__ == "__main__":
    main()
