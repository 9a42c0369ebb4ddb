"""GPU check of the integrated-cell models (run on a CUDA machine; cells are built in memory, no store I/O).

    PYTHONPATH=src python benchmarks/integrated/gpu_check.py

1. Both models train on CUDA through the shared loop with bf16 autocast and with fp16 + gradient scaler:
   the loss falls, the validation ELBO is finite, the true reference beats a shuffled one on held-out cells.
2. A model trained on the GPU samples the same structures on CPU and GPU within 2e-3 (TF32 convolutions).
3. Throughput (cells/s) and CUDA peak memory for 64×96×96 crops (benchmarks/integrated/throughput.py).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "integrated"))
from toy_cells import BOX, toy_cell

from subcell.integrated.config import TrainConfig
from subcell.integrated.data import CellData, split_cells
from subcell.integrated.evaluate import evaluate_model
from subcell.integrated.model import IntegratedModel
from subcell.integrated.train import _train_part
from subcell.integrated.uses import sample_structure
from subcell.train import DistributedContext


def toy_data(n: int = 64) -> CellData:
    rng = np.random.default_rng(0)
    cells = np.stack([toy_cell(rng) for _ in range(n)])
    norm = cells.copy()
    for c in (0, 1):
        norm[:, c] = (norm[:, c] - 5) / 95
    return CellData(reference=norm[:, 2:].astype(np.float16), structure_images=norm[:, :2].astype(np.float16),
                    structure_ids=np.tile([0, 1], (n, 1)), structure_names=["dna", "cap"], table=None, box=BOX,
                    voxel_um=0.5, reference_channels=["cell_mask", "nucleus_mask"])  # fmt: skip


def run(precision: torch.dtype) -> IntegratedModel:
    data = toy_data()
    split = split_cells(len(data.reference), 0.15, 0.2, 0)
    out = Path(tempfile.mkdtemp()) / "m"
    part = {"iterations": 300, "lr": 2e-3, "network": {"latent_dim": 8, "depth": 2, "base_channels": 16},
            "beta": {"kind": "warmup", "warmup_steps": 100}}  # fmt: skip
    cfg = TrainConfig(cells=["memory"], output=out, structures=["dna", "cap"], reference=part, conditional=part,
                      batch_size=16, validate_every=100, checkpoint_every=1000)  # fmt: skip
    dev = torch.device("cuda")
    model = IntegratedModel.create(reference_channels=data.reference_channels, structures=data.structure_names,
                                   box=BOX, voxel_um=0.5, reference_config=cfg.reference.network,
                                   conditional_config=cfg.conditional.network)  # fmt: skip
    model.net.to(dev)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for kind, p in (("reference", cfg.reference), ("conditional", cfg.conditional)):
        h, s = _train_part(model, p, kind, data, split, cfg, dev, precision, DistributedContext(), rng, None, None)
        first = np.mean([x["loss"] for x in h.train[:20]])
        last = np.mean([x["loss"] for x in h.train[-20:]])
        print(f"{precision} {kind}: loss {first:.4f} → {last:.4f}, best val ELBO {s['best_val_elbo_nats']:.1f}")
        assert last < first and np.isfinite(s["best_val_elbo_nats"])
    print(f"  trained in {time.perf_counter() - t:.1f} s")
    ev = evaluate_model(model, data, split["test"], samples=2)
    print(ev.summary.to_string())
    assert (ev.summary[ev.summary.model == "conditional"].elbo_gain_nats > 0).all()
    return model


def main() -> None:
    assert torch.cuda.is_available(), "needs a CUDA device"
    print(torch.cuda.get_device_name(0), torch.__version__)
    run(torch.float16)
    model = run(torch.bfloat16)
    ref = toy_data().reference[0].astype(np.float32)
    gpu = sample_structure(model, ref, "cap", 2, seed=1)
    model.net.cpu()
    cpu = sample_structure(model, ref, "cap", 2, seed=1)
    print(f"sampling GPU vs CPU (fp32 weights; cuDNN convolutions use TF32): max |Δ| {np.abs(gpu - cpu).max():.2e}")
    assert np.abs(gpu - cpu).max() < 2e-3
    here = Path(__file__).parent
    subprocess.run([sys.executable, str(here / "throughput.py"), "--device", "cuda", "--steps", "20", "--batch", "8",
                    "--out", "/tmp/throughput_gpu.json"], check=True)  # fmt: skip
    print(Path("/tmp/throughput_gpu.json").read_text())


if __name__ == "__main__":
    main()
