"""Peak memory of closing an OME-Zarr time-lapse: display windows of the coarsest level, before vs after.

Before, the writer loaded the whole coarsest pyramid level as float64 to find each channel's display window
(18.9 GB for a 300×2×60×1024² time-lapse). Now it streams one (timepoint, channel) volume at a time
(``ome_zarr_writer.channel_windows``). A 300-frame store is written once; both ways of computing the windows
then run on it, each in a fresh process (peak RSS = VmHWM), and must give the same windows.
Run: ``python benchmarks/io/bench_writer_close.py [--frames 300 --z 16 --yx 512]`` → ``writer_close_results.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent

MEASURE = """
import json, sys
import numpy as np, zarr
from subcell.io.ome_zarr_writer import channel_windows
store, how = sys.argv[1:3]
root = zarr.open_group(store, mode="r")
coarse = root[str(max(int(k) for k in root.array_keys()))]
base = [l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]
if how == "before":  # the previous implementation
    whole = np.asarray(coarse[...], dtype=np.float64)
    windows = []
    for c in range(whole.shape[1]):
        plane = whole[:, c]
        finite = plane[np.isfinite(plane)]
        windows.append((float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
else:
    windows = channel_windows(coarse)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"windows": windows, "peak_rss_mb": int(hwm) / 1024, "start_rss_mb": int(base) / 1024,
                  "coarse_shape": list(coarse.shape)}))
"""


def main() -> None:
    import numpy as np

    from subcell.io import OmeZarrWriter

    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--z", type=int, default=16)
    ap.add_argument("--yx", type=int, default=512)
    a = ap.parse_args()
    shape = (a.frames, 2, a.z, a.yx, a.yx)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "movie.ome.zarr"
        zz, yy, xx = np.meshgrid(np.arange(a.z), np.arange(a.yx), np.arange(a.yx), indexing="ij")
        ramp = (100 + 3 * xx + 2 * yy + 50 * zz).astype(np.uint16)  # compressible, so the store stays small on disk
        frame = np.stack([ramp, ramp // 2 + 7])
        with OmeZarrWriter(
            path, shape=shape, dtype=np.uint16, voxel_size=(0.29, 0.108, 0.108), time_interval=300.0
        ) as w:
            for t in range(a.frames):
                w.write_region((slice(t, t + 1),), (frame + t)[None])
        for how in ("before", "after"):
            out = subprocess.run(
                [sys.executable, "-c", MEASURE, str(path), how], capture_output=True, text=True, check=True
            )
            results[how] = json.loads(out.stdout.strip().splitlines()[-1])
    same = results["before"]["windows"] == results["after"]["windows"]
    lines = [
        "# Closing an OME-Zarr time-lapse: memory of the display windows",
        "",
        f"Command: `python benchmarks/io/bench_writer_close.py --frames {a.frames} --z {a.z} --yx {a.yx}` "
        f"(store {'×'.join(map(str, shape))} uint16; coarsest level {'×'.join(map(str, results['after']['coarse_shape']))}).",
        "",
        "| computation | peak RSS (MB) | RSS before it (MB) | windows |",
        "|---|---:|---:|---|",
    ]
    for how, label in (
        ("before", "whole coarsest level as float64 (before)"),
        ("after", "streamed per (t, c) volume (after)"),
    ):
        r = results[how]
        lines.append(f"| {label} | {r['peak_rss_mb']:.0f} | {r['start_rss_mb']:.0f} | {r['windows']} |")
    lines.append("")
    lines.append(f"Same windows: {same}.")
    (HERE / "writer_close_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
