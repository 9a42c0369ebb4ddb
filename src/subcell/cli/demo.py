"""The end-to-end demo (``make demo``): every capability that exists runs once on built-in synthetic data."""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from subcell.errors import OutputExistsError
from subcell.process_pool import SpawnPool

__all__ = ["run_demo"]

_FIELD_SHAPE = (48, 384, 384)
LABELFREE_MINUTES = 0.5
LABELFREE_EXTRA_FIELDS = 1
SHIPPED_3D = "hipsc-bf-3d"
LABELFREE_TARGETS = ["dna", "membrane"]
INTEGRATED_MINUTES = 0.75
INTEGRATED_STRUCTURES = ["mitochondria", "nucleoli", "golgi"]


def _one_thread() -> None:
    """The background process keeps to one core: the other is the demo's own (set before numpy is imported)."""
    from subcell.batch.cluster import thread_env

    os.environ.update(thread_env(1))


@contextlib.contextmanager
def _background() -> Iterator[SpawnPool]:
    """One single-threaded worker process for the steps that need no training (synthesis, the time-lapse step, the
    zero-shot prediction) while this process runs the others; it is stopped, its queued work dropped, if the demo
    fails or is interrupted."""
    pool = SpawnPool(1, initializer=_one_thread)
    try:
        yield pool
    except BaseException:
        pool.terminate_workers()  # a job already running cannot be cancelled: its process is ended
        raise
    pool.shutdown(wait=True)


def _field_line(i: int, field: Any, path: Path) -> str:
    from subcell import synth

    n_mitotic = int(field.cells.mitotic.sum())
    return (
        f"[1/8] synthetic field {i}: {field.image.sizes}, {len(field.cells)} cells ({n_mitotic} mitotic), "
        f"bright-field + {len(synth.STRUCTURES)} structures + noise-free truth, labels {list(field.labels)} → {path}"
    )


def _write_field(i: int, seed: int, path: Path) -> str:
    """Synthesize and write one demo field (in the background process); its summary line."""
    from subcell import synth

    field = synth.synth_field(shape=_FIELD_SHAPE, seed=seed)
    synth.write_field(field, path, overwrite=True)
    return _field_line(i, field, path)


def run_demo(
    out: Path,
    *,
    overwrite: bool = False,
    seed: int = 0,
    labelfree_minutes: float = LABELFREE_MINUTES,
    integrated_minutes: float = INTEGRATED_MINUTES,
) -> Iterator[str]:
    """All demo steps, then ``report.html`` (see :func:`_steps`); yields one summary line per step.

    Part of the work runs in a second process (``spawn``): a script calling this needs the usual
    ``if __name__ == "__main__":`` guard around the call.
    """
    lines = []
    for line in _steps(out, overwrite=overwrite, seed=seed, labelfree_minutes=labelfree_minutes,
                       integrated_minutes=integrated_minutes):  # fmt: skip
        lines.append(line)
        yield line
    settings = {"seed": seed, "labelfree_minutes": labelfree_minutes, "integrated_minutes": integrated_minutes}
    yield write_report(Path(out), lines, settings)


def _steps(
    out: Path, *, overwrite: bool, seed: int, labelfree_minutes: float, integrated_minutes: float
) -> Iterator[str]:
    """Synthesize fields → OME-Zarr with labels → read back → resample + normalize → OME-TIFF → manifest →
    classical segmentation evaluated against the ground truth, with a measurement table → label-free model
    trained, tiled prediction of a held-out field, evaluated against the noise ceiling with a figure → single
    cells extracted, shape space, integrated-cell model trained, structures sampled in held-out cells, latent
    walk → ``report.html`` with every line and figure.

    Yields one summary line per step (the CLI prints them).
    """
    from subcell import synth

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError("demo output folder is not empty; pass --overwrite to replace it", path=out)
    out.mkdir(parents=True, exist_ok=True)

    # Two cores, two lanes: a background process (one core) synthesizes fields 1-2, runs the whole time-lapse step
    # and the shipped model's zero-shot prediction while this process does field 0, the training field, the
    # classical steps and the cell extraction; it is done before the trainings start, so they have both cores.
    fields = [out / f"field{i}.ome.zarr" for i in range(3)]
    with _background() as pool:
        later = [pool.submit(_write_field, i, seed + i, fields[i]) for i in (1, 2)]
        from subcell.cli.demo_dynamics import dynamics_step  # imports numpy: not at the CLI's start-up

        dynamics = pool.submit(dynamics_step, out, seed=seed)
        zero_shot = pool.submit(labelfree_zero_shot, out, fields[2])  # one worker, jobs in order: field 2 is written
        first = synth.synth_field(shape=_FIELD_SHAPE, seed=seed)
        synth.write_field(first, fields[0], overwrite=True)
        yield _field_line(0, first, fields[0])
        extra = _training_fields(out, seed)
        for job in later:
            yield job.result()
        yield from _classical_steps(out, fields, first)
        cells_line = cells_step(out)
        dynamics_line = dynamics.result()
        zero_line = zero_shot.result()
    yield labelfree_step(out, fields, extra, zero_line, seed=seed, minutes=labelfree_minutes)
    yield integrated_step(out, cells_line, seed=seed, minutes=integrated_minutes)
    yield dynamics_line


