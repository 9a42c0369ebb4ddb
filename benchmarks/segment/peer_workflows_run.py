"""Runs the peer's (aicssegmentation's) structure workflows; executed with the peer's own venv.

Usage: PEER_PYTHON peer_workflows_run.py IN.npz OUT_DIR — for each array NAME in IN.npz, runs
``Workflow_NAME`` and writes NAME.npy (the mask) and timings.json. Never imports subcell.
"""

import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np

REPEATS = 2  # the best of two runs, as on our side


def main() -> None:
    data = np.load(sys.argv[1])
    out = Path(sys.argv[2])
    timings = {}
    for name in data.files:
        fn = getattr(importlib.import_module(f"aicssegmentation.structure_wrapper.seg_{name}"), f"Workflow_{name}")
        img = data[name].astype(np.float32)
        best = float("inf")
        for _ in range(REPEATS):
            t = time.perf_counter()
            seg = fn(img.copy(), output_type="array")
            best = min(best, time.perf_counter() - t)
        timings[name] = best
        np.save(out / f"{name}.npy", np.asarray(seg) > 0)
    (out / "timings.json").write_text(json.dumps(timings))


if __name__ == "__main__":
    main()
