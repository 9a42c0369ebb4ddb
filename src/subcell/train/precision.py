"""Device and mixed-precision choice: bf16 autocast on CPUs with bf16 support, bf16/fp16 AMP on GPUs."""

from __future__ import annotations

import warnings
from typing import Literal

import torch

from subcell.errors import ValueRangeError

__all__ = ["Precision", "autocast_dtype", "cpu_has_bf16", "precision_name", "resolve_device"]

Precision = Literal["auto", "fp32", "bf16", "fp16"]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA if available, else MPS, else CPU; a requested device that is absent is an error."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueRangeError("CUDA was requested but no CUDA device is available", field="device")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueRangeError("MPS was requested but is not available on this machine", field="device")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise ValueRangeError(f"expected cpu, cuda[:N], mps or auto, got {device!r}", field="device")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """True when this CPU has native bf16 arithmetic (AVX512-BF16 or AMX), so bf16 autocast is faster."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device, precision: Precision = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; ``None`` means full fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueRangeError("this GPU has no bf16 arithmetic; use fp16 or fp32", field="precision")
        if device.type == "cpu" and not cpu_has_bf16():
            warnings.warn(
                "bf16 requested on a CPU without native bf16 (AVX512-BF16 or AMX): it is emulated and slower than "
                "fp32; --precision auto picks fp32 here",
                UserWarning,
                stacklevel=2,
            )
        return torch.bfloat16
    if precision == "fp16":
        if device.type == "cpu":
            raise ValueRangeError("fp16 autocast is for GPUs; use bf16 or fp32 on a CPU", field="precision")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_bf16() else None
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """``fp32``, ``bf16`` or ``fp16``: what a run actually computed in (reported in every output's provenance)."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))
