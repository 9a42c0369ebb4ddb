"""Label-free inference and data-loading benchmarks (ratios against baselines measured in the same run).

    python benchmarks/labelfree/bench_inference.py all --model MODEL_FOLDER --field FIELD.ome.zarr

Sections (each prints a Markdown table; ``all`` runs them in order and writes ``results_inference.md``):

- ``flops``: effective GFLOP/s of fnet-preset inference (convolution FLOPs counted by hooks) vs this machine's
  sgemm GFLOP/s (torch.mm 4096², fp32), fp32 and bf16.
- ``precision``: bf16 vs fp32 inference of a trained model on a held-out field: speed ratio and Pearson r change.
- ``rss``: peak RSS of ``predict_to_zarr`` on a 100×2048×2048 OME-Zarr (child process), next to a naive
  whole-volume prediction and naive non-overlapping tiling of a smaller volume (time, RSS, seam strength).
- ``loader``: patches/s of the training sampler vs patches/s the default model consumes in training.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _flops import conv_flops

HERE = Path(__file__).parent


def sgemm_gflops(n: int = 4096, reps: int = 6) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def timed_forward(net: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None, reps: int = 3) -> float:
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        net(x)
        t = time.perf_counter()
        for _ in range(reps):
            net(x)
    return (time.perf_counter() - t) / reps


def section_flops() -> str:
    from subcell.labelfree import build_network, preset

    net = build_network(preset("fnet"), in_channels=1, out_channels=1).eval()
    x = torch.randn(1, 1, 32, 128, 128)
    flops = conv_flops(net, x)
    peak = sgemm_gflops()
    t32 = timed_forward(net, x, None)
    t16 = timed_forward(net, x, torch.bfloat16)
    lines = [
        "| measure | value |", "|---|---|",
        f"| sgemm fp32 (torch.mm 4096²) | {peak:.0f} GFLOP/s |",
        f"| fnet forward, 1×32×128×128 tile | {flops / 1e9:.1f} GFLOP ({flops / x.numel() / 1e3:.0f} kFLOP/voxel) |",
        f"| fnet fp32 | {t32:.2f} s → {flops / t32 / 1e9:.0f} GFLOP/s = **{flops / t32 / 1e9 / peak:.0%} of sgemm** |",
        f"| fnet bf16 autocast | {t16:.2f} s → {flops / t16 / 1e9:.0f} GFLOP/s ({t32 / t16:.2f}× fp32) |",
    ]  # fmt: skip
    return "\n".join(lines)


def section_precision(model_dir: Path, field: Path) -> str:
    from subcell import io
    from subcell.labelfree import LabelFreeModel, PredictConfig, evaluate_prediction, predict_image

    model = LabelFreeModel.load(model_dir)
    image = io.read(field)
    bf = image.channel("brightfield").compute()
    res = {}
    for prec in ("fp32", "bf16"):
        t = time.perf_counter()
        pred = predict_image(model, bf, PredictConfig(precision=prec, memory_limit_gb=2))
        dt = time.perf_counter() - t
        rows = evaluate_prediction(pred, image)
        res[prec] = (dt, {r["structure"]: r["pearson_r"] for r in rows})
    lines = [
        f"model `{model_dir.name}` ({model.network_config.preset}), field `{field.name}`",
        "", "| structure | r fp32 | r bf16 | change |", "|---|---|---|---|",
    ]  # fmt: skip
    worst = 0.0
    for s, r32 in res["fp32"][1].items():
        r16 = res["bf16"][1][s]
        worst = max(worst, abs(r16 - r32))
        lines.append(f"| {s} | {r32:.4f} | {r16:.4f} | {r16 - r32:+.4f} |")
    lines.append("")
    lines.append(
        f"whole-field prediction: fp32 {res['fp32'][0]:.2f} s, bf16 {res['bf16'][0]:.2f} s → "
        f"**bf16 {res['fp32'][0] / res['bf16'][0]:.2f}× faster**, largest |Δr| {worst:.4f}"
    )
    return "\n".join(lines)


def _child(code: str) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter; it prints a JSON dict; peak RSS of the child is added."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# VmHWM (peak RSS of this process image): ru_maxrss would report the parent's peak, Linux keeps it across exec
_RSS = "import re; rss = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024"


def make_volume(path: Path, shape: tuple[int, int, int], voxel: tuple[float, float, float]) -> None:
    """A bright-field-like uint16 OME-Zarr written slab by slab (never whole in memory)."""
    from scipy import ndimage

    from subcell.io import OmeZarrWriter

    if path.exists():
        return
    rng = np.random.default_rng(0)
    with OmeZarrWriter(
        path, shape=(1, 1, *shape), dtype="uint16", voxel_size=voxel, channel_names=["brightfield"]
    ) as w:
        for z0 in range(0, shape[0], 16):
            n = min(16, shape[0] - z0)
            slab = ndimage.gaussian_filter(rng.normal(size=(n, *shape[1:])).astype(np.float32), (0, 2, 2))
            w.write_region((slice(0, 1), slice(0, 1), slice(z0, z0 + n), slice(None), slice(None)),
                           (slab * 3000 + 20000).astype(np.uint16)[None, None])  # fmt: skip


def section_rss(work: Path, big: tuple[int, int, int], small: tuple[int, int, int]) -> str:
    """Memory and time do not depend on the weights: a one-target default-preset model with random weights."""
    from subcell.image import VoxelSize
    from subcell.labelfree import LabelFreeModel, preset

    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "model_resunet_1target"
    torch.manual_seed(0)
    LabelFreeModel.create(preset("resunet", z_levels=3), input_channel="brightfield", targets=["dna"],
                          voxel_size=VoxelSize(0.29, 0.29, 0.29)).save(model_dir, overwrite=True)  # fmt: skip
    vs = (0.29, 0.29, 0.29)
    big_path, small_path = (
        work / f"bf_{'x'.join(map(str, big))}.ome.zarr",
        work / f"bf_{'x'.join(map(str, small))}.ome.zarr",
    )
    make_volume(big_path, big, vs)
    make_volume(small_path, small, vs)
    ours = """
