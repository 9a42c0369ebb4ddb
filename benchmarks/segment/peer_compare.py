"""Peer comparison: our filters vs the Allen Cell & Structure Segmenter (aicssegmentation) on one 60×256×256
volume, same parameters (voxel size 1, so µm = voxels). Reports time ratios and mask agreement (Dice).

Set-up once: ``bash benchmarks/segment/setup_peer.sh`` (isolated venv, never a dependency). Run:
``python benchmarks/segment/peer_compare.py``; writes ``benchmarks/segment/peer_results.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from subcell.metrics import dice
from subcell.segment import filters as F
from subcell.synth import synth_field

HERE = Path(__file__).parent
PEER = Path(os.environ.get("PEER_VENV", HERE.parents[1] / ".peer-venv/aicssegmentation")) / "bin/python"
VS = (1.0, 1.0, 1.0)


def timed(fn, *a, **k):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def main() -> None:
    if not PEER.exists():
        raise SystemExit(f"peer venv missing: run bash benchmarks/segment/setup_peer.sh (looked for {PEER})")
    field = synth_field(shape=(60, 256, 256), seed=0)
    spots = F.normalize(field.image.channel("nucleoli").numpy()[0, 0], method="percentile", low=1, high=99.99)
    fil = F.normalize(field.image.channel("mitochondria").numpy()[0, 0], method="percentile", low=1, high=99.9)
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "in.npz", spots=spots, filaments=fil)
        subprocess.run([str(PEER), str(HERE / "peer_run.py"), str(Path(tmp) / "in.npz"), tmp], check=True)
        theirs = {p.stem: np.load(p) for p in Path(tmp).glob("*.npy")}
        their_t = json.loads((Path(tmp) / "timings.json").read_text())

    ours: dict[str, np.ndarray] = {}
    our_t: dict[str, float] = {}
    ours["gaussian"], our_t["gaussian"] = timed(F.gaussian_smooth, fil, sigma_um=1.0, voxel_size=VS)
    ours["edge_preserving"], our_t["edge_preserving"] = timed(F.edge_preserving_smooth, fil, voxel_size=VS)
    ours["spot_log"], our_t["spot_log"] = timed(F.spot_filter, spots, sigmas_um=[1.5], voxel_size=VS)
    ours["filament"], our_t["filament"] = timed(F.filament_filter, fil, sigmas_um=[1.5], voxel_size=VS)
    ours["masked_object"], our_t["masked_object"] = timed(
        F.masked_object_threshold, spots, global_method="triangle", min_object_um3=50, voxel_size=VS
    )

    def spot_workflow(img):  # type: ignore[no-untyped-def]
        sm = F.gaussian_smooth(img, sigma_um=1.0, voxel_size=VS)
        return F.size_filter(F.spot_filter(sm, sigmas_um=[1.5], voxel_size=VS) > 0.02, min_volume_um3=5, voxel_size=VS)

    def filament_workflow(img):  # type: ignore[no-untyped-def]
        sm = F.edge_preserving_smooth(img, voxel_size=VS)
        return F.size_filter(
            F.filament_filter(sm, sigmas_um=[1.5], voxel_size=VS) > 0.3, min_volume_um3=10, voxel_size=VS
        )

    ours["spot_workflow"], our_t["spot_workflow"] = timed(spot_workflow, spots)
    ours["filament_workflow"], our_t["filament_workflow"] = timed(filament_workflow, fil)

    # binarize continuous outputs the same way on both sides before comparing masks
    cut = {"gaussian": 0.2, "edge_preserving": 0.2, "spot_log": 0.02, "filament": 0.3}
    same_algorithm = {"gaussian", "edge_preserving", "spot_log", "masked_object", "spot_workflow"}
    lines = [
        "# Peer comparison: subcell vs aicssegmentation (Allen Cell & Structure Segmenter)",
        "",
        "Volume: synthetic 60×256×256 (nucleoli channel for spots/MO, mitochondria channel for filaments),",
        "voxel size 1 so µm = voxels on both sides. Command: `python benchmarks/segment/peer_compare.py`",
        "(after `bash benchmarks/segment/setup_peer.sh`). Both run on this machine in the same run.",
        "",
        "| operation | same algorithm | aicssegmentation (s) | subcell (s) | speed-up | mask Dice |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for op in our_t:
        a, b = ours[op], theirs[op]
        d = dice(a > cut[op], b > cut[op]) if op in cut else dice(a > 0, b > 0)
        lines.append(
            f"| {op} | {'yes' if op in same_algorithm else 'no (different vesselness)'} | {their_t[op]:.2f} | {our_t[op]:.2f} | "
            f"{their_t[op] / our_t[op]:.1f}× | {d:.3f} |"
        )
    (HERE / "peer_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
