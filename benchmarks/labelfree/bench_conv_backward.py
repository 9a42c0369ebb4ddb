"""Where a training step's convolution time goes: forward, input gradient and weight gradient, per 3×3×3 layer shape.

    python benchmarks/labelfree/bench_conv_backward.py [--precision fp32|bf16] [--batch 8] [--patch 32 64 64]

For every 3×3×3 convolution shape of the default preset (``resunet``) at a training batch, times the three
convolutions a training step runs (``aten.convolution_backward`` with one output mask at a time, channels-last as
training runs them) and reports each as GFLOP/s beside an sgemm (or bf16 GEMM) of 4096² measured in the same run.
Each of the three computes the same FLOPs, so an ideal backward costs 2× the forward; a kernel far below the
others is where the step loses. Results: ``results/conv_backward[_TAG].json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _speed_child import _best, roof  # noqa: E402  (the same timing rule and GEMM roof as bench_speed.py)


def layer_shapes(batch: int, patch: tuple[int, int, int]) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """(name, c_in, c_out, input shape) of each distinct 3×3×3 convolution module the default preset's training
    forward calls, at this batch. The decoders' first convolutions (over encoder skip + upsampled features) run in
    training as two c→c convolutions (``subcell.train.blocks.conv_of_concat``), the shape of the decoder's second."""
    from subcell.labelfree import build_network, preset

    net = build_network(preset("resunet"), in_channels=1, out_channels=1)
    shapes: dict[tuple[int, int, tuple[int, ...]], str] = {}
    hooks = []

    def record(mod: torch.nn.Module, inp: tuple[torch.Tensor, ...], _out: torch.Tensor, name: str) -> None:
        shapes.setdefault((mod.in_channels, mod.out_channels, tuple(inp[0].shape)), name)  # type: ignore[arg-type]

    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (3, 3, 3):
            hooks.append(m.register_forward_hook(lambda mod, inp, out, name=name: record(mod, inp, out, name)))
    net.train()(torch.zeros(2, 1, *patch)).sum().backward()
    for h in hooks:
        h.remove()
    return [(name, ci, co, (batch, *shape[1:])) for (ci, co, shape), name in shapes.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, nargs=3, default=[32, 64, 64])
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    from subcell.train.host import tune_allocator

    tune_allocator()
    dt = torch.float32 if args.precision == "fp32" else torch.bfloat16
    cl = torch.channels_last_3d
    gemm = roof({"bf16": args.precision == "bf16"})["sgemm" if args.precision == "fp32" else "bf16_gemm"]
    rows = []
    for name, ci, co, shape in layer_shapes(args.batch, tuple(args.patch)):
        x = torch.randn(*shape).to(dt).contiguous(memory_format=cl)
        w = torch.randn(co, ci, 3, 3, 3).to(dt).contiguous(memory_format=cl)
        gy = torch.randn(shape[0], co, *shape[2:]).to(dt).contiguous(memory_format=cl)
        flops = 2 * (x.numel() // ci) * ci * co * 27  # multiply-adds of the output voxels

        def grad(mask: list[bool], gy: torch.Tensor = gy, x: torch.Tensor = x, w: torch.Tensor = w) -> object:
            return torch.ops.aten.convolution_backward(
                gy, x, w, None, [1, 1, 1], [1, 1, 1], [1, 1, 1], False, [0, 0, 0], 1, mask
            )

        t = {
            "forward": _best(lambda x=x, w=w: torch.nn.functional.conv3d(x, w, None, 1, 1), 4),
            "grad_input": _best(lambda: grad([True, False, False]), 4),
            "grad_weight": _best(lambda: grad([False, True, False]), 4),
        }
        row = {"layer": name, "c_in": ci, "c_out": co, "input": list(shape), "gflop": flops / 1e9,
               **{f"{k}_s": v for k, v in t.items()}, **{f"{k}_gflops": flops / v / 1e9 for k, v in t.items()}}  # fmt: skip
        rows.append(row)
        print(
            f"| {name} | {ci}→{co} | {'×'.join(map(str, shape[2:]))} | "
            + " | ".join(f"{row[f'{k}_gflops']:.0f} ({row[f'{k}_gflops'] / gemm:.0%})" for k in t)
            + " |",
            flush=True,
        )
    total = {k: sum(r[f"{k}_s"] for r in rows) for k in ("forward", "grad_input", "grad_weight")}
    print(f"GEMM {gemm:.0f} GFLOP/s ({args.precision}); seconds over these layers: {total}")
    out = {"precision": args.precision, "gemm_gflops": gemm, "batch": args.batch, "patch": args.patch,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows, "total_s": total}  # fmt: skip
    (HERE / "results").mkdir(exist_ok=True)
    path = HERE / "results" / f"conv_backward{'_' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(out, indent=1))
    print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
