"""Block-wise vs whole-volume segmentation for every built-in workflow: agreement, time, peak memory.

A synthetic field is generated block by block (32×1024×1024 = 34 M voxels; 32×2048×2048 = 134 M for the
larger cases, ``--large``). Each workflow runs twice in a fresh process each (peak RSS = that process's
VmHWM): the whole volume in memory with ``run_workflow``, and block-wise with ``segment_chunked`` (512-px
blocks). The two outputs are then compared voxel by voxel. Writes ``chunked_results.md``.
Run: ``python benchmarks/segment/bench_chunked.py [--large WORKFLOW ...]`` (nothing else running: see
``uptime``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
SOURCE = {"prediction": "dna", "vesicles": "golgi"}  # inputs without a channel of that name in the generator

RUN = """
import json, sys, time
import numpy as np
from subcell import io, Image
from subcell.segment import load_workflow, run_workflow
from subcell.segment.chunked import segment_chunked
src, out, name, mode, source = sys.argv[1:6]
source = json.loads(source)
wf = load_workflow(name)
img = io.read(src)
img = img.sel(channel=[source.get(n, n) for n in wf.inputs])
img = Image(img.data, voxel_size=img.voxel_size, channel_names=wf.inputs)
t0 = time.perf_counter()
if mode == "blocks":
    segment_chunked(img, wf, out, block_yx=512)
else:
    arrays = {c: img.channel(c).numpy()[0, 0] for c in wf.inputs}
    res = run_workflow(wf, arrays, voxel_size=img.voxel_size)
    seconds = time.perf_counter() - t0
    io.write(Image(res[None, None], voxel_size=img.voxel_size), out, is_label=wf.kind == "instance")
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"seconds": (time.perf_counter() - t0) if mode == "blocks" else seconds,
                  "peak_rss_mb": int(hwm) / 1024}))
"""


def _compare(a: Path, b: Path) -> str:
    import numpy as np

    from subcell import io

    x, y = io.read(a).numpy()[0, 0], io.read(b).numpy()[0, 0]
    if np.array_equal(x, y):
        return "identical"
    fx, fy = x > 0, y > 0
    return f"Dice {2 * (fx & fy).sum() / max(fx.sum() + fy.sum(), 1):.5f}, {int((x != y).sum())} voxels differ"


def main() -> None:
    from subcell.segment import builtin_workflows
    from subcell.synth import SynthConfig, write_large_field

    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", nargs="*", default=sorted(builtin_workflows()))
    parser.add_argument("--large", nargs="*", default=["nucleus", "mitochondria"])
    parser.add_argument("--out", default=str(HERE / "chunked_results.md"))
    args = parser.parse_args()
    cases = [(w, 1024) for w in args.workflows] + [(w, 2048) for w in args.large]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for y in sorted({c[1] for c in cases}):
            write_large_field(SynthConfig(shape=(32, y, y), seed=0, block_yx=512), Path(tmp) / f"f{y}.ome.zarr")
        for i, (name, y) in enumerate(cases):
            src = Path(tmp) / f"f{y}.ome.zarr"
            res = {}
            for mode in ("whole", "blocks"):
                dst = Path(tmp) / f"s{i}{mode}.ome.zarr"
                out = subprocess.run(
                    [sys.executable, "-c", RUN, str(src), str(dst), name, mode, json.dumps(SOURCE)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            agreement = _compare(Path(tmp) / f"s{i}whole.ome.zarr", Path(tmp) / f"s{i}blocks.ome.zarr")
            rows.append((name, (32, y, y), res, agreement))
            print(rows[-1], flush=True)
    lines = [
        "# Block-wise vs whole-volume segmentation",
        "",
        "Command: `python benchmarks/segment/bench_chunked.py` (synthetic field, uint16 input; block-wise = 512-px",
        "blocks spanning z with the halo each stage needs, statistics fitted once on the whole field; each run in a",
        "fresh process, peak RSS = VmHWM; the whole-volume time excludes writing, the block-wise time includes it).",
        "",
        "| workflow | volume ZYX | voxels (M) | whole: time (s) | whole: peak RSS (MB) | blocks: time (s) | "
        "blocks: peak RSS (MB) | agreement |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, shape, r, agreement in rows:
        w, b = r["whole"], r["blocks"]
        lines.append(
            f"| {name} | {'×'.join(map(str, shape))} | {shape[0] * shape[1] * shape[2] / 1e6:.0f} | "
            f"{w['seconds']:.1f} | {w['peak_rss_mb']:.0f} | {b['seconds']:.1f} | {b['peak_rss_mb']:.0f} | {agreement} |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
