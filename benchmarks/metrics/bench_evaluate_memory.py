"""Peak memory and wall time of ``subcell evaluate-seg`` and ``subcell labelfree evaluate`` on a large volume,
before and after.

    python benchmarks/metrics/bench_evaluate_memory.py --before fa26de5 --shape 64 1024 1024
    python benchmarks/metrics/bench_evaluate_memory.py --command labelfree --before 337281f
    python benchmarks/metrics/bench_evaluate_memory.py --command report --before aaa3dcc

``seg``: truth = the touching cells of ``benchmarks/labelfree/bench_nuclei_memory.py`` (int32, ~12 µm cells,
written once in ``--work``); prediction = the same cells moved by one voxel along x and renamed, so objects match
at a range of IoU. ``labelfree``: a float32 target (smooth structure plus noise, channel ``dna``) and a prediction
of it (a smoothed, scaled copy plus other noise), written slab by slab. ``report``: ``subcell report`` of a folder
holding ``f.ome.zarr`` (channel ``dna``: the cells' smoothed mask plus noise; the ``seg`` truth as its
``labels/nucleus``) and ``f_nucleus.ome.zarr`` (the ``seg`` prediction): its segmentation section, whose pages are
compared with the dates and figures taken out, and the figures pixel by pixel. Each arm runs the CLI in a fresh interpreter with its code first on ``PYTHONPATH`` (before = a git worktree of
``--before``), alternating ``--repeats`` times, one at a time; peak RSS is the child's ``VmHWM``. The arms' tables
are compared. Results: ``evaluate_memory_[labelfree_]<shape>.json`` beside this script and the tables in
``matching_results.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "labelfree"))

from bench_nuclei_memory import make_cells  # noqa: E402
from bench_speed import REPO, run_cli, worktree  # noqa: E402


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


def make_intensities(target: Path, pred: Path, shape: tuple[int, int, int], voxel: tuple[float, ...]) -> None:
    """A float32 target and a prediction of it, both channel ``dna``, written 8 planes at a time."""
    from scipy import ndimage as ndi

    from subcell.io import OmeZarrWriter

    if target.exists() and pred.exists():
        return
    rng = np.random.default_rng(0)
    kw = {"shape": (1, 1, *shape), "dtype": "float32", "voxel_size": voxel, "channel_names": ["dna"]}
    with OmeZarrWriter(target, **kw) as wt, OmeZarrWriter(pred, **kw) as wp:  # type: ignore[arg-type]
        for z in range(0, shape[0], 8):
            n = min(8, shape[0] - z)
            field = ndi.gaussian_filter(rng.random((n, *shape[1:]), np.float32), (0, 4, 4))
            region = (slice(None), slice(None), slice(z, z + n))
            wt.write_region(region, (field + 0.02 * rng.standard_normal(field.shape, np.float32))[None, None])
            guess = 0.8 * ndi.gaussian_filter(field, (0, 1, 1)) + 0.03 * rng.standard_normal(field.shape, np.float32)
            wp.write_region(region, guess.astype(np.float32)[None, None])


def make_report_folder(folder: Path, truth: Path, pred: Path) -> None:
    """``f.ome.zarr`` (``dna`` image + ``labels/nucleus`` = ``truth``) and ``f_nucleus.ome.zarr`` (= ``pred``)."""
    import shutil

    from scipy import ndimage as ndi

    from subcell import io
    from subcell.io import OmeZarrWriter

    if (folder / "f_nucleus.ome.zarr").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    cells = io.read(truth)
    rng = np.random.default_rng(1)
    with OmeZarrWriter(folder / "f.ome.zarr", shape=cells.shape, dtype="uint16", voxel_size=cells.voxel_size.as_tuple(),
                       channel_names=["dna"]) as w:  # fmt: skip
        for z in range(0, cells.shape[2], 8):
            inside = np.asarray(cells.data[0, 0, z : z + 8]) > 0
            signal = 400 + 600 * ndi.gaussian_filter(inside.astype(np.float32), (0, 2, 2))
            noisy = signal + rng.normal(0, 40, signal.shape).astype(np.float32)
            w.write_region((slice(None), slice(None), slice(z, z + inside.shape[0])),
                           np.clip(noisy, 0, 65535).astype(np.uint16)[None, None])  # fmt: skip
        w.add_label("nucleus", cells.data[0, 0])
    shutil.copytree(pred, folder / "f_nucleus.ome.zarr")


def compare_pages(before: Path, after: Path) -> dict[str, object]:
    """The two pages' text (dates and embedded figures taken out) and their figures, pixel by pixel."""
    import base64
    import io as _io
    import re

    from matplotlib.image import imread

    pages = [p.read_text() for p in (before, after)]
    figs = [re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", t) for t in pages]
    texts = [re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC|data:image/png;base64,[A-Za-z0-9+/=]+", "", t) for t in pages]
    out: dict[str, object] = {"same_text": texts[0] == texts[1], "figures": []}
    for b, a in zip(*figs, strict=True):
        x, y = (imread(_io.BytesIO(base64.b64decode(v))) for v in (b, a))
        if x.shape != y.shape:
            out["figures"].append({"shape": [list(x.shape), list(y.shape)]})  # type: ignore[attr-defined]
            continue
        d = np.abs(x.astype(np.float64) - y.astype(np.float64)).max(axis=-1)
        out["figures"].append({"max_abs_255": float(d.max() * 255), "pixels_differing": float((d > 0).mean())})  # type: ignore[attr-defined]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--command", choices=["seg", "labelfree", "report"], default="seg")
    ap.add_argument("--before", default="fa26de5")
    ap.add_argument("--shape", type=int, nargs=3, default=[64, 1024, 1024])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_bench_evaluate"))
    ap.add_argument("--tag", default="", help="Appended to the results file's name (keeps earlier results).")
    args = ap.parse_args()
    import pandas as pd

    args.work.mkdir(parents=True, exist_ok=True)
    name = "x".join(map(str, args.shape))
    if args.command in ("seg", "report"):
        truth, pred = args.work / f"truth_{name}.ome.zarr", args.work / f"pred_{name}.ome.zarr"
        make_cells(truth, tuple(args.shape))  # type: ignore[arg-type]
        make_prediction(truth, pred)
        command = ["evaluate-seg", str(pred), str(truth), "--out"]
    if args.command == "report":
        folder = args.work / f"report_{name}"
        make_report_folder(folder, truth, pred)
        command = ["report", str(folder), "--overwrite"]
        name = f"report_{name}"
    elif args.command == "labelfree":
        truth, pred = args.work / f"target_{name}.ome.zarr", args.work / f"dna_{name}.ome.zarr"
        make_intensities(truth, pred, tuple(args.shape), (0.29, 0.29, 0.29))  # type: ignore[arg-type]
        command = ["labelfree", "evaluate", str(pred), str(truth), "--out"]
        name = f"labelfree_{name}"
    srcs = {"before": worktree(args.before, args.work), "after": REPO / "src"}
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.repeats):
        for arm in ("before", "after"):
            out = args.work / (f"report_{arm}.html" if args.command == "report" else f"scores_{arm}.parquet")
            runs[arm].append(run_cli(srcs[arm], [*command[:2], str(out), *command[2:]] if args.command == "report"
                                     else [*command, str(out)]))  # fmt: skip
            print(arm, runs[arm][-1], flush=True)
    if args.command == "report":
        pages = compare_pages(args.work / "report_before.html", args.work / "report_after.html")
        print(pages)
        result = {"shape": args.shape, "before": args.before, "runs": runs, "pages": pages}
        (HERE / f"evaluate_memory_{name}{args.tag}.json").write_text(json.dumps(result, indent=1))
        return
    tables = [pd.read_parquet(args.work / f"scores_{arm}.parquet") for arm in ("before", "after")]
    same = bool(tables[0].equals(tables[1]))
    numbers = tables[0].select_dtypes("number").columns
    diff = float(np.nanmax(np.abs(tables[0][numbers].to_numpy(float) - tables[1][numbers].to_numpy(float))))
    print("same table:", same, "largest difference:", diff)
    result = {"shape": args.shape, "before": args.before, "runs": runs, "same_table": same,
              "max_abs_difference": diff, "table": tables[1].to_dict(orient="list")}  # fmt: skip
    (HERE / f"evaluate_memory_{name}{args.tag}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
