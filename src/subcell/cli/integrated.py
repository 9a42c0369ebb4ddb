"""``subcell integrated train | encode | sample | sample-structure | predict-unobserved | latent-walk | evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.options import AuthorOpt, LicenseOpt, NoTestOpt, ZooNameOpt, echo_export

__all__ = ["integrated_app"]

integrated_app = typer.Typer(
    help="Integrated cell: generative models of cell shape and structure localization.", no_args_is_help=True
)

ModelOpt = Annotated[Path, typer.Argument(help="Model folder from `integrated train`.")]
CellsOpt = Annotated[Path, typer.Argument(help="Cell store from `cells extract`.")]


def _image(arr: Any, model: Any, names: list[str]) -> Any:
    from subcell.image import Image

    arr = arr[None] if arr.ndim == 4 else arr  # (C, Z, Y, X) → one timepoint
    return Image(arr, voxel_size=(model.voxel_um,) * 3, channel_names=names)


def _references(model: Any, cells: Path, structures: list[str] | None = None) -> Any:
    from subcell.integrated import load_cells

    return load_cells([cells], reference_channels=model.reference_channels, structures=structures or [],
                      known_structures=model.structures)  # fmt: skip


def _cell_row(data: Any, crop_index: int, cells: Path) -> int:
    from subcell.errors import ValueRangeError

    hits = data.table.index[data.table.crop_index == crop_index].tolist()
    if not hits:
        raise ValueRangeError(f"no extracted cell with crop_index {crop_index} (the store has "
                              f"0..{int(data.table.crop_index.max())})", path=cells, field="--cell")  # fmt: skip
    return int(hits[0])


@integrated_app.command("train")
def train(
    config: Annotated[Path, typer.Argument(help="Training config (YAML); see docs/integrated.md.")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="Overrides as key=value, e.g. reference.iterations=500")] = None,  # noqa: UP045
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
) -> None:  # fmt: skip
    """Train the reference and the conditional model; writes one model folder."""
    from subcell.config import load_validated
    from subcell.integrated import TrainConfig, train_integrated

    cfg = load_validated(TrainConfig, config, assignments=overrides or ())

    def on_step(kind: str, info: Any) -> None:
        if info.validation:
            typer.echo(f"{kind} step {info.step}/{info.total}: loss {info.loss:.4f}, "
                       f"validation ELBO {info.validation['val_elbo_nats']:.1f} nats")  # fmt: skip

    result = train_integrated(cfg, on_step=None if quiet else on_step, on_message=typer.echo)
    if result.folder is not None:
        typer.echo(f"wrote {result.folder}")


@integrated_app.command("encode")
def encode(model: ModelOpt, cells: CellsOpt,
           output: Annotated[Path, typer.Argument(help="Table (.csv/.parquet) of latent codes.")],
           overwrite: Annotated[bool, typer.Option("--overwrite")] = False) -> None:  # fmt: skip
    """Posterior means of every cell's reference (one row per cell)."""
    from subcell.integrated import IntegratedModel
    from subcell.integrated import encode as run
    from subcell.io import write_table
    from subcell.io._atomic import check_output

    check_output(output, overwrite=overwrite)
    m = IntegratedModel.load(model)
    table = run(m, _references(m, cells))
    write_table(table, output, overwrite=overwrite)
    typer.echo(f"wrote {output}: {len(table)} cells × {m.reference_config.latent_dim} latent dimensions")


@integrated_app.command("sample")
def sample(model: ModelOpt, output: Annotated[Path, typer.Argument(help="Output .ome.tif / .ome.zarr (T = sample).")],
           n: Annotated[int, typer.Option("--n", min=1, help="Number of cells.")] = 4,
           seed: Annotated[int, typer.Option("--seed")] = 0,
           overwrite: Annotated[bool, typer.Option("--overwrite")] = False) -> None:  # fmt: skip
    """New reference cells (cell + nucleus) drawn from the reference model."""
    from subcell.integrated import IntegratedModel, sample_reference
    from subcell.io import write
    from subcell.io._atomic import check_output

    check_output(output, overwrite=overwrite)
    m = IntegratedModel.load(model)
    write(_image(sample_reference(m, n, seed=seed), m, m.reference_channels), output, overwrite=overwrite)
    typer.echo(f"wrote {output}: {n} sampled cells")


