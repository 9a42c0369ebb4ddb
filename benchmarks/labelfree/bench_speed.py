"""Deep-learning speed of label-free prediction and the integrated cell, before and after, in one run.

    python benchmarks/labelfree/bench_speed.py [--before REV] [--work DIR] [--big]

"Before" is an older commit of this repository checked out as a git worktree and put first on ``PYTHONPATH``;
"after" is the current source. Every measurement runs in its own fresh interpreter (``_speed_child.py``), one
at a time, arms alternating; the GEMM roofs are measured at the start and at the end of the same run and every
speed is reported as a ratio against them. Results: ``results/speed.json`` and ``results_speed.md``.

Sections: GEMM roofs; network forward passes (fnet and the default preset, bf16 and fp32, GFLOP/s); training
steps of the default preset at batch 8 × 32×64×64 (steps/s, voxels/s, phases: data / forward / backward /
optimizer); per-operator profiles; ``predict_to_zarr`` end to end on a 64×512×512 OME-Zarr (useful GFLOP/s =
output voxels × FLOPs per voxel); streamed tiled vs one whole-volume pass on 32×512×512; accuracy of the
shipped DNA model on a held-out synthetic field (|Δr|); the integrated cell's cells/s; with ``--big`` the
100×2048×2048 prediction (wall time, peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from subcell.train.precision import cpu_has_bf16

HERE = Path(__file__).parent
REPO = HERE.parent.parent
CHILD = HERE / "_speed_child.py"


def child(task: str, args: dict[str, Any], src: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(
        [sys.executable, str(CHILD), task, json.dumps(args)], capture_output=True, text=True, env=env, cwd=HERE
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{task} ({src}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cli(src: Path, args: list[str]) -> dict[str, float]:
    """``subcell ARGS`` in a fresh interpreter with ``src`` first on ``PYTHONPATH``: its return code, wall time and
    peak resident memory (``VmHWM``) — one arm of a before/after memory benchmark."""
    rss = (
        "import re; rss = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024"
    )
    code = (
        f"{rss}\nimport json, time\nfrom subcell.cli.main import run\nt = time.perf_counter()\nrc = run({args!r})\n"
        "print(json.dumps({'rc': rc, 'seconds': time.perf_counter() - t, 'peak_rss_mb': rss()}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(src)})  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worktree(rev: str, work: Path) -> Path:
    path = work / f"before-{rev}"
    if not path.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), rev], check=True,
                       capture_output=True)  # fmt: skip
    return path / "src"


def make_models(work: Path, src: Path, arm: str) -> dict[str, Path]:
    """One-target models saved once per arm by that arm's code (each arm runs its own code; older code cannot
    read newer model files). The default network carries the shipped 3D model's trained DNA weights: how far
    tile edges reach into the output depends on the weights (a few voxels at initialisation, ~44 trained), and
    with it the trim and the tiles a correct tiled prediction needs. fnet has fixed random weights."""
    shipped = REPO / "src/subcell/labelfree/pretrained/hipsc_bf_3d"
    code = f"""
import torch
from subcell.image import VoxelSize
from subcell.labelfree import LabelFreeModel, preset
torch.manual_seed(0)
m = LabelFreeModel.create(preset("fnet"), input_channel="brightfield", targets=["dna"],
                          voxel_size=VoxelSize(0.29, 0.29, 0.29))
