"""Writing tracks for other tools: the TrackMate XML model against the geff graph of the same tracks.

    python benchmarks/track/bench_export.py [--tracks 2000] [--frames 100]

Each format is written in its own process (peak RSS is per process) from the same synthetic tracks table (random
positions; the writers do not look at them): wall time, peak RSS, and the file's size. Nothing else may run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _table(n_tracks: int, n_frames: int):  # type: ignore[no-untyped-def]
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    t = np.tile(np.arange(n_frames), n_tracks)
    tid = np.repeat(np.arange(1, n_tracks + 1), n_frames)
    return pd.DataFrame({"track_id": tid, "t": t, "z_um": rng.random(t.size) * 10, "y_um": rng.random(t.size) * 100,
                         "x_um": rng.random(t.size) * 100, "parent_track": 0, "volume_um3": 300.0,
                         "mean_intensity": 1.0})  # fmt: skip


def _child(fmt: str, n_tracks: int, n_frames: int, out: Path) -> None:
    from subcell.track.graph import write_geff, write_trackmate

    table = _table(n_tracks, n_frames)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if fmt == "trackmate":
        write_trackmate(out, table, shape=(n_frames, 20, 1000, 1000), voxel_size=(0.5, 0.1, 0.1), time_interval_s=60)
    else:
        write_geff(out, table, two_d=False, time_interval_s=60)
    wall = time.perf_counter() - start
    size = out.stat().st_size if out.is_file() else sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"format": fmt, "spots": len(table), "wall_s": round(wall, 2), "peak_rss_mb": round(peak / 1024),
                      "rss_before_mb": round(base / 1024), "file_mb": round(size / 2**20, 1)}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tracks", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--child", choices=["trackmate", "geff"])
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.tracks, args.frames, Path(args.out))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, name in (("geff", "tracks.geff"), ("trackmate", "tracks.xml")):
            cmd = [sys.executable, __file__, "--child", fmt, "--tracks", str(args.tracks), "--frames",
                   str(args.frames), "--out", str(Path(tmp) / name)]  # fmt: skip
            print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
