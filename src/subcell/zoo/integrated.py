"""Export an integrated-cell model as a bioimage.io package: a cell's reference channels (its shape) in, the
expected location of every structure the model knows out — the conditional decoder at the prior mean (z = 0),
the model's most likely organisation of that cell. Sampling (z ~ N(0, I)) and the reference model stay in
subcell; a package holds one deterministic function, which is what zoo runners execute and test."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from subcell._version import __version__
from subcell.errors import ValueRangeError
from subcell.integrated.objective import predicted_mean
from subcell.zoo.common import (
    ExportResult,
    check_package_output,
    jsonable,
    save_weights,
    validated,
    weights_descr,
    write_package,
)

__all__ = ["PackagedIntegrated", "export_integrated"]

CITATION = ("Johnson, Donovan-Maiye, Maleckar (2017) Building a 3D integrated cell. bioRxiv 238378",
            "10.1101/238378")  # fmt: skip


class PackagedIntegrated(nn.Module):
    """``(B, R, Z, Y, X)`` reference channels → ``(B, S, Z, Y, X)`` expected structures (decoder at z = 0)."""

    def __init__(self, n_ref: int, n_structures: int, box: list[int], reference_network: dict[str, Any],
                 conditional_network: dict[str, Any], structure_likelihood: str = "gaussian") -> None:  # fmt: skip
        super().__init__()
        from subcell.integrated.model import IntegratedNet
        from subcell.integrated.network import VAEConfig

        self.net = IntegratedNet(n_ref, n_structures, tuple(box), VAEConfig.model_validate(reference_network),  # type: ignore[arg-type]
                                 VAEConfig.model_validate(conditional_network))  # fmt: skip
        self.n_structures = int(n_structures)
        self.latent_dim = int(VAEConfig.model_validate(conditional_network).latent_dim)
        self.likelihood: Any = structure_likelihood

    def forward(self, ref: torch.Tensor) -> torch.Tensor:
        z = torch.zeros(ref.shape[0], self.latent_dim, dtype=ref.dtype, device=ref.device)
        outs = []
        for s in range(self.n_structures):
            ids = torch.full((ref.shape[0],), s, dtype=torch.long, device=ref.device)
            outs.append(predicted_mean(self.net.conditional.decode(z, ref, ids), [self.likelihood]))
        return torch.cat(outs, dim=1)


def _packaged(model: Any) -> PackagedIntegrated:
    m = model.metadata()
    packaged = PackagedIntegrated(len(model.reference_channels), len(model.structures), list(model.box),
                                  m["reference_network"], m["conditional_network"], model.structure_likelihood)  # fmt: skip
    packaged.net.load_state_dict(model.net.state_dict())
    return packaged.eval()


def _test_reference(model: Any, cells: str | Path) -> np.ndarray:
    """The first extracted cell of a cell store, normalised as training normalised it: (1, R, Z, Y, X)."""
    from subcell.integrated.data import load_cells

    data = load_cells([Path(cells)], reference_channels=model.reference_channels, structures=[])
    if data.box != tuple(model.box):
        raise ValueRangeError(f"cells are {data.box} voxels; the model's box is {tuple(model.box)}", path=cells)
    return np.asarray(data.reference[:1], np.float32)


def export_integrated(
    model: Any,
    cells: str | Path,
    output: str | Path,
    *,
    name: str | None = None,
    authors: list[str] | None = None,
    license: str = "BSD-3-Clause",
    overwrite: bool = False,
    test: bool = True,
) -> ExportResult:
    """Write a bioimage.io package of ``model``'s structure predictor; the test input is a cell of ``cells``."""
    from bioimageio.spec.model import v0_5

    from subcell.plotting import orthoviews_png

    output = check_package_output(output, license=license, overwrite=overwrite)
    ref = _test_reference(model, cells)
    packaged = _packaged(model)
    with torch.inference_mode():
        out = packaged(torch.from_numpy(ref)).numpy()
    name = name or f"subcell integrated cell ({len(model.structures)} structures from cell shape)"
    s = model.voxel_um
    with tempfile.TemporaryDirectory() as tmpdir:
        d = Path(tmpdir)
        np.save(d / "test_input.npy", ref)
        np.save(d / "test_output.npy", out)
        panels = {f"reference {model.reference_channels[0]}": ref[0, 0]}
        panels.update({f"expected {st}": out[0, i] for i, st in enumerate(model.structures[:2])})
        (d / "cover.png").write_bytes(orthoviews_png(panels, (s, s, s), columns=3))
        t = model.training
        (d / "README.md").write_text(
            f"# {name}\n\nThe expected location of {', '.join(model.structures)} in a cell given its reference "
            f"channels {', '.join(model.reference_channels)} ({tuple(model.box)} voxels of {s} µm, aligned as "
            f"`subcell cells extract` aligns them): the conditional decoder of an integrated-cell model at the prior "
            f"mean. Inputs are normalised as `subcell integrated` normalises them ({model.metadata()['normalization']}"
            f").\n\nTraining: {t.get('steps', '?')} steps, data {t.get('train_cells', t.get('data', 'not recorded'))}"
            f".\nExported by subcell {__version__}.\n\n## Cite\n- {CITATION[0]} doi:{CITATION[1]}\n"
        )
        save_weights(d, packaged, packaged, torch.from_numpy(ref))
        arch = v0_5.ArchitectureFromLibraryDescr(
            callable=v0_5.Identifier("PackagedIntegrated"), import_from="subcell.zoo.integrated",
            kwargs=jsonable({"n_ref": len(model.reference_channels), "n_structures": len(model.structures),
                             "box": list(model.box), "reference_network": model.metadata()["reference_network"],
                             "conditional_network": model.metadata()["conditional_network"],
                             "structure_likelihood": model.structure_likelihood}),
        )  # fmt: skip
        space = [(a, n) for a, n in zip("zyx", model.box, strict=True)]
        in_axes: list[Any] = [v0_5.BatchAxis(), v0_5.ChannelAxis(
            channel_names=[v0_5.Identifier(c) for c in model.reference_channels])]  # fmt: skip
        in_axes += [v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=n, scale=s, unit="micrometer") for a, n in space]
        out_axes: list[Any] = [v0_5.BatchAxis(), v0_5.ChannelAxis(
            channel_names=[v0_5.Identifier(st) for st in model.structures])]  # fmt: skip
        out_axes += [v0_5.SpaceOutputAxis(id=v0_5.AxisId(a), size=n, scale=s, unit="micrometer") for a, n in space]
        descr = validated(
            v0_5.ModelDescr,
            name=name,
            description="Expected subcellular structures in a cell from its shape (subcell integrated cell).",
            authors=[v0_5.Author(name=a) for a in (authors or ["subcell developers"])],
            cite=[v0_5.CiteEntry(text=CITATION[0], doi=v0_5.Doi(CITATION[1]))],
            license=license,
            documentation=v0_5.FileDescr(source=d / "README.md"),
            covers=[v0_5.FileDescr(source=d / "cover.png")],
            tags=["integrated-cell", "generative", "3d", "vae", "pytorch", "subcell"],
            inputs=[v0_5.InputTensorDescr(id=v0_5.TensorId("reference"), axes=in_axes,
                                          test_tensor=v0_5.FileDescr(source=d / "test_input.npy"))],
            outputs=[v0_5.OutputTensorDescr(id=v0_5.TensorId("structures"), axes=out_axes,
                                            test_tensor=v0_5.FileDescr(source=d / "test_output.npy"))],
            weights=weights_descr(d, arch),
            config={"subcell": {"version": __version__, "model": jsonable(model.metadata())}},
        )  # fmt: skip
        seconds = write_package(descr, output, test=test)
    return ExportResult(output, output.stat().st_size, seconds, tuple(ref.shape))
