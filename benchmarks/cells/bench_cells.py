"""Single-cell throughput: extraction into a cell store + spherical-harmonic shape coefficients, cells/s per core.

    SUBCELL_TEST_DATA=../shared/data python benchmarks/cells/bench_cells.py [--before REV] [--profile]

Workload: the 84 real mitotic hiPSC cells of ``aics_mitotic_cells`` (the same extraction settings as
``benchmarks/integrated/real_data.py mitotic``), then ``shape_space_of_store`` (SH fits of cell and chromatin,
lmax 8, PCA, walks). Each measurement runs in a fresh single-threaded process (OMP/BLAS threads = 1: per core),
one after the other, warmed up on 3 cells first (imports and first calls are a constant per process, ~2 s,
not a cost per cell). ``--before REV`` measures the code of git revision REV in the same run (a temporary git
worktree first on ``PYTHONPATH``), so before and after are compared on the same machine state. Writes
``benchmarks/cells/results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent

CHILD = r"""
import json, sys, time, tempfile, cProfile, pstats, io as _io
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from real_data import mitotic_fields, data_root
from subcell import io
from subcell.cells import ExtractConfig, extract_to_store, shape_space_of_store
fields = mitotic_fields(data_root())
cfg = ExtractConfig(channels=["membrane", "dna", "structure"], box=(48, 64, 64), voxel_um=0.4, border="flag",
                    oversize="rescale", margin_um=0.3)
work = Path(tempfile.mkdtemp())
# warm-up on 3 cells: imports and first-call costs are paid once per process, not per cell
extract_to_store(fields[:3], work / "warm.zarr", cfg)
shape_space_of_store(io.read_cell_store(work / "warm.zarr"), lmax=8, n_modes=2)
prof = cProfile.Profile() if sys.argv[2] == "1" else None
if prof: prof.enable()
t0 = time.perf_counter()
table = extract_to_store(fields, work / "cells.zarr", cfg)
t1 = time.perf_counter()
shape = shape_space_of_store(io.read_cell_store(work / "cells.zarr"), lmax=8, n_modes=8)
t2 = time.perf_counter()
if prof:
    prof.disable()
    s = _io.StringIO(); pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(18); print(s.getvalue(), file=sys.stderr)
n = int((table.crop_index >= 0).sum())
print(json.dumps({"cells": n, "extract_s": t1 - t0, "shape_s": t2 - t1,
                  "sh_error_cell": float(shape.table.cell_sh_error_um.mean()),
                  "cell_volume_mean": float(table.cell_volume_um3.mean()),
                  "cell_area_mean": float(table.cell_surface_area_um2.mean()),
                  "crops_sum": float(sum(float(io.read_cell_store(work / "cells.zarr").crop(i).sum()) for i in range(n)))}))
"""


def measure(pythonpath: str | None, profile: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "benchmarks" / "integrated"), "1" if profile else "0"],
                       capture_output=True, text=True, env=env)  # fmt: skip
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if profile:
        out["profile"] = r.stderr
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", help="git revision to measure as 'before' in the same run")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    results = {}
    if args.before:
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", d, args.before], check=True,
                           capture_output=True)  # fmt: skip
            try:
                results["before"] = measure(str(Path(d) / "src"), args.profile)
                print("before", {k: v for k, v in results["before"].items() if k != "profile"}, flush=True)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", d], capture_output=True)
    results["after"] = measure(None, args.profile)
    print("after", {k: v for k, v in results["after"].items() if k != "profile"}, flush=True)
    lines = ["# Single-cell throughput (issue 13)", "",
             "`SUBCELL_TEST_DATA=../shared/data python benchmarks/cells/bench_cells.py"
             + (f" --before {args.before}" if args.before else "") + "` — 84 real mitotic cells, one core each "
             "(OMP/BLAS threads 1), fresh process per measurement warmed up on 3 cells, one after the other.", "",
             "| code | cells | extract (s) | shape space (s) | cells/s per core | SH error cell (µm) | mean cell volume (µm³) | mean cell area (µm²) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, r in results.items():
        total = r["extract_s"] + r["shape_s"]
        lines.append(f"| {name} | {r['cells']} | {r['extract_s']:.1f} | {r['shape_s']:.1f} | {r['cells'] / total:.2f} | "
                     f"{r['sh_error_cell']:.4f} | {r['cell_volume_mean']:.2f} | {r['cell_area_mean']:.2f} |")  # fmt: skip
    if "before" in results:
        b, a = results["before"], results["after"]
        lines += ["", f"Speed-up: {(b['extract_s'] + b['shape_s']) / (a['extract_s'] + a['shape_s']):.1f}× "
                  f"(extraction {b['extract_s'] / a['extract_s']:.1f}×, shape space {b['shape_s'] / a['shape_s']:.1f}×)."]  # fmt: skip
    for name, r in results.items():
        if "profile" in r:
            lines += ["", f"## Profile ({name}, top by own time)", "", "```", r["profile"].strip()[:6000], "```"]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    (HERE / "results.json").write_text(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "profile"}
                                                   for k, v in results.items()}, indent=1))  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
