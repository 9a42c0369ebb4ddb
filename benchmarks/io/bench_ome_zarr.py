"""OME-Zarr: what opening a store costs a fresh process (subcell's zarr reader against bioio-ome-zarr's), and the
chunk codec (zstd 3 on byte-shuffled data, the writer's, against zstd 5 on bit-shuffled data, its earlier one).

Run: ``python benchmarks/io/bench_ome_zarr.py [--repeats 3]``. One synthetic demo-sized field (seeded) is written
once; every open runs in a fresh interpreter (imports included: they are what a command pays), best of
``--repeats``; codecs encode the same 2 MB blocks on one thread. Results: ``benchmarks/io/results_ome_zarr.md``.
Ratios in one run, nothing else running (check ``uptime``); not timed assertions.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent

OPEN = {
    "subcell.io.read (zarr + dask)": "from subcell.io import read; read(sys.argv[1]).numpy()",
    "bioio_ome_zarr.Reader": "from bioio_ome_zarr import Reader; Reader(sys.argv[1]).dask_data.compute()",
}


def _fresh(code: str, path: Path, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import sys; {code}", str(path)], check=True)
        best = min(best, time.perf_counter() - t)
    return float(best)


def _codecs(blocks: dict[str, list[np.ndarray]]) -> list[str]:
    import numcodecs

    numcodecs.blosc.set_nthreads(1)
    codecs = {
        "zstd 5, bit shuffle (before)": numcodecs.Blosc("zstd", 5, numcodecs.Blosc.BITSHUFFLE),
        "zstd 3, byte shuffle (now)": numcodecs.Blosc("zstd", 3, numcodecs.Blosc.SHUFFLE),
    }
    rows = []
    for name, data in blocks.items():
        nbytes = sum(b.nbytes for b in data)
        cells = []
        for codec in codecs.values():
            t = time.perf_counter()
            encoded = [codec.encode(b) for b in data]
            seconds = time.perf_counter() - t
            cells.append(f"{nbytes / seconds / 1e6:.0f} MB/s, ratio {nbytes / sum(len(e) for e in encoded):.2f}")
        rows.append(f"| {name} | {' | '.join(cells)} |")
    return [f"| data | {' | '.join(codecs)} |", "|---|---|---|", *rows]


def _blocks(array: np.ndarray, size: int = 2 << 20) -> list[np.ndarray]:
    flat = np.ascontiguousarray(array).reshape(-1)
    step = size // flat.itemsize
    return [flat[i : i + step] for i in range(0, flat.size, step)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from subcell import synth

    field = synth.synth_field(shape=(48, 384, 384), seed=0)
    image = field.image.numpy()
    bf = image[0, field.image.channel_index("brightfield")].astype(np.float32)
    blocks = {
        "uint16 field (17 channels)": _blocks(image),
        "float32 (z-scored bright-field)": _blocks((bf - bf.mean()) / bf.std()),
        "int32 cell labels": _blocks(field.labels["cell"]),
        "uint8 mitochondria mask": _blocks(field.labels["mitochondria"]),
    }
    lines = ["## Chunk codec (one thread, 2 MB blocks of one synthetic 48×384×384 field, seed 0)", "", *_codecs(blocks)]
    with tempfile.TemporaryDirectory() as tmp:
        store = synth.write_field(field, Path(tmp) / "field.ome.zarr")
        lines += ["", f"## Opening the written field in a fresh interpreter (imports included, best of {args.repeats})",
                  "", "| reader | seconds |", "|---|---|"]  # fmt: skip
        for name, code in OPEN.items():
            lines.append(f"| {name} | {_fresh(code, store, args.repeats):.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "results_ome_zarr.md").write_text(
        "# OME-Zarr reading and chunk codec\n\n`python benchmarks/io/bench_ome_zarr.py` (this file is its output; "
        "the machine: see the notes of the run).\n\n" + text
    )


if __name__ == "__main__":
    main()
