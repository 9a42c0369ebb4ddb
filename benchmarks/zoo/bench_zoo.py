"""bioimage.io packages: size and bioimageio.core test time of an exported shipped model, and prediction through
the package vs the native model folder on the same input (same tiles, same process, alternating, best of 3).

    python benchmarks/zoo/bench_zoo.py [--shape 64 256 256] [--out benchmarks/zoo/results.json]

Check that nothing else runs first (`uptime`): timings on a busy 2-core machine mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", type=int, nargs=3, default=(64, 256, 256))
    ap.add_argument("--model", default="hipsc-bf-3d")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    os.environ.setdefault("BIOIMAGEIO_CACHE_PATH", str(tmp / "cache"))
    from subcell import synth
    from subcell.labelfree import PredictConfig, predict_image
    from subcell.labelfree.pretrained import load_model
    from subcell.zoo.export import export_labelfree

    model = load_model(args.model)
    vs = model.voxel_size.as_tuple()
    field = synth.synth_field(shape=tuple(args.shape), voxel_size=vs, seed=11)
    image = field.image.channel("brightfield")
    t0 = time.perf_counter()
    res = export_labelfree(model, image, tmp / "model.zip")
    export_s = time.perf_counter() - t0
    package = load_model(tmp / "model.zip")
    results: dict[str, object] = {
        "model": args.model, "parameters": sum(p.numel() for p in model.network.parameters()),
        "package_mb": round(res.size_bytes / 1e6, 2), "export_seconds_incl_test": round(export_s, 1),
        "test_model_seconds": round(res.test_seconds or 0.0, 1), "test_tensor": list(res.test_shape),
        "shape": list(args.shape), "voxel_size_um": list(vs),
    }  # fmt: skip
    for precision in ("fp32", "bf16"):
        cfg = PredictConfig(precision=precision)
        times: dict[str, list[float]] = {"folder": [], "package": []}
        outs = {}
        for _ in range(3):
            for name, m in (("folder", model), ("package", package)):
                t0 = time.perf_counter()
                outs[name] = predict_image(m, image, cfg).numpy()
                times[name].append(time.perf_counter() - t0)
        results[precision] = {
            "folder_s": round(min(times["folder"]), 2), "package_s": round(min(times["package"]), 2),
            "package_over_folder": round(min(times["package"]) / min(times["folder"]), 3),
            "max_abs_diff": float(np.abs(outs["folder"] - outs["package"]).max()),
        }  # fmt: skip
        print(precision, results[precision], flush=True)
    print(json.dumps(results, indent=2))
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
