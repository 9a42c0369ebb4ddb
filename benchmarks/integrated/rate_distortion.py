"""Rate–distortion of the reference model over β on synthetic cells: for each β, train for the same CPU budget
and measure on held-out cells the rate (mean KL, nats) and the distortion (−E[log p(x|z)], nats).

    python benchmarks/integrated/rate_distortion.py --betas 0.1 0.3 1 3 10 --minutes 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from subcell.cells import ExtractConfig, extract_to_store
from subcell.integrated import TrainConfig, evaluate_model, train_integrated
from subcell.plotting import png_bytes, subplots
from subcell.synth.generate import synth_field


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.3, 1, 3, 10])
    ap.add_argument("--minutes", type=float, default=2)
    ap.add_argument("--fields", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rd-"))
    fields = []
    for s in range(args.fields):
        f = synth_field(shape=(48, 512, 512), seed=300 + s)
        fields.append((f.image, f.labels["cell"][0], f.labels["nucleus"][0], {"source": f"synth-{300 + s}"}))
    extract_to_store(fields, work / "cells.zarr", ExtractConfig(channels=["dna"], box=(32, 48, 48), voxel_um=0.5,
                                                                 border="flag", oversize="rescale"))  # fmt: skip
    rows = []
    for beta in args.betas:
        part = {"iterations": 100000, "max_minutes": args.minutes, "beta": {"kind": "warmup", "beta": beta,
                "warmup_steps": 200}, "network": {"latent_dim": 32, "base_channels": 16}}  # fmt: skip
        tc = TrainConfig(cells=[work / "cells.zarr"], output=work / f"m{beta}", structures=["dna"],
                         reference=part, conditional={**part, "iterations": 1}, validate_every=50)  # fmt: skip
        res = train_integrated(tc)
        ev = evaluate_model(res.model, res.data, res.split["test"], samples=4)
        rate = float(ev.reference.kl_nats.mean())
        distortion = float((ev.reference.kl_nats - ev.reference.elbo_nats).mean())
        rows.append({"beta": beta, "rate_nats": rate, "distortion_nats": distortion,
                     "elbo_nats": float(ev.reference.elbo_nats.mean()),
                     "recon_mse": float(ev.reference.recon_mse.mean()),
                     "steps": res.model.training["reference"]["steps"]})  # fmt: skip
        print(rows[-1])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rate_distortion.json").write_text(json.dumps(rows, indent=1))
    fig, ax = subplots(figsize=(4.5, 3.5))
    ax.plot([r["rate_nats"] for r in rows], [r["distortion_nats"] for r in rows], "o-")
    for r in rows:
        ax.annotate(f"β={r['beta']:g}", (r["rate_nats"], r["distortion_nats"]), fontsize=8)
    ax.set_xlabel("rate: KL (nats / cell)")
    ax.set_ylabel("distortion: −log p(x|z) (nats / cell)")
    (args.out / "rate_distortion.png").write_bytes(png_bytes(fig))
    print(np.round([[r["beta"], r["rate_nats"], r["distortion_nats"]] for r in rows], 1))


if __name__ == "__main__":
    main()
