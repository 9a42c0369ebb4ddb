"""I/O benchmarks: streamed TIFF → OME-Zarr conversion (peak RSS vs file size) and lazy OME-Zarr opening.

Run: ``make bench`` or ``python benchmarks/io/bench_io.py --sizes-gb 0.5 2``. Each measurement runs in a fresh
subprocess so its peak RSS is its own. Results are printed and written to ``benchmarks/io/results.md``.
Numbers are ratios and memory, not timed assertions; they depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent

CONVERT = """
import json, resource, sys, time
from subcell import io
t0 = time.perf_counter()
img = io.read(sys.argv[1])
io.write(img, sys.argv[2])
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

OPEN = """
import json, resource, sys, time
from subcell import io
import dask.array, zarr, bioio_ome_zarr  # imports are not what we measure
t0 = time.perf_counter()
img = io.read(sys.argv[1])
info = io.describe(sys.argv[1])
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "lazy": img.is_lazy, "nbytes": img.nbytes,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_tiff(path: Path, gb: float, y: int = 2048, x: int = 2048) -> tuple[int, int, int]:
    """Write an ImageJ uint16 z-stack of about ``gb`` GB plane by plane (never held in memory)."""
    import tifffile

    z = max(1, int(gb * 1e9 / (y * x * 2)))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:y, 0:x]
    base = (1000 + 500 * np.sin(yy / 50.0) * np.cos(xx / 70.0)).astype(np.float32)

    def planes():  # type: ignore[no-untyped-def]
        for k in range(z):
            yield (base + 20 * k + rng.normal(0, 30, (y, x)).astype(np.float32)).astype(np.uint16)

    tifffile.imwrite(
        path, planes(), shape=(z, y, x), dtype=np.uint16, imagej=True, bigtiff=False,
        resolution=(1 / 0.108, 1 / 0.108), metadata={"axes": "ZYX", "unit": "um", "spacing": 0.29},
    )  # fmt: skip
    return (z, y, x)


def run(script: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[0.5, 2.0])
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for gb in args.sizes_gb:
            tif = Path(tmp) / f"stack_{gb}gb.tif"
            shape = make_tiff(tif, gb)
            size_gb = tif.stat().st_size / 1e9
            out = Path(tmp) / f"stack_{gb}gb.ome.zarr"
            conv = run(CONVERT, str(tif), str(out))
            opened = run(OPEN, str(out))
            rows.append({"tiff_gb": size_gb, "shape": shape, **{f"convert_{k}": v for k, v in conv.items()},
                         **{f"open_{k}": v for k, v in opened.items()}})  # fmt: skip
            tif.unlink()
            print(json.dumps(rows[-1]), flush=True)
    lines = [
        "# I/O benchmark",
        "",
        f"Machine: {sys.platform}, Python {sys.version.split()[0]}; command: `python benchmarks/io/bench_io.py --sizes-gb {' '.join(map(str, args.sizes_gb))}`",
        "",
        "| TIFF size (GB) | shape ZYX | convert to OME-Zarr (s) | convert peak RSS (MB) | RSS / file size | open OME-Zarr lazily (s) | open peak RSS (MB) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tiff_gb']:.2f} | {r['shape']} | {r['convert_seconds']:.1f} | {r['convert_peak_rss_mb']:.0f} | "
            f"{r['convert_peak_rss_mb'] / (r['tiff_gb'] * 1000):.2f} | {r['open_seconds']:.3f} | {r['open_peak_rss_mb']:.0f} |"
        )
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
