"""Runs the peer's (aicssegmentation's) functions; executed with the peer's own venv (see setup_peer.sh).

Usage: PEER_PYTHON peer_run.py IN.npz OUT_DIR — writes <op>.npy and timings.json. Never imports subcell.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
from aicssegmentation.core.MO_threshold import MO
from aicssegmentation.core.pre_processing_utils import edge_preserving_smoothing_3d, image_smoothing_gaussian_3d
from aicssegmentation.core.seg_dot import dot_3d
from aicssegmentation.core.vessel import vesselness3D
from skimage.morphology import remove_small_objects


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def main() -> None:
    data = np.load(sys.argv[1])
    out = Path(sys.argv[2])
    spots, fil = data["spots"].astype(np.float32), data["filaments"].astype(np.float32)
    timings = {}
    res, timings["gaussian"] = timed(image_smoothing_gaussian_3d, fil, sigma=1)
    np.save(out / "gaussian.npy", res)
    res, timings["edge_preserving"] = timed(edge_preserving_smoothing_3d, fil)
    np.save(out / "edge_preserving.npy", res)
    res, timings["spot_log"] = timed(dot_3d, spots, log_sigma=1.5)
    np.save(out / "spot_log.npy", res)
    res, timings["filament"] = timed(vesselness3D, fil, sigmas=[1.5], tau=1, whiteonblack=True)
    np.save(out / "filament.npy", res)
    res, timings["masked_object"] = timed(MO, spots, global_thresh_method="tri", object_minArea=50)
    np.save(out / "masked_object.npy", res)

    def spot_workflow(img):  # smoothing → LoG spots → cutoff → size filter (the Segmenter's dot recipe)
        sm = image_smoothing_gaussian_3d(img, sigma=1)
        resp = dot_3d(sm, log_sigma=1.5)
        return remove_small_objects(resp > 0.02, min_size=5)

    def filament_workflow(img):  # edge-preserving smoothing → vesselness → cutoff → size filter
        sm = edge_preserving_smoothing_3d(img)
        resp = vesselness3D(sm, sigmas=[1.5], tau=1, whiteonblack=True)
        return remove_small_objects(resp > 0.3, min_size=10)

    res, timings["spot_workflow"] = timed(spot_workflow, spots)
    np.save(out / "spot_workflow.npy", res)
    res, timings["filament_workflow"] = timed(filament_workflow, fil)
    np.save(out / "filament_workflow.npy", res)
    (out / "timings.json").write_text(json.dumps(timings))


if __name__ == "__main__":
    main()
