"""Peak memory and wall time of ``subcell labelfree predict --model nucleus-in-cells --cells``, before and after,
on time-lapses whose cell depth is small enough to hold a frame of and too large to.

    python benchmarks/labelfree/bench_cells_memory.py --before HEAD~1

Fields at the model's 0.29 µm (no resampling), written once in ``--work``: a smooth random bright-field movie and
its cell labels (uint16, 60×60-pixel cells through the middle planes, moved a few pixels each frame):
4 × 32×1024×1024 (each frame's depth 134 MB, held in memory) and 2 × 64×1280×1280 (419 MB a frame, beyond the
256 MB held: written to the output store's scratch). Each arm runs the CLI in a fresh interpreter with its code
first on ``PYTHONPATH`` (before = a git worktree), alternating, one at a time; peak RSS is the child's ``VmHWM``.
The arms' predictions are compared voxel by voxel.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from bench_speed import REPO, run_cli, worktree  # noqa: E402

FIELDS = {"4x32x1024x1024": (4, 32, 1024, 1024), "2x64x1280x1280": (2, 64, 1280, 1280)}
VS = (0.29, 0.29, 0.29)


def make_field(work: Path, shape: tuple[int, int, int, int]) -> Path:
    from scipy import ndimage as ndi

    from subcell.image import Image
    from subcell.io import write

    out = work / "x".join(map(str, shape))
    if (out / "done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t, z, y, x = shape
    bf = np.stack([ndi.gaussian_filter(rng.standard_normal((z, y, x), np.float32), 2) * 50 + 500 for _ in range(t)])
    cells = np.zeros(shape, np.uint16)
    for f in range(t):
        k = 1
        for y0 in range(0, y - 64, 64):
            for x0 in range(0, x - 64, 64):
                s = (3 * f + k) % 5
                cells[f, z // 8 : z - z // 8, y0 + 2 + s : y0 + 62, x0 + 2 : x0 + 62 - s] = k
                k += 1
    write(Image(bf[:, None], voxel_size=VS, channel_names=["brightfield"]), out / "bf.ome.zarr")
    write(Image(cells[:, None], voxel_size=VS, channel_names=["cells"]), out / "cells.ome.zarr")
    (out / "done").write_text("")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_bench_cells"))
    ap.add_argument("--fields", default=",".join(FIELDS))
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    from subcell.io import read

    args.work.mkdir(parents=True, exist_ok=True)
    srcs = {"before": worktree(args.before, args.work), "after": REPO / "src"}
    runs: dict[str, dict[str, float]] = {}
    largest: dict[str, float] = {}
    for name in args.fields.split(","):
        field = make_field(args.work, FIELDS[name])
        outs = {}
        for arm in ("before", "after"):
            outs[arm] = args.work / f"pred_{name}_{arm}.ome.zarr"
            cli = ["labelfree", "predict", str(field / "bf.ome.zarr"), str(outs[arm]), "--model", "nucleus-in-cells",
                   "--cells", str(field / "cells.ome.zarr"), "--overwrite", "--quiet"]  # fmt: skip
            runs[f"{name} {arm}"] = r = run_cli(srcs[arm], cli)
            print(name, arm, r, flush=True)
        a, b = (read(outs[arm]).data for arm in ("before", "after"))
        largest[name] = float(max(abs(a[t] - b[t]).max().compute() for t in range(a.shape[0])))
        print("largest difference", name, largest[name], flush=True)
    out = {"before": args.before, "runs": runs, "largest_difference": largest}
    (HERE / "results" / f"cells_memory{'_' + args.tag if args.tag else ''}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
