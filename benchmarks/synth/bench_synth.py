"""Synthetic-field generation: time of one 64×512×512 field (bright-field + 7 structures + noise-free truth +
9 label images) and peak memory of block-wise large fields of two sizes.

Run: ``make bench`` or ``python benchmarks/synth/bench_synth.py``. Each measurement runs in a fresh subprocess
(imports excluded from the time; peak RSS is the process's own). Writes ``benchmarks/synth/results.md``.
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

FIELD = """
import json, resource, sys, time
from subcell.synth import synth_field
import scipy.ndimage, scipy.fft, scipy.spatial  # noqa: F401  (imports are not what we time)
t0 = time.perf_counter()
f = synth_field(shape=(64, 512, 512), seed=int(sys.argv[1]))
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "cells": len(f.cells), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

LARGE = """
import json, resource, sys, time
from subcell.synth import SynthConfig, write_large_field
z, y, x = (int(v) for v in sys.argv[1:4])
cfg = SynthConfig(shape=(z, y, x), seed=0, block_yx=256)
t0 = time.perf_counter()
write_large_field(cfg, sys.argv[4])
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(script: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", nargs="+", default=["32,1024,1024", "32,2048,2048"], help="Z,Y,X of large fields")
    args = parser.parse_args()
    fields = [run(FIELD, str(seed)) for seed in (0, 1)]
    large = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.large:
            z, y, x = spec.split(",")
            r = run(LARGE, z, y, x, str(Path(tmp) / f"l{y}.ome.zarr"))
            large.append((spec, r))
    lines = [
        "# Synthetic field generation",
        "",
        f"Machine: {os.cpu_count()} cores; command: `python benchmarks/synth/bench_synth.py`",
        "",
        "## One 64×512×512 field (bright-field + 7 structures + 7 noise-free channels + 9 label images, in memory)",
        "",
        "| seed | cells | time (s) | peak RSS (MB) |",
        "|---:|---:|---:|---:|",
    ]
    for seed, f in enumerate(fields):
        lines.append(f"| {seed} | {f['cells']:.0f} | {f['seconds']:.2f} | {f['peak_rss_mb']:.0f} |")
    lines += [
        "",
        "## Large fields, generated block by block (256×256 blocks + halo) and streamed to OME-Zarr",
        "",
        "| shape ZYX | voxels (M) | time (s) | peak RSS (MB) |",
        "|---|---:|---:|---:|",
    ]
    for spec, r in large:
        z, y, x = (int(v) for v in spec.split(","))
        lines.append(f"| {z}×{y}×{x} | {z * y * x / 1e6:.0f} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
