"""Rate–distortion of the reference model over β on synthetic cells: for each β, train for the same budget and
measure on held-out cells the rate (mean KL, nats) and the distortion (−E[log p(x|z)], nats).

Cells are extracted in memory (no store), so this also runs on a bare GPU machine:

    python benchmarks/integrated/rate_distortion.py --betas 0.1 0.3 1 3 10 --minutes 1.5 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from subcell.cells import ExtractConfig, extract_cells
from subcell.integrated.config import TrainConfig
from subcell.integrated.data import CellData, normalize_crop, split_cells
from subcell.integrated.evaluate import evaluate_model
from subcell.integrated.model import IntegratedModel
from subcell.integrated.train import _train_part
from subcell.plotting import png_bytes, subplots
from subcell.synth.generate import synth_field
from subcell.train import DistributedContext, autocast_dtype


def cells_in_memory(fields: int) -> CellData:
    cfg = ExtractConfig(channels=["dna"], box=(32, 48, 48), voxel_um=0.5, border="flag", oversize="rescale")
    refs = []
    for s in range(fields):
        f = synth_field(shape=(48, 512, 512), seed=300 + s)
        for c in extract_cells(f.image, f.labels["cell"][0], f.labels["nucleus"][0], cfg):
            if c.crop is not None:
                refs.append(normalize_crop(c.crop[1:], ["cell_mask", "nucleus_mask"], c.crop[1]))
    ref = np.stack(refs).astype(np.float16)
    return CellData(reference=ref, structure_images=np.zeros((len(ref), 0, *cfg.box), np.float16),
                    structure_ids=np.zeros((len(ref), 0), np.int64), structure_names=[], table=None, box=cfg.box,
                    voxel_um=0.5, reference_channels=["cell_mask", "nucleus_mask"])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.3, 1, 3, 10])
    ap.add_argument("--minutes", type=float, default=1.5)
    ap.add_argument("--fields", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    data = cells_in_memory(args.fields)
    split = split_cells(len(data.reference), 0.15, 0.2, 0)
    print(f"{len(data.reference)} cells")
    dev = torch.device(args.device)
    rows = []
    for beta in args.betas:
        part = {"iterations": 100000, "max_minutes": args.minutes, "lr": 1e-3,
                "beta": {"kind": "warmup", "beta": beta, "warmup_steps": 200},
                "network": {"latent_dim": 32, "base_channels": 16}}  # fmt: skip
        cfg = TrainConfig(cells=["memory"], output=Path(tempfile.mkdtemp()) / "m", structures=["none"],
                          reference=part, batch_size=8, validate_every=100, checkpoint_every=10**6)  # fmt: skip
        torch.manual_seed(0)
        model = IntegratedModel.create(reference_channels=data.reference_channels, structures=["none"], box=data.box,
                                       voxel_um=0.5, reference_config=cfg.reference.network,
                                       conditional_config=cfg.conditional.network)  # fmt: skip
        model.net.to(dev)
        _, summary = _train_part(model, cfg.reference, "reference", data, split, cfg, dev,
                                 autocast_dtype(dev, "auto"), DistributedContext(), np.random.default_rng(0), None,
                                 None)  # fmt: skip
        ev = evaluate_model(model, data, split["test"], samples=4)
        rate = float(ev.reference.kl_nats.mean())
        rows.append({"beta": beta, "rate_nats": rate, "distortion_nats": float((ev.reference.kl_nats - ev.reference.elbo_nats).mean()),
                     "elbo_nats": float(ev.reference.elbo_nats.mean()), "recon_mse": float(ev.reference.recon_mse.mean()),
                     "steps": summary["steps"], "device": str(dev)})  # fmt: skip
        print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rate_distortion.json").write_text(json.dumps(rows, indent=1))
    fig, ax = subplots(figsize=(4.5, 3.5))
    ax.plot([r["rate_nats"] for r in rows], [r["distortion_nats"] for r in rows], "o-")
    for r in rows:
        ax.annotate(f"β={r['beta']:g}", (r["rate_nats"], r["distortion_nats"]), fontsize=8)
    ax.set_xlabel("rate: KL (nats / cell)")
    ax.set_ylabel("distortion: −log p(x|z) (nats / cell)")
    (args.out / "rate_distortion.png").write_bytes(png_bytes(fig))


if __name__ == "__main__":
    main()
