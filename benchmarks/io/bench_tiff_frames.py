"""Reading a TIFF time-lapse whole and a frame at a time, under three chunkings of its pages (one run).

    python benchmarks/io/bench_tiff_frames.py

``io._tiff._page_chunks`` groups whole pages into Dask chunks. Three rules along the time axis: ``64 MiB`` (the
general budget, frames grouped freely: the rule before 2026-12-06), ``1 frame`` (never two timepoints in a chunk)
and ``4 MiB`` (at most ``_FRAME_CHUNK_BYTES`` of frames, at least one: the rule now). Two ImageJ TIFFs written once
in ``--work``: 1000 frames of 256×256 uint16 (a long 2D movie of small frames) and 48 frames of 16×320×320 uint16
(a 3D movie). Per rule: the whole read (``Image.numpy()``) and 20 single frames spread over the movie (what
frame-by-frame commands do), each the best of ``--repeats``, one after the other, in this one process. Then the 3D
movie as an OME-TIFF (``io.write``), its pixels read by bioio-ome-tiff and by the page reader (``io._bioio``); and
one channel of a 60 × 4 × 256×256 ZCYX stack read with channels chunked together or a channel per chunk.
Results: ``tiff_frames_results.json`` beside this script.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent


def _best(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_bench_tiff_frames"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import tifffile

    import subcell.io._tiff as tiff
    from subcell import io

    args.work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    movies = {"1000 x 256x256": (1000, 256, 256), "48 x 16x320x320": (48, 16, 320, 320)}
    paths = {}
    for name, shape in movies.items():
        p = args.work / f"{name.replace(' ', '')}.tif"
        if not p.exists():
            tifffile.imwrite(p, rng.integers(0, 4000, shape, dtype=np.uint16), imagej=True, compression="zlib",
                             metadata={"axes": "TYX" if len(shape) == 3 else "TZYX"})  # fmt: skip
        paths[name] = p
    rules = {"64 MiB": 64 << 20, "1 frame": 1, "4 MiB": tiff._FRAME_CHUNK_BYTES}
    default = tiff._FRAME_CHUNK_BYTES
    rows = []
    for name, p in paths.items():
        for rule, cap in rules.items():
            tiff._FRAME_CHUNK_BYTES = cap
            img = io.read(p, voxel_size=(1.0, 0.2, 0.2))
            n = img.shape[0]
            whole = _best(img.numpy, args.repeats)
            picks = np.linspace(0, n - 1, 20).astype(int)
            frames = _best(lambda img=img, picks=picks: [img.data[int(k)].compute() for k in picks], args.repeats)
            rows.append({"movie": name, "rule": rule, "frames_per_chunk": int(img.data.chunks[0][0]),
                         "whole_s": whole, "twenty_frames_s": frames})  # fmt: skip
            print(rows[-1], flush=True)
    tiff._FRAME_CHUNK_BYTES = default
    # one channel of a multichannel stack (what predicting from the bright-field or measuring a channel reads)
    stack = args.work / "60x4x256x256_ZCYX.tif"
    if not stack.exists():
        tifffile.imwrite(stack, rng.integers(0, 4000, (60, 4, 256, 256), dtype=np.uint16), imagej=True,
                         compression="zlib", metadata={"axes": "ZCYX"})  # fmt: skip
    page_chunks = tiff._page_chunks
    for rule in ("channels together", "a channel per chunk"):
        tiff._page_chunks = (  # type: ignore[assignment]
            page_chunks if rule == "a channel per chunk"
            else lambda shape, n, dtype, time_axis=None, channel_axis=None: page_chunks(shape, n, dtype, time_axis)
        )  # fmt: skip
        img = io.read(stack, voxel_size=(1.0, 0.2, 0.2))
        rows.append({"movie": "60 x 4 x 256x256 ZCYX, channel 1", "rule": rule,
                     "channels_per_chunk": int(img.data.chunks[1][0]), "whole_s": _best(img.numpy, args.repeats),
                     "one_channel_s": _best(lambda img=img: img.data[0, 1].compute(), args.repeats)})  # fmt: skip
        print(rows[-1], flush=True)
    tiff._page_chunks = page_chunks
    # OME-TIFF: the same 3D movie written by `io.write`, its pixels read by bioio-ome-tiff or by the page reader
    import subcell.io._bioio as ome

    lapse = args.work / "48x16x320x320.ome.tif"
    if not lapse.exists():
        io.write(io.read(paths["48 x 16x320x320"], voxel_size=(1.0, 0.2, 0.2)), lapse)
    pages_readable = ome._pages_readable
    for reader in ("bioio", "pages"):
        ome._pages_readable = pages_readable if reader == "pages" else (lambda axes, n: False)  # type: ignore[assignment]
        img = io.read(lapse)
        picks = np.linspace(0, img.shape[0] - 1, 20).astype(int)
        rows.append({"movie": "48 x 16x320x320 OME-TIFF", "rule": f"{reader} reader",
                     "frames_per_chunk": int(img.data.chunks[0][0]), "whole_s": _best(img.numpy, args.repeats),
                     "twenty_frames_s": _best(lambda img=img, picks=picks: [img.data[int(k)].compute() for k in picks],
                                              args.repeats)})  # fmt: skip
        print(rows[-1], flush=True)
    ome._pages_readable = pages_readable
    (HERE / "tiff_frames_results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