m.save("{work}/model_{arm}_fnet", overwrite=True)
m = LabelFreeModel.load("{shipped}").select(["dna"])
m.save("{work}/model_{arm}_resunet", overwrite=True)
"""
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(src)})
    return {name: work / f"model_{arm}_{name}" for name in ("fnet", "resunet")}


def flops_per_voxel(
    preset_name: str, src: Path, network: dict[str, Any] | None = None, z_levels: int | None = 3
) -> float:
    r = child("forward", {"preset": preset_name, "z_levels": z_levels if preset_name == "resunet" else None,
                          "network": network, "shape": [32, 64, 64], "precision": "fp32", "reps": 1,
                          "out": "/dev/null.npy"}, src)  # fmt: skip
    return r["gflop"] * 1e9 / (32 * 64 * 64)


def accuracy(work: Path, arms: dict[str, Path], precisions: tuple[str, ...]) -> dict[str, Any]:
    """Pearson r of the shipped DNA model on a held-out synthetic field (seed 4242), before and after.

    Both arms load the weights this checkout ships (the before arm's own shipped model may be an older one: the
    3D models were retrained since fae200b), so the difference is the code's numerics, not the weights."""
    weights = REPO / "src/subcell/labelfree/pretrained/hipsc_bf_3d"
    field = work / "heldout.ome.zarr"
    if not field.exists():
        subprocess.run([sys.executable, "-m", "subcell", "synth", str(field), "--shape", "48", "256", "256",
                        "--voxel-size", "0.29", "0.29", "0.29", "--n-cells", "10", "--seed", "4242"],
                       check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(arms["after"])})  # fmt: skip
    code = f"""
import json
from subcell import io
from subcell.labelfree import LabelFreeModel, PredictConfig, evaluate_prediction, predict_image
image = io.read("{field}")
out = {{}}
for prec in {list(precisions)!r}:
    model = LabelFreeModel.load("{weights}").select(["dna"])
    pred = predict_image(model, image.channel("brightfield").compute(), PredictConfig(precision=prec))
    out[prec] = [r["pearson_r"] for r in evaluate_prediction(pred, image) if r["structure"] == "dna"][0]
print(json.dumps(out))
"""
    res = {}
    for arm, src in arms.items():
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(src)})  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        res[arm] = json.loads(proc.stdout.strip().splitlines()[-1])
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="fae200b", help="commit of the 'before' arm")
    ap.add_argument("--work", type=Path, default=Path("/tmp/subcell_speed"))
    ap.add_argument(
        "--big",
        action="store_true",
        help="also the 100×2048×2048 prediction, after (~15 min with the shipped weights on an AVX-512 bf16 CPU)",
    )
    ap.add_argument("--big-before", action="store_true", help="and before (~20 min)")
    ap.add_argument("--sections", default="all")
    ap.add_argument("--report", action="store_true", help="only render results_speed.md from results/speed.json")
    ap.add_argument("--tag", default="", help="write results/speed_TAG.json and results_speed_TAG.md (a separate run)")
    ap.add_argument(
        "--train-precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="training steps in bf16 autocast or fp32 (auto: bf16 where the CPU has it natively)",
    )
    args = ap.parse_args()
    suffix = f"_{args.tag}" if args.tag else ""
    out_json = HERE / "results" / f"speed{suffix}.json"
    out_md = HERE / f"results_speed{suffix}.md"
    if args.report:
        out_md.write_text(report(json.loads(out_json.read_text())))
        return
    bf16 = cpu_has_bf16()  # the library's own test, what precision auto follows
    # where bf16 is emulated (minutes per product) every bf16 row runs in fp32 instead, and says so
    low = "bf16" if bf16 else "fp32"
    args.work.mkdir(parents=True, exist_ok=True)
    sections = set(args.sections.split(",")) if args.sections != "all" else {
        "forward", "train", "profile", "predict", "whole", "accuracy", "compile", "integrated"}  # fmt: skip
    arms = {"before": worktree(args.before, args.work), "after": REPO / "src"}
    res: dict[str, Any] = json.loads(out_json.read_text()) if out_json.exists() and args.sections != "all" else {}
    res["before_rev"] = args.before
    res["command"] = " ".join(sys.argv[1:])
    res["after_rev"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                      text=True).stdout.strip()  # fmt: skip
    res["roof_start"] = child("roof", {"bf16": bf16}, arms["after"])
    print("roof", res["roof_start"], flush=True)

    if "forward" in sections:
        res["forward"] = []
        for preset_name, zl, shape in (("fnet", None, [32, 128, 128]), ("resunet", 3, [32, 128, 128])):
            for prec in dict.fromkeys((low, "fp32")):
                row: dict[str, Any] = {"preset": preset_name, "shape": shape, "precision": prec}
                for arm, src in arms.items():
                    row[arm] = child("forward", {"preset": preset_name, "z_levels": zl, "shape": shape,
                                                 "precision": prec, "out": str(args.work / f"fwd_{arm}.npy")}, src)  # fmt: skip
                a, b = np.load(args.work / "fwd_after.npy"), np.load(args.work / "fwd_before.npy")
                row["max_abs_diff"] = float(np.abs(a - b).max())
                row["max_abs"] = float(np.abs(b).max())
                res["forward"].append(row)
                print(row, flush=True)

    if "train" in sections:
        # three arms: the default preset before and after, and the cheaper network with added skips on the new
        # code (24 % fewer FLOPs per voxel; not the default: no better accuracy in equal training time)
        prec = args.train_precision if args.train_precision != "auto" else ("bf16" if bf16 else "fp32")
        res["train"] = []
        for zl in (3, 1):
            row: dict[str, Any] = {"preset": "resunet", "z_levels": zl, "batch": 8, "patch": [32, 64, 64],
                                   "precision": prec}  # fmt: skip
            for arm, src, net in (("before", arms["before"], None), ("after", arms["after"], None),
                                  ("after_add", arms["after"], {"skip": "add"})):  # fmt: skip
                row[arm] = child("train", {"preset": "resunet", "z_levels": zl, "batch": 8, "patch": [32, 64, 64],
                                           "precision": prec, "network": net}, src)  # fmt: skip
                fpv = flops_per_voxel("resunet", src, net, zl)
                # forward + backward (input and weight gradients): three times the forward's FLOPs
                row[arm]["train_gflops"] = 3 * fpv * row[arm]["voxels_per_s"] / 1e9
                row[arm]["flops_per_voxel"] = fpv
            res["train"].append(row)
            print(row, flush=True)

    if "profile" in sections:
        res["profile"] = {arm: child("profile", {"preset": "resunet", "z_levels": 3, "batch": 8, "patch": [32, 64, 64],
                                                 "infer_preset": "fnet", "infer_shape": [32, 128, 128],
                                                 "precision": low}, src)
                          for arm, src in arms.items()}  # fmt: skip
        print("profile done", flush=True)

    if "predict" in sections or "whole" in sections:
        sys.path.insert(0, str(HERE))
        from bench_inference import make_volume

        models = {arm: make_models(args.work, src, arm) for arm, src in arms.items()}
        vol = args.work / "bf_64x512x512.ome.zarr"
        make_volume(vol, (64, 512, 512), (0.29, 0.29, 0.29))
        small = args.work / "bf_32x512x512.ome.zarr"
        make_volume(small, (32, 512, 512), (0.29, 0.29, 0.29))
    if "predict" in sections:
        res["predict"] = []
        for preset_name, prec in dict.fromkeys((("fnet", low), ("fnet", "fp32"), ("resunet", low))):
            row = {"preset": preset_name, "precision": prec, "shape": [64, 512, 512]}
            for arm, src in arms.items():
                fpv = flops_per_voxel(preset_name, src)  # each arm's own default network
                row["flops_per_voxel"] = fpv  # the after arm's, reported
                r = child("predict", {"model": str(models[arm][preset_name]), "input": str(vol), "precision": prec,
                                      "output": str(args.work / f"pred_{arm}.ome.zarr")}, src)  # fmt: skip
                r["useful_gflops"] = 64 * 512 * 512 * fpv / r["seconds"] / 1e9
                r["voxels_per_s"] = 64 * 512 * 512 / r["seconds"]
                row[arm] = r
            res["predict"].append(row)
            print(row, flush=True)

    if "whole" in sections:
        from subcell import io

        row = {"preset": "resunet", "shape": [32, 512, 512], "precision": low}
        for arm, src in arms.items():
            row[arm] = {"whole": child("whole", {"model": str(models[arm]["resunet"]), "input": str(small),
                                                 "precision": low, "out": str(args.work / f"whole_{arm}.npy")}, src)}  # fmt: skip
            whole = np.load(args.work / f"whole_{arm}.npy")
            for gb in (2.0, 4.0):  # 4 GB: enough for the whole volume, which the tiled path may then choose
                r = child("predict", {"model": str(models[arm]["resunet"]), "input": str(small), "precision": low,
                                      "memory_gb": gb, "output": str(args.work / f"tiled_{arm}.ome.zarr")}, src)  # fmt: skip
                tiled = io.read(args.work / f"tiled_{arm}.ome.zarr").numpy()[0]
                r["ratio"] = r["seconds"] / row[arm]["whole"]["seconds"]
                r["max_abs_diff"] = float(np.abs(tiled - whole).max())
                row[arm][f"tiled_{gb:.0f}gb"] = r
        res["whole"] = row
        print(row, flush=True)

    if "accuracy" in sections:
        res["accuracy"] = accuracy(args.work, arms, tuple(dict.fromkeys((low, "fp32"))))
        print(res["accuracy"], flush=True)

    if "compile" in sections:
        res["compile"] = child("compiled", {"preset": "resunet", "z_levels": 3, "batch": 8, "patch": [32, 64, 64],
                                            "infer_shape": [32, 128, 128], "precision": low}, arms["after"])  # fmt: skip
        print(res["compile"], flush=True)

    if "integrated" in sections:
        res["integrated"] = {arm: child("integrated", {"precision": low}, src) for arm, src in arms.items()}
        print(res["integrated"], flush=True)

    if args.big:
        sys.path.insert(0, str(HERE))
        from bench_inference import make_volume

        models = {arm: make_models(args.work, src, arm) for arm, src in arms.items()}
        big = args.work / "bf_100x2048x2048.ome.zarr"
        make_volume(big, (100, 2048, 2048), (0.29, 0.29, 0.29))
        res["big"] = {arm: child("predict", {"model": str(models[arm]["resunet"]), "input": str(big), "precision": "auto",
                                             "output": str(args.work / f"big_{arm}.ome.zarr")}, src)
                      for arm, src in arms.items() if arm == "after" or args.big_before}  # fmt: skip
        print(res["big"], flush=True)

    res["roof_end"] = child("roof", {"bf16": bf16}, arms["after"])
    print("roof", res["roof_end"], flush=True)
    out_json.parent.mkdir(exist_ok=True)
    out_json.write_text(json.dumps(res, indent=1))
    out_md.write_text(report(res))
    print(report(res))


