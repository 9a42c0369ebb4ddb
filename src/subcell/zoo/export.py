"""Export a label-free model as a bioimage.io model package (spec 0.5), the BioImage Model Zoo's format.

The package holds the network twice — TorchScript (runs with torch alone) and a ``pytorch_state_dict`` whose
architecture is :class:`subcell.zoo.network.PackagedUNet` — the z-score preprocessing subcell applies, axes in
micrometres, a test input cut from a sample image with the output the weights compute for it, a cover image and
a README with the training data, validation numbers and citations. bioimage.io's own libraries write the zip
(``bioimageio.spec``) and test it (``bioimageio.core.test_model``) before it is moved into place: a package
that does not reproduce its own test output is never left behind.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from subcell._version import __version__
from subcell.errors import ChannelError, ValueRangeError
from subcell.image import SAME_GRID_RTOL, Image
from subcell.labelfree.model import LabelFreeModel
from subcell.labelfree.predictor import output_channel_names
from subcell.zoo.common import (
    ExportResult,
    check_package_output,
    jsonable,
    save_weights,
    validated,
    weights_descr,
    write_package,
)

__all__ = ["EPS", "export_labelfree"]

EPS = 1e-6  # bioimage.io's zero_mean_unit_variance divides by (std + eps); the test output is computed the same way
CITATIONS = [
    ("Ounkomol et al. (2018) Label-free prediction of three-dimensional fluorescence images from transmitted-light "
     "microscopy. Nature Methods 15, 917-920", "10.1038/s41592-018-0111-2"),
    ("Çiçek et al. (2016) 3D U-Net: learning dense volumetric segmentation from sparse annotation. MICCAI",
     "10.1007/978-3-319-46723-8_49"),
]  # fmt: skip


def _valid_size(n: int, minimum: int, step: int) -> int:
    """The largest ``minimum + k * step`` not above ``n`` (0 when ``n < minimum``)."""
    return 0 if n < minimum else minimum + (n - minimum) // step * step


def _test_input(model: LabelFreeModel, sample: Image, minimum: tuple[int, ...], step: tuple[int, ...]) -> np.ndarray:
    """A raw (not normalised) ``(Z, Y, X)`` crop from the middle of the sample at the model's voxel size."""
    from subcell.transforms.resample import resample_image

    source = sample.provenance.source or "sample"
    if sample.shape[1] == 1:
        c = 0
    else:
        try:
            c = sample.channel_index(model.input_channel)
        except ChannelError:
            raise ChannelError(
                f"sample has channels {list(sample.channel_names)}; the model's input is {model.input_channel!r}",
                path=source,
                field="channel",
            ) from None
    img = sample.sel(t=0, channel=c)
    if not img.voxel_size.isclose(model.voxel_size, rtol=SAME_GRID_RTOL):
        img = resample_image(_middle(img, model, minimum), model.voxel_size)
    vol = np.asarray(img.numpy()[0, 0], np.float32)
    if not np.all(np.isfinite(vol)):
        raise ValueRangeError("sample contains NaN or Inf values", field=f"{source}: channel {model.input_channel}")
    want = tuple(min(s, max(p, m)) for s, p, m in zip(vol.shape, model.patch_size, minimum, strict=True))
    size = tuple(_valid_size(w, m, st) for w, m, st in zip(want, minimum, step, strict=True))
    if 0 in size:
        raise ValueRangeError(
            f"sample is {vol.shape} voxels at the model's voxel size; a test input needs at least {minimum}",
            field=f"{source}: shape",
        )
    start = [(s - n) // 2 for s, n in zip(vol.shape, size, strict=True)]
    return np.ascontiguousarray(vol[tuple(slice(a, a + n) for a, n in zip(start, size, strict=True))])


def _middle(img: Image, model: LabelFreeModel, minimum: tuple[int, ...]) -> Image:
    """The part of ``img`` that resampling to the model's grid needs for the middle test crop, cut before
    resampling (a whole large sample resampled at once would cost its full size in memory, lazy or not)."""
    from subcell.transforms.resample import resampled_shape, source_rows

    src, dst = img.voxel_size.as_tuple(), model.voxel_size.as_tuple()
    out = resampled_shape(img.shape, src, dst)
    index = []
    for n_in, n_out, p, m, s, d in zip(img.shape[-3:], out, model.patch_size, minimum, src, dst, strict=True):
        want = max(p, m) + 4  # the crop on the model grid and 2 voxels either side
        lo = max(0, (n_out - want) // 2)
        a, b = source_rows(lo, min(n_out, lo + want), n_in=n_in, voxel_z=s, target_voxel_z=d)  # with the
        index.append(slice(a, b))  # anti-aliasing and interpolation reach, per axis
    if all(sl.start == 0 and sl.stop == n for sl, n in zip(index, img.shape[-3:], strict=True)):
        return img
    return img.with_data(img.data[(Ellipsis, *index)], step="crop",
                         parameters={"zyx": [[sl.start, sl.stop] for sl in index]})  # fmt: skip


def _spec_halo(halo: int, scale: float) -> int:
    """The smallest halo >= ``halo`` the spec accepts: it recomputes the input's halo as ``halo * scale / scale``
    in floating point and refuses 6.000000000000001 (6 at 0.4 µm)."""
    while halo and halo * scale / scale != int(halo * scale / scale):
        halo += 1
    return halo


def _zscore(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean()) / (x.std() + EPS)).astype(np.float32)


def _cover(model: LabelFreeModel, test_in: np.ndarray, test_out: np.ndarray, names: list[str]) -> bytes:
    """Input and the first predictions in orthogonal views at physical aspect (the report's figure)."""
    from subcell.plotting import orthoviews_png

    panels = {"bright-field": test_in} | {n: test_out[i] for i, n in enumerate(names[:3])}
    return orthoviews_png(panels, model.voxel_size.as_tuple(), columns=4)


def _readme(model: LabelFreeModel, name: str, test_shape: tuple[int, ...]) -> str:
    t = model.training
    val = t.get("validation") or {}
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in val.items() if isinstance(v, float))
    data = t.get("data") or ", ".join(t.get("train_images", [])) or "not recorded"
    return (
        f"""# {name}

Label-free prediction of {", ".join(model.targets)} from a bright-field z-stack, exported by subcell {__version__}.

- Input: one channel ({model.input_channel}), voxel size (z, y, x) {model.voxel_size.as_tuple()} µm, z-scored
  over the whole stack (`zero_mean_unit_variance` over z, y, x). Predict on stacks at this voxel size.
- Output: {", ".join(output_channel_names(model))} in z-score units of the training targets.
- Network: subcell U-Net {json.dumps(model.network_config.model_dump(mode="json"))}, trained on patches
  {tuple(model.patch_size)}; tiles must be multiples of {model.divisor} (z, y, x).
- Test tensors: a {test_shape} crop of the sample given at export and the output these weights compute for it.

## Training data
{data}

Steps: {t.get("steps", "?")}, seconds: {t.get("seconds", "?")}, device: {t.get("device", "?")}.

## Validation (last validation of training)
| measure | value |
|---|---|
{rows or "| none recorded | |"}

## How to run
`subcell labelfree predict IMAGE OUT.ome.zarr --model THIS.zip` (tiled, memory-bounded), or any bioimage.io
runner (`bioimageio predict`, deepImageJ, ilastik) with the TorchScript weights.

## Cite
"""
        + "\n".join(f"- {c} doi:{d}" for c, d in CITATIONS)
        + "\n"
    )