@integrated_app.command("sample-structure")
def sample_structure(model: ModelOpt, cells: CellsOpt,
                     output: Annotated[Path, typer.Argument(help="Output .ome.tif / .ome.zarr (T = sample).")],
                     cell: Annotated[int, typer.Option("--cell", help="crop_index of the cell in the store.")],
                     structure: Annotated[str, typer.Option("--structure", help="Structure name known to the model.")],
                     n: Annotated[int, typer.Option("--n", min=1)] = 4, seed: Annotated[int, typer.Option("--seed")] = 0,
                     overwrite: Annotated[bool, typer.Option("--overwrite")] = False) -> None:  # fmt: skip
    """Samples of where a structure would be in a given cell (its reference is kept beside them)."""
    import numpy as np

    from subcell.integrated import IntegratedModel
    from subcell.integrated import sample_structure as run
    from subcell.io import write
    from subcell.io._atomic import check_output

    check_output(output, overwrite=overwrite)
    m = IntegratedModel.load(model)
    m.structure_index(structure)
    data = _references(m, cells)
    ref = data.reference[_cell_row(data, cell, cells)].astype(np.float32)
    samples = run(m, ref, structure, n, seed=seed)
    arr = np.concatenate([samples[:, None], np.broadcast_to(ref, (n, *ref.shape))], axis=1)
    write(_image(arr, m, [structure, *m.reference_channels]), output, overwrite=overwrite)
    typer.echo(f"wrote {output}: {n} samples of {structure} in cell {cell}")


@integrated_app.command("predict-unobserved")
def predict_unobserved(model: ModelOpt, cells: CellsOpt,
                       output: Annotated[Path, typer.Argument(help="Output .ome.tif / .ome.zarr: all structures + reference.")],
                       cell: Annotated[int, typer.Option("--cell", help="crop_index of the cell in the store.")],
                       structures: Annotated[Optional[list[str]], typer.Option("--structure", help="Only these (repeat).")] = None,  # noqa: UP045
                       samples: Annotated[int, typer.Option("--samples", min=1)] = 8,
                       seed: Annotated[int, typer.Option("--seed")] = 0,
                       overwrite: Annotated[bool, typer.Option("--overwrite")] = False) -> None:  # fmt: skip
    """Every structure the model knows, predicted in one cell: an integrated cell."""
    import numpy as np

    from subcell.integrated import IntegratedModel
    from subcell.integrated import predict_unobserved as run
    from subcell.io import write
    from subcell.io._atomic import check_output

    check_output(output, overwrite=overwrite)
    m = IntegratedModel.load(model)
    for s in structures or []:
        m.structure_index(s)
    data = _references(m, cells)
    ref = data.reference[_cell_row(data, cell, cells)].astype(np.float32)
    pred, names = run(m, ref, structures=structures, samples=samples, seed=seed)
    write(_image(np.concatenate([pred, ref]), m, [*names, *m.reference_channels]), output, overwrite=overwrite)
    typer.echo(f"wrote {output}: {', '.join(names)} in cell {cell}")


@integrated_app.command("latent-walk")
def latent_walk(model: ModelOpt, output: Annotated[Path, typer.Argument(help="Output folder (one image per dimension + PNG).")],
                dims: Annotated[Optional[list[int]], typer.Option("--dim", help="Latent dimension (repeat).")] = None,  # noqa: UP045
                cells: Annotated[Optional[Path], typer.Option("--cells", help="Store to rank dimensions by KL.")] = None,  # noqa: UP045
                steps: Annotated[int, typer.Option("--steps", min=2)] = 7,
                span: Annotated[float, typer.Option("--span", min=0.1, help="± prior standard deviations.")] = 2.5,
                overwrite: Annotated[bool, typer.Option("--overwrite")] = False) -> None:  # fmt: skip
    """Reference cells decoded along latent dimensions, as image series (T = step)."""
    from subcell.integrated import IntegratedModel
    from subcell.integrated import latent_walk as run
    from subcell.integrated.figures import grid_png
    from subcell.io import write_bundle
    from subcell.io._atomic import check_output

    check_output(output, overwrite=overwrite)
    m = IntegratedModel.load(model)
    walks, used = run(m, dims=dims, data=_references(m, cells) if cells else None, steps=steps, span=span)
    images = {f"walk_dim{d}.ome.tif": _image(w, m, m.reference_channels) for d, w in zip(used, walks, strict=True)}
    rows = [[w[i].sum(axis=0) for i in range(steps)] for w in walks]
    png = grid_png(rows, [f"dimension {d}" for d in used])
    write_bundle(output, images=images, files={"latent_walk.png": png}, overwrite=overwrite)
    typer.echo(f"wrote {output}: walks along dimensions {used}")