def _training_fields(out: Path, seed: int) -> list[Path]:
    """More label-free training fields (one field does not generalise)."""
    from subcell import synth

    extra = []
    for i in range(LABELFREE_EXTRA_FIELDS):
        p = out / f"train{i}.ome.zarr"
        synth.write_field(synth.synth_field(shape=_FIELD_SHAPE, seed=seed + 100 + i), p, overwrite=True)
        extra.append(p)
    return extra


def _classical_steps(out: Path, fields: list[Path], first: Any) -> Iterator[str]:
    """Read back, resample + normalize, manifest, classical segmentation with measurements (steps 2-5)."""
    import numpy as np

    from subcell import io, transforms

    back = io.read(fields[0])
    nuclei = io.read_labels(fields[0], "nucleus")
    exact = (
        back.voxel_size == first.image.voxel_size
        and np.array_equal(back.numpy(), first.image.numpy())
        and np.array_equal(nuclei.numpy()[:, 0], first.labels["nucleus"])
    )
    if not exact:
        raise RuntimeError(f"OME-Zarr round trip of {fields[0]} changed the data or metadata")
    yield f"[2/8] read back {fields[0].name} exactly: {back.sizes}, {back.voxel_size}, labels {io.label_names(fields[0])}"

    dna = back.channel("dna")
    iso = transforms.resample_image(dna, (0.29, 0.29, 0.29), order=1)
    norm = iso.with_data(transforms.percentile_normalize(iso.numpy()), step="percentile_normalize")
    tif = out / "field0_dna_isotropic.ome.tif"
    io.write(norm, tif, overwrite=True)
    yield f"[3/8] DNA resampled to {iso.voxel_size}, percentile-normalized → {tif}"

    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "source", "source_channel", "target", "target_channel", "split", "structure", "mask_nucleus"])
        for i, p in enumerate(fields):
            split = ("train", "val", "test")[i]
            w.writerow([f"field{i}", p.name, "brightfield", p.name, "dna", split, "dna", f"{p.name}/labels/nucleus"])
    m = io.read_manifest(manifest, check_files=True)
    yield f"[4/8] manifest {manifest} validated (bright-field → DNA pairs): {len(m)} rows"

    from subcell.metrics import dice, match_instances
    from subcell.segment import load_workflow, measure_objects, segment_image

    scores = []
    for name, truth_name in (
        ("nucleus", "nucleus"),
        ("cells", "cell"),
        ("nucleoli", "nucleoli"),
        ("mitochondria", "mitochondria"),
    ):
        labels = segment_image(back, load_workflow(name))
        io.write(labels, out / f"field0_{name}.ome.zarr", overwrite=True)
        pred, truth = labels.numpy()[0, 0], first.labels[truth_name][0]
        if np.issubdtype(pred.dtype, np.int32) and name in ("nucleus", "cells"):
            scores.append(f"{name} F1@0.5={match_instances(pred, truth).f1(0.5):.2f}")
        else:
            scores.append(f"{name} Dice={dice(pred, truth):.2f}")
    cells = io.read(out / "field0_cells.ome.zarr")
    table = measure_objects(
        cells.numpy()[0, 0], voxel_size=cells.voxel_size, intensity={"dna": back.channel("dna").numpy()[0, 0]}
    )
    io.write_table(table, out / "field0_cells.csv", overwrite=True)
    yield f"[5/8] segmented field0 vs ground truth: {', '.join(scores)}; {len(table)} cells measured → {out / 'field0_cells.csv'}"


