"""GPU speed table of the label-free networks against a bf16 GEMM measured in the same run (issue 17).

    PYTHONPATH=src:benchmarks/labelfree python benchmarks/labelfree/gpu_speed.py --out gpu_speed.md --deadline 420

Needs only torch, numpy, scipy and pydantic (no file I/O). Every row is a ratio against the GEMM roof of this run:
an 8192³ bf16 matrix product (mean of 10 after 3 warm-ups). Useful FLOPs are the convolutions' multiply-adds × 2
(``_flops.conv_flops``); a training step counts 3× the forward's (backward ≈ input gradient + weight gradient,
each about one forward), the usual convention. Rows:

- training steps of the default preset and fnet: the library's layout (channels-last 3D), bf16 autocast, at the
  issue's batch 8 × 32×64×64 and at a large batch; cuDNN's algorithm search off (the library today) and on;
  ``torch.compile`` last (its compile time is reported apart, not in the rate);
- the whole training step captured as one CUDA graph (both presets, both batches) and ``torch.compile`` with
  ``mode="reduce-overhead"`` (CUDA graphs of inductor's kernels): whether launch overhead is what holds the small
  batch back (at batch 8 × 32×64×64 the default preset and fnet took the same 15 ms per step with 4× apart FLOPs);
- inference forward (batch norms folded, as ``predict_volume`` runs it) at three tile sizes;
- ``predict_volume`` end to end on a 64×512×512 field (tiling, blending, copies) against one whole-volume
  forward pass of the same field, and on a 100×2048×2048 field;
- ``fit`` end to end with the ``PatchSampler`` (data drawn on the host): batches drawn in the step against drawn
  ahead on a thread (``fit(prefetch=)``, on by default for CUDA): whether the data keeps up.

Rows are written as they are measured; ``--deadline`` (seconds) stops starting new rows.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _flops import conv_flops
from gpu_check import volume

from subcell.image import VoxelSize
from subcell.labelfree import LabelFreeModel, PredictConfig, preset
from subcell.labelfree.config import AugmentConfig
from subcell.labelfree.data import PatchSampler
from subcell.labelfree.predict import predict_volume
from subcell.train import fit

T0 = time.perf_counter()
DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SMOKE = not torch.cuda.is_available()  # a CPU dry run of every row at tiny sizes (checks the script, times nothing)


def sync_time(fn: Callable[[], object], reps: int, warm: int) -> float:
    """Mean seconds of ``fn`` over ``reps`` calls after ``warm`` calls (CUDA events)."""
    for _ in range(warm):
        fn()
    if SMOKE:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / reps


def sync() -> None:
    if not SMOKE:
        torch.cuda.synchronize()


def gemm_roof() -> float:
    n = 256 if SMOKE else 8192
    a = torch.randn(n, n, device=DEV, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=DEV, dtype=torch.bfloat16)
    t = sync_time(lambda: a @ b, 10, 3)
    return 2 * n**3 / t


def labelfree_model(name: str) -> LabelFreeModel:
    torch.manual_seed(0)
    return LabelFreeModel.create(
        preset(name), input_channel="bf", targets=["y"], voxel_size=VoxelSize(0.29, 0.29, 0.29)
    )


def network(name: str) -> torch.nn.Module:
    return labelfree_model(name).network.to(DEV)


def flops_per_voxel(net: torch.nn.Module) -> float:
    x = torch.randn(1, 1, 32, 64, 64, device=DEV)
    was = net.training
    net.eval()
    f = conv_flops(net, x) / x.numel()
    net.train(was)
    return f


def train_rate(net: torch.nn.Module, batch: int, shape: tuple[int, int, int], *, mode: str = "eager") -> dict:
    """Seconds per training step (bf16 autocast, Adam) of ``net`` run as ``mode``: ``eager``; ``compile``
    (``torch.compile``, inductor); ``compile-graphs`` (``mode="reduce-overhead"``: inductor's kernels replayed as
    CUDA graphs); ``graph`` (the whole step, forward, backward and Adam with ``capturable=True``, captured once as
    one CUDA graph and replayed with new data copied into its static input, PyTorch's "whole-network capture"):
    at small batches a step of these networks is hundreds of short kernels, and launching them costs as much as
    running them."""
    net.train()
    graphed = mode == "graph" and not SMOKE
    opt = torch.optim.Adam(net.parameters(), 1e-4, capturable=graphed)
    x = torch.randn(batch, 1, *shape, device=DEV)
    y = torch.randn(batch, 1, *shape, device=DEV)
    fresh = torch.randn(batch, 1, *shape, device=DEV)  # "the next batch", copied in before each graphed step
    if mode in ("compile", "compile-graphs"):
        fwd = torch.compile(net, mode="reduce-overhead" if mode == "compile-graphs" else None)
    else:
        fwd = net

    def eager_step() -> None:
        with torch.autocast(DEV.type, dtype=torch.bfloat16, enabled=not SMOKE, cache_enabled=not graphed):
            loss = (fwd(x).float() - y).square().mean()
        opt.zero_grad(set_to_none=not graphed)
        loss.backward()
        opt.step()

    t_c = time.perf_counter()
    if graphed:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up steps on a side stream, as capture requires
            for _ in range(3):
                eager_step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            eager_step()

        def step() -> None:
            x.copy_(fresh, non_blocking=True)
            graph.replay()

    else:
        step = eager_step
    step()
    sync()
    first = time.perf_counter() - t_c
    t = sync_time(step, 10, 2)
    return {"s_per_step": t, "first_step_s": first, "voxels": batch * int(np.prod(shape)),
            "peak_gb": 0.0 if SMOKE else torch.cuda.max_memory_allocated() / 1e9}  # fmt: skip


def infer_rate(net: torch.nn.Module, batch: int, shape: tuple[int, int, int]) -> float:
    x = torch.randn(batch, 1, *shape, device=DEV)
    with torch.inference_mode(), torch.autocast(DEV.type, dtype=torch.bfloat16, enabled=not SMOKE):
        return sync_time(lambda: net(x), 8, 2)


def fit_rate(device: torch.device, *, prefetch: bool, batch: int, steps: int, autocast: torch.dtype | None,
             augment: AugmentConfig | None = None) -> tuple[float, float]:  # fmt: skip
    """``fit`` end to end on the default preset, patches 32×64×64 from a ``PatchSampler`` over three synthetic
    volumes: (steps per second over the last three quarters of the steps, median milliseconds to draw a batch)."""
    net = labelfree_model("resunet").network.to(device)
    sampler = PatchSampler([volume(i, (40, 96, 96)) for i in range(3)], (32, 64, 64), augment=augment)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    stamps: list[float] = []
    draw_s: list[float] = []

    def sample(r: np.random.Generator) -> tuple[torch.Tensor, ...]:
        t = time.perf_counter()
        b = tuple(torch.from_numpy(a) for a in sampler.batch(r, batch))
        draw_s.append(time.perf_counter() - t)
        return b

    fit(net, opt, sample_batch=sample, loss_fn=lambda o, b: ((o - b[1]) ** 2).mean(), iterations=steps,
        rng=np.random.default_rng(0), device=device, autocast=autocast,
        on_step=lambda info: stamps.append(time.perf_counter()), prefetch=prefetch)  # fmt: skip
    k = len(stamps) // 4
    return (len(stamps) - k - 1) / (stamps[-1] - stamps[k]), float(np.median(draw_s) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("gpu_speed.md"))
    ap.add_argument("--deadline", type=float, default=420.0)
    ap.add_argument("--only", default="train,graph,compile,infer,predict,fit", help="sections to run (comma-separated)")
    args = ap.parse_args()
    rows: list[dict] = []
    where = "CPU smoke run" if SMOKE else torch.cuda.get_device_name(0)
    lines = [f"# GPU speed: {where}, torch {torch.__version__}", ""]

    def emit(text: str, **row: object) -> None:
        print(text, flush=True)
        lines.append(text)
        if row:
            rows.append(row)
        args.out.write_text("\n".join(lines) + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))

    def guarded(label: str, fn: Callable[[], None]) -> None:
        if label.split()[0] not in args.only.split(","):
            return
        if time.perf_counter() - T0 > args.deadline:
            emit(f"- {label}: skipped (deadline)")
            return
        try:
            fn()
        except Exception as exc:  # a row that fails is reported, the table goes on
            emit(f"- {label}: FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            traceback.print_exc()
        finally:
            if not SMOKE:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()

    roof = gemm_roof()
    emit(f"bf16 GEMM 8192³ roof in this run: {roof / 1e12:.0f} TFLOP/s", kind="gemm", tflops=roof / 1e12)
    nets = {name: network(name) for name in ("resunet", "fnet")}
    fpv = {name: flops_per_voxel(net) for name, net in nets.items()}
    emit(f"forward FLOPs per voxel: {', '.join(f'{k} {v / 1e3:.0f} k' for k, v in fpv.items())}", kind="fpv", **fpv)

    emit("\n## Training steps (bf16 autocast, channels-last 3D, Adam)\n")
    header = "| preset | batch × patch | cuDNN search | compiled | ms/step | steps/s | Mvoxels/s | TFLOP/s | of roof | peak GB |"
    emit(header)
    emit("|---|---|---|---|---|---|---|---|---|---|")
    configs = [(2, (16, 32, 32))] * 2 if SMOKE else [(8, (32, 64, 64)), (16, (64, 128, 128))]

    def train_row(name: str, batch: int, shape: tuple[int, int, int], search: bool, mode: str, cl: bool = True) -> None:
        torch.backends.cudnn.benchmark = search
        net = nets[name].set_channels_last(cl)
        if mode == "graph":  # a fresh copy: the capture pins the module's tensors and Adam's state to the graph
            net = network(name)
        try:
            r = train_rate(net, batch, shape, mode=mode)
        finally:
            net.set_channels_last(True)
        compiled = mode != "eager"
        tf = 3 * fpv[name] * r["voxels"] / r["s_per_step"]
        emit(
            f"| {name}{'' if cl else ' (channels-first)'} | {batch} × {'×'.join(map(str, shape))} | {'on' if search else 'off'} | "
            f"{mode + ' (first step ' + format(r['first_step_s'], '.1f') + ' s)' if compiled else 'no'} | "
            f"{r['s_per_step'] * 1e3:.1f} | {1 / r['s_per_step']:.1f} | {r['voxels'] / r['s_per_step'] / 1e6:.0f} | "
            f"{tf / 1e12:.1f} | {tf / roof:.1%} | {r['peak_gb']:.1f} |",
            kind="train", preset=name, batch=batch, shape=shape, search=search, compiled=compiled, mode=mode, channels_last=cl, tflops=tf / 1e12,
            **r,
        )  # fmt: skip

    for name in ("resunet", "fnet"):
        for batch, shape in configs:
            for search in (False, True):
                guarded(f"train {name} {batch} {shape} {search}", lambda n=name, b=batch, s=shape, c=search: train_row(n, b, s, c, "eager"))  # fmt: skip
        guarded(f"train {name} channels-first", lambda n=name: train_row(n, *configs[-1], True, "eager", cl=False))

    emit("\n## The whole training step as one CUDA graph (launch overhead removed; eager kernels)\n")
    emit(header)
    emit("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("resunet", "fnet"):
        for batch, shape in configs:
            guarded(
                f"graph {name} {batch} {shape}", lambda n=name, b=batch, s=shape: train_row(n, b, s, False, "graph")
            )
    if not SMOKE:
        guarded("compile fnet", lambda: train_row("fnet", 16, (64, 128, 128), True, "compile"))
        for batch, shape in configs:
            guarded(f"compile fnet graphs {batch}",
                    lambda b=batch, s=shape: train_row("fnet", b, s, False, "compile-graphs"))  # fmt: skip

    emit("\n## Inference forward (batch norms folded, bf16 autocast)\n")
    emit("| preset | tiles | cuDNN search | ms | Mvoxels/s | TFLOP/s | of roof |")
    emit("|---|---|---|---|---|---|---|")

    def infer_row(name: str, batch: int, shape: tuple[int, int, int], search: bool) -> None:
        torch.backends.cudnn.benchmark = search
        net = nets[name].eval().fused()
        t = infer_rate(net, batch, shape)
        vox = batch * int(np.prod(shape))
        tf = fpv[name] * vox / t
        emit(
            f"| {name} | {batch} × {'×'.join(map(str, shape))} | {'on' if search else 'off'} | {t * 1e3:.1f} | "
            f"{vox / t / 1e6:.0f} | {tf / 1e12:.1f} | {tf / roof:.1%} |",
            kind="infer", preset=name, batch=batch, shape=shape, search=search, tflops=tf / 1e12, s=t,
        )  # fmt: skip

    for name in ("fnet", "resunet"):
        for batch, shape, search in (
            ((1, (16, 32, 32), False),)
            if SMOKE
            else ((4, (32, 128, 128), False), (4, (32, 128, 128), True), (2, (64, 256, 256), True))
        ):
            guarded(f"infer {name}", lambda n=name, b=batch, s=shape, c=search: infer_row(n, b, s, c))

    emit("\n## predict_volume end to end, bf16 (input rows and output planes through host memory)\n")
    emit(
        "| preset | field | memory_limit_gb | cuDNN search | tile | wall s | whole-volume forward s | ratio | useful TFLOP/s "
        "| of roof |"
    )
    emit("|---|---|---|---|---|---|---|---|---|---|")
    field = np.random.default_rng(3).normal(size=(1, 16, 64, 64) if SMOKE else (1, 64, 512, 512)).astype(np.float32)

    def predict_row(name: str, mem: float, search: bool, big: bool = False) -> None:
        torch.backends.cudnn.benchmark = search
        fld = np.random.default_rng(4).normal(size=(1, 100, 2048, 2048)).astype(np.float32) if big else field
        model = labelfree_model(name)
        out = np.zeros_like(fld)

        def sink(z0: int, rows_: np.ndarray) -> None:
            out[:, z0 : z0 + rows_.shape[1]] = rows_

        cfg = PredictConfig(device=DEV.type, precision="fp32" if SMOKE else "bf16", memory_limit_gb=mem)
        warm = np.zeros_like(field)
        predict_volume(model, lambda a, b: field[:, a:b], field.shape[1:], lambda z0, r: warm.__setitem__((slice(None), slice(z0, z0 + r.shape[1])), r), config=cfg)  # fmt: skip
        sync()
        t = time.perf_counter()
        summary = predict_volume(model, lambda a, b: fld[:, a:b], fld.shape[1:], sink, config=cfg)
        sync()
        wall = time.perf_counter() - t
        whole = float("nan") if big else infer_rate(model.network.fused(), 1, fld.shape[1:])
        tf = fpv[name] * fld[0].size / wall
        emit(
            f"| {name} | {'×'.join(map(str, fld.shape[1:]))} | {mem:g} | {'on' if search else 'off'} | {summary.get('tile')} | {wall:.2f} | {whole:.2f} | "
            f"{wall / whole:.2f} | {tf / 1e12:.1f} | {tf / roof:.1%} |",
            kind="predict", preset=name, mem=mem, search=search, wall=wall, whole=whole, tflops=tf / 1e12,
            summary=str(summary),
        )  # fmt: skip

    for name, mem, search in (("fnet", 2.0, False), ("fnet", 2.0, True), ("fnet", 16.0, True), ("resunet", 16.0, True)):
        guarded(f"predict {name} {mem}", lambda n=name, m=mem, s=search: predict_row(n, m, s))
    if not SMOKE:
        for mem in (2.0, 16.0):
            guarded(f"predict fnet 100×2048×2048 {mem}", lambda m=mem: predict_row("fnet", m, True, big=True))

    emit("\n## fit end to end (PatchSampler on the host, default preset, batch 8 × 32×64×64)\n")

    def fit_row(prefetch: bool) -> None:
        torch.backends.cudnn.benchmark = False
        rate, draw_ms = fit_rate(DEV, prefetch=prefetch, batch=8, steps=14 if SMOKE else 40,
                                 autocast=None if SMOKE else torch.bfloat16)  # fmt: skip
        emit(
            f"- batches drawn {'ahead on a thread' if prefetch else 'in the step'}: {rate:.1f} steps/s end to end; "
            f"drawing a batch on the host takes {draw_ms:.0f} ms (median) of the {1e3 / rate:.0f} ms per step",
            kind="fit", prefetch=prefetch, steps_per_s=rate, draw_ms=draw_ms,
        )  # fmt: skip

    for prefetch in (False, True):
        guarded(f"fit prefetch {prefetch}", lambda p=prefetch: fit_row(p))

    emit("\n## torch.compile of the default preset (training, cuDNN search on)\n")
    if not SMOKE:
        guarded("compile resunet", lambda: train_row("resunet", 16, (64, 128, 128), True, "compile"))
    emit(f"\n(total {time.perf_counter() - T0:.0f} s)")


if __name__ == "__main__":
    main()
