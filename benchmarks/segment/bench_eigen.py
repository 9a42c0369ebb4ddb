"""Hessian eigenvalues of a 32×512×512 volume: the closed form on whole volumes (the baseline) against runs of
``EIGEN_STEP`` voxels (shipped), in one run; also that both give the same numbers. Run alone:
``python benchmarks/segment/bench_eigen.py``."""

from __future__ import annotations

import time

import numpy as np

from subcell.segment.filters.detection import EIGEN_STEP, _eigenvalues_3x3, eigenvalues_by_magnitude

SHAPE = (32, 512, 512)
KEYS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def main() -> None:
    rng = np.random.default_rng(0)
    h = {k: rng.normal(size=SHAPE).astype(np.float32) for k in KEYS}
    whole_in = [h[k].copy() for k in KEYS]  # copies made before timing: the formula changes its inputs
    t = time.perf_counter()
    whole = _eigenvalues_3x3(*whole_in)
    t_whole = time.perf_counter() - t
    runs_in = {k: h[k].copy() for k in KEYS}
    t = time.perf_counter()
    runs = eigenvalues_by_magnitude(lambda i, j: runs_in[(min(i, j), max(i, j))], [0, 1, 2], SHAPE)
    t_runs = time.perf_counter() - t
    same = all(np.array_equal(a, b) for a, b in zip(whole, runs, strict=True))
    print(f"{SHAPE}: whole volumes {t_whole:.2f} s, runs of {EIGEN_STEP} voxels {t_runs:.2f} s "
          f"({t_whole / t_runs:.1f}×); identical: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
