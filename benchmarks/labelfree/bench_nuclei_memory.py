"""Peak memory and wall time of ``subcell labelfree nuclei`` on a large field, before and after (issue 17's memory
aim applied to the nuclei command; the exactness of the two is checked on the same run).

    python benchmarks/labelfree/bench_nuclei_memory.py --before ae02fef --shape 64 1024 1024

The field is made once in ``--work``: bright-field-like noise (uint16, as ``bench_inference.py``'s big volume) and
touching cells of ~12 µm (a Voronoi tiling of a 64 × 256 × 256 block, repeated with new ids), 0.29 µm voxels (the
shipped ``nucleus`` model's grid, so nothing is resampled), both OME-Zarr. ``--model nucleus-in-cells``: a model that takes the
cells as its second input. ``--lateral-voxel 0.30`` declares both
at (0.29, 0.30, 0.30) µm instead (the same voxels, files named ``*_030``): a field off the model's grid, predicted
through the resampler onto and off it, as real stacks are. Each arm runs the CLI in a fresh
interpreter with its code first on ``PYTHONPATH`` (before = a git worktree of ``--before``), one after the other;
peak RSS is the child's ``VmHWM``. The arms' labels are compared voxel by voxel.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from bench_inference import make_volume  # noqa: E402
from bench_speed import REPO, run_cli, worktree  # noqa: E402

VOXEL = (0.29, 0.29, 0.29)


def make_cells(path: Path, shape: tuple[int, int, int], seed: int = 0, voxel: tuple[float, ...] = VOXEL) -> int:
    """Touching cells written slab by slab; returns their number."""
    from scipy import ndimage as ndi

    from subcell.io import OmeZarrWriter

    tile = (shape[0], 256, 256)
    rng = np.random.default_rng(seed)
    n = int(tile[1] * tile[2] * (VOXEL[1] / 12.0) ** 2)  # one layer of ~12 µm cells
    seeds = np.zeros(tile, np.int32)
    seeds[tile[0] // 2, rng.integers(0, tile[1], n), rng.integers(0, tile[2], n)] = np.arange(1, n + 1)
    _, idx = ndi.distance_transform_edt(seeds == 0, sampling=(3.0, 1.0, 1.0), return_indices=True)
    block = seeds[tuple(idx)]
    block[: tile[0] // 8], block[-tile[0] // 8 :] = 0, 0  # space above and below the cell layer
    ny, nx = shape[1] // tile[1], shape[2] // tile[2]
    if path.exists():
        return n * ny * nx
    with OmeZarrWriter(path, shape=(1, 1, *shape), dtype="int32", voxel_size=voxel, channel_names=["cells"],
                       is_label=True) as w:  # fmt: skip
        for k in range(ny * nx):
            y, x = divmod(k, nx)
            lab = np.where(block > 0, block + k * n, 0).astype(np.int32)
            w.write_region((slice(0, 1), slice(0, 1), slice(None), slice(y * 256, y * 256 + 256),
                            slice(x * 256, x * 256 + 256)), lab[None, None])  # fmt: skip
    return n * ny * nx


def run_arm(src: Path, bf: Path, cells: Path, out: Path, model: str = "nucleus") -> dict[str, float]:
    return run_cli(src, ["labelfree", "nuclei", str(bf), str(cells), str(out), "--model", model, "--memory-limit",
                         "2", "--overwrite"])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="ae02fef")
    ap.add_argument("--shape", type=int, nargs=3, default=[64, 1024, 1024])
    ap.add_argument("--arms", default="before,after")
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_bench_nuclei"))
    ap.add_argument("--tag", default=None)
    ap.add_argument("--lateral-voxel", type=float, default=VOXEL[1], help="y and x voxel size declared (µm)")
    ap.add_argument("--model", default="nucleus", help="e.g. nucleus-in-cells: the cells are also the model's input")
    args = ap.parse_args()
    from subcell import io

    args.work.mkdir(parents=True, exist_ok=True)
    shape = tuple(args.shape)
    voxel = (VOXEL[0], args.lateral_voxel, args.lateral_voxel)
    name = "x".join(map(str, shape)) + ("" if voxel == VOXEL else f"_{round(args.lateral_voxel * 100):03d}")
    bf, cells = args.work / f"bf_{name}.ome.zarr", args.work / f"cells_{name}.ome.zarr"
    make_volume(bf, shape, voxel)  # type: ignore[arg-type]
    n_cells = make_cells(cells, shape, voxel=voxel)  # type: ignore[arg-type]
    srcs = {"before": worktree(args.before, args.work), "after": REPO / "src"}
    rows: dict[str, dict[str, float]] = {}
    for arm in args.arms.split(","):
        out = args.work / f"nuclei_{arm}_{name}.ome.zarr"
        rows[arm] = run_arm(srcs[arm], bf, cells, out, args.model)
        print(arm, rows[arm], flush=True)
    result: dict[str, object] = {"shape": shape, "voxel_size": voxel, "voxels": int(np.prod(shape)), "cells": n_cells,
                                 "arms": rows, "before": args.before, "model": args.model}  # fmt: skip
    if {"before", "after"} <= set(rows):
        a = io.read(args.work / f"nuclei_before_{name}.ome.zarr").data[0, 0]
        b = io.read(args.work / f"nuclei_after_{name}.ome.zarr").data[0, 0]
        result["differing_voxels"] = int((a != b).sum().compute())
        result["nucleus_voxels"] = int((b > 0).sum().compute())
        print("differing voxels", result["differing_voxels"], "of", result["nucleus_voxels"], "nucleus voxels")
    tag = f"_{args.tag}" if args.tag else ""
    (HERE / "results" / f"nuclei_memory_{name}{tag}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
