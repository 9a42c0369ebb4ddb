"""Peak memory of block-wise segmentation for two volume sizes (bounded by the block, not the volume).

Generates large synthetic fields block by block, then segments them with ``segment_chunked`` in a fresh
process each (peak RSS is that process's own): the mitochondria workflow at two sizes, the nucleus workflow
(instance labels merged across blocks) at the larger one, and, for reference, the whole smaller volume segmented
in memory with ``run_workflow``. Writes ``chunked_results.md``.
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
from subcell.segment import load_workflow, run_workflow
from subcell.segment.chunked import segment_chunked
src, out, name, mode = sys.argv[1:5]
wf = load_workflow(name)
img = io.read(src).sel(channel=wf.inputs)
t0 = time.perf_counter()
if mode == "blocks":
    segment_chunked(img, wf, out, block_yx=512)
else:
    arrays = {c: img.channel(c).numpy()[0, 0] for c in wf.inputs}
    run_workflow(wf, arrays, voxel_size=img.voxel_size)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
CASES = [  # (workflow, y = x, mode)
    ("mitochondria", 1024, "blocks"),
    ("mitochondria", 2048, "blocks"),
    ("mitochondria", 1024, "whole"),
    ("nucleus", 2048, "blocks"),
]


def main() -> None:
    from subcell.synth import SynthConfig, write_large_field

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for y in sorted({c[1] for c in CASES}):
            write_large_field(SynthConfig(shape=(32, y, y), seed=0, block_yx=512), Path(tmp) / f"f{y}.ome.zarr")
        for i, (name, y, mode) in enumerate(CASES):
            src, dst = Path(tmp) / f"f{y}.ome.zarr", Path(tmp) / f"s{i}.ome.zarr"
            out = subprocess.run(
                [sys.executable, "-c", RUN, str(src), str(dst), name, mode], capture_output=True, text=True, check=True
            )
            rows.append((name, (32, y, y), mode, json.loads(out.stdout.strip().splitlines()[-1])))
    lines = [
        "# Block-wise segmentation memory",
        "",
        "Command: `python benchmarks/segment/bench_chunked.py` (512-px blocks + halo, statistics fitted once on the",
        "whole field, uint16 input; each row in a fresh process).",
        "",
        "| workflow | volume ZYX | voxels (M) | how | time (s) | peak RSS (MB) |",
        "|---|---|---:|---|---:|---:|",
    ]
    for name, shape, mode, r in rows:
        how = "512-px blocks" if mode == "blocks" else "whole volume in memory"
        lines.append(
            f"| {name} | {'×'.join(map(str, shape))} | {shape[0] * shape[1] * shape[2] / 1e6:.0f} | {how} | "
            f"{r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    (HERE / "chunked_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
