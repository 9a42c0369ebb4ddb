"""Measurements run in a fresh interpreter by ``bench_speed.py`` (one per call, so that process-wide settings
such as the allocator and the thread pool of one arm never leak into the other). Works against the current
source and against an older checkout put first on ``PYTHONPATH`` (the "before" arm): it only uses the public
API both share, and calls what the newer code added (allocator, fused inference copy) only where it exists,
exactly where the library itself calls it.

    python _speed_child.py TASK JSON_ARGS   → prints one JSON line
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _flops import conv_flops


def _rss_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024  # type: ignore[union-attr]


def _tune() -> bool:
    try:
        from subcell.train.host import tune_allocator
    except ImportError:  # the older code had no allocator setting
        return False
    return tune_allocator()


def _bf16(args: dict[str, Any]) -> bool:
    """bf16 autocast unless the run asks for fp32 (``bench_speed.py`` asks where the CPU has no native bf16)."""
    return args.get("precision", "bf16") == "bf16"


def _best(fn: Any, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def roof(args: dict[str, Any]) -> dict[str, Any]:
    """GEMM roofs: torch.mm of 4096² fp32 (sgemm) and bf16."""
    n = 4096
    out: dict[str, Any] = {"bf16_gemm": None}
    kinds = [("sgemm", torch.float32)] + ([("bf16_gemm", torch.bfloat16)] if args.get("bf16", True) else [])
    for name, dt in kinds:  # bf16 only where the CPU has it: emulated, one 4096² product takes minutes
        a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
        out[name] = 2 * n**3 / _best(lambda a=a, b=b: a @ b, 6) / 1e9
    return out


def _network(name: str, z_levels: int | None, extra: dict[str, Any] | None = None) -> torch.nn.Module:
    from subcell.labelfree import build_network, preset

    torch.manual_seed(0)
    overrides = {**({} if z_levels is None else {"z_levels": z_levels}), **(extra or {})}
    net = build_network(preset(name, **overrides), in_channels=1, out_channels=1)
    g = torch.Generator().manual_seed(1)
    for m in net.modules():  # non-trivial eval statistics, so folding them is tested for real
        if isinstance(m, torch.nn.BatchNorm3d | torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net


def forward(args: dict[str, Any]) -> dict[str, Any]:
    """One network forward pass as the prediction path runs it (eval; the fused copy where the code has one)."""
    _tune()
    net = _network(args["preset"], args.get("z_levels"), args.get("network")).eval()
    if hasattr(net, "fused"):
        net = net.fused()
    x = torch.randn(1, 1, *args["shape"], generator=torch.Generator().manual_seed(2))
    flops = conv_flops(net, x)
    dt = {"fp32": None, "bf16": torch.bfloat16}[args["precision"]]

    def run() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=dt or torch.float32, enabled=dt is not None):
            return net(x).float()

    seconds = _best(run, args.get("reps", 3))
    np.save(args["out"], run().numpy())
    return {"seconds": seconds, "gflop": flops / 1e9, "gflops": flops / seconds / 1e9}


def train(args: dict[str, Any]) -> dict[str, Any]:
    """Training steps of a preset at batch N × patch (bf16 autocast), as ``fit`` runs them; phase times."""
    from subcell.labelfree.data import PatchSampler, Volume

    _tune()
    torch.manual_seed(0)
    net = _network(args["preset"], args.get("z_levels"), args.get("network")).train()
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    n, patch = args["batch"], tuple(args["patch"])
    rng = np.random.default_rng(0)
    shape = (patch[0] * 2, patch[1] * 3, patch[2] * 3)
    vols = [
        Volume(f"v{i}", rng.normal(size=(1, *shape)).astype(np.float32), rng.normal(size=(1, *shape)).astype(np.float32),
               None, np.flatnonzero(rng.random(shape) > 0.5), np.zeros(1, np.float32), np.ones(1, np.float32))
        for i in range(2)
    ]  # fmt: skip
    sampler = PatchSampler(vols, patch)
    phases: dict[str, list[float]] = {"data": [], "forward": [], "backward": [], "optimizer": []}

    def step(record: bool) -> None:
        t0 = time.perf_counter()
        x, y, _w = (torch.from_numpy(a) for a in sampler.batch(rng, n))
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16(args)):
            out = net(x)
        loss = ((out.float() - y) ** 2).mean()
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if record:
            for k, a, b in (("data", t0, t1), ("forward", t1, t2), ("backward", t2, t3), ("optimizer", t3, t4)):
                phases[k].append(b - a)

    for _ in range(2):
        step(False)
    for _ in range(args.get("steps", 5)):
        step(True)
    med = {k: float(np.median(v)) for k, v in phases.items()}
    total = sum(med.values())
    return {"step_s": total, "steps_per_s": 1 / total, "voxels_per_s": n * int(np.prod(patch)) / total,
            "phases_s": med, "peak_rss_mb": _rss_mb()}  # fmt: skip


def profile(args: dict[str, Any]) -> dict[str, Any]:
    """Per-operator self time of one training step and one inference pass (top operators, torch.profiler)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    _tune()
    out: dict[str, Any] = {}
    net = _network(args["preset"], args.get("z_levels"), args.get("network")).train()
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    x, y = torch.randn(args["batch"], 1, *args["patch"]), torch.randn(args["batch"], 1, *args["patch"])

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16(args)):
            o = net(x)
        loss = ((o.float() - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    inet = _network(args["infer_preset"], None).eval()
    if hasattr(inet, "fused"):
        inet = inet.fused()
    xi = torch.randn(1, 1, *args["infer_shape"])

    def infer() -> None:
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16(args)),
        ):
            inet(xi)

    for name, fn in (("train", step), ("inference", infer)):
        fn()
        with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            fn()
        rows = []
        for ev in prof.key_averages(group_by_input_shape=True):
            rows.append({"op": ev.key, "shapes": str(ev.input_shapes)[:90], "calls": ev.count,
                         "self_ms": ev.self_cpu_time_total / 1e3})  # fmt: skip
        rows.sort(key=lambda r: -r["self_ms"])
        out[name] = {"total_ms": sum(r["self_ms"] for r in rows), "top": rows[: args.get("top", 12)]}
    return out