def report(res: dict[str, Any]) -> str:
    r0, r1 = res["roof_start"], res["roof_end"]
    sg = (r0["sgemm"] + r1["sgemm"]) / 2
    has_bf16 = r0.get("bf16_gemm") is not None
    bg = (r0["bf16_gemm"] + r1["bf16_gemm"]) / 2 if has_bf16 else float("nan")
    roof = {"fp32": sg, "bf16": bg}
    bf16_text = (f"bf16 {r0['bf16_gemm']:.0f} / {r1['bf16_gemm']:.0f} GFLOP/s" if has_bf16
                 else "no bf16 roof (this CPU has no native bf16: emulated, not measured)")  # fmt: skip
    lines = [
        "# Deep-learning speed (issue 17): before and after, one run",
        "",
        f"`python benchmarks/labelfree/bench_speed.py {res.get('command', '--before ' + res['before_rev'])}` "
        f"(before = {res['before_rev']}, after = {res['after_rev']});"
        " each number from a fresh interpreter, one at a time, 2 cores.",
        "",
        f"GEMM roofs (torch.mm 4096², start / end of the run): sgemm {r0['sgemm']:.0f} / {r1['sgemm']:.0f} GFLOP/s, "
        f"{bf16_text}; ratios below use the means ({sg:.0f}, {bg:.0f}).",
    ]
    if "forward" in res:
        lines += ["", "## Network forward pass (one tile, as the prediction path runs it)", "",
                  "| network | tile | precision | before GFLOP/s (% roof) | after GFLOP/s (% roof) | speed-up | max abs change / max abs |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in res["forward"]:
            rf = roof[r["precision"]]
            b, a = r["before"]["gflops"], r["after"]["gflops"]
            lines.append(f"| {r['preset']} | {'×'.join(map(str, r['shape']))} | {r['precision']} | {b:.0f} ({b / rf:.0%}) | "
                         f"{a:.0f} ({a / rf:.0%}) | {a / b:.2f}× | {r['max_abs_diff']:.1e} / {r['max_abs']:.2f} |")  # fmt: skip
    if "train" in res:
        prec = res["train"][0].get("precision", "bf16")
        lines += ["", f"## Training steps, default preset (resunet), batch 8 × 32×64×64, {prec}", "",
                  "before / after = the default network on the old / new code; after, add = the same network "
                  "with skips added instead of concatenated (`skip: add`, fewer FLOPs, not the default). Training "
                  "GFLOP/s = 3 × forward FLOPs per voxel × voxels/s.", "",
                  "| z_levels | arm | FLOPs/voxel (fwd) | steps/s | voxels/s | training GFLOP/s (% roof) | data | forward | "
                  "backward | optimizer | peak RSS MB | speed-up vs before |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in res["train"]:
            rf = roof[r.get("precision", "bf16")]
            for arm in ("before", "after", "after_add"):
                if arm not in r:
                    continue
                x = r[arm]
                p = x["phases_s"]
                gf = x.get("train_gflops", float("nan"))
                up = x["steps_per_s"] / r["before"]["steps_per_s"]
                lines.append(f"| {r['z_levels']} | {arm.replace('_', ', ')} | {x.get('flops_per_voxel', float('nan')) / 1e3:.0f} k | "
                             f"{x['steps_per_s']:.3f} | {x['voxels_per_s'] / 1e6:.2f} M | {gf:.0f} ({gf / rf:.0%}) | "
                             f"{p['data']:.3f} s | {p['forward']:.3f} s | {p['backward']:.3f} s | {p['optimizer']:.3f} s | "
                             f"{x['peak_rss_mb']:.0f} | **{up:.2f}×** |")  # fmt: skip
    if "predict" in res:
        lines += ["", "## `predict_to_zarr` end to end, 64×512×512 OME-Zarr (read, normalise, tiles, blend, write)", "",
                  "| network | precision | FLOPs/voxel | before s (network) | after s (network) | speed-up | after useful GFLOP/s (% roof) | before (% roof) | voxels/s before → after | tile after |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in res["predict"]:
            rf = roof[r["precision"]]
            b, a = r["before"], r["after"]
            lines.append(f"| {r['preset']} | {r['precision']} | {r['flops_per_voxel'] / 1e3:.0f} k | {b['seconds']:.1f} "
                         f"({b.get('network_s', float('nan')):.1f}) | {a['seconds']:.1f} ({a.get('network_s', float('nan')):.1f}) | "
                         f"{b['seconds'] / a['seconds']:.2f}× | {a['useful_gflops']:.0f} "
                         f"({a['useful_gflops'] / rf:.0%}) | {b['useful_gflops']:.0f} ({b['useful_gflops'] / rf:.0%}) | "
                         f"{b['voxels_per_s'] / 1e6:.2f} M → {a['voxels_per_s'] / 1e6:.2f} M | {a.get('tile') or '–'} |")  # fmt: skip
    if "whole" in res:
        w = res["whole"]
        lines += ["", "## Streamed tiled (`predict_to_zarr`, from and to OME-Zarr) vs one whole-volume forward pass in memory, "
                  f"resunet, 32×512×512, {w.get('precision', 'bf16')}", "",
                  "| arm | memory limit | tile | tiled s | whole s | tiled / whole | max abs difference | peak RSS tiled / whole MB |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for arm in ("before", "after"):
            x = w[arm]
            for key in sorted(k for k in x if k.startswith("tiled_")):
                t = x[key]
                lines.append(f"| {arm} | {key[6:]} | {t.get('tile') or '–'} | {t['seconds']:.1f} | {x['whole']['seconds']:.1f} | "
                             f"**{t['ratio']:.2f}×** | {t['max_abs_diff']:.1e} | {t['peak_rss_mb']:.0f} / "
                             f"{x['whole']['peak_rss_mb']:.0f} |")  # fmt: skip
    if "accuracy" in res:
        a = res["accuracy"]
        precs = list(a["after"])
        lines += ["", "## Numerics: shipped `dna` model on a held-out synthetic field (seed 4242)", "",
                  "| arm | " + " | ".join(f"r {p}" for p in precs) + " |", "|---" * (len(precs) + 1) + "|"]  # fmt: skip
        for arm in ("before", "after"):
            lines.append(f"| {arm} | " + " | ".join(f"{a[arm][p]:.4f}" for p in precs) + " |")
        lines.append("| |Δr| | " + " | ".join(f"{abs(a['after'][p] - a['before'][p]):.4f}" for p in precs) + " |")
    if "integrated" in res:
        lines += [
            "",
            "## Integrated cell (64×96×96 crops, bf16, batch 4 training, 8 samples)",
            "",
            "| measure | before | after | speed-up |",
            "|---|---|---|---|",
        ]
        for k in ("train_reference_cells_per_s", "train_conditional_cells_per_s", "sample_cells_per_s"):
            b, a = res["integrated"]["before"][k], res["integrated"]["after"][k]
            lines.append(f"| {k.replace('_', ' ')} | {b:.2f} | {a:.2f} | {a / b:.2f}× |")
    if "compile" in res:
        c = res["compile"]
        lines += ["", "## torch.compile (inductor) vs eager, after (resunet; training batch 8 × 32×64×64, inference 1×32×128×128)", "",
                  "| measure | eager | compiled | first call compiled |", "|---|---|---|---|",
                  f"| training step s | {c['train_eager']['step_s']:.3f} | {c['train_compile']['step_s']:.3f} | {c['train_compile']['first_s']:.0f} s |",
                  f"| inference pass s | {c['inference_eager']['pass_s']:.3f} | {c['inference_compile']['pass_s']:.3f} | {c['inference_compile']['first_s']:.0f} s |"]  # fmt: skip
    if "profile" in res:
        for phase in ("train", "inference"):
            lines += [
                "",
                f"## Profile, {phase} ({'resunet, batch 8 × 32×64×64' if phase == 'train' else 'fnet, 1×32×128×128'}, bf16): top operators by self time",
                "",
            ]
            for arm in ("before", "after"):
                p = res["profile"][arm][phase]
                lines += [
                    f"**{arm}** (total {p['total_ms']:.0f} ms)",
                    "",
                    "| operator | input shapes | calls | self ms |",
                    "|---|---|---|---|",
                ]
                for t in p["top"]:
                    lines.append(f"| {t['op']} | `{t['shapes'][:70]}` | {t['calls']} | {t['self_ms']:.0f} |")
                lines.append("")
    if "big" in res:
        lines += ["", "## 100×2048×2048 prediction (`predict_to_zarr`, resunet, precision auto = bf16, 2 GB limit)", "",
                  "| arm | seconds | network s | peak RSS MB | tile |", "|---|---|---|---|---|"]  # fmt: skip
        for arm, b in res["big"].items():
            lines.append(f"| {arm} | {b['seconds']:.0f} | {b.get('network_s', float('nan')):.0f} | "
                         f"{b['peak_rss_mb']:.0f} | {b.get('tile') or '–'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
