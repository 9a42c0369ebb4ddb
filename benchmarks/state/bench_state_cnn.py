"""Cell state, features vs the crop CNN: the 84 real mitotic cells of ``aics_mitotic_cells``, the same folds
grouped by structure for every model (a structure's cells never in training and test at once).

    SUBCELL_TEST_DATA=../shared/data python benchmarks/state/bench_state_cnn.py [--iterations 300] [--minutes 1.5]

Models: gradient boosting on features (the current default), the CNN on 3D crops and on 2D max projections
(membrane + DNA, as the feature model). Targets: 7 stages and Allen's groups. Writes ``results_cnn.md`` and
``results_cnn.json`` beside this file. Minutes on 2 cores: check that nothing else runs first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
GROUPS = {"M1": "M1M2", "M2": "M1M2", "M3": "M3", "M4": "M4M5", "M5": "M4M5", "M6": "M6M7", "M7": "M6M7"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--minutes", type=float, default=1.5, help="time budget of each CNN training (one per fold)")
    ap.add_argument("--targets", nargs="+", default=["7 stages", "Allen groups"])
    args = ap.parse_args()
    root = Path(os.environ.get("SUBCELL_TEST_DATA", "../shared/data"))
    sys.path.insert(0, str(HERE.parent / "integrated"))
    from real_data import mitotic_fields

    from subcell import io
    from subcell.cells import ExtractConfig, extract_to_store
    from subcell.state import StateConfig, cross_validate, store_features
    from subcell.state.cnn import load_crops

    work = Path(tempfile.mkdtemp())
    cfg = ExtractConfig(channels=["membrane", "dna", "structure"], box=(48, 64, 64), voxel_um=0.4, border="flag",
                        oversize="rescale")  # fmt: skip
    extract_to_store(mitotic_fields(root), work / "m.zarr", cfg, overwrite=True)
    st = io.read_cell_store(work / "m.zarr")
    table = st.extracted
    groups = table.structure.to_numpy()
    feats = store_features(st, channels=["membrane", "dna"])
    crops = {d: load_crops(st, table, ["membrane", "dna"], two_d=d) for d in (False, True)}
    rows: list[dict[str, Any]] = []
    for target in args.targets:
        labels = (table.state.astype(str) if target == "7 stages" else table.state.map(GROUPS)).to_numpy()
        for name in ("gradient_boosting", "cnn 3D", "cnn 2D"):
            kind = "cnn" if name.startswith("cnn") else name
            c = StateConfig(classifier=kind, groups="structure", cnn={
                "iterations": args.iterations, "max_minutes": args.minutes, "two_d": name == "cnn 2D"})  # fmt: skip
            t0 = time.perf_counter()
            r = cross_validate(feats if kind != "cnn" else None, labels, c, groups=groups,
                               crops=crops[name == "cnn 2D"] if kind == "cnn" else None)  # fmt: skip
            rows.append({"target": target, "model": name, "macro_f1": r["macro_f1"], "accuracy": r["accuracy"],
                         "chance": r["chance_accuracy"], "folds": r["folds"],
                         "seconds": round(time.perf_counter() - t0, 1), "per_class_recall": r["per_class_recall"]})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    out = {"cells": len(table), "iterations": args.iterations, "minutes_per_fit": args.minutes, "rows": rows}
    (HERE / "results_cnn.json").write_text(json.dumps(out, indent=2))
    lines = [
        "# Cell state: features vs crop CNN (aics_mitotic_cells, folds grouped by structure)", "",
        f"`python benchmarks/state/bench_state_cnn.py --iterations {args.iterations} --minutes {args.minutes}` — "
        f"{len(table)} cells, membrane + DNA, 2-core CPU", "",
        "| target | model | macro-F1 | accuracy | chance (majority) | folds | seconds |", "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    lines += [f"| {r['target']} | {r['model']} | {r['macro_f1']:.3f} | {r['accuracy']:.3f} | {r['chance']:.3f} | "
              f"{r['folds']} | {r['seconds']} |" for r in rows]  # fmt: skip
    (HERE / "results_cnn.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