def predict(args: dict[str, Any]) -> dict[str, Any]:
    """``predict_to_zarr`` from an OME-Zarr on disk (read, normalise, tiles, blending, write), phase-free wall time."""
    from subcell import io
    from subcell.labelfree import LabelFreeModel, PredictConfig, predict_to_zarr
    from subcell.labelfree import predict as predict_module

    # the network's share of the wall time: every batch of tiles goes through predict._forward (both arms)
    network_s = [0.0]
    inner = predict_module._forward

    def timed(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        out = inner(*a, **k)
        network_s[0] += time.perf_counter() - t
        return out

    predict_module._forward = timed  # type: ignore[assignment]
    model = LabelFreeModel.load(args["model"])
    image = io.read(args["input"])
    cfg = PredictConfig(memory_limit_gb=args.get("memory_gb", 2.0), precision=args["precision"])
    t = time.perf_counter()
    predict_to_zarr(model, image, args["output"], cfg, overwrite=True)
    seconds = time.perf_counter() - t
    steps = [h for h in io.read(args["output"]).provenance.history if h.get("step") == "labelfree.predict"]
    tile = steps[-1]["parameters"].get("tile") if steps else None
    return {"seconds": seconds, "network_s": network_s[0], "peak_rss_mb": _rss_mb(), "tile": tile}


def plane(args: dict[str, Any]) -> dict[str, Any]:
    """``predict_image`` of the shipped 2D model (``dna-2d``) on one random N×N plane at the model's voxel size:
    wall time, peak RSS, the tile chosen, and a subsample of the output for comparing arms."""
    from subcell import Image
    from subcell.labelfree import PredictConfig, predict_image
    from subcell.labelfree.pretrained import load_model

    model = load_model("dna-2d")
    n = args["size"]
    data = np.random.default_rng(0).normal(size=(1, n, n)).astype(np.float32)
    image = Image(data, voxel_size=model.voxel_size.as_tuple(), dims="ZYX", channel_names=[model.input_channel])
    t = time.perf_counter()
    pred = predict_image(model, image, PredictConfig(precision=args.get("precision", "fp32")))
    seconds = time.perf_counter() - t
    np.save(args["out"], pred.numpy()[0, 0, 0, ::8, ::8])
    step = pred.provenance.parameters  # the prediction's own step (what it chose), not an earlier one
    return {"seconds": seconds, "peak_rss_mb": _rss_mb(), "tile": step.get("tile"), "tiles": step.get("tiles")}


def whole(args: dict[str, Any]) -> dict[str, Any]:
    """One whole-volume forward pass of a model on an OME-Zarr (the baseline of the streamed tiled path)."""
    from subcell import io
    from subcell.labelfree import LabelFreeModel
    from subcell.labelfree.data import normalize_input

    _tune()
    model = LabelFreeModel.load(args["model"])
    net = model.network.fused() if hasattr(model.network, "fused") else model.network
    x = torch.from_numpy(normalize_input(io.read(args["input"]).numpy()[0]))[None]
    t = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16(args)):
        y = net(x).float().numpy()
    seconds = time.perf_counter() - t
    np.save(args["out"], y[0])
    return {"seconds": seconds, "peak_rss_mb": _rss_mb()}


