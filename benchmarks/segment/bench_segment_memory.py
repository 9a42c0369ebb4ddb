"""Peak memory and wall time of ``subcell segment`` on a time-lapse written to OME-Zarr (or OME-TIFF), before and after.

    python benchmarks/segment/bench_segment_memory.py --before 1ed905c --repeat 4
    python benchmarks/segment/bench_segment_memory.py --before a6229e5 --suffix .ome.tif   # OME-TIFF output

The movie: the ``dna`` channel of ``subcell synth`` with 12 frames of 16×320×320, repeated ``--repeat`` times along T
(48 frames at the default, uint16, 157 MB), written once in ``--work``. Each arm runs ``subcell segment MOVIE OUT
--workflow nucleus`` in a fresh interpreter with its code first on ``PYTHONPATH`` (before = a git worktree of
``--before``), alternating, one at a time; peak RSS is the child's ``VmHWM``. The arms' label images are compared.
Results: ``segment_memory_x<repeat><tag>.json`` beside this script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "labelfree"))
sys.path.insert(0, str(HERE.parent / "track"))

from bench_speed import REPO, run_cli, worktree  # noqa: E402
from bench_track_memory import synth_movie  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_bench_segment"))
    ap.add_argument("--tag", default="")
    ap.add_argument("--suffix", default=".ome.zarr", choices=[".ome.zarr", ".ome.tif"], help="the output's format")
    args = ap.parse_args()
    from subcell.io import read

    args.work.mkdir(parents=True, exist_ok=True)
    movie = synth_movie(args.work, args.repeat, name="dna", pick=lambda base: read(base).channel("dna"), channel="dna")
    srcs = {"before": worktree(args.before, args.work), "after": REPO / "src"}
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.runs):
        for arm in ("before", "after"):
            out = args.work / f"nuclei_{arm}{args.suffix}"
            runs[arm].append(run_cli(srcs[arm], ["segment", str(movie), str(out), "--workflow", "nucleus",
                                                 "--overwrite"]))  # fmt: skip
            print(arm, runs[arm][-1], flush=True)
    a, b = (read(args.work / f"nuclei_{arm}{args.suffix}") for arm in ("before", "after"))
    same = bool(np.array_equal(a.numpy(), b.numpy()) and a.provenance.history[-1] == b.provenance.history[-1])
    a = a.numpy()
    print("same labels and provenance step:", same, "shape:", a.shape, "objects in frame 0:", len(np.unique(a[0])) - 1)
    result = {"movie": str(movie), "shape": list(read(movie).shape), "before": args.before, "runs": runs,
              "suffix": args.suffix, "same_labels": same}  # fmt: skip
    fmt = "" if args.suffix == ".ome.zarr" else "_tiff"
    (HERE / f"segment_memory_x{args.repeat}{fmt}{args.tag}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
