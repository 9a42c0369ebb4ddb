"""How close is the synthetic bright-field to real Allen hiPSC transmitted-light stacks?

Compares, on stacks at the same voxel size and shape: the radially averaged power spectrum (slope of log power vs
log frequency over 0.1–1.0 cycles/µm), the intensity histogram of z-scored planes (skewness, excess kurtosis),
relative contrast (std / mean of the sharpest plane), and the through-focus contrast profile (std of each plane
relative to the stack's mean std, as a function of z). Needs the real data (``SUBCELL_TEST_DATA`` or
``--data``); writes ``benchmarks/synth/brightfield_comparison.md`` and a figure.

Run: ``python benchmarks/synth/compare_brightfield.py --data ../shared/data``
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
REAL = [
    "aics_fov_12-881_brightfield_labels/AICS-12_881_c3_Bright_100.tif",
    "aics_fov_11-409_brightfield_labels/AICS-11_409_c3_Bright_100X.tif",
]


def raps(plane: np.ndarray, spacing: float, nbins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a z-scored plane (frequency in cycles/µm)."""
    p = (plane - plane.mean()) / (plane.std() + 1e-12)
    win = np.outer(np.hanning(p.shape[0]), np.hanning(p.shape[1]))
    power = np.abs(np.fft.fftshift(np.fft.fft2(p * win))) ** 2
    fy = np.fft.fftshift(np.fft.fftfreq(p.shape[0], d=spacing))
    fx = np.fft.fftshift(np.fft.fftfreq(p.shape[1], d=spacing))
    f = np.hypot(*np.meshgrid(fy, fx, indexing="ij"))
    edges = np.linspace(0, f.max() * 0.95, nbins + 1)
    idx = np.digitize(f.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < nbins)
    total = np.bincount(idx[ok], weights=power.ravel()[ok], minlength=nbins)
    count = np.bincount(idx[ok], minlength=nbins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return centres, total / np.maximum(count, 1)


def stack_metrics(stack: np.ndarray, spacing: float) -> dict[str, object]:
    from scipy import stats

    s = stack.astype(np.float64)
    std = s.reshape(s.shape[0], -1).std(axis=1)
    mean = s.reshape(s.shape[0], -1).mean(axis=1)
    sharp = int(np.argmax(std))
    f, pw = raps(s[sharp], spacing)
    band = (f > 0.1) & (f < 1.0)
    slope = float(np.polyfit(np.log(f[band]), np.log(pw[band]), 1)[0])
    z = (s[sharp] - s[sharp].mean()) / s[sharp].std()
    return {
        "relative_contrast": float(std[sharp] / mean[sharp]),
        "raps_slope": slope,
        "skewness": float(stats.skew(z.ravel())),
        "excess_kurtosis": float(stats.kurtosis(z.ravel())),
        "profile": std / std.mean(),
        "raps": (f, pw / pw[band].mean()),
    }


def synthetic_like(shape: tuple[int, int, int], spacing: tuple[float, float, float], seed: int) -> np.ndarray:
    from subcell.synth import synth_field

    field = synth_field(shape=shape, voxel_size=spacing, seed=seed)
    return field.image.channel("brightfield").numpy(squeeze=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=os.environ.get("SUBCELL_TEST_DATA"))
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("pass --data ../shared/data (or set SUBCELL_TEST_DATA)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from subcell import io

    rows = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k, rel in enumerate(REAL):
        real_img = io.read(Path(args.data) / rel)
        real = real_img.numpy(squeeze=True)
        vs = real_img.voxel_size.as_tuple()
        spacing = float(np.sqrt(vs[1] * vs[2]))
        synth = synthetic_like(real.shape, (vs[0], spacing, spacing), seed=k)
        for name, stack, sp in (
            ("real " + rel.split("/")[0], real, spacing),
            (f"synthetic (seed {k})", synth, spacing),
        ):
            m = stack_metrics(stack, sp)
            rows.append((name, m))
            style = "-" if name.startswith("real") else "--"
            axes[0].plot(
                (np.arange(len(m["profile"])) - len(m["profile"]) / 2) * vs[0], m["profile"], style, label=name
            )  # type: ignore[arg-type]
            f, pw = m["raps"]  # type: ignore[misc]
            axes[1].loglog(f[1:], pw[1:], style, label=name)
    axes[0].set(xlabel="z from stack centre (µm)", ylabel="plane std / mean std", title="through-focus contrast")
    axes[1].set(xlabel="frequency (cycles/µm)", ylabel="normalized power", title="radially averaged power spectrum")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "brightfield_comparison.png", dpi=80)
    lines = [
        "# Synthetic vs real bright-field",
        "",
        "Command: `python benchmarks/synth/compare_brightfield.py --data ../shared/data` (synthetic stacks made at the real",
        "stacks' shape and voxel size; metrics on the sharpest plane; profile = per-plane std / mean std).",
        "",
        "| stack | relative contrast (std/mean) | RAPS slope 0.1–1 cyc/µm | skewness | excess kurtosis | profile max/min |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in rows:
        prof = m["profile"]
        lines.append(
            f"| {name} | {m['relative_contrast']:.3f} | {m['raps_slope']:.2f} | {m['skewness']:.2f} | "
            f"{m['excess_kurtosis']:.2f} | {float(np.max(prof) / np.min(prof)):.2f} |"  # type: ignore[call-overload]
        )
    lines += ["", "![comparison](brightfield_comparison.png)", ""]
    (HERE / "brightfield_comparison.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
