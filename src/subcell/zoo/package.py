"""Run a bioimage.io model package through subcell's tiled, streamed, memory-bounded prediction.

:func:`load_package` reads a package (``.zip`` or ``rdf.yaml``) with ``bioimageio.spec`` and returns a
:class:`PackagedModel`, which :func:`subcell.labelfree.predict_to_zarr` and friends use like a subcell model:
its input preprocessing is applied to the whole (model-grid) stack before tiling, its tiles honour the
package's size constraints (``min + k·step``), its declared output halo is trimmed from every inner tile edge,
and its point-wise postprocessing is applied to the blended output. One 3D input and one output only.

The preprocessing and postprocessing operations are re-implemented here (not taken from ``bioimageio.core``)
because core applies them to whole in-memory samples, while subcell streams statistics and rows of a volume
that need not fit in memory; each one is checked against the package's own test tensors when it is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from subcell.errors import InputFileError
from subcell.image import VoxelSize
from subcell.zoo.common import bioimageio_cache, quiet_torchscript

__all__ = ["PackagedModel", "load_package"]

UNITS_UM = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "meter": 1e6, "angstrom": 1e-4}
# activations per input voxel of an unknown network (bytes at fp32), for choosing tiles: ten times a 16-channel
# first level, a generous figure for the small 3D U-Nets of the model zoo (ours measure 7 × 16 + deeper levels)
UNKNOWN_BYTES_PER_VOXEL = 4 * 16 * 10
POINTWISE_POST = {"scale_linear", "clip", "sigmoid", "binarize", "ensure_dtype"}


class _ScriptedNetwork(torch.nn.Module):
    """A package's network behind the interface prediction uses: ``(B, 1, Z, Y, X)`` in, ``(B, C, Z, Y, X)`` out;
    the package's own axis order (no batch axis, channel last, ...) is handled here."""

    def __init__(self, net: torch.nn.Module, in_axes: list[str], out_axes: list[str], bytes_per_voxel: float):
        super().__init__()
        self.net = net
        self.in_axes, self.out_axes = in_axes, out_axes
        self.bytes_per_voxel = bytes_per_voxel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if "b" in self.in_axes:
            return _to_axes(self.net(_to_axes(x, "bczyx", self.in_axes)), self.out_axes, "bczyx").float()
        # no batch axis: one sample at a time
        outs = [_to_axes(self.net(_to_axes(item[None], "bczyx", self.in_axes)), self.out_axes, "bczyx") for item in x]
        return torch.cat(outs).float()

    def fused(self) -> _ScriptedNetwork:
        return self

    def activation_bytes_per_voxel(self, *, batch: int = 1, itemsize: int = 4) -> float:
        return self.bytes_per_voxel * batch * itemsize / 4


def _to_axes(t: torch.Tensor, src: list[str] | str, dst: list[str] | str) -> torch.Tensor:
    """Reorder (and add or drop length-1) axes from ``src`` to ``dst`` letters."""
    src, dst = list(src), list(dst)
    for a in [a for a in src if a not in dst]:
        t = t.squeeze(src.index(a))
        src.remove(a)
    for a in [a for a in dst if a not in src]:
        t = t.unsqueeze(0)
        src.insert(0, a)
    return t.permute([src.index(a) for a in dst])


