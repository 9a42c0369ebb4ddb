"""Patch augmentations of label-free training: zoom, blur and noise (off by default), and what they leave alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pydantic import ValidationError

from subcell.labelfree.config import AugmentConfig, TrainConfig
from subcell.labelfree.data import PatchSampler, Volume

PLAIN = {"flip_xy": False, "rotate90_xy": False, "input_gain": 0.0, "input_offset": 0.0}


def _ramp_volume(shape: tuple[int, int, int] = (24, 96, 96)) -> Volume:
    """Input = target = the y coordinate (a ramp), weight = a half-space: where a patch came from is readable."""
    _z, y, x = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij")
    weight = (x < shape[2] / 2).astype(np.float32)
    return Volume("ramp", y[None].copy(), y[None].copy(), weight, np.arange(0), np.zeros(1), np.ones(1))


def test_zoom_resizes_input_target_and_weight_alike_by_the_drawn_factor() -> None:
    sampler = PatchSampler([_ramp_volume()], (8, 32, 32), augment=AugmentConfig(**PLAIN, scale=0.5))
    factors = []
    for k in range(60):
        d = sampler.draw(np.random.default_rng([3, k]))
        x, y, w = sampler.apply(d)
        assert x.shape == y.shape == w.shape == (1, 8, 32, 32)
        np.testing.assert_allclose(x, y, atol=1e-5)  # input and target stay aligned voxel for voxel
        assert set(np.unique(w)) <= {0.0, 1.0}  # the loss mask stays a mask
        region = d.region or (8, 32, 32)
        f = region[1] / 32
        assert 1 / 1.5 - 0.04 <= f <= 1.5 + 0.04
        assert region[0] / 8 == pytest.approx(f, abs=0.07)  # one factor on every axis (up to rounding)
        slope = np.diff(x[0, 4, 8:24, 16]).mean()  # the ramp's slope away from the edges = the zoom factor
        assert slope == pytest.approx(f, rel=0.02)
        # the patch covers the region it says: its first and last rows sit inside the cut
        assert d.start[1] - 0.5 <= x[0, 0, 0, 0] <= d.start[1] + region[1] - 0.5
        factors.append(f)
    assert min(factors) < 0.85 and max(factors) > 1.2  # both ways
    # a factor the volume cannot hold is capped at what it holds
    small = PatchSampler([_ramp_volume((8, 40, 40))], (8, 32, 32), augment=AugmentConfig(**PLAIN, scale=1.0))
    for k in range(30):
        d = small.draw(np.random.default_rng([4, k]))
        assert d.region is None or all(r <= s for r, s in zip(d.region, (8, 40, 40), strict=True))
        assert small.apply(d)[0].shape == (1, 8, 32, 32)


def test_blur_and_noise_change_the_input_only() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(1, 16, 48, 48)).astype(np.float32)
    vol = Volume("n", noise, noise.copy(), None, np.arange(0), np.zeros(1), np.ones(1))
    plain = PatchSampler([vol], (8, 32, 32), augment=AugmentConfig(**PLAIN))
    blurred = PatchSampler([vol], (8, 32, 32), augment=AugmentConfig(**PLAIN, blur=2.0))
    noisy = PatchSampler([vol], (8, 32, 32), augment=AugmentConfig(**PLAIN, noise=1.0))
    d = blurred.draw(np.random.default_rng(1))
    assert 0 < d.blur <= 2.0
    x0, y0, _ = plain.apply(dataclasses.replace(d, blur=0.0))
    xb, yb, _ = blurred.apply(d)
    np.testing.assert_array_equal(yb, y0)
    assert xb.std() < 0.8 * x0.std()  # white noise loses variance under a blur
    d = noisy.draw(np.random.default_rng(2))
    xn, yn, _ = noisy.apply(d)
    x1, y1, _ = plain.apply(dataclasses.replace(d, noise=0.0))
    np.testing.assert_array_equal(yn, y1)
    assert (xn - x1).std() == pytest.approx(d.noise, rel=0.05)
    np.testing.assert_array_equal(noisy.apply(d)[0], xn)  # the draw fixes the noise: a patch is reproducible


def test_degradations_off_keep_the_random_stream_and_bad_values_are_config_errors() -> None:
    vol = _ramp_volume()
    base = PatchSampler([vol], (8, 32, 32), augment=AugmentConfig())
    more = PatchSampler([vol], (8, 32, 32), augment=AugmentConfig(blur=1.0, noise=0.5))
    for k in range(10):
        a, b = base.draw(np.random.default_rng([5, k])), more.draw(np.random.default_rng([5, k]))
        assert a.region is None and a.blur == 0 and a.noise == 0
        # what was drawn before is drawn the same; the degradations come after it
        assert dataclasses.replace(b, blur=0.0, noise=0.0, noise_seed=0) == a
    for bad in ({"scale": 1.5}, {"blur": -1}, {"noise": 3}):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            TrainConfig(manifest="m.csv", output="o", augment=bad)