def _predict_and_score(model: Any, out: Path, test_path: Path, name: str) -> tuple[Any, list[dict[str, Any]], Any]:
    """``model``'s prediction of the held-out field (→ ``field2_labelfree_<name>.ome.zarr``), its scores inside the
    cells, and the number of tiles it took."""
    import warnings

    from subcell import io
    from subcell.labelfree import PredictConfig, evaluate_prediction, predict_to_zarr

    test = io.read(test_path)
    path = out / f"field2_labelfree_{name}.ome.zarr"
    # the tile the memory budget allows: the shipped network's tile edges reach ~44 voxels, so on this
    # 48×143×143 field (at 0.29 µm) any split would compute voxels several times over (tests cover tiling)
    with warnings.catch_warnings():
        # the demo's fields are imaged at 0.108 µm and the model works at its own grid: step 6's line says so,
        # instead of a library warning in the middle of the demo's output
        warnings.filterwarnings("ignore", message="resampling input", category=UserWarning)
        predict_to_zarr(model, test.channel("brightfield"), path, PredictConfig(), overwrite=True)
    pred = io.read(path)
    predicted = pred.provenance.parameters_of("labelfree.predict") or {}
    rows = evaluate_prediction(pred, test, cells=io.read_labels(test_path, "cell"))
    return pred, rows, predicted.get("tiles", "?")


