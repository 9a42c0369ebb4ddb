"""Peak memory and wall time of ``subcell track`` on a long label time-lapse, before and after.

    python benchmarks/track/bench_track_memory.py --before 1cad2dd --repeat 4
    python benchmarks/track/bench_track_memory.py --before bfaca8a --ctc   # the same movie as a CTC folder

The movie: ``subcell synth`` of 12 frames of 16×320×320 (nucleus labels, int32), repeated ``--repeat`` times along
T into one OME-Zarr label image (48 frames, 300 MiB at the default), written once in ``--work``. Each arm runs the
CLI in a fresh interpreter with its code first on ``PYTHONPATH`` (before = a git worktree of ``--before``),
alternating, one at a time; peak RSS is the child's ``VmHWM``. The arms' tables, labels and CTC files are compared.
``--ctc``: the movie's frames written as a CTC folder (``mask000.tif`` …, zlib), tracked from there. ``--tiff``: the
movie as one ImageJ TIFF hyperstack (uint16, zlib), tracked from there; ``--ome-tiff``: as an OME-TIFF (int32, zlib).
``--evaluate``: ``subcell evaluate-tracks`` instead, of the movie's tracks (tracked once, by the current code)
against their own CTC export as truth; the arms' metrics are compared.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "labelfree"))

from bench_speed import REPO, run_cli, worktree  # noqa: E402


def make_movie(work: Path, repeat: int) -> Path:
    from subcell.io import read_labels

    return synth_movie(work, repeat, name="movie", pick=lambda base: read_labels(base, "nucleus"), channel="nucleus",
                       is_label=True)  # fmt: skip


def synth_movie(work: Path, repeat: int, *, name: str, pick: Any, channel: str, is_label: bool = False) -> Path:
    """``pick(store)`` of ``subcell synth`` with 12 frames of 16×320×320 (written once in ``work``), repeated
    ``repeat`` times along T into ``work/<name>_x<repeat>.ome.zarr``."""
    from subcell.synth import synth_field, write_field

    out = work / f"{name}_x{repeat}.ome.zarr"
    if out.exists():
        return out
    base = work / "movie12.ome.zarr"
    if not base.exists():
        write_field(synth_field(shape=(16, 320, 320), seed=2, **{"time.frames": 12}), base)
    return repeated(pick(base), out, repeat, channel=channel, is_label=is_label)


def repeated(img: Any, out: Path, repeat: int, *, channel: str, is_label: bool = False) -> Path:
    """An image's frames written ``repeat`` times along T into one OME-Zarr (a longer movie of the same content)."""
    from subcell.io import OmeZarrWriter

    a = img.numpy()
    with OmeZarrWriter(out, shape=(a.shape[0] * repeat, *a.shape[1:]), dtype=a.dtype, is_label=is_label,
                       voxel_size=img.voxel_size.as_tuple(), channel_names=[channel],
                       time_interval=img.time_interval) as w:  # fmt: skip
        for k in range(repeat):
            w.write_region((slice(k * a.shape[0], (k + 1) * a.shape[0]),), a)
    return out


def make_ctc(movie: Path) -> Path:
    """The movie's label frames as a CTC result folder, written by the package's CTC writer (``ctc_files``)."""
    import pandas as pd

    from subcell.io import read
    from subcell.io.ctc import ctc_files

    out = movie.with_suffix("").with_suffix(".ctc")
    if out.exists():
        return out
    rows = pd.DataFrame({"L": [1], "B": [0], "E": [0], "P": [0]})  # `track` reads the masks, not the rows
    files = ctc_files(read(movie).data[:, 0], rows)
    out.mkdir()
    for name, content in files.items():
        (out / name).write_bytes(content)
    return out


