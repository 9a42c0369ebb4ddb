"""napari: open a large OME-Zarr (lazy, multiscale) with the subcell plugin in a real window and time the first
paint, then move to another z-plane and time its first paint.

    xvfb-run -a -s "-screen 0 1600x1200x24" python benchmarks/napari/bench_open.py [--gb 4] [--store PATH]

(or start Xvfb yourself and set DISPLAY). The store is written once (uint16, two channels, pyramid) and reused.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def make_store(path: Path, gb: float) -> Path:
    from subcell.image import VoxelSize
    from subcell.io import OmeZarrWriter

    if path.exists():
        return path
    c, z, y = 2, 128, 2048
    x = int(gb * 1e9 / (c * z * y * 2))
    x -= x % 256
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:y, 0:x]
    base = (np.sin(yy / 40.0) * np.cos(xx / 55.0) * 2000 + 3000).astype(np.float32)
    with OmeZarrWriter(path, shape=(1, c, z, y, x), dtype="uint16", voxel_size=VoxelSize(0.29, 0.108, 0.108),
                       channel_names=["brightfield", "dna"]) as w:  # fmt: skip
        for k in range(z):
            plane = np.stack([base + rng.normal(0, 300, base.shape) for _ in range(c)]).clip(0, 65535)
            w.write_region((slice(0, 1), slice(None), slice(k, k + 1), slice(None), slice(None)),
                           plane.astype(np.uint16)[None, :, None])  # fmt: skip
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=4.0)
    ap.add_argument("--store", type=Path, default=Path("/tmp/subcell_bench_napari_4gb.ome.zarr"))
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    store = make_store(args.store, args.gb)
    write_s = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 1000)
    t0 = time.perf_counter()
    layers = viewer.open(str(store), plugin="subcell")
    opened = time.perf_counter() - t0
    viewer.screenshot(canvas_only=True, flash=False)  # the first paint
    first_paint = time.perf_counter() - t0
    times = []
    for z in (100, 20, 77):
        t1 = time.perf_counter()
        viewer.dims.set_current_step(1, z)
        viewer.screenshot(canvas_only=True, flash=False)
        times.append(time.perf_counter() - t1)
    data = layers[0].data
    result = {
        "store_bytes_uncompressed": int(np.prod(data[0].shape)) * 2 * len(layers),
        "store_bytes_on_disk": size, "write_seconds": round(write_s, 1), "levels": len(data),
        "shape_level0": list(data[0].shape), "layers": [type(lay).__name__ for lay in layers],
        "open_seconds": round(opened, 3), "open_to_first_paint_seconds": round(first_paint, 3),
        "new_z_first_paint_seconds": [round(t, 3) for t in times],
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    args.out.write_text(json.dumps(result, indent=2))
    viewer.close()


if __name__ == "__main__":
    main()
