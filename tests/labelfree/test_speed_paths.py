"""The fast paths compute the same function: channels-last layout, folded batch norms, the dense-gradient concat,
tiles chosen to compute the fewest voxels, and the allocator setting."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from subcell.image import VoxelSize  # noqa: E402
from subcell.labelfree import LabelFreeModel, build_network, preset  # noqa: E402
from subcell.labelfree.tile_plan import axis_grid, choose_tile  # noqa: E402
from subcell.train.host import tune_allocator  # noqa: E402
from subcell.train.precision import cpu_has_bf16  # noqa: E402
from tests.conftest import profiled_ops  # noqa: E402

# the default network, its variant with added skips, and fnet
CASES = [("resunet", 3), ("resunet", 1), ("resunet", 0), ("resunet+add", 3), ("resunet+add", 1), ("fnet", 2)]


def _net(name: str, z_levels: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    name, _, skip = name.partition("+")
    cfg = preset(name, depth=2, base_channels=4, z_levels=z_levels, **({"skip": skip} if skip else {}))
    net = build_network(cfg, in_channels=1, out_channels=2)
    for m in net.modules():  # non-trivial statistics and affine parameters, as after training
        if isinstance(m, torch.nn.BatchNorm3d | torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net


@pytest.mark.parametrize(("name", "z_levels"), CASES)
def test_channels_last_is_the_same_function_and_the_same_gradients(name: str, z_levels: int) -> None:
    net = _net(name, z_levels)
    ref = copy.deepcopy(net).set_channels_last(False)
    x = torch.randn(2, 1, 8, 16, 16)
    net.eval()
    ref.eval()
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), ref(x).numpy(), atol=1e-5)
    net.train()
    ref.train()
    net(x).square().mean().backward()
    ref(x).square().mean().backward()
    for (k, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), atol=1e-4, rtol=1e-3, err_msg=k)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize(("name", "z_levels"), CASES)
def test_activations_stay_channels_last_forward_and_backward(name: str, z_levels: int, precision: str) -> None:
    """No layout flips between layers: every 5D activation with several channels, and its gradient, is dense
    channels-last (a flip costs a copy forward, and mixed layouts send backward kernels down a slow path), in the
    precisions training runs in on this CPU (bf16 only where it is native: elsewhere oneDNN's emulated bf16
    convolutions answer channels-first, and ``precision: auto`` trains in fp32 there)."""
    if precision == "bf16" and not cpu_has_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 or AMX); training runs in fp32 here")
    net = _net(name, z_levels).train()
    cl = torch.channels_last_3d
    seen: list[str] = []
    bad: list[str] = []

    def hook(mod: torch.nn.Module, inp: object, out: torch.Tensor, name: str = "") -> None:
        if out.dim() == 5 and out.shape[1] > 1 and out.requires_grad:
            seen.append(name)
            if not out.is_contiguous(memory_format=cl):
                bad.append(f"{name} forward {out.stride()}")

            def grad_hook(g: torch.Tensor, name: str = name) -> None:
                if not g.is_contiguous(memory_format=cl):
                    bad.append(f"{name} gradient {g.stride()}")

            out.register_hook(grad_hook)

    for n, m in net.named_modules():
        if isinstance(m, torch.nn.ReLU):
            m.register_forward_hook(lambda mod, i, o, n=n: hook(mod, i, o, n))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = net(torch.randn(2, 1, 8, 16, 16))
    out.float().square().mean().backward()
    assert seen and not bad, bad


@pytest.mark.parametrize(("name", "z_levels"), CASES)
def test_folded_batch_norms_give_the_eval_function(name: str, z_levels: int) -> None:
    net = _net(name, z_levels).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fused = net.fused()
    assert not any(isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm3d) for m in fused.modules())
    x = torch.randn(2, 1, 8, 16, 16)
    with torch.no_grad():
        np.testing.assert_allclose(fused(x).numpy(), net(x).numpy(), atol=1e-5)
    for k, v in net.state_dict().items():  # the model itself is untouched
        assert torch.equal(v, before[k]), k


def _computed(model: LabelFreeModel, shape: tuple[int, int, int], tile: tuple[int, int, int]) -> int | None:
    """Voxels a grid of ``tile`` computes over ``shape`` (tiles on the divisor, trimmed by the model's halo), or
    None where such a tile cannot be trimmed and still overlap."""
    grids = [axis_grid(n, t, d, lambda h=h: h, 0.25, None)
             for n, t, d, h in zip(shape, tile, model.divisor, model.halo, strict=True)]  # fmt: skip
    return None if None in grids else int(np.prod([g[2] * t for g, t in zip(grids, tile, strict=True)]))  # type: ignore[index]


def test_tile_choice_computes_the_fewest_voxels_that_fit() -> None:
    model = LabelFreeModel.create(preset("resunet", z_levels=3), input_channel="bf", targets=["dna"],
                                  voxel_size=VoxelSize(0.29, 0.29, 0.29))  # fmt: skip
    shape = (32, 512, 512)
    whole, _ = choose_tile(model, shape, memory_limit_gb=16, itemsize=2)
    assert whole == shape  # room for the whole volume: one tile, nothing computed twice
    tile, _ = choose_tile(model, shape, memory_limit_gb=1.5, itemsize=2)
    assert tile != shape and all(t % d == 0 for t, d in zip(tile, model.divisor, strict=True))
    # no other tile of at least the training patch that fits the same budget computes fewer voxels
    per_voxel = model.network.activation_bytes_per_voxel(itemsize=2)
    budget = 1.5 * 1024**3 - 300e6 - 4.5 * 4 * 32 * 512 * 512
    fits = [
        (z, y, x) for z in (32,) for y in range(64, 513, 8) for x in range(64, 513, 8)
        if per_voxel * z * y * x * 1.3 <= budget
    ]  # fmt: skip
    assert tile in fits
    work = {t: _computed(model, shape, t) for t in fits}
    assert work[tile] == min(w for w in work.values() if w is not None)
    # the old heuristic (doubling from the training patch up to 256 in y/x) computed more
    assert work[tile] < work[(32, 256, 128)]


_FAULTS = """
import resource, numpy as np
from subcell.train.host import tune_allocator
on = tune_allocator()
def cycle():
    a = np.ones(1 << 24, np.float32)  # 64 MB, above glibc's default mmap threshold
    del a
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    cycle()
print(on, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator setting is for glibc on Linux")
def test_allocator_setting_stops_page_faults_and_can_be_refused() -> None:
    """With the setting, a freed 64 MB block is reused (no page faults); SUBCELL_MALLOC=system keeps glibc's
    default, which unmaps and faults it in again on every allocation (≥ 32 faults each even with 2 MB huge pages)."""

    def run(env: dict[str, str]) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, check=True,
                             env={**os.environ, **env})  # fmt: skip
        on, faults = out.stdout.split()
        return on, int(faults)

    on, tuned = run({"SUBCELL_MALLOC": ""})
    off, system = run({"SUBCELL_MALLOC": "system"})
    assert (on, off) == ("True", "False")
    assert system >= 10 * 32 and tuned < system / 20
    assert tune_allocator() is tune_allocator()  # once per process, the same answer


def test_a_precision_the_device_lacks_is_refused_or_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from subcell.errors import ValueRangeError
    from subcell.train import precision

    cpu = torch.device("cpu")
    with pytest.raises(ValueRangeError, match="fp16 autocast is for GPUs"):
        precision.autocast_dtype(cpu, "fp16")
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.autocast_dtype(cpu, "auto") is None  # auto never picks an emulated precision
    with pytest.warns(UserWarning, match="emulated"):
        assert precision.autocast_dtype(cpu, "bf16") is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert precision.autocast_dtype(cpu, "bf16") is torch.bfloat16


@pytest.mark.parametrize("iso", [True, False])
@pytest.mark.parametrize("residual", [True, False])
def test_a_block_on_two_parts_is_the_block_on_their_concatenation(iso: bool, residual: bool) -> None:
    """Training runs a decoder block on (skip, upsampled) without concatenating them: the same values and the same
    gradients for the weights and both parts as the block on ``torch.cat``."""
    from subcell.train.blocks import ConvBlock, set_channels_last

    torch.manual_seed(0)
    block = set_channels_last(ConvBlock(6, 4, iso=iso, norm="batch", residual=residual)).train()
    parts = [torch.randn(2, 3, 4, 8, 8).contiguous(memory_format=torch.channels_last_3d).requires_grad_()
             for _ in range(2)]  # fmt: skip
    y = block.forward_concat(*parts)
    weight = torch.randn_like(y)
    (y * weight).sum().backward()
    got = [p.grad.clone() for p in parts] + [p.grad.clone() for p in block.parameters()]  # type: ignore[union-attr]
    for p in [*parts, *block.parameters()]:
        p.grad = None
    ref = block(torch.cat(parts, dim=1))
    (ref * weight).sum().backward()
    want = [p.grad for p in parts] + [p.grad for p in block.parameters()]
    np.testing.assert_allclose(y.detach().numpy(), ref.detach().numpy(), atol=1e-5)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert w is not None
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("name", "z_levels"), CASES)
@pytest.mark.parametrize("batch", [1, 2])
def test_inference_that_frees_early_is_the_same_function(name: str, z_levels: int, batch: int) -> None:
    """Without gradients the network frees every tensor once used (UNet._infer); with them it keeps what
    backward needs. Same arithmetic, so the same outputs, folded batch norms included. One sample without
    gradients also runs its 3D convolutions on oneDNN (subcell.train.blocks.Conv3d), with them on PyTorch's
    reference kernel."""
    net = _net(name, z_levels).eval()
    x = torch.randn(batch, 1, 8, 16, 16)
    for m in (net, net.fused()):
        with torch.enable_grad():
            kept = m(x.clone().requires_grad_()).detach().numpy()
        with torch.inference_mode():
            freed = m(x).numpy()
        np.testing.assert_allclose(freed, kept, rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_one_sample_runs_on_onednn_with_the_same_outputs() -> None:
    """PyTorch sends one fp32 sample with C·D·H <= 20480 to its reference kernel (``slow_conv3d``, 2-10x slower
    than oneDNN on long-in-x volumes and a tile's coarse levels); subcell's ``Conv3d`` sends it to oneDNN, with
    the same outputs. Traced graphs (TorchScript export) keep the standard call, which runs on any device."""
    from subcell.train.blocks import Conv3d

    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    torch.manual_seed(0)
    conv = Conv3d(8, 4, 3, padding=1).eval()
    x = torch.randn(1, 8, 6, 8, 40)  # C·D·H = 384, long in x
    with torch.inference_mode():
        got = conv(x)
        want = torch.nn.functional.conv3d(x, conv.weight, conv.bias, padding=1)
        names = profiled_ops(lambda: conv(x))
        standard = profiled_ops(lambda: torch.nn.functional.conv3d(x, conv.weight, conv.bias, padding=1))
    assert "aten::mkldnn_convolution" in names and "aten::slow_conv3d_forward" not in names
    assert "aten::slow_conv3d_forward" in standard, "PyTorch's rule changed: revisit Conv3d"
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    # the networks build their 3D convolutions from it: the default one's one-tile inference (folded, as
    # prediction runs it) never reaches the reference kernel
    net = build_network(preset("resunet", depth=2, base_channels=4, z_levels=2), in_channels=1, out_channels=1)
    fused = net.eval().fused()
    with torch.inference_mode():
        assert "aten::slow_conv3d_forward" not in profiled_ops(lambda: fused(torch.randn(1, 1, 8, 16, 48)))
    with torch.no_grad():
        traced = torch.jit.trace(conv, x)
    assert "mkldnn_convolution" not in str(traced.inlined_graph)
    np.testing.assert_allclose(traced(x).detach().numpy(), want.numpy(), atol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # canonical()'s shape test, as the export's trace
@pytest.mark.parametrize(("name", "z_levels"), CASES)
def test_inference_runs_each_convolution_with_its_relu_as_one_kernel(name: str, z_levels: int) -> None:
    """Folded for inference on a CPU, every convolution followed by a ReLU (and a residual block's second one, its
    shortcut's addition too) runs as one oneDNN kernel, and a decoder level convolves its two inputs without
    concatenating them: no separate ReLU pass and no concatenation are left, and the outputs are the unfused
    ones (the same operations with gradients recorded). A traced graph keeps the standard operators."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    fused = _net(name, z_levels).eval().fused()
    x = torch.randn(2, 1, 8, 16, 16)
    with torch.enable_grad():
        want = fused(x.clone().requires_grad_()).detach()
    with torch.inference_mode():
        got = fused(x)
        names = profiled_ops(lambda: fused(x))
    assert "mkldnn::_convolution_pointwise" in names
    assert not names & {"aten::relu", "aten::relu_", "aten::clamp_min", "aten::clamp_min_", "aten::cat"}, names
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-6)
    if cpu_has_bf16():  # bf16: one rounding of conv + shortcut instead of two, so equal to bf16 precision
        with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            want16 = fused(x.clone().requires_grad_()).detach().float()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            got16 = fused(x).float()
        np.testing.assert_allclose(got16.numpy(), want16.numpy(), atol=0.02 * float(want16.abs().max()))
    with torch.no_grad():
        traced = torch.jit.trace(fused, x)
    assert "mkldnn" not in str(traced.inlined_graph)
    np.testing.assert_allclose(traced(x).detach().numpy(), want.numpy(), rtol=0, atol=1e-6)


# the child scripts below read their resident and peak sizes (bytes) from /proc
_STATUS = """
def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
"""

_PEAK = (
    _STATUS
    + """
import sys, torch
from subcell.labelfree import build_network, preset
torch.set_num_threads(1)
z_levels, shape = (None, (1, 1, 32, 128, 128)) if sys.argv[1] == "3d" else (0, (1, 1, 1, 1024, 1024))
net = build_network(preset("resunet", z_levels=z_levels), in_channels=1, out_channels=1).eval().fused()
x = torch.randn(*shape)
with torch.inference_mode():
    net(torch.randn(1, 1, 8 if z_levels is None else 1, 16, 16))
    base = status("VmRSS")
    net(x)
print(status("VmHWM") - base, x.numel(), net.activation_bytes_per_voxel())
"""
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
@pytest.mark.parametrize("kind", ["3d", "2d"])
def test_inference_peak_memory_stays_within_what_the_tile_chooser_counts(kind: str) -> None:
    """The tile chooser budgets ``activation_bytes_per_voxel`` × 1.3 per tile voxel, plus 300 MB for weights and
    libraries; a forward pass must stay inside 1.3 × the count + 100 MB, and the count is the early-freeing one:
    less than half of the 7 live tensors per level that holding every block input needed (595 B/voxel).
    3D: the default network on 32×128×128 (measured ~212 MB against 283 MB; ~359 MB with every block input held).
    2D: the same network with every level in-plane on one 1024² plane (measured ~340 MB against 449 MB; ~660 MB
    before the folded planes got canonical strides (``subcell.train.blocks.canonical``), when the 2D count was
    kept at the old 840 B/voxel for it)."""
    out = subprocess.run([sys.executable, "-c", _PEAK, kind], capture_output=True, text=True, check=True)
    peak, voxels, counted = (float(v) for v in out.stdout.split())
    assert peak <= 1.3 * counted * voxels + 100e6
    assert counted < 595 / 2


def test_a_region_budgets_the_input_its_tiles_read_beyond_it() -> None:
    """A 1024² region of a 2048² plane reads its input over the tiles reaching into it (up to a tile past each
    side): counting only the region let a 2 GB run of 32×2048×2048 peak at 2.67 GB."""
    model = LabelFreeModel.create(preset("resunet"), input_channel="bf", targets=["dna"],
                                  voxel_size=VoxelSize(0.29, 0.29, 0.29))  # fmt: skip
    region = (32, 1024, 1024)
    alone, _ = choose_tile(model, region, memory_limit_gb=2, retained=1.6)
    inside, _ = choose_tile(model, region, memory_limit_gb=2, retained=1.6, whole_yx=(2048, 2048))
    assert np.prod(inside) < np.prod(alone)
    # a region that is the whole plane reads nothing beyond it
    assert choose_tile(model, region, memory_limit_gb=2, retained=1.6, whole_yx=(1024, 1024))[0] == alone


_RELEASE = (
    _STATUS
    + """
import numpy as np
from subcell.train.host import release_freed, tune_allocator
on = tune_allocator()
keep = np.ones(1 << 10, np.float32)  # a small block after the large one: the heap's top cannot simply shrink
a = np.ones(1 << 24, np.float32)  # 64 MB, touched
keep2 = np.ones(1 << 10, np.float32)
del a
kept = status("VmRSS")
assert not release_freed(above=kept + (1 << 30))  # below the threshold: kept
released = release_freed()
print(on, released, kept - status("VmRSS"))
"""
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator setting is for glibc on Linux")
def test_freed_blocks_kept_by_the_allocator_setting_can_be_given_back() -> None:
    """With the setting a freed 64 MB block stays resident until ``release_freed`` hands its pages back; with
    glibc's defaults it was unmapped on ``free`` and there is nothing to release."""

    def run(env: dict[str, str]) -> tuple[str, str, int]:
        out = subprocess.run([sys.executable, "-c", _RELEASE], capture_output=True, text=True, check=True,
                             env={**os.environ, **env})  # fmt: skip
        on, released, drop = out.stdout.split()
        return on, released, int(drop)

    on, released, drop = run({"SUBCELL_MALLOC": ""})
    assert (on, released) == ("True", "True") and drop > 50e6
    off, released, drop = run({"SUBCELL_MALLOC": "system"})
    assert (off, released) == ("False", "False") and abs(drop) < 20e6


# a small untrained 3D network, one thread (what the subprocess scripts below predict with)
_SMALL_MODEL = """
import sys, numpy as np, torch
from subcell.image import VoxelSize
from subcell.labelfree import LabelFreeModel, PredictConfig, preset
torch.manual_seed(0)
torch.set_num_threads(1)
model = LabelFreeModel.create(preset("resunet"), input_channel="bf", targets=["dna"],
                              voxel_size=VoxelSize(0.29, 0.29, 0.29))
"""

_TILES = (
    _STATUS
    + _SMALL_MODEL
    + """
from subcell import Image
from subcell.labelfree import predict_image
image = Image(np.random.default_rng(0).normal(size=(32, 96, 512)).astype(np.float32), voxel_size=(0.29, 0.29, 0.29),
              dims="ZYX", channel_names=["bf"])
# a limit the process is already near (given back between tiles), or far from (blocks kept for the next tile)
cfg = PredictConfig(tile=(32, 96, 160), batch_size=1, precision="fp32", memory_limit_gb=float(sys.argv[1]))
small = Image(np.zeros((32, 96, 96), np.float32), voxel_size=(0.29, 0.29, 0.29), dims="ZYX", channel_names=["bf"])
predict_image(model, small, PredictConfig(tile=(32, 96, 96), precision="fp32"))  # libraries and kernels loaded
base = status("VmRSS")
between = []
predict_image(model, image, cfg, progress=lambda done, total: between.append(status("VmRSS")))
print(len(between), max(between[1:]) - base, status("VmHWM") - base)
"""
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the resident size from /proc")
def test_a_tiled_prediction_near_its_memory_limit_gives_freed_activations_back_between_tiles() -> None:
    """Between tiles a CPU prediction near its memory limit holds its accumulators and input, not the last tile's
    freed activations: kept, they fragment the heap and the resident size creeps past the limit over many tiles (a
    2 GB run peaked at 2.2-2.5 GB before); far below the limit they are kept for the next tile."""

    def run(limit_gb: float) -> tuple[int, int, int]:
        out = subprocess.run([sys.executable, "-c", _TILES, str(limit_gb)], capture_output=True, text=True,
                             check=True, env={**os.environ, "SUBCELL_MALLOC": ""})  # fmt: skip
        tiles, between, peak = (int(v) for v in out.stdout.split())
        return tiles, between, peak

    tiles, between, peak = run(0.25)
    assert tiles >= 4
    assert peak > 60e6  # a tile's activations (~150 MB counted) did become resident during the pass
    assert between < 0.3 * peak
    # far below the limit the blocks are kept (the next tile reuses them without page faults)
    tiles, between, peak = run(16.0)
    assert tiles >= 4 and between > 60e6


_BETWEEN_PASSES = (
    _STATUS
    + _SMALL_MODEL
    + """
import subcell.labelfree.predict as predict
x = np.random.default_rng(0).normal(size=(1, 32, 288, 480)).astype(np.float32)
at_pass = []
forward = predict._forward
def recorded(*args, **kwargs):  # the resident size as each pass of the network starts
    at_pass.append(status("VmRSS"))
    return forward(*args, **kwargs)
predict._forward = recorded
def source(z0, z1, ys=slice(None), xs=slice(None)):
    # what resampling a band's input does: large temporaries, freed before the band's tiles are predicted
    scratch = np.ones(1 << 27, np.uint8)
    del scratch
    return x[:, z0:z1, ys, xs].copy()
def sink(z0, rows, y0=0):
    pass
# a pass counted at 0.82 GB under a 1 GB limit: the process starts each pass above the limit less the pass
# (0.25 GB), but below 75 % of the limit, where the release after a pass begins
cfg = PredictConfig(tile=(32, 96, 480), batch_size=1, precision="fp32", memory_limit_gb=1.0)
after_pass = []
summary = predict.predict_volume(model, source, x.shape[1:], sink, config=cfg, bands=True,
                                 progress=lambda done, total: after_pass.append(status("VmRSS")))
# what became resident between the end of one pass and the start of the next
print(int(summary["banded"]), len(at_pass), max(b - a for a, b in zip(after_pass, at_pass[1:])), max(at_pass))
"""
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the resident size from /proc")
def test_blocks_freed_between_passes_are_given_back_before_the_next_pass_near_the_limit() -> None:
    """What a band's input and output rows free between two passes of the network (the resampling onto and off
    the model's grid: hundreds of MB of temporaries) is given back before the next pass when the pass would take
    the process over its limit; kept, the pass's activations sat beside it and a 64×1024×1024 stack off the
    model's grid peaked at 2.2-2.5 GB under a 2 GB limit (released only after a pass, at 75 % of the limit)."""
    out = subprocess.run([sys.executable, "-c", _BETWEEN_PASSES], capture_output=True, text=True, check=True,
                         env={**os.environ, "SUBCELL_MALLOC": ""})  # fmt: skip
    banded, passes, grown, highest = (int(v) for v in out.stdout.split())
    assert banded == 1 and passes >= 3
    assert highest < 0.75 * 1024**3  # each pass starts below where the release after a pass would act
    assert grown < 40e6  # the 128 MB each band's input rows freed is not resident as the next pass starts
