"""Peak memory and wall time of ``subcell labelfree evaluate``, before and after, at two field sizes.

    python benchmarks/labelfree/bench_evaluate_memory.py --before HEAD~1

Fields: 64×512×512 and 64×1536×1536 (16.8 M and 151 M voxels) at 0.29×0.2×0.2 µm, written once in ``--work``
(the first's inputs fit the 512 MB a frame is kept up to, the second's do not and are read slab by slab):
a smooth random "truth", a noisy target with its noise-free channel, a prediction (truth + smooth noise), cells
(56×56-pixel squares through the stack), a nucleus mask and a probability-like prediction of it. Two cases per
size: intensity (``--cells``, noise ceiling from the noise-free channel) and mask (``--cells --mask-target``);
``--cases intensity_coarse,mask_coarse``: the same with the prediction at half the lateral resolution (every pixel
of the second row and column), so the inputs are resampled onto its grid; ``--cases figure``: the intensity case
with ``--figure`` (and the target as ``--input``), whose PNGs are compared pixel by pixel between the arms.
Each arm runs the CLI in a fresh interpreter with its code first on ``PYTHONPATH`` (before = a git worktree),
alternating, one at a time; peak RSS is the child's ``VmHWM``; "bytes per voxel" is the slope between the two
sizes. The arms' tables are compared column by column.
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

SIZES = {"64x512x512": (64, 512, 512), "64x1536x1536": (64, 1536, 1536)}
VS = (0.29, 0.2, 0.2)


def make_field(work: Path, shape: tuple[int, int, int]) -> Path:
    from scipy import ndimage as ndi

    from subcell.image import Image
    from subcell.io import write

    out = work / "x".join(map(str, shape))
    if (out / "done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    truth = ndi.gaussian_filter(rng.standard_normal(shape, np.float32), 3) * 100 + 50
    target = truth + rng.normal(0, float(truth.std()) * 0.5, shape).astype(np.float32)
    pred = truth + 0.5 * ndi.gaussian_filter(rng.standard_normal(shape, np.float32), 2) * 100
    cells = np.zeros(shape, np.uint16)
    nuclei = np.zeros(shape, np.uint8)
    k = 1
    for y in range(0, shape[1], 64):
        for x in range(0, shape[2], 64):
            cells[:, y + 4 : y + 60, x + 4 : x + 60] = k
            nuclei[16:48, y + 16 : y + 44, x + 18 : x + 46] = 1
            k += 1
    prob = (nuclei * 0.6 + ndi.gaussian_filter(rng.standard_normal(shape, np.float32), 1)).astype(np.float32)

    def save(name: str, data: np.ndarray, channels: list[str]) -> None:
        write(Image(data, voxel_size=VS, dims="CZYX", channel_names=channels), out / name)

    save("target.ome.zarr", np.stack([target, truth]), ["dna", "dna_noise_free"])
    save("pred.ome.zarr", pred[None], ["dna"])
    save("cells.ome.zarr", cells[None], ["cells"])
    save("nuclei.ome.zarr", nuclei[None], ["nucleus"])
    save("prob.ome.zarr", prob[None], ["nucleus"])
    (out / "done").write_text("")
    return out


def make_coarse(field: Path) -> None:
    """Predictions at half the lateral resolution (a model's coarser grid), from the field's own: the other inputs
    are resampled onto their grid."""
    from subcell.image import Image
    from subcell.io import read, write

    coarse = (VS[0], 2 * VS[1], 2 * VS[2])
    for name in ("pred", "prob"):
        if not (field / f"{name}_coarse.ome.zarr").exists():
            full = read(field / f"{name}.ome.zarr")
            write(Image(full.numpy()[0, :, :, ::2, ::2], voxel_size=coarse, dims="CZYX",
                        channel_names=full.channel_names), field / f"{name}_coarse.ome.zarr")  # fmt: skip


def cases(field: Path, work: Path, arm: str) -> dict[str, list[str]]:
    cells = ["--cells", str(field / "cells.ome.zarr")]
    return {
        "intensity": ["labelfree", "evaluate", str(field / "pred.ome.zarr"), str(field / "target.ome.zarr"), *cells,
                      "--out", str(work / f"intensity_{field.name}_{arm}.csv")],
        "mask": ["labelfree", "evaluate", str(field / "prob.ome.zarr"), str(field / "nuclei.ome.zarr"), *cells,
                 "--mask-target", "--out", str(work / f"mask_{field.name}_{arm}.csv")],
        "intensity_coarse": ["labelfree", "evaluate", str(field / "pred_coarse.ome.zarr"),
                             str(field / "target.ome.zarr"), *cells,
                             "--out", str(work / f"intensity_coarse_{field.name}_{arm}.csv")],
        "mask_coarse": ["labelfree", "evaluate", str(field / "prob_coarse.ome.zarr"), str(field / "nuclei.ome.zarr"),
                        *cells, "--mask-target", "--out", str(work / f"mask_coarse_{field.name}_{arm}.csv")],
        "figure": ["labelfree", "evaluate", str(field / "pred.ome.zarr"), str(field / "target.ome.zarr"), *cells,
                   "--input", str(field / "target.ome.zarr"), "--figure", str(work / f"figure_{field.name}_{arm}.png"),
                   "--out", str(work / f"figure_{field.name}_{arm}.csv")],
    }  # fmt: skip


def compare_figures(work: Path, field: Path) -> dict[str, float]:
    """The two arms' figures, pixel by pixel: the largest difference (0–1 per RGBA channel) and the share of pixels
    that differ at all."""
    from matplotlib.image import imread

    b, a = (imread(work / f"figure_{field.name}_{arm}.png") for arm in ("before", "after"))
    if b.shape != a.shape:
        return {"same_size": 0.0}
    diff = np.abs(b - a).max(axis=-1)
    return {
        "same_size": 1.0,
        "largest_pixel_difference": float(diff.max()),
        "pixels_differing": float((diff > 0).mean()),
    }


def main() -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_bench_evaluate"))
    ap.add_argument("--tag", default="")
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--cases", default="intensity,mask",
                    help="also intensity_coarse, mask_coarse: the prediction at half the lateral resolution")  # fmt: skip
    args = ap.parse_args()
    sizes = {k: SIZES[k] for k in args.sizes.split(",")}
    case_names = args.cases.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    srcs = {"before": worktree(args.before, args.work), "after": REPO / "src"}
    runs: dict[str, dict[str, dict[str, float]]] = {}
    largest: dict[str, float] = {}
    for size, shape in sizes.items():
        field = make_field(args.work, shape)
        if any(c.endswith("_coarse") for c in case_names):
            make_coarse(field)
        for case in case_names:
            for arm in ("before", "after"):
                runs[f"{case} {size} {arm}"] = r = run_cli(srcs[arm], cases(field, args.work, arm)[case])
                print(case, size, arm, r, flush=True)
            b, a = (pd.read_csv(args.work / f"{case}_{field.name}_{arm}.csv") for arm in ("before", "after"))
            num = b.select_dtypes("number").columns
            diff = (b[num] - a[num]).abs().max()
            largest[f"{case} {size}"] = float(diff.max())
            print("largest difference", case, size, diff[diff > 0].to_dict(), flush=True)
            if case == "figure":
                runs[f"figure {size} comparison"] = cmp = compare_figures(args.work, field)
                print("figures", size, cmp, flush=True)
    voxels = {size: float(np.prod(shape)) for size, shape in sizes.items()}
    slope = {}
    if len(sizes) == 2:
        small, big = sizes
        slope = {
            f"{case} {arm}": (runs[f"{case} {big} {arm}"]["peak_rss_mb"]
                              - runs[f"{case} {small} {arm}"]["peak_rss_mb"]) * 2**20 / (voxels[big] - voxels[small])
            for case in case_names for arm in ("before", "after")
        }  # fmt: skip
        print("bytes per voxel:", {k: round(v, 1) for k, v in slope.items()})
    out = {"before": args.before, "runs": runs, "bytes_per_voxel": slope, "largest_difference": largest}
    (HERE / "results" / f"evaluate_memory{'_' + args.tag if args.tag else ''}.json").write_text(
        json.dumps(out, indent=1)
    )


if __name__ == "__main__":
    main()