@dataclass
class PackagedModel:
    """A bioimage.io package as subcell's predictor sees it (see the module docstring)."""

    network: _ScriptedNetwork
    input_channel: str
    targets: list[str]
    voxel_size: VoxelSize
    minimum: tuple[int, int, int]
    step: tuple[int, int, int]
    halo: tuple[int, int, int]
    preprocessing: list[tuple[str, dict[str, Any]]]
    postprocessing: list[tuple[str, dict[str, Any]]]
    source: Path
    name: str = ""
    voxel_size_known: bool = True
    cell_conditioned: bool = False  # a package has one image input
    uncertainty: bool = False
    is_2d: bool = False
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def divisor(self) -> tuple[int, int, int]:
        return tuple(s or m for s, m in zip(self.step, self.minimum, strict=True))  # type: ignore[return-value]

    @property
    def patch_size(self) -> tuple[int, int, int]:
        """The smallest tile prediction uses: a subcell package's training patch, else the package's minimum."""
        patch = self.training.get("patch_size")
        return tuple(patch) if patch else self.minimum  # type: ignore[return-value]

    @property
    def tile_rule(self) -> str:
        return f"per axis minimum + k·step, {self.minimum} + k·{self.step}"

    def valid_tile(self, tile: tuple[int, ...]) -> tuple[int, int, int]:
        """The smallest size the package accepts at or above ``tile``, per axis."""
        return tuple(  # type: ignore[return-value]
            m if s == 0 else m + max(0, math.ceil((t - m) / s)) * s
            for t, m, s in zip(tile, self.minimum, self.step, strict=True)
        )

    @property
    def percentiles(self) -> list[float]:
        return [float(kw[k]) for op, kw in self.preprocessing if op == "scale_range" for k in ("min_percentile",
                "max_percentile")]  # fmt: skip

    def preprocess(self, rows: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
        """Apply the package's preprocessing to rows, with statistics of the whole stack."""
        for op, kw in self.preprocessing:
            if op == "zero_mean_unit_variance":
                rows = (rows - stats["mean"]) / (stats["std"] + float(kw.get("eps", 1e-6)))
            elif op == "fixed_zero_mean_unit_variance":
                rows = (rows - _scalar(kw["mean"])) / (_scalar(kw["std"]) + float(kw.get("eps", 1e-6)))
            elif op == "scale_range":
                lo = stats["percentiles"][float(kw.get("min_percentile", 0.0))]
                hi = stats["percentiles"][float(kw.get("max_percentile", 100.0))]
                rows = (rows - lo) / (hi - lo + float(kw.get("eps", 1e-6)))
            else:
                rows = _pointwise(op, kw, rows)
        return rows.astype(np.float32, copy=False)

    def postprocess(self, rows: np.ndarray) -> np.ndarray:
        for op, kw in self.postprocessing:
            rows = _pointwise(op, kw, rows)
        return rows.astype(np.float32, copy=False)


def _scalar(v: Any) -> float:
    vals = np.atleast_1d(np.asarray(v, np.float64))
    if vals.size != 1:
        raise ValueError("per-channel values on a single-channel tensor")
    return float(vals[0])


def _pointwise(op: str, kw: dict[str, Any], rows: np.ndarray) -> np.ndarray:
    if op == "scale_linear":
        return rows * _scalar(kw.get("gain", 1.0)) + _scalar(kw.get("offset", 0.0))
    if op == "clip":
        return np.clip(rows, kw.get("min"), kw.get("max"))
    if op == "sigmoid":
        from scipy.special import expit  # the sigmoid a subcell probability model applies too

        return expit(rows)
    if op == "binarize":
        return (rows > _scalar(kw["threshold"])).astype(np.float32)
    if op == "ensure_dtype":
        return rows if kw.get("dtype", "float32") in ("float32", "float64") else rows.astype(kw["dtype"])
    raise ValueError(f"operation {op!r} is not supported")


def _ops(steps: Any, where: str, allowed: set[str], path: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for step in steps or []:
        op = str(step.id)
        kw = step.kwargs.model_dump(mode="json") if hasattr(step, "kwargs") else {}
        if op not in allowed:
            raise InputFileError(
                f"{where} operation {op!r} is not supported (supported: {', '.join(sorted(allowed))})", path=path
            )
        axes = kw.get("axes")
        if op == "zero_mean_unit_variance" and axes is not None and not {"z", "y", "x"} <= set(map(str, axes)):
            raise InputFileError(f"{where} {op} over axes {axes}: only whole-stack (z, y, x) statistics are supported",
                                 path=path)  # fmt: skip
        out.append((op, kw))
    return out


PRE = {"zero_mean_unit_variance", "fixed_zero_mean_unit_variance", "scale_range"} | POINTWISE_POST


def load_package(path: str | Path, *, device: str | torch.device = "cpu", verify: bool = True) -> PackagedModel:
    """Read a bioimage.io model package; with ``verify`` its test input must reproduce its test output."""
    bioimageio_cache()
    from bioimageio.spec import InvalidDescr, load_model_description
    from bioimageio.spec.model import v0_5

    path = Path(path)
    if not path.exists():
        raise InputFileError("no such bioimage.io package", path=path)
    try:
        descr = load_model_description(path, format_version="discover", perform_io_checks=False)
    except (ValueError, OSError) as exc:  # bioimageio.spec raises on an invalid description
        lines = [ln.strip(" -") for ln in str(exc).splitlines() if ln.strip()]
        raise InputFileError(f"not a valid bioimage.io model: {'; '.join(lines[:3])}", path=path) from None
    if isinstance(descr, InvalidDescr):
        first = next((e.msg for e in descr.validation_summary.details[0].errors), "invalid description")
        raise InputFileError(f"not a valid bioimage.io model: {first.splitlines()[0]}", path=path)
    if not isinstance(descr, v0_5.ModelDescr):
        raise InputFileError(
            f"bioimage.io spec {descr.format_version} is not supported (0.5 is); update the package with "
            "bioimageio.spec.update_format",
            path=path,
        )
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise InputFileError(
            f"package has {len(descr.inputs)} inputs and {len(descr.outputs)} outputs; one of each is supported",
            path=path,
        )
    inp, out = descr.inputs[0], descr.outputs[0]
    in_axes, minimum, step, vs, known, channel = _input_axes(inp, path)
    out_axes, names, halo = _output_axes(out, inp, in_axes, path)
    net, kind = _weights(descr, path, device)
    model = PackagedModel(
        network=_ScriptedNetwork(net, in_axes, out_axes, _bytes_per_voxel(descr)),
        input_channel=channel,
        targets=names,
        voxel_size=vs,
        minimum=minimum,
        step=step,
        halo=halo,
        preprocessing=_ops(inp.preprocessing, "preprocessing", PRE, path),
        postprocessing=_ops(out.postprocessing, "postprocessing", POINTWISE_POST, path),
        source=path,
        name=descr.name,
        voxel_size_known=known,
        training={"weights": kind, "bioimageio": str(descr.id or descr.name), **_subcell_patch(descr, minimum, step)},
    )
    if verify:
        _verify(model, inp, out, path)
    return model


def _bytes_per_voxel(descr: Any) -> float:
    recorded = (descr.config.model_dump().get("subcell") or {}).get("activation_bytes_per_voxel")
    return float(recorded) if recorded else UNKNOWN_BYTES_PER_VOXEL


def _subcell_patch(descr: Any, minimum: tuple[int, ...], step: tuple[int, ...]) -> dict[str, Any]:
    """The training patch a subcell-exported package records, when it is a valid tile for the package."""
    patch = ((descr.config.model_dump().get("subcell") or {}).get("model") or {}).get("patch_size")
    ok = patch and all(p >= m and ((s == 0 and p == m) or (s and (p - m) % s == 0))
                       for p, m, s in zip(patch, minimum, step, strict=True))  # fmt: skip
    return {"patch_size": list(patch)} if ok and patch else {}


def _input_axes(
    inp: Any, path: Path
) -> tuple[list[str], tuple[int, int, int], tuple[int, int, int], VoxelSize, bool, str]:
    from bioimageio.spec.model import v0_5

    letters: list[str] = []
    sizes: dict[str, tuple[int, int]] = {}
    scales: dict[str, float] = {}
    channel = str(inp.id)  # a package without a channel axis names its one input by the tensor id
    known = True
    for ax in inp.axes:
        kind = ax.type
        if kind == "batch":
            letters.append("b")
        elif kind == "channel":
            if len(ax.channel_names) != 1:
                raise InputFileError(f"input has {len(ax.channel_names)} channels; one is supported", path=path)
            letters.append("c")
            channel = str(ax.channel_names[0])
        elif kind == "space" and str(ax.id) in "zyx":
            a = str(ax.id)
            letters.append(a)
            if isinstance(ax.size, int):
                sizes[a] = (ax.size, 0)
            elif isinstance(ax.size, v0_5.ParameterizedSize):
                sizes[a] = (ax.size.min, ax.size.step)
            else:
                raise InputFileError(f"input axis {a}: size {ax.size} is not supported", path=path)
            unit = str(ax.unit) if ax.unit else None
            if unit not in UNITS_UM:
                known = False
            scales[a] = ax.scale * UNITS_UM.get(unit or "", 1.0)
        else:
            raise InputFileError(f"input axis {kind} {getattr(ax, 'id', '')}: only b, c, z, y, x are supported",
                                 path=path)  # fmt: skip
    if set(sizes) != {"z", "y", "x"}:
        raise InputFileError(f"input axes {letters}: a 3D (z, y, x) model is needed", path=path)
    minimum = tuple(sizes[a][0] for a in "zyx")
    step = tuple(sizes[a][1] for a in "zyx")
    vs = VoxelSize(*(scales[a] for a in "zyx"))
    return letters, minimum, step, vs, known, channel  # type: ignore[return-value]


def _output_axes(
    out: Any, inp: Any, in_axes: list[str], path: Path
) -> tuple[list[str], list[str], tuple[int, int, int]]:
    from bioimageio.spec.model import v0_5

    letters: list[str] = []
    names = [str(out.id)]
    halo = {"z": 0, "y": 0, "x": 0}
    for ax in out.axes:
        if ax.type == "batch":
            letters.append("b")
        elif ax.type == "channel":
            letters.append("c")
            names = [str(n) for n in ax.channel_names]
        elif ax.type == "space" and str(ax.id) in "zyx":
            a = str(ax.id)
            letters.append(a)
            same = isinstance(ax.size, v0_5.SizeReference) and str(ax.size.tensor_id) == str(inp.id) and str(
                ax.size.axis_id) == a and not ax.size.offset  # fmt: skip
            in_scale = next(x.scale for x in inp.axes if getattr(x, "id", None) == ax.id)
            if not same or not math.isclose(ax.scale, in_scale):
                raise InputFileError(
                    f"output axis {a}: only outputs the size and scale of the input are supported", path=path
                )
            halo[a] = int(getattr(ax, "halo", 0) or 0)
        else:
            raise InputFileError(f"output axis {ax.type}: only b, c, z, y, x are supported", path=path)
    if ("b" in letters) != ("b" in in_axes):
        raise InputFileError("input and output disagree on a batch axis", path=path)
    return letters, names, (halo["z"], halo["y"], halo["x"])


def _weights(descr: Any, path: Path, device: str | torch.device) -> tuple[torch.nn.Module, str]:
    import io

    from bioimageio.spec.utils import download

    w = descr.weights
    if w.torchscript is not None:
        data = download(w.torchscript.source).read()
        with quiet_torchscript():
            return torch.jit.load(io.BytesIO(data), map_location=device).eval(), "torchscript"
    if w.pytorch_state_dict is not None:
        from bioimageio.core.digest_spec import import_callable

        arch = w.pytorch_state_dict.architecture
        net = import_callable(arch)(**dict(arch.kwargs))
        state = torch.load(io.BytesIO(download(w.pytorch_state_dict.source).read()), map_location=device,
                           weights_only=True)  # fmt: skip
        net.load_state_dict(state)
        return net.to(device).eval(), "pytorch_state_dict"
    formats = [k for k, v in w.model_dump().items() if v is not None]
    raise InputFileError(f"weights {formats}: torchscript or pytorch_state_dict are needed", path=path)


def _verify(model: PackagedModel, inp: Any, out: Any, path: Path) -> None:
    """The package's test input, run through :func:`subcell.labelfree.predict_image` as any image would be
    (whole-stack statistics, tiles, postprocessing), must give its test output."""
    from bioimageio.spec.utils import load_array

    from subcell.image import Image
    from subcell.labelfree.config import PredictConfig
    from subcell.labelfree.predict import predict_image

    net = model.network
    x5 = _to_axes(torch.from_numpy(np.asarray(load_array(inp.test_tensor), np.float32)), net.in_axes, "bczyx")
    y5 = _to_axes(torch.from_numpy(np.asarray(load_array(out.test_tensor), np.float32)), net.out_axes, "bczyx")
    image = Image(x5.numpy(), voxel_size=model.voxel_size, channel_names=[model.input_channel])  # batch → T
    dev = next((p.device for p in net.parameters()), torch.device("cpu"))
    pred = predict_image(model, image, PredictConfig(precision="fp32", device=str(dev))).numpy()  # type: ignore[arg-type]
    if pred.shape != tuple(y5.shape):
        raise InputFileError(f"weights give an output of shape {pred.shape} for the test input; the package's test "
                             f"output is {tuple(y5.shape)}", path=path)  # fmt: skip
    y = y5.numpy()
    bad = np.abs(pred - y) > 1e-4 + 1e-3 * np.abs(y)
    if bad.mean() > 1e-4:
        raise InputFileError(
            f"weights do not reproduce the package's test output ({bad.mean():.1%} of values differ by more than "
            f"1e-3 relative, largest {float(np.abs(pred - y).max()):.3g})",
            path=path,
        )
