"""The gap between synthetic and real bright-field, measured (issue 16 §0).

    SUBCELL_TEST_DATA=../shared/data python benchmarks/synth/domain_gap.py --tag after [--randomized [--draws N]]

For each of the three Allen stacks, a synthetic stack is generated at the same shape and voxel size (default
generator, or with ``--randomized`` one draw of the pretraining domain randomization per stack) and compared:

(a) a domain classifier (random forest on texture features of 10 µm patches inside cells, on the planes through
    the middle of the labelled nuclei, see
    ``subcell.synth.realism``), leave-one-pair-out: its held-out accuracy is the gap (0.5 = indistinguishable);
(b) texture statistics inside nuclei and in the cytoplasm (local contrast in a 1 µm window, relative to the
    stack's std) and the radially averaged power spectrum slope, real next to synthetic.

``--stream RECIPE`` measures what a pretraining recipe's stream feeds the network instead: every randomized factor
drawn (voxel size and camera response included), resampled to the model's voxel size, against the real stacks
resampled to that voxel size as prediction does.

Results go to ``benchmarks/synth/results/domain_gap_<tag>.json``; ``--table`` prints the before/after table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def _allen() -> dict[str, tuple]:
    sys.path.insert(0, str(HERE.parent / "labelfree"))
    from real_data import ALLEN

    return ALLEN


def _as_stored(syn: np.ndarray, field: object, acq: tuple, vs: tuple, shape: tuple) -> tuple:
    """Downsample (anti-aliased, linear) from the acquisition to the stored voxel size and export as 8 bits."""
    from types import SimpleNamespace

    from subcell.image import VoxelSize
    from subcell.transforms.resample import resample, resample_linear

    a, v = VoxelSize(*acq), VoxelSize(*vs)

    def fit(x: np.ndarray) -> np.ndarray:
        out = np.zeros(shape, x.dtype)
        sl = tuple(slice(0, min(p, q)) for p, q in zip(x.shape, shape, strict=True))
        out[sl] = x[sl]
        return out

    small = fit(resample_linear(syn[None].astype(np.float32), voxel_size=a, target_voxel_size=v)[0])
    lo, hi = np.percentile(small, [0.5, 99.5])
    small = np.round(np.clip((small - lo) / (hi - lo), 0, 1) * 255)
    labels = {k: fit(resample(field.labels[k][0], voxel_size=a, target_voxel_size=v, labels=True))[None]  # type: ignore[attr-defined]
              for k in ("nucleus", "cell")}  # fmt: skip
    return small, SimpleNamespace(labels=labels)


def _imaging(cfg: object) -> dict[str, float]:
    """The randomized draw's parameters that shape a bright-field stack's texture and noise."""
    bf, ri = cfg.brightfield, cfg.refractive_index  # type: ignore[attr-defined]
    return {
        "photons": bf.photons, "read_noise": bf.read_noise, "haze": bf.haze, "objective_na": bf.objective_na,
        "condenser_na": bf.condenser_na, "focus_offset_um": bf.focus_offset_um, "wavelength_um": bf.wavelength_um,
        "cytoplasm_texture": ri.cytoplasm_texture, "smoothing_um": ri.smoothing_um,
    }  # fmt: skip


def _stream_draws(recipe: Path, n: int, k: int, real: np.ndarray, nuc: np.ndarray, cel: np.ndarray, vs: tuple) -> tuple:
    """``n`` fields of a pretraining recipe's stream as the network sees them, and the real stack at its voxel size.

    Synthetic: :func:`subcell.labelfree.pretrain.synthetic_volume` (input channel; nucleus and cell masks from its
    targets and foreground), keys outside the training stream's. Real: linear resampling with anti-aliasing to
    the model's voxel size (what prediction does), labels by nearest neighbour.
    """
    import yaml

    from subcell.labelfree.config import PretrainConfig
    from subcell.labelfree.pretrain import draw_field, synthetic_volume
    from subcell.transforms.resample import resample, resample_linear

    raw = yaml.safe_load(recipe.read_text())
    cfg = PretrainConfig.model_validate({**raw, "output": "/nonexistent", "targets": ["nucleus"]})
    mvs = tuple(cfg.voxel_size)
    r = resample_linear(real[None].astype(np.float32), voxel_size=vs, target_voxel_size=mvs)[0]
    n_r = resample(nuc, voxel_size=vs, target_voxel_size=mvs, labels=True)
    c_r = resample(cel, voxel_size=vs, target_voxel_size=mvs, labels=True)
    draws, params = [], []
    for j in range(n):
        v = synthetic_volume(cfg, (90_000 + k, j))
        scfg = draw_field(cfg, (90_000 + k, j))[0]  # the draw synthetic_volume made, for its parameters
        params.append({**_imaging(scfg), "voxel_z_um": scfg.voxel_size[0], "voxel_xy_um": scfg.voxel_size[1]})
        x = v.input[0]
        cell = np.zeros(x.size, bool)
        cell[v.foreground] = True
        draws.append((x, (v.target[0] > 0).astype(np.uint8), cell.reshape(x.shape).astype(np.uint8)))
    return draws, params, r, n_r, c_r, mvs


def region_stats(stack: np.ndarray, nucleus: np.ndarray, cell: np.ndarray, spacing: tuple[float, ...]) -> dict:
    """Local contrast (std in a ~1 µm window / stack std) inside nuclei and in the cytoplasm, mid-nucleus plane ±1."""
    from scipy import ndimage as ndi

    s = (stack.astype(np.float32) - stack.mean()) / max(float(stack.std()), 1e-6)
    z0 = _mid_z(nucleus)
    w = max(3, round(1.0 / spacing[1]) | 1)
    out: dict[str, list[float]] = {"nucleus": [], "cytoplasm": []}
    for z in range(max(0, z0 - 1), min(len(s), z0 + 2)):
        p = s[z]
        lstd = np.sqrt(np.maximum(ndi.uniform_filter(p**2, w) - ndi.uniform_filter(p, w) ** 2, 0))
        nuc = nucleus[z] > 0
        cyto = (cell[z] > 0) & ~nuc
        if nuc.sum() > 50:
            out["nucleus"].append(float(lstd[nuc].mean()))
        if cyto.sum() > 50:
            out["cytoplasm"].append(float(lstd[cyto].mean()))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in out.items()} | _fine_detail(stack, z0, cell)


def _fine_detail(stack: np.ndarray, z0: int, cell: np.ndarray) -> dict[str, float]:
    """Pixel-scale detail inside the cells on the mid-nucleus plane: its size (std of the plane minus its 3×3 mean,
    over the plane's std in the cells) and how it persists through focus (correlation of that residual with the
    next plane's, and the one after): independent noise gives ~0, detail the optics keep in focus over several
    planes gives ~1."""
    from scipy import ndimage as ndi

    m = cell[z0] > 0
    if m.sum() < 50 or z0 + 2 >= len(stack):
        return {}
    fine = [(p - ndi.uniform_filter(p, 3))[m] for p in (stack[z].astype(np.float32) for z in (z0, z0 + 1, z0 + 2))]
    return {
        "fine_std": float(fine[0].std() / max(float(stack[z0][m].astype(np.float32).std()), 1e-6)),
        "fine_z_corr_1": float(np.corrcoef(fine[0], fine[1])[0, 1]),
        "fine_z_corr_2": float(np.corrcoef(fine[0], fine[2])[0, 1]),
    }


def _feature_means(features: np.ndarray) -> dict[str, float]:
    from subcell.synth.realism import FEATURE_NAMES

    return (
        {n: round(float(v), 4) for n, v in zip(FEATURE_NAMES, features.mean(axis=0), strict=True)}
        if len(features)
        else {}
    )


def _mid_z(labels: np.ndarray) -> int:
    zs = np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1))
    return int(zs.mean())


def raps_slope(stack: np.ndarray, spacing: float) -> float:
    from compare_brightfield import raps

    from subcell.synth.realism import sharpest_plane

    z = sharpest_plane(stack)
    f, pw = raps(stack[z].astype(np.float64), spacing)
    band = (f > 0.1) & (f < 1.0)
    return float(np.polyfit(np.log(f[band]), np.log(pw[band]), 1)[0])


def main() -> None:
    sys.path.insert(0, str(HERE))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=os.environ.get("SUBCELL_TEST_DATA"))
    parser.add_argument("--tag", default="current")
    parser.add_argument("--randomized", action="store_true", help="synthetic stacks from the pretraining randomizer")
    parser.add_argument(
        "--draws",
        type=int,
        default=1,
        help="with --randomized: randomizer draws per real stack, their patches pooled (draw 0 is the one used "
        "before this option existed); one draw makes a fold's accuracy the property of a single random microscope",
    )
    parser.add_argument(
        "--processed",
        action="store_true",
        help="synthetic stacks go through the real files' processing: acquired at 0.108 µm, downsampled, 8-bit",
    )
    parser.add_argument(
        "--stream",
        type=Path,
        default=None,
        help="a pretraining recipe (YAML): synthetic stacks are what its stream feeds the network (every factor "
        "drawn, voxel size included, camera response applied, resampled to the model's voxel size), and the real "
        "stacks are resampled to that voxel size too, as prediction does; --draws fields per real stack",
    )
    parser.add_argument("--table", action="store_true", help="print the table of every stored result and exit")
    args = parser.parse_args()
    results_dir = HERE / "results"
    if args.table:
        for p in sorted(results_dir.glob("domain_gap_*.json")):
            r = json.loads(p.read_text())
            print(f"| {r['tag']} | {r['accuracy']:.3f} | {' / '.join(f'{a:.2f}' for a in r['per_fold'])} |")
        return
    if args.data is None:
        raise SystemExit("pass --data ../shared/data (or set SUBCELL_TEST_DATA)")
    from subcell import io
    from subcell.synth import synth_field
    from subcell.synth.realism import domain_gap, patch_features

    real_f, syn_f, stats = [], [], {}
    for k, (key, (folder, bf, dna, cell, vs)) in enumerate(_allen().items()):
        d = Path(args.data) / folder
        real = io.read(d / bf, voxel_size=vs).numpy(squeeze=True)
        nuc = io.read(d / dna, voxel_size=vs).numpy(squeeze=True)
        cel = io.read(d / cell, voxel_size=vs).numpy(squeeze=True)
        extra_fields = []
        params: list[dict[str, float]] = []  # each randomized draw's imaging parameters, beside its statistics
        if args.stream is not None:
            draws, params, real, nuc, cel, vs = _stream_draws(args.stream, args.draws, k, real, nuc, cel, vs)
            syn, syn_nuc, syn_cell = draws[0]
        elif args.randomized:
            from subcell.synth.randomize import randomized_config

            cfg = randomized_config(np.random.default_rng([7, k]), shape=real.shape, voxel_size=vs, seed=1000 + k)
            field = synth_field(cfg)
            params.append(_imaging(cfg))
            for j in range(1, args.draws):
                cfg_j = randomized_config(np.random.default_rng([7, k, j]), shape=real.shape, voxel_size=vs,
                                          seed=1000 + k + 100 * j)  # fmt: skip
                extra_fields.append(synth_field(cfg_j))
                params.append(_imaging(cfg_j))
        elif args.processed:
            acq = (vs[0], min(vs[1], 0.108), min(vs[2], 0.108))
            shape = tuple(round(n * v / a) for n, v, a in zip(real.shape, vs, acq, strict=True))
            field = synth_field(shape=shape, voxel_size=acq, seed=k)
        else:
            field = synth_field(shape=real.shape, voxel_size=vs, seed=k)
        if args.stream is None:
            syn = field.image.channel("brightfield").numpy(squeeze=True)
            if args.processed:
                syn, field = _as_stored(syn, field, acq, vs, real.shape)
            syn_nuc, syn_cell = field.labels["nucleus"][0], field.labels["cell"][0]
        rng = np.random.default_rng(k)
        # matched focus and content: planes through the middle of the labelled nuclei, patches inside cells
        real_f.append(patch_features(real, vs, rng=rng, centre_z=_mid_z(nuc), mask=cel))
        # further randomizer draws (--draws) add their patches to this stack's synthetic pool, in draw order
        if args.stream is None:
            draws = [(syn, syn_nuc, syn_cell)] + [
                (f.image.channel("brightfield").numpy(squeeze=True), f.labels["nucleus"][0], f.labels["cell"][0])
                for f in extra_fields
            ]
        per_draw = [patch_features(s, vs, rng=rng, centre_z=_mid_z(n), mask=c) for s, n, c in draws]
        syn_f.append(np.concatenate(per_draw))
        stats[key] = {
            "real": {**region_stats(real, nuc, cel, vs), "raps_slope": raps_slope(real, float(np.sqrt(vs[1] * vs[2])))},
            "synthetic": {
                **region_stats(syn, syn_nuc, syn_cell, vs),  # draw 0
                "raps_slope": raps_slope(syn, float(np.sqrt(vs[1] * vs[2]))),
            },
            # every draw's statistics (--draws): which of the randomizer's microscopes are unlike the real one
            "synthetic_per_draw": [
                {**region_stats(s, n, c, vs), "raps_slope": raps_slope(s, float(np.sqrt(vs[1] * vs[2])))}
                for s, n, c in draws
            ],
            "parameters_per_draw": params,
            # mean texture features (realism.FEATURE_NAMES) of the real patches and of each draw's
            "features_real": _feature_means(real_f[-1]),
            "features_per_draw": [_feature_means(f) for f in per_draw],
        }
        print(key, len(real_f[-1]), "real patches,", len(syn_f[-1]), "synthetic;", stats[key])
    gap = domain_gap(real_f, syn_f)
    result = {
        "tag": args.tag,
        "randomized": args.randomized,
        "stream": str(args.stream) if args.stream else None,
        "draws": args.draws if args.randomized or args.stream else 0,
        "accuracy": gap.accuracy,
        "per_fold": gap.per_fold,
        "top_features": dict(list(gap.importances.items())[:6]),
        "stats": stats,
    }
    results_dir.mkdir(exist_ok=True)
    (results_dir / f"domain_gap_{args.tag}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
