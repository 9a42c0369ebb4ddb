"""Network presets: the paper's fnet size, our residual default, anisotropic and 2D variants."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from subcell.image import VoxelSize  # noqa: E402
from subcell.labelfree.network import Planar, build_network, preset  # noqa: E402
from subcell.labelfree.train import resolve_network  # noqa: E402


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_fnet_preset_matches_the_paper() -> None:
    cfg = preset("fnet")
    net = build_network(cfg, in_channels=1, out_channels=1)
    assert 22.5e6 < _params(net) < 24e6  # "~23M parameters" (Ounkomol et al. 2018)
    assert cfg.channels() == [32, 64, 128, 256, 512]
    assert cfg.divisor() == (16, 16, 16)
    assert isinstance(net.encoders[0].norm1, torch.nn.BatchNorm3d)


def test_default_preset_is_much_smaller_and_keeps_shapes() -> None:
    cfg = resolve_network(preset("resunet"), VoxelSize(0.29, 0.108, 0.108), two_d=False)
    assert cfg.z_levels == 2  # the first level stays in-plane for 2.7x anisotropic voxels
    assert cfg.divisor() == (4, 8, 8)
    net = build_network(cfg, in_channels=1, out_channels=3, uncertainty=True).eval()
    assert _params(net) < 0.1 * 23e6
    x = torch.randn(1, 1, 8, 32, 24)
    assert net(x).shape == (1, 6, 8, 32, 24)  # mean + log-variance per target
    assert isinstance(net.encoders[0].conv1, Planar)  # in-plane 3×3 convolutions on the first level
    assert isinstance(net.encoders[1].conv1, torch.nn.Conv3d)


def test_two_d_network_never_mixes_planes() -> None:
    cfg = resolve_network(preset("resunet", depth=2), VoxelSize(1.0, 0.3, 0.3), two_d=True)
    net = build_network(cfg, in_channels=1, out_channels=1).eval()
    x = torch.randn(1, 1, 3, 16, 16)
    y = net(x)
    y2 = net(x[:, :, 1:2])
    torch.testing.assert_close(y[:, :, 1:2], y2)  # plane 1 alone gives the same answer


def test_anisotropic_network_trains_in_bf16() -> None:
    """In-plane levels run as 2D convolutions (torch 2.13's oneDNN crashes on bf16 backward of 1×3×3 Conv3d, seen
    with AMX at some sizes: this size where the CPU has native bf16). Elsewhere bf16 is emulated (allowed, with a
    warning, but ~30 s for that size), so a smaller batch checks the same path there."""
    from subcell.train.precision import cpu_has_bf16

    cfg = resolve_network(preset("resunet", depth=2, base_channels=8), VoxelSize(0.29, 0.108, 0.108), two_d=False)
    net = build_network(cfg, in_channels=1, out_channels=1)
    x = torch.randn(8, 1, 8, 96, 96) if cpu_has_bf16() else torch.randn(2, 1, 8, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x)
    (y.float() ** 2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_added_skips_halve_every_decoder_input_and_keep_shapes() -> None:
    """``skip: add`` adds each encoder skip to the upsampled features: every decoder level reads c channels, not
    2c (a quarter fewer FLOPs per voxel than the default concatenating network), same shapes."""
    add = build_network(preset("resunet", z_levels=3, skip="add"), in_channels=1, out_channels=2).eval()
    cat = build_network(preset("resunet", z_levels=3), in_channels=1, out_channels=2).eval()
    assert preset("resunet").skip == "concat" and preset("fnet").skip == "concat"
    for a, c in zip(add.decoders, cat.decoders, strict=True):
        assert 2 * a.conv1.in_channels == c.conv1.in_channels == 2 * c.conv1.out_channels
        assert isinstance(a.skip, torch.nn.Identity)  # no projected shortcut: c channels in and out
    x = torch.randn(1, 1, 16, 32, 32)
    assert add(x).shape == cat(x).shape == (1, 2, 16, 32, 32)


def test_models_saved_before_skips_were_configurable_keep_concatenated_skips() -> None:
    """A network config without ``skip`` (every model saved before the field existed, the shipped ones among
    them) means concatenated skips, whatever a preset says."""
    from subcell.labelfree.network import NetworkConfig
    from subcell.labelfree.pretrained import load_model

    stored = {"preset": "resunet", "depth": 3, "base_channels": 16, "channel_multiplier": 2.0,
              "block": "residual", "norm": "batch", "z_levels": 3}  # fmt: skip
    assert NetworkConfig.model_validate(stored).skip == "concat"
    model = load_model("dna")
    assert model.network_config.skip == "concat"
    assert model.network.decoders[-1].conv1.in_channels == 2 * model.network_config.channels()[0]
