"""Opening an OME-Zarr HCS plate: listing its fields, a manifest of them, and napari's plate mosaic.

A plate of ``--wells`` wells (8 rows × 12 columns by default) × ``--fields`` fields of (1, 1, Z, Y, X) uint16 with a
pyramid (two 2× levels) is written once with ome-zarr-py (as other tools write plates). Then, one after the other
in this process:
- ``describe``: the plate's fields as scenes (one small metadata read per well);
- ``make_manifest`` with every field's metadata checked (``subcell manifest make``);
- the napari reader's mosaic (``read_layers``: a lazy array per pyramid level over every field);
- one z-plane of the whole plate read through the mosaic's full level, against the baseline of reading the same
  plane field by field with ``subcell.io.read`` (what a script over the manifest does), and through its coarsest
  level (what napari reads to show the whole plate).
Run: ``python benchmarks/io/bench_plate.py [--fields 4 --yx 256]`` → ``plate_results.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def _write_plate(path: Path, rows: str, columns: int, fields: int, shape: tuple[int, int, int]) -> None:
    import zarr
    from ome_zarr.format import FormatV05

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import ome_zarr.writer as w

        fmt = FormatV05()
        root = zarr.open_group(str(path), mode="w", zarr_format=3)
        wells = [f"{r}/{c}" for r in rows for c in range(1, columns + 1)]
        w.write_plate_metadata(root, list(rows), [str(c) for c in range(1, columns + 1)], wells, fmt=fmt)
        rng = np.random.default_rng(0)
        for well in wells:
            g = root.require_group(well)
            w.write_well_metadata(g, [str(f) for f in range(fields)], fmt=fmt)
            for f in range(fields):
                data = rng.integers(0, 4000, (1, 1, *shape), dtype=np.uint16)
                w.write_image(data, g.require_group(str(f)), axes="tczyx", fmt=fmt, scale_factors=[2, 4],
                              scale={"t": 1.0, "c": 1.0, "z": 0.5, "y": 0.2, "x": 0.2},
                              axes_units={a: "micrometer" for a in "zyx"})  # fmt: skip


def _timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="ABCDEFGH")
    ap.add_argument("--columns", type=int, default=12)
    ap.add_argument("--fields", type=int, default=4)
    ap.add_argument("--z", type=int, default=8)
    ap.add_argument("--yx", type=int, default=256)
    ap.add_argument("--out", type=Path, default=HERE / "plate_results.md")
    args = ap.parse_args()
    from subcell import io
    from subcell.io.manifest_make import make_manifest
    from subcell.napari.reader import read_layers

    with tempfile.TemporaryDirectory() as tmp:
        plate = Path(tmp) / "screen.zarr"
        n = len(args.rows) * args.columns * args.fields
        _, t_write = _timed(
            lambda: _write_plate(plate, args.rows, args.columns, args.fields, (args.z, args.yx, args.yx))
        )
        info, t_describe = _timed(lambda: io.describe(plate))
        table, t_manifest = _timed(lambda: make_manifest([plate], Path(tmp) / "m.csv"))
        layers, t_open = _timed(lambda: read_layers(plate))
        levels = layers[0][0]
        z = args.z // 2
        mosaic, t_mosaic = _timed(lambda: np.asarray(levels[0][0, 0, z]))
        coarse, t_coarse = _timed(lambda: np.asarray(levels[-1][0, 0, z // 4 if levels[-1].shape[2] < args.z else z]))
        fields = [plate / p for p in table.source.map(lambda s: Path(s).relative_to(plate.name))]

        def one_by_one() -> list[np.ndarray]:
            return [np.asarray(io.read(f).data[0, 0, z]) for f in fields]

        planes, t_fields = _timed(one_by_one)
        origins = layers[0][1]["metadata"]["field_origin_px"]
        name = table.source.iloc[-1].split("screen.zarr/")[1]
        y, x = origins[name]
        assert np.array_equal(mosaic[y : y + args.yx, x : x + args.yx], planes[-1])  # the same pixels either way
    lines = [
        "# Opening an OME-Zarr plate",
        "",
        f"`python benchmarks/io/bench_plate.py` (this 2-core VM, nothing else running): {len(args.rows)}×{args.columns} "
        f"wells × {args.fields} fields = {n} fields of 1×1×{args.z}×{args.yx}×{args.yx} uint16, 3 pyramid levels, "
        f"written by ome-zarr-py in {t_write:.1f} s.",
        "",
        "| step | seconds | per field (ms) |",
        "|---|---|---|",
        f"| `describe` (fields as scenes: {len(info['scenes'])}) | {t_describe:.2f} | {1000 * t_describe / n:.1f} |",
        f"| `make_manifest`, every field checked ({len(table)} rows) | {t_manifest:.2f} | {1000 * t_manifest / n:.1f} |",
        f"| napari reader: the plate mosaic ({len(levels)} levels, full {tuple(levels[0].shape)}) | {t_open:.2f} | "
        f"{1000 * t_open / n:.1f} |",
        f"| one z-plane of every field through the mosaic's full level {mosaic.shape} | {t_mosaic:.2f} | "
        f"{1000 * t_mosaic / n:.1f} |",
        f"| the same plane field by field with `subcell.io.read` (baseline) | {t_fields:.2f} | {1000 * t_fields / n:.1f} |",
        f"| the plane through the coarsest level {coarse.shape} (napari's whole-plate view) | {t_coarse:.2f} | "
        f"{1000 * t_coarse / n:.1f} |",
        "",
        f"Mosaic plane / field-by-field: {t_mosaic / t_fields:.2f}×; coarsest level / field-by-field: "
        f"{t_coarse / t_fields:.2f}×. The last field's pixels in the mosaic equal its own (checked).",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
