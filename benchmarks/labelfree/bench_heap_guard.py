"""Peak resident memory of a prediction against ``--memory-limit`` with the tuned allocator, with and without
the heap guard (``subcell.train.host.HeapGuard``), in fresh processes (issue 17).

    python benchmarks/labelfree/bench_heap_guard.py --reps 3

Arms, each in its own interpreter: *guard* (the library as it is), *no_guard* (``HeapGuard`` made a no-op: the
tuned allocator keeps every freed block), *system* (``SUBCELL_MALLOC=system``: glibc's defaults, freed large
blocks unmapped at once). Cases: the shipped 3D model's DNA output (default preset, trained weights, so the
tiles and halo are a real model's) and ``fnet`` with fixed random weights, ``predict_to_zarr`` from an OME-Zarr of a
random volume at 0.29 µm to an OME-Zarr (reading, tiles, writing, pyramid), bf16, ``--limit`` GB. Reports peak RSS (``VmHWM``), wall time, the tile chosen and how many times the guard trimmed.
Arms run one after another, never at once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
CASES = {
    "resunet_64x512": ("resunet", (64, 512, 512)),
    "resunet_32x512": ("resunet", (32, 512, 512)),
    "fnet_64x512": ("fnet", (64, 512, 512)),
    "resunet_64x1024": ("resunet", (64, 1024, 1024)),
}
WORK = Path("/tmp/subcell_bench_heap_guard")


def child(case: str, arm: str, limit: float) -> dict[str, Any]:
    import torch

    from subcell import io
    from subcell.image import VoxelSize
    from subcell.labelfree import LabelFreeModel, PredictConfig, predict_to_zarr, preset
    from subcell.labelfree.pretrained import load_model
    from subcell.train import host

    rss: list[float] = []  # resident MB after each batch of tiles, where the guard looks
    trim = host.HeapGuard.__call__

    def watched(self: host.HeapGuard) -> None:
        rss.append((host.resident_bytes() or 0) / 2**20)
        if arm != "no_guard":
            trim(self)

    host.HeapGuard.__call__ = watched  # type: ignore[method-assign]
    name, shape = CASES[case]
    torch.manual_seed(0)
    if name == "fnet":
        model = LabelFreeModel.create(preset("fnet"), input_channel="brightfield", targets=["dna"],
                                      voxel_size=VoxelSize(0.29, 0.29, 0.29))  # fmt: skip
    else:
        model = load_model("dna")
    image = io.read(WORK / f"bf_{'x'.join(map(str, shape))}.ome.zarr")
    out = WORK / f"pred_{case}_{arm}.ome.zarr"
    t = time.perf_counter()
    predict_to_zarr(model, image, out, PredictConfig(memory_limit_gb=limit, precision="bf16"), overwrite=True)
    seconds = time.perf_counter() - t
    step = [h for h in io.read(out).provenance.history if h.get("step") == "labelfree.predict"][-1]["parameters"]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024  # type: ignore[union-attr]
    return {"case": case, "arm": arm, "seconds": seconds, "peak_rss_mb": hwm, "tile": step.get("tile"),
            "tiles": step.get("tiles"), "heap_trims": step.get("heap_trims"), "rss_after_batches_mb": rss}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--limit", type=float, default=2.0, help="--memory-limit in GB")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--arms", default="guard,no_guard,system")
    ap.add_argument("--tag", default="")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "ARM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.limit)))
        return
    sys.path.insert(0, str(HERE))
    from bench_inference import make_volume

    WORK.mkdir(parents=True, exist_ok=True)
    for case in args.cases.split(","):
        shape = CASES[case][1]
        vol = WORK / f"bf_{'x'.join(map(str, shape))}.ome.zarr"
        if not vol.exists():
            make_volume(vol, shape, (0.29, 0.29, 0.29))
    rows = []
    for rep in range(args.reps):
        for case in args.cases.split(","):
            for arm in args.arms.split(","):  # interleaved, so drift over the run touches every arm alike
                env = {**os.environ, **({"SUBCELL_MALLOC": "system"} if arm == "system" else {})}
                cmd = [sys.executable, __file__, "--limit", str(args.limit), "--child", case, arm]
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
                rows.append({**json.loads(out.strip().splitlines()[-1]), "rep": rep})
                print(rows[-1], flush=True)
    (HERE / "results").mkdir(exist_ok=True)
    name = f"heap_guard{'_' + args.tag if args.tag else ''}.json"
    (HERE / "results" / name).write_text(json.dumps({"limit_gb": args.limit, "rows": rows}, indent=1))
    print("| case | arm | peak RSS MB (each run) | seconds (each run) | heap trims | tile |")
    print("|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        for arm in args.arms.split(","):
            rs = [r for r in rows if r["case"] == case and r["arm"] == arm]
            peaks = ", ".join(f"{r['peak_rss_mb']:.0f}" for r in rs)
            secs = ", ".join(f"{r['seconds']:.1f}" for r in rs)
            trims = ", ".join(str(r["heap_trims"]) for r in rs)
            print(f"| {case} | {arm} | {peaks} | {secs} | {trims} | {rs[0]['tile'] if rs else ''} |")


if __name__ == "__main__":
    main()