def compiled(args: dict[str, Any]) -> dict[str, Any]:
    """``torch.compile`` (inductor) against eager: one training step of a preset and one inference pass."""
    _tune()
    out: dict[str, Any] = {"precision": args.get("precision", "bf16")}
    bf16 = _bf16(args)
    x, y = torch.randn(args["batch"], 1, *args["patch"]), torch.randn(args["batch"], 1, *args["patch"])
    for mode in ("eager", "compile"):
        torch.manual_seed(0)
        net = _network(args["preset"], args.get("z_levels")).train()
        opt = torch.optim.Adam(net.parameters(), 1e-4)
        f = torch.compile(net) if mode == "compile" else net

        def step(f: Any = f, opt: Any = opt) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                o = f(x)
            loss = ((o.float() - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        t = time.perf_counter()
        step()
        first = time.perf_counter() - t
        out[f"train_{mode}"] = {"first_s": first, "step_s": _best(step, 4)}
        inet = _network(args["preset"], args.get("z_levels")).eval().fused()
        g = torch.compile(inet) if mode == "compile" else inet
        xi = torch.randn(1, 1, *args["infer_shape"])

        def infer(g: Any = g, xi: torch.Tensor = xi) -> None:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                g(xi)

        t = time.perf_counter()
        infer()
        first = time.perf_counter() - t
        out[f"inference_{mode}"] = {"first_s": first, "pass_s": _best(infer, 3)}
    return out


def integrated(args: dict[str, Any]) -> dict[str, Any]:
    """Integrated cell: training cells/s (reference, conditional; bf16, batch 4, 64×96×96) and sampling cells/s."""
    from subcell.integrated.model import IntegratedModel
    from subcell.integrated.network import VAEConfig

    _tune()
    box = (64, 96, 96)
    batch = 4
    cfg = VAEConfig(latent_dim=32, depth=4, base_channels=16)
    torch.manual_seed(0)
    m = IntegratedModel.create(reference_channels=["cell_mask", "nucleus_mask"], structures=[f"s{i}" for i in range(12)],
                               box=box, voxel_um=0.3, reference_config=cfg, conditional_config=cfg)  # fmt: skip
    opt = torch.optim.Adam(m.net.parameters(), 1e-4)
    ref = (torch.rand(batch, 2, *box) > 0.5).float()
    x = torch.rand(batch, 1, *box)
    sid = torch.zeros(batch, dtype=torch.long)
    out: dict[str, Any] = {}
    for kind in ("reference", "conditional"):

        def step(kind: str = kind) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16(args)):
                if kind == "reference":
                    _, ll, kl = m.reference_terms(ref)
                else:
                    _, ll, kl = m.conditional_terms(x, ref, sid)
            loss = (-ll + kl.sum(1)).mean() / 1e6
            opt.zero_grad()
            loss.backward()
            opt.step()

        out[f"train_{kind}_cells_per_s"] = batch / _best(step, 3)
    m.net.eval()
    z = torch.randn(8, cfg.latent_dim)

    def sample() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16(args)):
            r = m.net.reference.decode(z)
            m.net.conditional.decode(z, torch.sigmoid(r.float()), torch.zeros(8, dtype=torch.long))

    out["sample_cells_per_s"] = 8 / _best(sample, 3)
    out["peak_rss_mb"] = _rss_mb()
    return out


if __name__ == "__main__":
    task, raw = sys.argv[1], sys.argv[2]
    result = globals()[task](json.loads(raw))
    print(json.dumps(result))
