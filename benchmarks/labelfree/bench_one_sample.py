"""One-sample fp32 inference on a CPU: PyTorch's own kernel choice against oneDNN (``subcell.train.blocks.Conv3d``).

PyTorch 2.13 sends one fp32 sample to its reference 3D convolution (``slow_conv3d``) when C·D·H <= 20480; subcell's
``Conv3d`` sends those calls to oneDNN. Both arms run in this process, alternating, best of ``--repeats``: "before"
with the redirect switched off, "after" with it on. Measured: the shipped default network's forward pass on tiles
(batch norms folded, as prediction runs it), the edge-reach (halo) measurement a model save makes, and the integrated
cell's ``sample_structure`` of one structure in one cell. The largest output change is reported with each.

    python benchmarks/labelfree/bench_one_sample.py [--repeats 3]   → results_one_sample.md
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import subcell.train.blocks as blocks

HERE = Path(__file__).parent
REDIRECT = blocks._onednn_for_one_sample


def _set(on: bool) -> None:
    blocks._onednn_for_one_sample = REDIRECT if on else (lambda x, conv: False)  # type: ignore[assignment]


def _best(fn: Callable[[], object], on: bool, repeats: int) -> tuple[float, object]:
    _set(on)
    out = fn()  # warm-up (oneDNN primitive creation)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    _set(True)
    return min(times), out


def _diff(a: object, b: object) -> float:
    if isinstance(a, torch.Tensor):
        return float((a - b).abs().max())  # type: ignore[operator]
    if isinstance(a, np.ndarray):
        return float(np.abs(a - np.asarray(b)).max())
    return float(max(abs(x - y) for x, y in zip(a, b, strict=True)))  # type: ignore[call-overload]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results_one_sample.md")
    args = ap.parse_args()

    from subcell.integrated import sample_structure
    from subcell.integrated.model import IntegratedModel
    from subcell.integrated.network import VAEConfig
    from subcell.labelfree.halo import edge_reach
    from subcell.labelfree.pretrained import load_model

    torch.manual_seed(0)
    model = load_model("hipsc-bf-3d")
    net = model.network.fused().eval()
    rows: list[tuple[str, float, float, float]] = []

    def run(name: str, fn: Callable[[], object]) -> None:
        before, a = _best(fn, False, args.repeats)
        after, b = _best(fn, True, args.repeats)
        rows.append((name, before, after, _diff(a, b)))
        print(f"{name}: {before:.3f} s → {after:.3f} s ({before / after:.2f}×)", flush=True)

    for shape in [(32, 64, 64), (32, 128, 128), (48, 144, 144), (64, 256, 256), (16, 32, 384)]:
        x = torch.randn(1, 1, *shape)

        def forward(x: torch.Tensor = x) -> torch.Tensor:
            with torch.inference_mode():
                return net(x)

        run(f"default network forward, 1×{'×'.join(map(str, shape))}", forward)

    def halo() -> tuple[int, ...]:
        return edge_reach(model.network, model.patch_size, model.divisor)

    run("edge reach (halo) of the shipped model, measured on save", halo)

    cfg = VAEConfig(latent_dim=16, depth=3, base_channels=8)
    box = (32, 48, 48)
    im = IntegratedModel.create(reference_channels=["cell_mask", "nucleus_mask"], structures=["s0"], box=box,
                                voxel_um=0.5, reference_config=cfg, conditional_config=cfg)  # fmt: skip
    im.net.eval()
    ref = (np.random.default_rng(0).random((2, *box)) > 0.5).astype(np.float32)
    run("integrated sample_structure, 1 sample, 32×48×48 (the demo's model)",
        lambda: sample_structure(im, ref, "s0", 1, seed=0))  # fmt: skip

    lines = [
        "# One-sample fp32 CPU inference: PyTorch's kernel choice vs oneDNN (`subcell.train.blocks.Conv3d`)",
        "",
        f"`python benchmarks/labelfree/bench_one_sample.py --repeats {args.repeats}`; {torch.get_num_threads()} "
        "threads, both arms in one process, alternating, best of the repeats.",
        "",
        "| measure | before s | after s | speed-up | max abs output change |",
        "|---|---:|---:|---:|---:|",
        *[f"| {n} | {b:.3f} | {a:.3f} | {b / a:.2f}× | {d:.1e} |" for n, b, a, d in rows],
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