def export_labelfree(
    model: LabelFreeModel,
    sample: Image,
    output: str | Path,
    *,
    name: str | None = None,
    authors: list[str] | None = None,
    license: str = "BSD-3-Clause",
    overwrite: bool = False,
    test: bool = True,
) -> ExportResult:
    """Write ``output`` (a ``.zip`` bioimage.io package) from ``model``; ``sample`` provides the test input."""
    from bioimageio.spec.model import v0_5

    if model.cell_conditioned:  # bioimage.io runners feed one input tensor; the cell depth is computed by subcell
        raise ValueRangeError("the model takes the cell outlines as a second input, which a bioimage.io package's "
                              "single image input cannot carry; share the model folder instead", field="model")  # fmt: skip
    output = check_package_output(output, license=license, overwrite=overwrite)
    div = model.divisor
    # how far tile edges reach into the output (measured on the weights; what subcell's own predictor trims)
    halo = tuple(_spec_halo(h, s) for h, s in zip(model.halo, model.voxel_size.as_tuple(), strict=True))
    minimum = tuple(d * (2 * h // d + 1) for d, h in zip(div, halo, strict=True))
    test_in = _test_input(model, sample, minimum, div)
    packaged = _packaged(model)
    names = output_channel_names(model)
    with torch.inference_mode():
        test_out = model.postprocess(packaged(torch.from_numpy(_zscore(test_in))[None, None]).numpy())
    name = name or f"subcell label-free {' '.join(model.targets)}"
    vs = model.voxel_size.as_tuple()
    with tempfile.TemporaryDirectory() as tmpdir:
        d = Path(tmpdir)
        np.save(d / "test_input.npy", test_in[None, None])
        np.save(d / "test_output.npy", test_out)
        (d / "cover.png").write_bytes(_cover(model, test_in, test_out[0], names))
        (d / "README.md").write_text(_readme(model, name, test_in.shape))
        # shapes are not baked in: the U-Net has no shape-dependent branches (tested)
        example = torch.from_numpy(_zscore(test_in))[None, None]
        save_weights(d, packaged, _packaged(model, fused=True), example)
        in_axes: list[Any] = [v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=[v0_5.Identifier("brightfield")])]
        out_axes: list[Any] = [v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=[v0_5.Identifier(n) for n in names])]
        for ax, s, m, st, h in zip("zyx", vs, minimum, div, halo, strict=True):
            in_axes.append(
                v0_5.SpaceInputAxis(
                    id=v0_5.AxisId(ax), size=v0_5.ParameterizedSize(min=m, step=st), scale=s, unit="micrometer"
                )
            )
            ref = v0_5.SizeReference(tensor_id=v0_5.TensorId("brightfield"), axis_id=v0_5.AxisId(ax))
            out_axes.append(
                v0_5.SpaceOutputAxisWithHalo(id=v0_5.AxisId(ax), size=ref, halo=h, scale=s, unit="micrometer")
                if h  # the spec's halo is >= 1; no halo is a plain output axis
                else v0_5.SpaceOutputAxis(id=v0_5.AxisId(ax), size=ref, scale=s, unit="micrometer")
            )
        zscore = v0_5.ZeroMeanUnitVarianceDescr(
            kwargs=v0_5.ZeroMeanUnitVarianceKwargs(axes=[v0_5.AxisId(a) for a in "zyx"], eps=EPS)
        )
        arch = v0_5.ArchitectureFromLibraryDescr(
            callable=v0_5.Identifier("PackagedUNet"),
            import_from="subcell.zoo.network",
            kwargs={
                "network": model.network_config.model_dump(mode="json"),
                "out_channels": len(model.targets),
                "uncertainty": model.uncertainty,
            },
        )
        descr = validated(
            v0_5.ModelDescr,
            name=name,
            description=f"Label-free prediction of {', '.join(model.targets)} from bright-field (subcell).",
            authors=[v0_5.Author(name=a) for a in (authors or ["subcell developers"])],
            cite=[v0_5.CiteEntry(text=c, doi=v0_5.Doi(doi)) for c, doi in CITATIONS],
            license=license,  # type: ignore[arg-type]
            documentation=v0_5.FileDescr(source=d / "README.md"),
            covers=[v0_5.FileDescr(source=d / "cover.png")],
            tags=["label-free", "bright-field", "3d", "unet", "pytorch", "subcell", *model.targets],
            inputs=[
                v0_5.InputTensorDescr(
                    id=v0_5.TensorId("brightfield"),
                    axes=in_axes,
                    test_tensor=v0_5.FileDescr(source=d / "test_input.npy"),
                    preprocessing=[zscore],
                    data=v0_5.IntervalOrRatioDataDescr(type="float32"),
                )
            ],
            outputs=[
                v0_5.OutputTensorDescr(
                    id=v0_5.TensorId("prediction"),
                    axes=out_axes,
                    test_tensor=v0_5.FileDescr(source=d / "test_output.npy"),
                    data=v0_5.IntervalOrRatioDataDescr(type="float32"),
                    # a segmentation-loss model's network ends with logits (as the folder model's does)
                    postprocessing=[v0_5.SigmoidDescr()] if model.predicts_probability else [],
                )
            ],
            weights=weights_descr(d, arch),
            config={
                "subcell": {
                    "version": __version__,
                    "model": jsonable(model.metadata()),
                    # lets subcell choose the same tiles for the package as for the folder model
                    "activation_bytes_per_voxel": model.network.activation_bytes_per_voxel(itemsize=4),
                }
            },
        )
        seconds = write_package(descr, output, test=test)
    return ExportResult(output, output.stat().st_size, seconds, tuple(test_in.shape))


def _packaged(model: LabelFreeModel, *, fused: bool = False) -> torch.nn.Module:
    from subcell.zoo.network import PackagedUNet

    packaged = PackagedUNet(model.network_config.model_dump(mode="json"), len(model.targets), model.uncertainty)
    packaged.net.load_state_dict(model.network.state_dict())
    if fused:
        packaged.net = packaged.net.fused()
    return packaged.eval()