@integrated_app.command("evaluate")
def evaluate(model: ModelOpt, cells: CellsOpt,
             output: Annotated[Path, typer.Argument(help="Output folder (tables + figure).")],
             all_cells: Annotated[bool, typer.Option("--all-cells", help="Evaluate every cell, not only the model's test split.")] = False,
             samples: Annotated[int, typer.Option("--samples", min=1, help="Posterior draws per ELBO.")] = 4,
             overwrite: Annotated[bool, typer.Option("--overwrite")] = False) -> None:  # fmt: skip
    """Held-out ELBO (nats/cell, bits/voxel), reconstruction error, KL per dimension, true vs shuffled reference."""
    import numpy as np
    import pandas as pd

    from subcell.errors import ValueRangeError
    from subcell.integrated import IntegratedModel, evaluate_model
    from subcell.integrated.figures import evaluation_png
    from subcell.io import write_bundle
    from subcell.io._atomic import check_output

    check_output(output, overwrite=overwrite)
    m = IntegratedModel.load(model)
    data = _references(m, cells, list(m.config.get("structures", [])))
    keys = [f"{r.store}#{int(r.crop_index)}" for r in data.table.itertuples()]
    test = set(m.training.get("split", {}).get("test", []))
    idx = np.arange(len(keys)) if all_cells else np.array([i for i, k in enumerate(keys) if k in test], dtype=np.int64)
    if len(idx) < 2:
        raise ValueRangeError(f"{len(idx)} of the store's cells are in the model's test split; pass --all-cells "
                              "to evaluate on every cell of this store", path=cells)  # fmt: skip
    ev = evaluate_model(m, data, idx, samples=samples)
    kl = pd.DataFrame({"dimension": np.arange(len(ev.reference_kl_per_dim)), "kl_nats": ev.reference_kl_per_dim})
    write_bundle(output, tables={"summary.csv": ev.summary, "reference.csv": ev.reference,
                                 "conditional.csv": ev.conditional, "kl_per_dimension.csv": kl},
                 files={"evaluation.png": evaluation_png(ev.summary, ev.reference_kl_per_dim)},
                 overwrite=overwrite)  # fmt: skip
    typer.echo(ev.summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    typer.echo(f"wrote {output}")


@integrated_app.command("export")
def export(
    model: ModelOpt,
    output: Annotated[Path, typer.Argument(help="bioimage.io package to write (.zip).")],
    cells: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--cells", help="Cell store (from `cells extract`) whose first cell is the test input."),
    ] = None,
    name: ZooNameOpt = None,
    author: AuthorOpt = None,
    license: LicenseOpt = "BSD-3-Clause",
    no_test: NoTestOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing package.")] = False,
) -> None:
    """Write a bioimage.io package: cell shape (reference channels) → expected structures (decoder at z = 0)."""
    from subcell.errors import InputFileError
    from subcell.integrated import IntegratedModel
    from subcell.zoo.integrated import export_integrated

    if cells is None:
        raise InputFileError("a package needs test data: pass --cells CELLS.zarr (a store from `cells extract`)",
                             path=output)  # fmt: skip
    result = export_integrated(IntegratedModel.load(model), cells, output, name=name, authors=author,
                               license=license, overwrite=overwrite, test=not no_test)  # fmt: skip
    echo_export(result)