def labelfree_zero_shot(out: Path, test_path: Path) -> str | None:
    """The shipped pretrained model, untrained, on the held-out field (in the background process): the zero-shot
    part of step 6's line; None without torch."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    from subcell.labelfree.pretrained import load_model

    shipped = load_model(SHIPPED_3D).select(LABELFREE_TARGETS)  # a damaged install is an error, not a fallback
    _, rows, _ = _predict_and_score(shipped, out, test_path, "zeroshot")
    return (
        "zero-shot (shipped model, no training): "
        + ", ".join(f"{r['structure']} r={r['pearson_r']:.2f}" for r in rows)
        + nuclei_in_true_cells(out, test_path)
    )


def nuclei_in_true_cells(out: Path, test_path: Path) -> str:
    """``subcell labelfree nuclei`` on the held-out field: the shipped model's nucleus output inside the true
    cells (→ ``field2_nuclei.ome.zarr``), one nucleus per cell, scored against the true nuclei."""
    import warnings

    from subcell import io
    from subcell.labelfree import PredictConfig, predict_image
    from subcell.labelfree.nuclei import NucleiConfig, nuclei_in_cells
    from subcell.labelfree.pretrained import load_model
    from subcell.metrics import dice

    test = io.read(test_path)
    cells = io.read_labels(test_path, "cell")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="resampling input", category=UserWarning)
        pred = predict_image(load_model(SHIPPED_3D).select(["nucleus"]), test.channel("brightfield"),
                             PredictConfig(output_grid="input"))  # fmt: skip
    truth = io.read_labels(test_path, "nucleus").numpy() > 0
    inside = cells.numpy() > 0
    scores = {w: nuclei_in_cells(pred, cells, NucleiConfig(prior_weight=w)) for w in (0.5, 1.0)}
    io.write(scores[0.5], out / "field2_nuclei.ome.zarr", overwrite=True, is_label=True)
    d = {w: dice(lab.numpy() > 0, truth & inside) for w, lab in scores.items()}
    return (f"; nuclei in the true cells (labelfree nuclei, zero-shot): Dice {d[0.5]:.2f} against {d[1.0]:.2f} from "
            "the cell outlines alone")  # fmt: skip


def labelfree_step(
    out: Path,
    fields: list[Path],
    extra: list[Path],
    zero_line: str | None,
    *,
    seed: int,
    minutes: float = LABELFREE_MINUTES,
) -> str:
    """Fine-tune the shipped pretrained model briefly on the training fields, predict the held-out field and
    evaluate it against the noise ceiling, next to the zero-shot scores (:func:`labelfree_zero_shot`)."""
    if zero_line is None:
        return "[6/8] label-free step skipped: torch is not installed (pip install 'subcell[dl]')"
    import pandas as pd

    from subcell import io
    from subcell.labelfree import TrainConfig
    from subcell.labelfree.figures import evaluation_figure_png
    from subcell.labelfree.train import train_labelfree
    from subcell.transforms.align import align_to

    manifest = out / "labelfree_manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "source", "source_channel", "target", "split"])
        for p in [fields[0], *extra]:
            w.writerow([p.name.split(".")[0], p.name, "brightfield", p.name, "train"])
        w.writerow([fields[1].name.split(".")[0], fields[1].name, "brightfield", fields[1].name, "val"])
    cfg = TrainConfig(
        manifest=manifest, output=out / "labelfree_model", overwrite=True, targets=LABELFREE_TARGETS,
        iterations=150, max_minutes=minutes, batch_size=4, validate_every=50, checkpoint_every=1000, resume=False,
        seed=seed, lr_schedule="constant", lr=5e-4,
        init=SHIPPED_3D,
    )  # fmt: skip
    result = train_labelfree(cfg)
    pred, rows, n_tiles = _predict_and_score(result.model, out, fields[2], "prediction")
    io.write_table(pd.DataFrame(rows), out / "labelfree_metrics.csv", overwrite=True)
    test = io.read(fields[2])
    shown = test.sel(channel=["brightfield", *[str(r["structure"]) for r in rows]])  # not all 17 channels
    tgt = align_to(shown, pred)[0]  # type: ignore[arg-type]
    panels = {"bright-field input": tgt[0]}
    for r in rows:
        panels[f"target {r['structure']}"] = tgt[shown.channel_index(str(r["structure"]))]
        panels[f"prediction {r['structure']}"] = pred.numpy()[0, pred.channel_index(r["structure"])]  # type: ignore[attr-defined]
    metrics = {str(r["structure"]): {k: v for k, v in r.items() if isinstance(v, float)} for r in rows}
    (out / "labelfree_evaluation.png").write_bytes(
        evaluation_figure_png(panels, pred.voxel_size.as_tuple(), metrics)  # type: ignore[attr-defined]
    )
    grid = "" if test.voxel_size.isclose(result.model.voxel_size) else (
        f" at {test.voxel_size}, resampled to the model's {result.model.voxel_size},")  # fmt: skip
    scores = ", ".join(
        f"{r['structure']} r={r['pearson_r']:.2f} (ceiling {r['noise_ceiling']:.2f}, vs truth {r['pearson_r_truth']:.2f})"
        for r in rows
    )
    return (
        f"[6/8] label-free: {zero_line}; fine-tuned from {SHIPPED_3D}: {result.summary['steps']} steps in "
        f"{result.summary['seconds']:.0f} s ({result.summary['precision']}); held-out field2{grid} predicted in "
        f"{n_tiles} tile(s): {scores} → {out / 'labelfree_evaluation.png'}"
    )


def cells_step(out: Path) -> str:
    """Extract single cells from every demo field into ``cells.zarr`` and build their shape space (with its
    figure); the first half of step 7's line."""
    from subcell import io
    from subcell.cells import ExtractConfig, extract_to_store, shape_space_of_store

    fields = sorted(out.glob("field[0-9].ome.zarr")) + sorted(out.glob("train[0-9].ome.zarr"))
    items = []
    for p in fields:
        image = io.read(p)
        items.append((image, io.read_labels(p, "cell").numpy()[:, 0], io.read_labels(p, "nucleus").numpy()[:, 0],
                      {"source": p.name}))  # fmt: skip
    cfg = ExtractConfig(channels=INTEGRATED_STRUCTURES, box=(32, 48, 48), voxel_um=0.5, border="flag",
                        oversize="rescale")  # fmt: skip
    store = out / "cells.zarr"
    table = extract_to_store(items, store, cfg, overwrite=True)
    del items
    shape = shape_space_of_store(io.read_cell_store(store), lmax=8, walk_modes=2)
    io.write_table(shape.table, out / "shape_space.parquet", overwrite=True)
    (out / "shape_modes.png").write_bytes(shape.figure_png)
    n_cells = int((table.crop_index >= 0).sum())
    return (f"[7/8] {n_cells} cells extracted ({int(table.touches_border.sum())} flagged at the border) → {store}; "
            f"shape space: SH error cell {shape.table.cell_sh_error_um.mean():.2f} µm, mode 1 explains "
            f"{shape.modes.explained_variance_ratio[0]:.0%}")  # fmt: skip


