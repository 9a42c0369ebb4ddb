"""Reading OME-TIFF headers at collection scale: ``subcell manifest make`` over a folder of OME-TIFFs.

Every OME-TIFF's OME-XML is parsed with ome-types (physical sizes, channels, provenance). ome-types builds a new
xsdata binding context per document unless it is given one, and with it the binding metadata of every OME class
the document uses; subcell now passes one context kept for the process (``subcell.io._bioio._xml_context``).
This measures ``make_manifest`` (every file's metadata checked) over ``--files`` small OME-TIFFs, with the shared
context and, as the baseline in the same run, with a fresh context per document (what ome-types does by default),
alternating, ``--repeats`` times each; the rows of both must be equal.
Then one HCS OME-TIFF of ``--fields`` fields (its OME-XML a plate): ``make_manifest`` (a row per field, each field's
scene opened to check it) with the process's kept handle (the file's headers, series and OME model parsed once),
against the same with no handle kept (each scene's read parses the whole file's headers again, as every read did
before), in the same run; the manifests must be equal.
Run: ``python benchmarks/io/bench_ome_tiff_headers.py [--files 1000 --fields 192]`` → ``ome_tiff_headers_results.md``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
META = {"axes": "ZYX", "PhysicalSizeZ": 0.5, "PhysicalSizeY": 0.2, "PhysicalSizeX": 0.2}


def _timed_manifest(inputs: Path, module: Any, name: str, replacement: Any) -> tuple[float, Any]:
    """``make_manifest`` of ``inputs`` timed, with ``module.name`` replaced by ``replacement`` (None: as it is)."""
    from subcell.io import _tiff
    from subcell.io.manifest_make import make_manifest

    _tiff.close_kept()
    saved = getattr(module, name)
    if replacement is not None:
        setattr(module, name, replacement)
    try:
        t0 = time.perf_counter()
        table = make_manifest([inputs], inputs.parent / "m.csv")
        return time.perf_counter() - t0, table
    finally:
        setattr(module, name, saved)


def _timed(folder: Path, fresh_context: bool) -> tuple[float, Any]:
    from xsdata_pydantic_basemodel.bindings import XmlContext

    from subcell.io import _bioio

    # fresh: a new context per document (ome-types' default)
    return _timed_manifest(folder, _bioio, "_xml_context", XmlContext if fresh_context else None)


def _plate_file(path: Path, n: int) -> None:
    import tifffile

    with tifffile.TiffWriter(path, ome=True) as tw:
        for i in range(n):
            tw.write(np.full((2, 16, 16), i % 200, np.uint16), metadata={**META, "Name": f"f{i}"})
    with tifffile.TiffFile(path) as tf:
        xml = tf.ome_metadata
    wells = "".join(f'<Well ID="Well:{i}" Row="{i // 24}" Column="{i % 24}"><WellSample ID="WellSample:{i}" '
                    f'Index="{i}"><ImageRef ID="Image:{i}"/></WellSample></Well>' for i in range(n))  # fmt: skip
    at = xml.index("<Image ")
    tifffile.tiffcomment(path, (xml[:at] + f'<Plate ID="Plate:0" Name="p">{wells}</Plate>' + xml[at:]).encode())


def _timed_plate(path: Path, kept: bool) -> tuple[float, Any]:
    import threading

    import tifffile

    from subcell.io import _tiff

    # not kept: every read opens and parses the file again (what each read did before)
    fresh = None if kept else (lambda p: (tifffile.TiffFile(p), threading.Lock()))
    return _timed_manifest(path, _tiff, "_open_cached", fresh)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fields", type=int, default=192)
    args = ap.parse_args()
    import tifffile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        folder.mkdir()
        for i in range(args.files):
            tifffile.imwrite(folder / f"f{i:05d}.ome.tif", np.zeros((4, 32, 32), np.uint16), ome=True, metadata=META)
        _timed(folder, False)  # warm: imports, the shared context's first build
        shared, fresh, tables = [], [], []
        for _ in range(args.repeats):
            for fresh_context, times in ((True, fresh), (False, shared)):
                seconds, table = _timed(folder, fresh_context)
                times.append(seconds)
                tables.append(table)
        equal = all(t.equals(tables[0]) for t in tables)
        plate = Path(tmp) / "plate.ome.tif"
        _plate_file(plate, args.fields)
        (reopened, t_re), (kept, t_kept) = _timed_plate(plate, False), _timed_plate(plate, True)
        plate_equal = t_re.equals(t_kept) and len(t_kept) == args.fields
    ratio = statistics.median(shared) / statistics.median(fresh)
    lines = [
        "# OME-TIFF headers at collection scale (`benchmarks/io/bench_ome_tiff_headers.py`)",
        "",
        f"`make_manifest` over {args.files} OME-TIFFs of 4×32×32 (every file's metadata checked), "
        f"{args.repeats} runs each, alternating, in one process:",
        "",
        "| OME-XML parsing | median s | per file ms | runs (s) |",
        "|---|---:|---:|---|",
        f"| a new xsdata context per document (ome-types' default; baseline) | {statistics.median(fresh):.2f} | "
        f"{1000 * statistics.median(fresh) / args.files:.2f} | {', '.join(f'{t:.2f}' for t in fresh)} |",
        f"| one context for the process (subcell) | {statistics.median(shared):.2f} | "
        f"{1000 * statistics.median(shared) / args.files:.2f} | {', '.join(f'{t:.2f}' for t in shared)} |",
        "",
        f"Time ratio shared / fresh: **{ratio:.2f}**; manifests equal: {equal}.",
        "",
        f"One HCS OME-TIFF of {args.fields} fields (2×16×16 each, its OME-XML a plate), `make_manifest` (a row per "
        "field, each field's scene opened):",
        "",
        "| headers | s | per field ms |",
        "|---|---:|---:|",
        f"| parsed again by every scene's read (no handle kept; baseline) | {reopened:.2f} | "
        f"{1000 * reopened / args.fields:.1f} |",
        f"| parsed once, the handle kept (subcell) | {kept:.2f} | {1000 * kept / args.fields:.1f} |",
        "",
        f"Time ratio kept / reopened: **{kept / reopened:.3f}**; manifests equal: {plate_equal}.",
        "",
    ]
    (HERE / "ome_tiff_headers_results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