import json, time, sys
{rss}
from subcell import io
from subcell.labelfree import LabelFreeModel, PredictConfig, predict_to_zarr
m = LabelFreeModel.load("{model}")
t = time.perf_counter()
predict_to_zarr(m, io.read("{src}"), "{out}", PredictConfig(memory_limit_gb={mem}), overwrite=True)
print(json.dumps({{"seconds": time.perf_counter() - t, "rss_mb": rss()}}))
"""
    naive_whole = """
import json, time, numpy as np, torch
{rss}
from subcell import io
from subcell.labelfree import LabelFreeModel
from subcell.labelfree.data import normalize_input
m = LabelFreeModel.load("{model}")
x = normalize_input(io.read("{src}").numpy()[0])
t = time.perf_counter()
with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
    y = m.network(torch.from_numpy(x)[None]).float().numpy()
np.save("{out}", y[0, 0])
print(json.dumps({{"seconds": time.perf_counter() - t, "rss_mb": rss()}}))
"""
    naive_tiles = """
import json, time, numpy as np, torch
{rss}
from subcell import io
from subcell.labelfree import LabelFreeModel
from subcell.labelfree.data import normalize_input
m = LabelFreeModel.load("{model}")
x = normalize_input(io.read("{src}").numpy()[0])
tz, ty, tx = 32, 128, 128
y = np.zeros(x.shape[1:], np.float32)
t = time.perf_counter()
with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
    for z in range(0, x.shape[1], tz):
        for yy in range(0, x.shape[2], ty):
            for xx in range(0, x.shape[3], tx):
                tile = x[:, z:z + tz, yy:yy + ty, xx:xx + tx]
                y[z:z + tz, yy:yy + ty, xx:xx + tx] = m.network(torch.from_numpy(np.ascontiguousarray(tile))[None]).float().numpy()[0, 0]