def make_tiff(movie: Path) -> Path:
    """The movie as an ImageJ TIFF hyperstack (TZYX uint16, µm, frame interval), written by tifffile, zlib."""
    import tifffile

    from subcell.io import read

    out = movie.with_suffix("").with_suffix(".tif")
    if not out.exists():
        img = read(movie)
        vs = img.voxel_size
        labels = img.numpy()[:, 0]
        assert labels.max() < 2**16  # ImageJ stores no int32: uint16 labels
        part = out.with_suffix(".part.tif")
        tifffile.imwrite(part, labels.astype(np.uint16), imagej=True, resolution=(1 / vs.x, 1 / vs.y), compression="zlib",
                         metadata={"axes": "TZYX", "unit": "um", "spacing": vs.z, "finterval": img.time_interval})  # fmt: skip
        part.rename(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="1cad2dd")
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_bench_track"))
    ap.add_argument("--ctc", action="store_true", help="track the movie from a CTC folder of its frames")
    ap.add_argument("--tiff", action="store_true", help="track the movie from an ImageJ TIFF (TZYX, µm)")
    ap.add_argument("--ome-tiff", action="store_true", help="track the movie from an OME-TIFF (written by io.write)")
    ap.add_argument("--evaluate", action="store_true", help="score the movie's tracks against their CTC export")
    ap.add_argument("--tag", default="", help="appended to the results file's name")
    args = ap.parse_args()
    import pandas as pd

    from subcell.io import read

    args.work.mkdir(parents=True, exist_ok=True)
    movie = make_movie(args.work, args.repeat)
    source, extra = [str(movie)], []
    if args.ctc:  # a CTC folder states no voxel size or interval: the movie's, given on the command line
        img = read(movie)
        source = [str(make_ctc(movie))]
        extra = ["--voxel-size", *map(str, img.voxel_size.as_tuple()), "--time-interval", str(img.time_interval)]
    if args.tiff:  # an ImageJ hyperstack: voxel size and frame interval in its own metadata
        source = [str(make_tiff(movie))]
    if args.ome_tiff:
        from subcell.io import write

        ome = movie.with_suffix("").with_suffix(".ome.tif")
        if not ome.exists():
            write(read(movie), ome)
        source = [str(ome)]
    srcs = {"before": worktree(args.before, args.work), "after": REPO / "src"}
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    if args.evaluate:
        tracked = args.work / f"tracks_x{args.repeat}"
        if not tracked.exists():
            run_cli(srcs["after"], ["track", *source, str(tracked), *extra])
        for _ in range(args.runs):
            for arm in ("before", "after"):
                runs[arm].append(run_cli(srcs[arm], ["evaluate-tracks", str(tracked), str(tracked / "ctc"), "-o",
                                                     str(args.work / f"scores_{arm}"), "--overwrite"]))  # fmt: skip
                print(arm, runs[arm][-1], flush=True)
        metrics = [json.loads((args.work / f"scores_{arm}" / "metrics.json").read_text()) for arm in runs]
        per_track = [pd.read_csv(args.work / f"scores_{arm}" / "per_track.csv") for arm in runs]
        same = {"metrics": metrics[0] == metrics[1], "per_track": bool(per_track[0].equals(per_track[1]))}
        print("same:", same, metrics[1])
        result = {"movie": str(movie), "shape": list(read(movie).shape), "before": args.before, "runs": runs,
                  "same": same, "metrics": metrics[1]}  # fmt: skip
        (HERE / f"evaluate_memory_x{args.repeat}{args.tag}.json").write_text(json.dumps(result, indent=1))
        return
    for _ in range(args.runs):
        for arm in ("before", "after"):
            runs[arm].append(run_cli(srcs[arm], ["track", *source, str(args.work / f"tracks_{arm}"), "--overwrite",
                                                 *extra]))  # fmt: skip
            print(arm, runs[arm][-1], flush=True)
    b, a = args.work / "tracks_before", args.work / "tracks_after"
    same = {
        "tracks": bool(pd.read_parquet(b / "tracks.parquet").equals(pd.read_parquet(a / "tracks.parquet"))),
        "labels": bool(np.array_equal(read(b / "labels.ome.zarr").numpy(), read(a / "labels.ome.zarr").numpy())),
        "ctc": not (cmp := filecmp.dircmp(b / "ctc", a / "ctc")).diff_files and not cmp.left_only + cmp.right_only,
    }
    print("same:", same)
    result = {"movie": source[0], "shape": list(read(movie).shape), "before": args.before, "runs": runs, "same": same}
    (
        HERE / f"track_memory_x{args.repeat}{'_ctc' if args.ctc else ''}{'_tiff' if args.tiff else ''}{args.tag}.json"
    ).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