def integrated_step(out: Path, head: str, *, seed: int, minutes: float = INTEGRATED_MINUTES) -> str:
    """Train a small integrated-cell model on ``cells.zarr`` (see :func:`cells_step`, whose line is ``head``),
    sample structures in held-out cells and walk the reference latent space (figures for the report)."""
    import importlib.util

    import numpy as np

    from subcell import io

    store = out / "cells.zarr"
    if importlib.util.find_spec("torch") is None:
        return head + "; integrated model skipped: torch is not installed (pip install 'subcell[dl]')"
    from subcell.integrated import TrainConfig, evaluate_model, latent_walk, sample_structure, train_integrated
    from subcell.integrated.figures import evaluation_png, grid_png

    part = {"iterations": 100000, "max_minutes": minutes / 2, "network": {"latent_dim": 16, "base_channels": 8},
            "beta": {"kind": "warmup", "warmup_steps": 200}}  # fmt: skip
    tc = TrainConfig(cells=[store], output=out / "integrated_model", overwrite=True, structures=INTEGRATED_STRUCTURES,
                     reference=part, conditional=part, validate_every=50, checkpoint_every=100000, resume=False,
                     seed=seed, val_fraction=0.15, test_fraction=0.2)  # fmt: skip
    res = train_integrated(tc)
    model, data, test = res.model, res.data, res.split["test"]
    ev = evaluate_model(model, data, test, samples=2)
    io.write_table(ev.summary, out / "integrated_evaluation.csv", overwrite=True)
    (out / "integrated_evaluation.png").write_bytes(evaluation_png(ev.summary, ev.reference_kl_per_dim))
    rows, titles = [], []
    for i in test[:3]:
        ref = data.reference[i].astype(np.float32)
        row = [ref[0] + ref[1]]
        for slot, name in enumerate(INTEGRATED_STRUCTURES):
            row += [
                data.structure_images[i, slot].astype(np.float32),
                sample_structure(model, ref, name, 1, seed=int(i))[0],
            ]
        rows.append(row)
        titles.append(f"held-out cell {int(i)}")
    cols = ["cell + nucleus"] + [f"{n} {k}" for n in INTEGRATED_STRUCTURES for k in ("real", "sampled")]
    (out / "integrated_samples.png").write_bytes(grid_png(rows, titles, cols))
    walks, dims = latent_walk(model, data=data, steps=5, top=2)
    (out / "integrated_latent_walk.png").write_bytes(
        grid_png([[w[k].sum(axis=0) for k in range(len(w))] for w in walks], [f"latent dim {d}" for d in dims])
    )
    gains = ev.summary[ev.summary.model == "conditional"]
    gain = ", ".join(f"{r.structure} {r.elbo_gain_nats:+.0f}" for r in gains.itertuples())
    tr = model.training
    return (f"{head}; integrated model: reference {tr['reference']['steps']} + conditional "
            f"{tr['conditional']['steps']} steps; held-out ELBO gain of the true over a shuffled reference "
            f"(nats/cell): {gain} → {out / 'integrated_samples.png'}")  # fmt: skip


def write_report(out: Path, lines: list[str], settings: dict[str, Any] | None = None) -> str:
    """``run.json`` (the command, its settings, the subcell version, the summary lines) and ``report.html``: the
    report of the whole folder (:func:`subcell.report.write_report`), as ``subcell report`` writes it."""
    import json

    from subcell._version import __version__
    from subcell.report import write_report as report_folder

    settings = settings or {}
    command = "subcell demo --out " + str(out) + "".join(f" --{k.replace('_', '-')} {v}" for k, v in settings.items())
    run = {"command": command, "subcell_version": __version__, "settings": settings, "lines": lines,
           "inputs": "built-in synthetic data (subcell.synth)"}  # fmt: skip
    (out / "run.json").write_text(json.dumps(run, indent=2))
    report_folder(out, out / "report.html", title="subcell demo report", overwrite=True)
    return f"report → {out / 'report.html'}"
