"""Peak memory and wall time of ``subcell measure`` on a stored time-lapse, before and after.

    python benchmarks/segment/bench_measure_memory.py --before 2679b62 --frames 12 --shape 32 1024 1024

The labels: the touching cells of ``benchmarks/labelfree/bench_nuclei_memory.py`` (int32, ~12 µm cells), moved by
``t`` voxels along x in frame ``t``; the intensity: a uint16 channel ``dna`` brighter inside the cells, with noise.
Both OME-Zarr ``(T, 1, Z, Y, X)``, written frame by frame once in ``--work``. Each arm runs
``subcell measure LABELS OUT --intensity IMAGE`` in a fresh interpreter with its code first on ``PYTHONPATH``
(before = a git worktree of ``--before``), alternating ``--repeats`` times, one at a time; peak RSS is the child's
``VmHWM``. The arms' tables are compared. Results: ``measure_memory_<frames>x<shape><tag>.json`` beside this script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "labelfree"))

from bench_nuclei_memory import VOXEL, make_cells  # noqa: E402
from bench_speed import REPO, run_cli, worktree  # noqa: E402


def make_timelapse(work: Path, frames: int, shape: tuple[int, int, int]) -> tuple[Path, Path]:
    from subcell import io
    from subcell.io import OmeZarrWriter

    name = f"{frames}x" + "x".join(map(str, shape))
    labels, image = work / f"labels_{name}.ome.zarr", work / f"image_{name}.ome.zarr"
    if labels.exists() and image.exists():
        return labels, image
    cells = work / f"cells_{'x'.join(map(str, shape))}.ome.zarr"
    make_cells(cells, shape)
    one = io.read(cells)
    rng = np.random.default_rng(0)
    kw = {"shape": (frames, 1, *shape), "voxel_size": VOXEL, "time_interval": 300.0}
    with OmeZarrWriter(labels, dtype="int32", channel_names=["cells"], is_label=True, **kw) as wl, \
            OmeZarrWriter(image, dtype="uint16", channel_names=["dna"], **kw) as wi:  # type: ignore[arg-type]  # fmt: skip
        for t in range(frames):
            for z in range(0, shape[0], 8):
                lab = np.roll(np.asarray(one.data[0, 0, z : z + 8]), t, axis=-1)
                region = (slice(t, t + 1), slice(None), slice(z, z + lab.shape[0]))
                wl.write_region(region, lab[None, None])
                signal = 500 + 400 * (lab > 0) + rng.normal(0, 30, lab.shape)
                wi.write_region(region, np.clip(signal, 0, 65535).astype(np.uint16)[None, None])
    return labels, image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--shape", type=int, nargs=3, default=[32, 1024, 1024])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_bench_measure"))
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    import pandas as pd

    args.work.mkdir(parents=True, exist_ok=True)
    labels, image = make_timelapse(args.work, args.frames, tuple(args.shape))  # type: ignore[arg-type]
    srcs = {"before": worktree(args.before, args.work), "after": REPO / "src"}
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.repeats):
        for arm in ("before", "after"):
            out = args.work / f"measure_{arm}.parquet"
            runs[arm].append(run_cli(srcs[arm], ["measure", str(labels), str(out), "--intensity", str(image),
                                                 "--overwrite"]))  # fmt: skip
            print(arm, runs[arm][-1], flush=True)
    tables = [pd.read_parquet(args.work / f"measure_{arm}.parquet") for arm in ("before", "after")]
    same = bool(tables[0].equals(tables[1]))
    print("same table:", same, "rows:", len(tables[1]), "frames:", tables[1].t.nunique())
    name = f"{args.frames}x" + "x".join(map(str, args.shape))
    result = {"frames": args.frames, "shape": args.shape, "before": args.before, "runs": runs, "same_table": same,
              "rows": len(tables[1])}  # fmt: skip
    (HERE / f"measure_memory_{name}{args.tag}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
