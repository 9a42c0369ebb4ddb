"""Network building blocks shared by the deep-learning features: residual conv blocks, norms, in-plane wrappers."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import nn

__all__ = [
    "Conv3d",
    "ConvBlock",
    "Planar",
    "ReLU",
    "conv3",
    "conv_of_concat",
    "conv_part",
    "conv_relu",
    "fusable",
    "norm_for",
    "set_channels_last",
]

CL3D = torch.channels_last_3d


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


def canonical(t: torch.Tensor) -> torch.Tensor:
    """A channels-last tensor (4D or 5D) as a view with the canonical channels-last strides.

    Folding z into the batch (and back) leaves the strides of size-1 axes at whatever the reshape gives; they
    address nothing, but PyTorch reads the layout from them. With one plane (batch × depth 1: a 2D network's
    inference) a 1×1 convolution, whose weight is channels-last and -first at once, then went channels-first and
    reordered its input (a transient of ~5 tensors of its size), and ``cat`` / ``contiguous`` of such tensors
    copied them again: the single-plane peak of 2D networks measured 2.2-2.5x what the blocks hold. A view of the
    same memory; tensors in no channels-last layout are returned as they are.
    """
    if t.dim() not in (4, 5) or 1 not in t.shape or (t.requires_grad and torch.is_grad_enabled()):
        return t  # (training keeps its autograd graph free of as_strided)
    fmt = torch.channels_last if t.dim() == 4 else CL3D
    if not t.is_contiguous(memory_format=fmt):
        return t
    # by hand: taking them from torch.empty(..., device="meta") breaks the TorchScript export of bioimage.io packages
    _, c, *space = t.shape
    inner = [c]
    for size in reversed(space):
        inner.insert(0, inner[0] * size)
    # strides: batch c·∏space, channel 1, then each spatial axis the product of the axes after it times c
    strides = (inner[0], 1, *inner[1:])
    return t.as_strided(t.shape, strides)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` whose one-sample fp32 inference on a CPU runs on oneDNN, as larger batches already do.

    PyTorch (2.13) chooses between oneDNN and its reference kernel (im2col + GEMM, ``slow_conv3d``) with a rule
    written for 2D: one fp32 sample goes to oneDNN only when N·C·D·H > 20480, the last axis not counted. So a
    tile's coarse levels (e.g. 64 channels × 8 × 32 × 32), and any volume long in x and short in y, ran on the
    reference kernel: the default network on one 32×64×64 tile 2.2x and on a 16×32×384 probe 8.5x slower, one
    integrated-cell sample 7x (fp32, 2-core AVX2 CPU; ``benchmarks/labelfree/bench_one_sample.py``). Here those
    calls go to the same oneDNN operator the rule picks for the other shapes (no kernel of our own). Training
    (batches of 8) and bf16 (always oneDNN) are unchanged; traced, scripted and compiled graphs keep the standard
    call, so exported models run on any device.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if _onednn_for_one_sample(input, self):
            padding = cast(tuple[int, int, int], self.padding)
            return torch.ops.aten.mkldnn_convolution(
                input, weight, bias, list(padding), list(self.stride), list(self.dilation), self.groups
            )
        return super()._conv_forward(input, weight, bias)


def _onednn_for_one_sample(x: torch.Tensor, conv: nn.Conv3d) -> bool:
    if torch.is_grad_enabled() or torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False  # (a traced shape is a tensor: nothing below is asked of it)
    # PyTorch's rule sends one sample to oneDNN when C·D·H > 20480 (or grouped / large kernels): those calls
    # are left to it, only the ones it gives the reference kernel are redirected
    n, c, d, h = x.shape[:4]
    return (
        n == 1
        and c * d * h <= 20480
        and conv.groups == 1
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and torch.backends.mkldnn.is_available()
        and bool(torch.backends.mkldnn.enabled)
    )


def planes(x: torch.Tensor) -> torch.Tensor:
    """The z-planes of a channels-last ``(N, C, Z, Y, X)`` tensor as one channels-last ``(N·Z, C, Y, X)`` batch.

    Channels-last 5D is (N, Z, Y, X, C) in memory, so folding z into the batch is a view, in the layout the 2D
    convolution wants: no copies in or out (a copy only when ``x`` was not channels-last).
    """
    n, c, z, y, w = x.shape
    return canonical(x.contiguous(memory_format=CL3D).permute(0, 2, 1, 3, 4).reshape(n * z, c, y, w))


class Planar(nn.Module):
    """Apply a 2D module to every z-plane of ``(N, C, Z, Y, X)`` (z folded into the batch).

    In-plane (1×k×k, and 1×1×1) operations are written this way rather than as ``Conv3d`` with a kernel of depth 1:
    it is the same computation, faster, and avoids crashes of torch 2.13's oneDNN bf16 backward for depth-1
    ``Conv3d`` kernels on CPUs (segfaults at some tensor sizes, seen with AMX).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.inner = module

    channels_last = False  # set by set_channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.per_plane(x, self.inner)

    def per_plane(self, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``fn`` (a 2D operation) applied to every z-plane of ``x``."""
        n, c, z, y, w = x.shape
        if self.channels_last:
            out = fn(planes(x)).contiguous(memory_format=torch.channels_last)  # no-op unless C_in was 1
            return canonical(out.reshape(n, z, *out.shape[1:]).permute(0, 2, 1, 3, 4))
        if z == 1:  # a plain view, no copies
            out = fn(x.reshape(n, c, y, w))
            return out.reshape(n, out.shape[1], 1, *out.shape[2:])
        # contiguous copies: strided (permuted) tensors send oneDNN down slow convolution paths
        out = fn(x.transpose(1, 2).reshape(n * z, c, y, w).contiguous())
        return out.reshape(n, z, *out.shape[1:]).transpose(1, 2).contiguous()

    @property
    def out_channels(self) -> int:
        return int(self.inner.out_channels)  # type: ignore[arg-type]

    @property
    def stride(self) -> tuple[int, int, int]:
        s = self.inner.stride  # type: ignore[union-attr]
        return (1, int(s[0]), int(s[1]))  # type: ignore[index]


class ReLU(nn.ReLU):
    """ReLU in place when no gradient is recorded (inference: one activation fewer in memory), out of place when
    training: an in-place op on the permuted view that :class:`Planar` returns makes autograd rebuild the view's
    history (CopySlices) and run the backward through strided copies, measured 1.1-1.3x slower per step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return torch.relu(x)
        return torch.relu_(x)


def conv_part(conv: nn.Module, x: torch.Tensor, channels: slice, *, bias: bool) -> torch.Tensor:
    """A (stride-1) ``nn.Conv3d`` or :class:`Planar` ``nn.Conv2d`` applied to ``x``, which holds only the input
    channels ``channels`` of the convolution (its share of a concatenated input); ``bias`` adds the bias."""
    inner = conv.inner if isinstance(conv, Planar) else conv
    if not isinstance(inner, nn.Conv2d | nn.Conv3d) or inner.stride not in ((1, 1), (1, 1, 1)):
        raise TypeError(f"expected a stride-1 Conv3d or Planar Conv2d, got {conv}")
    w, b = inner.weight[:, channels], inner.bias if bias else None
    # the module's own call with another weight: subcell's Conv3d keeps its one-sample oneDNN rule
    if isinstance(conv, Planar):
        return conv.per_plane(x, lambda p: inner._conv_forward(p, w, b))
    return inner._conv_forward(x, w, b)


def conv_of_concat(conv: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``conv(torch.cat([a, b], dim=1))`` without the concatenation, for a (stride-1) ``nn.Conv3d`` or a
    :class:`Planar` ``nn.Conv2d``.

    A convolution over concatenated channels is the sum of convolutions of each part with its slice of the
    weight: the same function (up to summation order) and the same gradients, without writing the concatenated
    tensor, or, in backward, the copies that give each part a dense gradient. Measured in training: the 2c→c
    convolution's backward ran at 66 GFLOP/s against 93 for the c→c ones it becomes
    (``benchmarks/labelfree/bench_speed.py``, fp32, 2-core AVX2 CPU).
    """
    ca = a.shape[1]
    return conv_part(conv, a, slice(0, ca), bias=True) + conv_part(conv, b, slice(ca, None), bias=False)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of ``x`` computes in here: autocast's when it is on, else ``x``'s."""
    try:
        on, dtype = torch.is_autocast_enabled(x.device.type), torch.get_autocast_dtype(x.device.type)
    except TypeError:  # torch < 2.4: the CPU-only spelling
        on, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
    return dtype if on else x.dtype


def fusable(conv: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``conv`` (a 2D/3D convolution or transposed convolution, or a channels-last :class:`Planar` one)
    on ``x`` runs with its post-ops as one oneDNN kernel (:func:`conv_relu`): CPU inference in fp32 or bf16,
    outside tracing, scripting and compilation (exported graphs keep the standard operators, so they run
    anywhere)."""
    if isinstance(conv, Planar) and not conv.channels_last:
        return False
    inner = conv.inner if isinstance(conv, Planar) else conv
    kinds = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    if torch.is_grad_enabled() or torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    return (
        x.device.type == "cpu"
        and isinstance(inner, kinds)
        and inner.padding_mode == "zeros"
        and not isinstance(inner.padding, str)
        and _compute_dtype(x) in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and bool(torch.backends.mkldnn.enabled)
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


_RELU = ReLU()  # the unfused path's activation (out of place when recording gradients, in place otherwise)


def conv_relu(
    conv: nn.Module,
    x: torch.Tensor,
    add: torch.Tensor | None = None,
    *,
    relu: bool = True,
    channels: slice | None = None,
) -> torch.Tensor:
    """Inference: ``relu(conv(x) + add)`` (``add`` optional, ``relu=False`` leaves the activation out), for a
    convolution, a transposed convolution (no ``add``) or a :class:`Planar` one, with no norm between (batch
    norms folded, see ``UNet.fused``). ``channels``: ``x`` holds only these input channels of ``conv``
    (:func:`conv_part`), so ``relu(conv(cat([a, b])))`` is ``conv_relu(conv, a, add=conv_part(conv, b, ...),
    channels=...)`` without the concatenation.

    On a CPU the convolution, the addition and the ReLU run as one oneDNN kernel (the sum and the activation are
    post-ops of the convolution), where PyTorch eager runs a separate pass over the output for each: on a 2-core
    CPU with AMX those passes are memory-bound and took as long as a third of the convolutions (the ``relu_``
    calls: 2.3 of 10.5 s of an fnet bf16 prediction, ``benchmarks/labelfree/bench_speed.py``). The operators are
    the ones ``torch.compile`` uses for the same fusion (``torch.ops.mkldnn._convolution_pointwise``); compiling
    itself is slower here. The ReLU alone changes no number; with ``add`` the sum is taken before rounding to bf16
    (one rounding instead of two). Elsewhere (GPU, fp16, autograd, tracing) the same operations run unfused.
    """
    inner = conv.inner if isinstance(conv, Planar) else conv
    transposed = isinstance(inner, nn.ConvTranspose2d | nn.ConvTranspose3d)
    if (add is not None and transposed) or not fusable(conv, x):
        y = conv(x) if channels is None else conv_part(conv, x, channels, bias=True)
        if add is not None:
            y = y + add if torch.is_grad_enabled() else y.add_(add)
        return _RELU(y) if relu else y
    dtype = _compute_dtype(x)
    w = inner.weight if channels is None else inner.weight[:, channels]  # type: ignore[index]
    weight = w.to(dtype)
    bias = None if inner.bias is None else inner.bias.to(dtype)  # type: ignore[union-attr]
    pad, stride, dil = (list(cast(tuple[int, ...], getattr(inner, k))) for k in ("padding", "stride", "dilation"))
    groups = int(inner.groups)  # type: ignore[arg-type]
    act = "relu" if relu else None
    ops = torch.ops.mkldnn

    def fused(t: torch.Tensor, other: torch.Tensor | None) -> torch.Tensor:
        t = t.to(dtype)
        if transposed:
            out_pad = list(cast(tuple[int, ...], inner.output_padding))
            return ops._convolution_transpose_pointwise(
                t, weight, bias, pad, out_pad, stride, dil, groups, act or "none", [], ""
            )
        # (the unary operators spell "no activation" "none", the binary one None)
        if other is None:
            return ops._convolution_pointwise(t, weight, bias, pad, stride, dil, groups, act or "none", [], "")
        other = other.to(dtype)
        return ops._convolution_pointwise.binary(t, other, weight, bias, pad, stride, dil, groups, "add", None,
                                                 act, [], None)  # fmt: skip

    if isinstance(conv, Planar):
        folded_add = None if add is None else planes(add)
        return conv.per_plane(x, lambda p: fused(p, folded_add))
    return fused(x, add)


def conv3(c_in: int, c_out: int, *, iso: bool, bias: bool) -> nn.Module:
    if iso:
        return Conv3d(c_in, c_out, 3, padding=1, bias=bias)
    return Planar(nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias))


def norm_for(kind: str, channels: int, iso: bool) -> nn.Module:
    if kind == "batch" and not iso:
        return Planar(nn.BatchNorm2d(channels))  # same statistics as BatchNorm3d: over N, Z, Y, X
    return _norm(kind, channels)


class ConvBlock(nn.Module):
    """Two 3×3×3 (or 1×3×3) convolutions with norm + ReLU; ``residual`` adds a projected shortcut."""

    def __init__(self, c_in: int, c_out: int, *, iso: bool, norm: str, residual: bool) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = conv3(c_in, c_out, iso=iso, bias=bias)
        self.norm1 = norm_for(norm, c_out, iso)
        self.conv2 = conv3(c_out, c_out, iso=iso, bias=bias)
        self.norm2 = norm_for(norm, c_out, iso)
        self.act = ReLU()
        self.residual = residual
        self.skip: nn.Module = nn.Identity()
        if residual and c_in != c_out:
            self.skip = Planar(nn.Conv2d(c_in, c_out, 1, bias=False))  # 1×1×1, see Planar

    channels_last = False  # set by set_channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        if self.channels_last:  # a 1-channel input leaves the layout ambiguous and oneDNN answers channels-first
            y = y.contiguous(memory_format=CL3D)
        return self._rest(y, lambda: self.skip(x))

    def forward_concat(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The block on ``torch.cat([a, b], dim=1)`` without building the concatenation (:func:`conv_of_concat`)."""
        y = conv_of_concat(self.conv1, a, b)

        def shortcut() -> torch.Tensor:
            if isinstance(self.skip, nn.Identity):
                return torch.cat([a, b], dim=1)
            return conv_of_concat(self.skip, a, b)

        return self._rest(y, shortcut)

    def forward_consuming(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Inference only: the block on ``torch.cat(parts, dim=1)``, emptying ``parts`` and releasing every input
        as soon as it is used (the concatenation after the shortcut and the first convolution, the shortcut after an
        in-place addition).

        The same operations as :meth:`forward` in the same order of arithmetic, so the same numbers; the peak is
        the concatenation's two inputs and itself (4 c for a decoder level, against 7 c with every input held until
        the block returns, as :meth:`forward` called with references held by the caller does). What sets the
        tile size a memory budget allows (:meth:`subcell.labelfree.network.UNet.activation_bytes_per_voxel`).
        Without norms (batch norms folded for inference), each convolution runs with its ReLU, and the second
        with the shortcut's addition, as one kernel (:func:`conv_relu`).
        """
        folded = isinstance(self.norm1, nn.Identity) and isinstance(self.norm2, nn.Identity)
        plain_shortcut = self.residual and isinstance(self.skip, nn.Identity)  # needs the concatenation itself
        if folded and len(parts) == 2 and fusable(self.conv1, parts[0]) and not plain_shortcut:
            return self._consume_two_fused(parts)
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        parts.clear()
        s = self.skip(x) if self.residual else None
        if folded:  # batch norms folded: each convolution with its ReLU (and the shortcut) as one kernel
            y = conv_relu(self.conv1, x)
            del x
            if self.channels_last:
                y = y.contiguous(memory_format=CL3D)
            return conv_relu(self.conv2, y, add=s)
        y = self.conv1(x)
        del x
        if self.channels_last:
            y = y.contiguous(memory_format=CL3D)
        y = self.act(self.norm1(y))
        y = self.norm2(self.conv2(y))
        if s is not None:
            y += s
            del s
        return self.act(y)

    def _consume_two_fused(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """:meth:`forward_consuming` of a decoder level (skip, upsampled) with fused kernels and no concatenation:
        each convolution over the two parts is the second part's share (:func:`conv_part`), then the first's with
        that sum, the bias and the ReLU as post-ops of one kernel. At most four c-channel tensors at a time, as the
        concatenation held (its two inputs and itself)."""
        a, b = parts
        parts.clear()
        ca = a.shape[1]
        first, second = slice(0, ca), slice(ca, None)
        s = None
        if self.residual:
            s = conv_relu(self.skip, a, add=conv_part(self.skip, b, second, bias=False), relu=False, channels=first)
        t = conv_part(self.conv1, b, second, bias=False)
        del b
        y = conv_relu(self.conv1, a, add=t, channels=first)
        del a, t
        if self.channels_last:
            y = y.contiguous(memory_format=CL3D)
        return conv_relu(self.conv2, y, add=s)

    def _rest(self, y: torch.Tensor, shortcut: Callable[[], torch.Tensor]) -> torch.Tensor:
        y = self.act(self.norm1(y))
        y = self.norm2(self.conv2(y))
        if self.residual:
            y = y + shortcut()
        return self.act(y)


def set_channels_last(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Lay ``module`` out channels-last (or back to channels-first), in place; returns it.

    Convolution weights become ``channels_last_3d`` (5D) / ``channels_last`` (4D), and :class:`Planar` and
    :class:`ConvBlock` keep activations channels-last, so a network runs in one layout from input to output.
    Channels-last is what oneDNN's and cuDNN's fastest convolutions use; measured in
    ``benchmarks/labelfree/bench_speed.py`` (1.3-1.4x for training and inference on a CPU, numerics unchanged
    up to summation order). Parameters keep their layout through ``load_state_dict`` and ``.to(device)``.
    """
    for sub in module.modules():
        if isinstance(sub, Planar | ConvBlock):
            sub.channels_last = enabled
        for p in sub.parameters(recurse=False):
            if p.dim() in (4, 5):
                fmt = (torch.channels_last if p.dim() == 4 else CL3D) if enabled else torch.contiguous_format
                p.data = p.data.contiguous(memory_format=fmt)
    return module
