"""Image formation: PSF width, camera noise, bright-field contrast reversal through focus."""

from __future__ import annotations

import numpy as np
import pytest

from subcell.synth.config import BrightfieldOptics, Noise, Optics
from subcell.synth.optics import brightfield_contrast, camera, fluorescence, psf_sigma_voxels


def _moment_sigma(profile: np.ndarray) -> float:
    x = np.arange(profile.size)
    w = profile / profile.sum()
    mu = (w * x).sum()
    return float(np.sqrt((w * (x - mu) ** 2).sum()))


def test_psf_width_matches_numerical_aperture_and_wavelength() -> None:
    optics = Optics(numerical_aperture=1.2, emission_wavelength_um=0.6, immersion_index=1.33)
    vs = (0.2, 0.05, 0.05)
    point = np.zeros((41, 61, 61), np.float32)
    point[20, 30, 30] = 1.0
    img = fluorescence(point, psf_sigma_voxels(optics, vs))
    assert img.sum() == pytest.approx(1.0, rel=1e-3)  # energy preserved
    sz = _moment_sigma(img[:, 30, 30]) * vs[0]
    sx = _moment_sigma(img[20, 30, :]) * vs[2]
    assert sx == pytest.approx(0.21 * 0.6 / 1.2, rel=0.03)
    assert sz == pytest.approx(0.66 * 0.6 * 1.33 / 1.2**2, rel=0.03)


@pytest.mark.parametrize("lam", [3.0, 500.0])
def test_camera_noise_has_poisson_plus_read_statistics(lam: float) -> None:
    noise = Noise(read_noise=2.0, offset=100)
    out = camera(np.full(200_000, lam, np.float32), noise, np.random.default_rng(0)).astype(np.float64) - 100
    assert out.mean() == pytest.approx(lam, rel=0.01, abs=0.02)
    assert out.var() == pytest.approx(lam + 4.0 + 1 / 12, rel=0.03)


def test_brightfield_contrast_of_a_nucleus_reverses_through_focus() -> None:
    vs = (0.29, 0.108, 0.108)
    z, y, x = np.meshgrid(*(np.arange(n) * v for n, v in zip((64, 128, 128), vs, strict=True)), indexing="ij")
    centre = (32 * vs[0], 64 * vs[1], 64 * vs[2])
    sphere = ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) < 3.0**2
    delta_n = np.where(sphere, 0.02, 0.0).astype(np.float32)
    rel = brightfield_contrast(delta_n, vs, BrightfieldOptics())
    inner = (slice(60, 68), slice(60, 68))
    above = rel[32 + 16][inner].mean() - 1  # focus 4.6 µm above the nucleus centre
    below = rel[32 - 16][inner].mean() - 1
    in_focus = rel[32][inner].mean() - 1
    assert above * below < 0, (above, below)  # contrast reverses through focus
    assert abs(in_focus) < 0.5 * min(abs(above), abs(below))  # a phase object nearly vanishes in focus
    assert abs(rel[5].mean() - 1) < 0.01  # empty field stays at 1 on average
