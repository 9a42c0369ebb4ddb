"""Peak memory and wall time of ``subcell evaluate-seg`` on a large label volume, before and after.

    python benchmarks/metrics/bench_evaluate_memory.py --before fa26de5 --shape 64 1024 1024

Truth = the touching cells of ``benchmarks/labelfree/bench_nuclei_memory.py`` (int32, ~12 µm cells, written once
in ``--work``); prediction = the same cells moved by one voxel along x and renamed, so objects match at a range of
IoU. Each arm runs the CLI in a fresh interpreter with its code first on ``PYTHONPATH`` (before = a git worktree of
``--before``), alternating ``--repeats`` times, one at a time; peak RSS is the child's ``VmHWM``. The arms' tables
are compared. Results: ``evaluate_memory_<shape>.json`` beside this script and the table in
``matching_results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "labelfree"))

from bench_inference import _RSS  # noqa: E402
from bench_nuclei_memory import make_cells  # noqa: E402
from bench_speed import REPO, worktree  # noqa: E402


def make_prediction(truth: Path, out: Path) -> None:
    """The truth's cells moved by a voxel along x and renamed (id × 3 + 1), written plane block by plane block."""
    from subcell import io
    from subcell.io import OmeZarrWriter

    if out.exists():
        return
    img = io.read(truth)
    with OmeZarrWriter(out, shape=img.shape, dtype="int32", voxel_size=img.voxel_size.as_tuple(),
                       channel_names=["cells"], is_label=True) as w:  # fmt: skip
        for z in range(0, img.shape[2], 8):
            block = np.asarray(img.data[:, :, z : z + 8])
            moved = np.roll(block, 1, axis=-1)
            w.write_region(
                (slice(None), slice(None), slice(z, z + block.shape[2])), np.where(moved > 0, moved * 3 + 1, 0)
            )


def run_arm(src: Path, pred: Path, truth: Path, out: Path) -> dict[str, float]:
    code = (
        f"{_RSS}\nimport json, time\nfrom subcell.cli.main import run\nt = time.perf_counter()\n"
        f"rc = run(['evaluate-seg', {str(pred)!r}, {str(truth)!r}, '--out', {str(out)!r}])\n"
        "print(json.dumps({'rc': rc, 'seconds': time.perf_counter() - t, 'peak_rss_mb': rss()}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(src)})  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="fa26de5")
    ap.add_argument("--shape", type=int, nargs=3, default=[64, 1024, 1024])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_bench_evaluate"))
    args = ap.parse_args()
    import pandas as pd

    args.work.mkdir(parents=True, exist_ok=True)
    name = "x".join(map(str, args.shape))
    truth, pred = args.work / f"truth_{name}.ome.zarr", args.work / f"pred_{name}.ome.zarr"
    make_cells(truth, tuple(args.shape))  # type: ignore[arg-type]
    make_prediction(truth, pred)
    srcs = {"before": worktree(args.before, args.work), "after": REPO / "src"}
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.repeats):
        for arm in ("before", "after"):
            runs[arm].append(run_arm(srcs[arm], pred, truth, args.work / f"scores_{arm}.parquet"))
            print(arm, runs[arm][-1], flush=True)
    tables = [pd.read_parquet(args.work / f"scores_{arm}.parquet") for arm in ("before", "after")]
    same = bool(tables[0].equals(tables[1]))
    print("same table:", same)
    result = {"shape": args.shape, "before": args.before, "runs": runs, "same_table": same,
              "table": tables[1].to_dict(orient="list")}  # fmt: skip
    (HERE / f"evaluate_memory_{name}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
