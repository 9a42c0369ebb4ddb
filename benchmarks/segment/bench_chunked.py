"""Peak memory of block-wise segmentation for two volume sizes (bounded by the block, not the volume).

Generates large synthetic fields block by block, then segments their mitochondria channel with
``segment_chunked`` in a fresh process each (peak RSS is that process's own). Writes ``chunked_results.md``.
Run: ``python benchmarks/segment/bench_chunked.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent

RUN = """
import json, resource, sys, time
from subcell import io
from subcell.segment import load_workflow
from subcell.segment.chunked import segment_chunked
img = io.read(sys.argv[1]).sel(channel=["mitochondria"])
t0 = time.perf_counter()
segment_chunked(img, load_workflow("mitochondria"), sys.argv[2], block_yx=512)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    from subcell.synth import SynthConfig, write_large_field

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for y, x in ((1024, 1024), (2048, 2048)):
            src = Path(tmp) / f"f{y}.ome.zarr"
            write_large_field(SynthConfig(shape=(32, y, x), seed=0, block_yx=512), src)
            out = subprocess.run(
                [sys.executable, "-c", RUN, str(src), str(Path(tmp) / f"s{y}.ome.zarr")],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(((32, y, x), json.loads(out.stdout.strip().splitlines()[-1])))
    lines = [
        "# Block-wise segmentation memory",
        "",
        "Command: `python benchmarks/segment/bench_chunked.py` (mitochondria workflow, 512-px blocks + halo, uint16 input).",
        "",
        "| volume ZYX | voxels (M) | time (s) | peak RSS (MB) |",
        "|---|---:|---:|---:|",
    ]
    for shape, r in rows:
        lines.append(
            f"| {'×'.join(map(str, shape))} | {shape[0] * shape[1] * shape[2] / 1e6:.0f} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    (HERE / "chunked_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
