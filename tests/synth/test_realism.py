"""Domain randomization and the real-vs-synthetic gap measurement."""

from __future__ import annotations

import numpy as np
import pytest

from subcell.synth.randomize import Randomization, camera_response, randomized_config
from subcell.synth.realism import domain_gap, patch_features


def test_randomized_configs_vary_and_switches_leave_other_draws_alone() -> None:
    a = randomized_config(np.random.default_rng(1), extent_um=(10, 30, 30))
    b = randomized_config(np.random.default_rng(2), extent_um=(10, 30, 30))
    assert a.brightfield.objective_na != b.brightfield.objective_na
    assert a.voxel_size != b.voxel_size
    assert 0.1 <= a.voxel_size[1] <= 0.4 and 0.2 <= a.voxel_size[0] <= 1.0
    assert all(abs(n * v - e) <= v for n, v, e in zip(a.shape, a.voxel_size, (10, 30, 30), strict=True))
    off = randomized_config(np.random.default_rng(1), extent_um=(10, 30, 30),
                            randomization=Randomization().without("haze", "optics"))  # fmt: skip
    assert off.brightfield.haze == 0.0 and off.brightfield.objective_na == 1.25  # defaults
    assert off.voxel_size == a.voxel_size and off.cells == a.cells  # the other factors drew the same values
    with pytest.raises(ValueError, match="unknown randomization factor"):
        Randomization().without("blur")


def test_camera_response_quantizes_to_8_or_12_bits() -> None:
    x = np.random.default_rng(0).normal(1000, 50, (4, 32, 32))
    levels = {len(np.unique(camera_response(x, np.random.default_rng(s)))) for s in range(6)}
    assert min(levels) <= 256 and max(levels) > 256
    same = camera_response(x, np.random.default_rng(0), randomization=Randomization().without("camera"))
    np.testing.assert_array_equal(same, x.astype(np.float32))


def _stacks(kind: str, n: int, draw: int = 0) -> list[np.ndarray]:
    from scipy import ndimage as ndi

    out = []
    for i in range(n):
        rng = np.random.default_rng([ord(kind[0]), draw, i])
        x = rng.normal(size=(5, 96, 96))
        out.append(ndi.gaussian_filter(x, (0, 1.5, 1.5)) if kind == "smooth" else x)
    return out


def test_the_gap_is_chance_for_one_distribution_and_near_one_for_two() -> None:
    vs = (0.3, 0.3, 0.3)
    feats = {k: [patch_features(s, vs) for s in _stacks(k, 3)] for k in ("smooth", "speckle")}
    other = [patch_features(s, vs) for s in _stacks("smooth", 3, draw=1)]  # the same process, other draws
    assert domain_gap(feats["smooth"], feats["speckle"]).accuracy > 0.95
    assert abs(domain_gap(feats["smooth"], other).accuracy - 0.5) < 0.2


def test_granules_give_the_cytoplasm_its_speckle_and_leave_the_truth_alone() -> None:
    from subcell.synth import synth_field
    from subcell.synth.colony import make_colony
    from subcell.synth.config import SynthConfig
    from subcell.synth.render import render_region

    base = {"shape": (16, 96, 96), "voxel_size": (0.5, 0.2, 0.2), "seed": 3}
    region = (slice(0, 16), slice(0, 96), slice(0, 96))
    plain = SynthConfig.model_validate({**base, "refractive_index": {"granules_per_um3": 0, "cytoplasm_texture": 0}})
    grainy = SynthConfig.model_validate({**base, "refractive_index": {"granules_per_um3": 2, "cytoplasm_texture": 0}})
    a = render_region(make_colony(plain), region, seed=3)
    b = render_region(make_colony(grainy), region, seed=3)
    cyto = (a.cell > 0) & (a.nucleus == 0)
    assert b.delta_n[cyto].std() > 1.5 * a.delta_n[cyto].std()
    np.testing.assert_array_equal(a.cell, b.cell)  # labels and structures do not depend on the granules
    np.testing.assert_array_equal(a.density["mitochondria"], b.density["mitochondria"])
    field = synth_field(grainy)
    assert field.image.channel("brightfield").numpy().std() > 0


def test_cytoplasm_texture_is_a_mesh_in_the_cytoplasm_the_same_in_any_block() -> None:
    from scipy import ndimage as ndi

    from subcell.synth.colony import make_colony
    from subcell.synth.config import SynthConfig
    from subcell.synth.render import render_region

    base = {"shape": (16, 96, 96), "voxel_size": (0.5, 0.2, 0.2), "seed": 4}
    whole = (slice(0, 16), slice(0, 96), slice(0, 96))
    smooth = SynthConfig.model_validate({**base, "refractive_index": {"cytoplasm_texture": 0}})
    meshy = SynthConfig.model_validate({**base, "refractive_index": {"cytoplasm_texture": 0.008}})
    a = render_region(make_colony(smooth), whole, seed=4)
    b = render_region(make_colony(meshy), whole, seed=4)
    cyto = (a.cell > 0) & (a.nucleus == 0)
    deep_nucleus = ndi.binary_erosion(a.nucleus > 0, iterations=4)
    extra = b.delta_n - a.delta_n
    assert extra[cyto].std() > 0.5 * 0.008  # the texture is there, at about its RMS
    assert np.abs(extra[deep_nucleus]).max() < 0.1 * 0.008  # and not inside the nucleus
    assert (a.cell == 0).any() and np.abs(extra[a.cell == 0]).max() < 1e-6  # nor in the medium
    # fine structure: most of its power at 0.5-2 µm wavelengths, i.e. it varies from voxel to voxel at 0.2 µm
    d = np.diff(extra, axis=2)[cyto[:, :, 1:] & cyto[:, :, :-1]]
    assert d.std() > 0.1 * extra[cyto].std()
    np.testing.assert_array_equal(a.cell, b.cell)  # labels do not depend on the texture
    # a block sees the same index map as the whole field (away from its edge, where the boundary smoothing differs)
    part = render_region(make_colony(meshy), (slice(0, 16), slice(30, 96), slice(20, 80)), seed=4)
    np.testing.assert_allclose(part.delta_n[:, 10:-10, 10:-10], b.delta_n[:, 40:86, 30:70], atol=1e-6)
