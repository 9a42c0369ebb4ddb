"""Training throughput (cells/s) and peak memory of the integrated-cell models for 64×96×96 crops.

Each configuration runs in a fresh child process (peak RSS from /proc/self/status VmHWM, CUDA peak from
torch when on GPU): a reference step (2 mask channels) and a conditional step (structure + 2 reference
channels), default architecture (latent 32, depth 4, 16 base channels), batch 4.

    python benchmarks/integrated/throughput.py [--device cpu|cuda] [--steps 6] [--precisions fp32]
        [--layouts channels_first channels_last]

Sampling (``samples_per_s``): ``sample_structure`` drawing ``batch`` structures from the prior in one cell.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time, torch
from subcell.integrated.model import IntegratedModel
from subcell.integrated.network import VAEConfig
kind, precision, device, steps, batch, layout = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
box = (64, 96, 96)
cfg = VAEConfig(latent_dim=32, depth=4, base_channels=16)
m = IntegratedModel.create(reference_channels=["cell_mask", "nucleus_mask"], structures=[f"s{i}" for i in range(12)],
                           box=box, voxel_um=0.3, reference_config=cfg, conditional_config=cfg)
if layout == "channels_first":  # the layout before the networks went channels-last (the "before" arm)
    from subcell.train.blocks import set_channels_last
    set_channels_last(m.net, False)
m.net.to(device)
opt = torch.optim.Adam(m.net.parameters(), 1e-4)
dt = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
ref = (torch.rand(batch, 2, *box, device=device) > 0.5).float()
x = torch.rand(batch, 1, *box, device=device)
sid = torch.zeros(batch, dtype=torch.long, device=device)
def step():
    with torch.autocast(torch.device(device).type, dtype=dt or torch.float32, enabled=dt is not None):
        if kind == "reference":
            _, ll, kl = m.reference_terms(ref)
        else:
            _, ll, kl = m.conditional_terms(x, ref, sid)
    loss = (-ll + kl.sum(1)).mean() / 1e6
    opt.zero_grad(); loss.backward(); opt.step()
step(); step()
if device == "cuda": torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(steps): step()
if device == "cuda": torch.cuda.synchronize()
s = time.perf_counter() - t
# sampling: structures drawn from the prior in one cell's reference (what sample_structure does), eval mode
from subcell.integrated import sample_structure
m.net.eval()
ref1 = ref[0].cpu().numpy()
with torch.no_grad():
    sample_structure(m, ref1, "s0", batch, seed=0)
    t = time.perf_counter()
    for k in range(2): sample_structure(m, ref1, "s0", batch, seed=k)
    sample_s = (time.perf_counter() - t) / 2
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
out = {"kind": kind, "layout": layout, "precision": precision, "device": device, "batch": batch, "cells_per_s": steps * batch / s,
       "samples_per_s": batch / sample_s,
       "peak_rss_mb": int(hwm) / 1024, "parameters_m": sum(p.numel() for p in m.net.parameters()) / 1e6}
if device == "cuda": out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--precisions", nargs="+", help="default: fp32 bf16 on a CPU, fp32 bf16 fp16 on a GPU")
    ap.add_argument(
        "--layouts",
        nargs="+",
        default=["channels_last"],
        choices=["channels_first", "channels_last"],
        help="channels_first = the networks' layout before they went channels-last",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.json")
    args = ap.parse_args()
    rows = []
    precisions = args.precisions or (["fp32", "bf16"] if args.device == "cpu" else ["fp32", "bf16", "fp16"])
    for kind in ("reference", "conditional"):
        for p in precisions:
            for layout in args.layouts:
                r = subprocess.run([sys.executable, "-c", CHILD, kind, p, args.device, str(args.steps), str(args.batch),
                                    layout], capture_output=True, text=True, check=True)  # fmt: skip
                rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
