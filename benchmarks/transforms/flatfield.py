"""Flat-field correction against the truth: fields lit unevenly by a known shading, the flat-field estimated
from them with ``subcell flatfield estimate``'s functions (smoothing 0.05 — the default —, 0.1 and 0.2).

The shading: vignetting and a tilt, ``S = (1 − 0.35 r²/2)(1 + 0.15 x)`` (x, y from −1 to 1 across the field,
r² = x² + y²), scaled to mean 1: corners at ~0.6 of the middle, a strong but ordinary widefield shading. It
multiplies everything above the dark level (200, given to the estimate) of:

- synthetic fields (8×256×256, 0.29 × 0.108 × 0.108 µm, a few cells each): their bright-field, and their DNA
  and mitochondria fluorescence — the retrospective estimate's hard case, sparse signal over a black background,
  in fields whose cells gather towards the middle (the synthetic colony), against its premise that what the
  fields hold lies anywhere;
- images of a uniform fluorescent slide (1,000 photons per pixel, Poisson noise): the prospective reference.

Reported: the estimate's error over the field, RMS and largest of ``estimate / S − 1``, per source and number of
fields (or its refusal: an estimate not positive everywhere).

    python benchmarks/transforms/flatfield.py [--fields 4 16 64 256] [--out benchmarks/transforms/flatfield_results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from subcell.errors import ValueRangeError
from subcell.synth import synth_field
from subcell.transforms.shading import estimate_flatfield, shading_sample

SHAPE = (8, 256, 256)
OFFSET = 200.0
CHANNELS = ("dna", "mitochondria", "brightfield")
SMOOTHING = (0.05, 0.1, 0.2)


def shading(shape: tuple[int, int]) -> np.ndarray:
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    s = (1 - 0.35 * (x**2 + y**2) / 2) * (1 + 0.15 * x)
    return (s / s.mean()).astype(np.float32)


def shaded(channel: np.ndarray, s: np.ndarray) -> np.ndarray:
    return (channel - OFFSET) * s + OFFSET


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fields", type=int, nargs="+", default=[4, 16, 64, 256])
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("flatfield_results.json"))
    args = p.parse_args()
    n_max = max(args.fields)
    s = shading(SHAPE[1:])
    samples: dict[str, list[np.ndarray]] = {c: [] for c in (*CHANNELS, "uniform slide")}
    rng = np.random.default_rng(0)
    for seed in range(n_max):  # (a field at a time: their z-means are all that is kept)
        f = synth_field(shape=SHAPE, seed=1000 + seed)
        names = list(f.image.channel_names)
        data = f.image.numpy()[0]
        for c in CHANNELS:
            plane = shaded(data[names.index(c)].astype(np.float32), s).mean(axis=0)
            samples[c].append(shading_sample(plane, dark=OFFSET))
        if seed < 16:
            slide = rng.poisson(1000.0 * s).astype(np.float32) + OFFSET
            samples["uniform slide"].append(shading_sample(slide, dark=OFFSET))
    result: dict[str, Any] = {"shape": SHAPE, "shading_corner_over_middle": float(s[0, 0] / s[SHAPE[1] // 2, SHAPE[2] // 2]),
                              "estimate": {}}  # fmt: skip
    for source, sample in samples.items():
        for n in [1, 4] if source == "uniform slide" else args.fields:
            for sm in SMOOTHING:
                key = f"{source}, {n} fields, smoothing {sm}"
                try:
                    flat = estimate_flatfield(sample[:n], SHAPE[1:], smoothing=sm)
                except ValueRangeError as e:  # too few fields for sparse content: said, not a crash
                    result["estimate"][key] = {"refused": e.message}
                    continue
                rel = flat / s - 1
                result["estimate"][key] = {"rms": float(np.sqrt(np.mean(rel**2))), "max": float(np.abs(rel).max())}
    for k, v in result["estimate"].items():
        print(k, {kk: round(vv, 4) if isinstance(vv, float) else vv for kk, vv in v.items()})
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