np.save("{out}", y)
print(json.dumps({{"seconds": time.perf_counter() - t, "rss_mb": rss()}}))
"""
    fmt = {"rss": _RSS, "model": model_dir}
    rows = []
    r_big = _child(ours.format(**fmt, src=big_path, out=work / "pred_big.ome.zarr", mem=2.0))
    rows.append((f"subcell tiled + streamed, {big}", r_big))
    r_small = _child(ours.format(**fmt, src=small_path, out=work / "pred_small.ome.zarr", mem=2.0))
    rows.append((f"subcell tiled + streamed, {small}", r_small))
    r_whole = _child(naive_whole.format(**fmt, src=small_path, out=work / "whole.npy"))
    rows.append((f"naive whole volume, {small}", r_whole))
    r_tiles = _child(naive_tiles.format(**fmt, src=small_path, out=work / "naive_tiles.npy"))
    rows.append((f"naive non-overlapping 32×128×128 tiles, {small}", r_tiles))

    from subcell import io

    whole = np.load(work / "whole.npy")
    naive = np.load(work / "naive_tiles.npy")
    ours_small = io.read(work / "pred_small.ome.zarr").numpy()[0, 0]

    def seam(v: np.ndarray) -> float:
        """Mean |x-gradient| across the x-tile borders of naive tiling, relative to the gradient elsewhere."""
        g = np.abs(np.diff(v, axis=2))
        borders = [b - 1 for b in range(128, v.shape[2], 128)]
        mask = np.zeros(g.shape[2], bool)
        mask[borders] = True
        return float(g[:, :, mask].mean() / g[:, :, ~mask].mean())

    lines = [
        "| method | seconds | peak RSS (MB) | max |Δ| vs whole volume | seam ratio (1 = no seam) |",
        "|---|---|---|---|---|",
    ]
    lines.append(f"| {rows[0][0]} | {r_big['seconds']:.0f} | {r_big['rss_mb']:.0f} | – | – |")
    for name, r, v in ((rows[1][0], r_small, ours_small), (rows[2][0], r_whole, whole), (rows[3][0], r_tiles, naive)):
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {r['rss_mb']:.0f} | {np.abs(v - whole).max():.3f} | {seam(v):.2f} |"
        )
    return "\n".join(lines)


def section_loader(model_dir: Path) -> str:
    from subcell.io import read_manifest
    from subcell.labelfree import LabelFreeModel
    from subcell.labelfree.config import TrainConfig
    from subcell.labelfree.data import PatchSampler, load_volumes

    model = LabelFreeModel.load(model_dir)
    cfg = TrainConfig.model_validate(model.config)
    rows = read_manifest(cfg.manifest).split("train")
    t = time.perf_counter()
    vols, *_ = load_volumes(rows, input_channel=model.input_channel, targets=model.targets, voxel_size=model.voxel_size)
    load_s = time.perf_counter() - t
    sampler = PatchSampler(vols, cfg.patch_size, foreground_fraction=cfg.foreground_fraction, augment=cfg.augment)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    n = 0
    while time.perf_counter() - t < 5:
        sampler.batch(rng, cfg.batch_size)
        n += cfg.batch_size
    loader = n / (time.perf_counter() - t)
    net = model.network.train()
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    x, y, _ = (torch.from_numpy(a) for a in sampler.batch(rng, cfg.batch_size))
    times = []
    for _ in range(4):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
        loss = ((out.float() - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    model_rate = cfg.batch_size / min(times[1:])
    return "\n".join([
        "| measure | patches/s |", "|---|---|",
        f"| sampler ({len(vols)} cached images, patch {tuple(cfg.patch_size)}, augmentation on) | {loader:.0f} |",
        f"| model training step (bf16 autocast, batch {cfg.batch_size}) | {model_rate:.1f} |",
        f"| ratio loader / model | **{loader / model_rate:.0f}×** (the model, not I/O, is the bottleneck) |",
        f"| one-off cache fill: {len(vols)} fields read + resampled + normalised | {load_s:.1f} s |",
    ])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("section", choices=["flops", "precision", "rss", "loader", "all"])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--field", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_labelfree_rss"))
    ap.add_argument("--big", nargs=3, type=int, default=(100, 2048, 2048))
    ap.add_argument("--small", nargs=3, type=int, default=(32, 512, 512))
    args = ap.parse_args()
    parts = []
    header = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    if args.section in ("flops", "all"):
        parts.append("## Inference efficiency (fnet preset)\n\n" + section_flops())
        print(parts[-1], flush=True)
    if args.section in ("precision", "all"):
        parts.append("## bf16 vs fp32\n\n" + section_precision(args.model, args.field))
        print(parts[-1], flush=True)
    if args.section in ("loader", "all"):
        parts.append("## Data loader vs model\n\n" + section_loader(args.model))
        print(parts[-1], flush=True)
    if args.section == "rss":  # alone: keep the earlier sections' results in the report
        text = (HERE / "results_inference.md").read_text()
        text = text.split("## Memory: streamed tiling")[0].rstrip() + "\n\n"
        part = "## Memory: streamed tiling vs naive baselines\n\n" + section_rss(
            args.work, tuple(args.big), tuple(args.small)
        )
        print(part)
        (HERE / "results_inference.md").write_text(text + part + "\n")
    if args.section == "all":
        parts.append(
            "## Memory: streamed tiling vs naive baselines\n\n"
            + section_rss(args.work, tuple(args.big), tuple(args.small))
        )
        print(parts[-1], flush=True)
    if args.section == "all":
        (HERE / "results_inference.md").write_text(
            f"# Label-free inference benchmarks\n\n{header}\n\n" + "\n\n".join(parts) + "\n"
        )
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
