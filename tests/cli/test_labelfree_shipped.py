"""The shipped pretrained models: listed, usable by name, small, and better than chance on new synthetic fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from subcell import Image, io
from tests.conftest import subcell_cli

pytest.importorskip("torch")


def test_models_are_listed_with_their_targets() -> None:
    r = subcell_cli("labelfree", "models")
    assert r.returncode == 0, r.stderr
    for name in ("dna", "membrane", "nuclear_envelope", "nucleus", "dna-2d", "nucleus-2d"):
        assert f"│ {name} " in r.stdout, name
    # names that share one network's weights say so, and the total counts each file once
    assert r.stdout.count("hipsc_bf_3d (") == 5 and r.stdout.count("hipsc_bf_2d (") == 2
    from subcell.labelfree.pretrained import HERE

    sizes = {f.parent.name: f.stat().st_size for f in HERE.glob("*/weights.safetensors")}
    assert f"{len(sizes)} weight files, {sum(sizes.values()) / 1e6:.1f} MB in all" in r.stdout


def test_shipped_weights_stay_small_and_match_their_checksums() -> None:
    from subcell.labelfree.pretrained import HERE, shipped_folder

    index = json.loads((HERE / "index.json").read_text())["models"]
    folders = {e["folder"] for e in index.values()}
    total = sum((HERE / f / "weights.safetensors").stat().st_size for f in folders)
    assert total < 10e6, f"{total / 1e6:.1f} MB of shipped weights"
    for name in index:
        assert shipped_folder(name).is_dir()
    for f in folders:  # every shipped model can be rebuilt: its recipe is there and names the same folder
        assert f"output: {f}" in (HERE / "recipes" / f"{f}.yaml").read_text()
        assert (HERE / f / "README.md").exists()


def test_unknown_model_name_lists_the_shipped_ones_and_writes_nothing(tmp_path: Path) -> None:
    from subcell.synth import synth_field

    src = tmp_path / "bf.ome.tif"
    field = synth_field(shape=(16, 64, 64), seed=1)
    io.write(field.image.channel("brightfield"), src)
    r = subcell_cli("labelfree", "predict", str(src), str(tmp_path / "out.ome.zarr"), "--model", "dnna")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "shipped models:" in lines[0] and "dna" in lines[0]
    assert not (tmp_path / "out.ome.zarr").exists()
    # one plane for a 3D model: refused before a word of the prediction (it printed the device and a progress bar)
    plane = tmp_path / "plane.ome.tif"
    bf = field.image.channel("brightfield")
    io.write(bf.with_data(bf.data[:, :, 8:9], step="one plane"), plane)
    r = subcell_cli("labelfree", "predict", str(plane), str(tmp_path / "out.ome.zarr"), "--model", "dna")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "a 3D model needs a z-stack" in r.stderr, r.stderr
    assert r.stdout == "" and not (tmp_path / "out.ome.zarr").exists()


@pytest.mark.filterwarnings("ignore:resampling input")
def test_zero_shot_dna_on_a_new_synthetic_field_is_far_above_chance(tmp_path: Path) -> None:
    """A field the model never saw, at a voxel size it was not trained at: the shipped DNA model must find the
    nuclei (an untrained network scores r ≈ 0 here)."""
    from subcell.labelfree import PredictConfig, evaluate_prediction, predict_image
    from subcell.labelfree.pretrained import load_model
    from subcell.synth import synth_field

    field = synth_field(shape=(40, 192, 192), voxel_size=(0.3, 0.15, 0.15), seed=90210)
    model = load_model("dna")
    assert model.targets == ["dna"]
    pred = predict_image(model, field.image.channel("brightfield"), PredictConfig())
    r = evaluate_prediction(pred, field.image)[0]["pearson_r"]
    assert r > 0.5, r
    nucleus = load_model("nucleus")
    score = predict_image(nucleus, field.image.channel("brightfield"), PredictConfig())
    from subcell.metrics.intensity import pearson
    from subcell.transforms.align import align_to

    truth = align_to(Image(field.labels["nucleus"][:, None], voxel_size=field.image.voxel_size), score,
                     labels=True)[0, 0] > 0  # fmt: skip
    assert pearson(score.numpy()[0, 0], truth.astype(np.float32)) > 0.5


def test_predict_onto_the_inputs_grid_overlays_the_input(tmp_path: Path) -> None:
    """``--output-grid input``: the prediction has the input's shape and voxel size, and lines up with it (the
    truth on the input's own grid correlates with it as well as on the model's); a bad value is one line."""
    from subcell.metrics.intensity import pearson
    from subcell.synth import synth_field
    from subcell.transforms.align import align_to

    field = synth_field(shape=(24, 128, 128), voxel_size=(0.3, 0.15, 0.15), seed=4242)
    src = tmp_path / "bf.ome.tif"
    io.write(field.image.channel("brightfield"), src)
    outs = {}
    for grid in ("model", "input"):
        r = subcell_cli("labelfree", "predict", str(src), str(tmp_path / f"{grid}.ome.tif"), "--model", "dna",
                        "--output-grid", grid, "--quiet")  # fmt: skip
        assert r.returncode == 0, r.stderr
        outs[grid] = io.read(tmp_path / f"{grid}.ome.tif")
    on_input, on_model = outs["input"], outs["model"]
    assert on_input.shape[2:] == field.image.shape[2:] and on_input.voxel_size.isclose(field.image.voxel_size)
    assert on_model.shape[2:] != field.image.shape[2:]
    dna = field.image.channel("dna")
    r_input = pearson(on_input.numpy()[0, 0], dna.numpy()[0, 0])
    r_model = pearson(on_model.numpy()[0, 0], align_to(dna, on_model)[0, 0])
    assert r_input > 0.35 and abs(r_input - r_model) < 0.05, (r_input, r_model)  # an untrained network: r ≈ 0
    r = subcell_cli("labelfree", "predict", str(src), str(tmp_path / "bad.ome.tif"), "--model", "dna",
                    "--output-grid", "native")  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: output_grid: Input should be 'model' or 'input' (got 'native')"
    ]
    assert not (tmp_path / "bad.ome.tif").exists()


def test_nuclei_in_cells_from_bright_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``labelfree nuclei``: one nucleus per cell with its id, on the input's grid; the prediction adds to what
    the outlines alone give (an untrained model or an ignored prediction would score as the outlines do)."""
    from scipy import ndimage as ndi

    from subcell.metrics import dice
    from subcell.synth import synth_field
    from tests.conftest import cli_user_error

    field = synth_field(shape=(24, 128, 128), voxel_size=(0.3, 0.3, 0.3), seed=4242)
    bf, cells = tmp_path / "bf.ome.tif", tmp_path / "cells.ome.tif"
    io.write(field.image.channel("brightfield"), bf)
    io.write(Image(field.labels["cell"][:, None], voxel_size=field.image.voxel_size), cells)
    truth, cell = field.labels["nucleus"][0], field.labels["cell"][0]
    dices = {}
    for weight in ("0.5", "1"):
        out = tmp_path / f"nuclei_{weight}.ome.tif"
        r = subcell_cli("labelfree", "nuclei", str(bf), str(cells), str(out), "--prior-weight", weight)
        assert r.returncode == 0, r.stderr
        lab = io.read(out)
        assert lab.shape[2:] == field.image.shape[2:] and lab.voxel_size.isclose(field.image.voxel_size)
        lab = lab.numpy()[0, 0]
        ids = set(np.unique(lab)) - {0}
        assert ids == set(np.unique(cell)) - {0}, "one nucleus in every cell"
        assert np.all(cell[lab > 0] == lab[lab > 0]), "each nucleus inside its own cell, with its id"
        assert all(ndi.label(lab == i)[1] == 1 for i in ids)
        dices[weight] = dice(lab > 0, (truth > 0) & (cell > 0))
        assert f"wrote {out}: {len(ids)} nuclei" in r.stdout
    assert dices["0.5"] > 0.7 and dices["0.5"] > dices["1"] + 0.1, dices  # measured 0.80 against 0.63
    # the ids match the cells', so single cells can be extracted with their label-free nuclei
    from subcell.cli.main import run
    from subcell.io.cell_store import read_cell_store

    store = tmp_path / "cells.zarr"
    assert run(["cells", "extract", str(bf), str(cells), str(store), "--nuclei", str(tmp_path / "nuclei_0.5.ome.tif"),
                "--border", "flag"]) == 0  # fmt: skip
    assert len(read_cell_store(store).table) == len(set(np.unique(cell)) - {0})  # no cell dropped for lack of one
    err = cli_user_error(capsys, "labelfree", "nuclei", str(bf), str(cells), str(tmp_path / "x.ome.tif"),
                         "--model", "dna")  # fmt: skip
    assert err.strip() == "error: channel: the model has no 'nucleus' output; it has ['dna']"
    assert not (tmp_path / "x.ome.tif").exists()


@pytest.mark.filterwarnings("ignore:resampling input", "ignore:the model was trained on channel")
def test_nuclei_of_a_time_lapse_stream_frame_by_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each frame is predicted alone and its nuclei come before the next frame is predicted (a time-lapse is never
    held whole); the OME-Zarr written frame by frame equals the OME-TIFF of the same frames and the frames made in
    memory (the CLI streams each prediction through a scratch store), one frame of cells serving every frame."""
    import subcell.labelfree as lf_pkg
    from subcell.cli.main import run
    from subcell.labelfree.nuclei import nuclei_frames
    from subcell.labelfree.pretrained import load_model
    from subcell.synth import synth_field

    field = synth_field(shape=(16, 96, 96), voxel_size=(0.3, 0.3, 0.3), seed=11)
    bf = field.image.channel("brightfield")
    moved = np.roll(bf.numpy(), 5, axis=-1)  # a second frame: the field shifted
    movie = bf.with_data(np.concatenate([bf.numpy(), moved]), step="movie")
    cells = Image(field.labels["cell"][:, None], voxel_size=bf.voxel_size)
    calls: list[list[int] | None] = []
    real = lf_pkg.predict_image
    monkeypatch.setattr(
        lf_pkg, "predict_image", lambda m, im, cfg=None, **k: calls.append(cfg.timepoints) or real(m, im, cfg, **k)
    )
    frames = nuclei_frames(load_model("nucleus"), movie, cells)
    t, first = next(frames)
    assert t == 0 and calls == [[0]] and first.shape[0] == 1  # one frame predicted, its nuclei already made
    rest = list(frames)
    assert [t for t, _ in rest] == [1] and calls == [[0], [1]]
    in_memory = np.concatenate([first.numpy(), rest[0][1].numpy()])
    monkeypatch.undo()
    src, cpath = tmp_path / "movie.ome.tif", tmp_path / "cells.ome.tif"
    io.write(movie, src)
    io.write(cells, cpath)
    for out in ("n.ome.zarr", "n.ome.tif"):
        assert run(["labelfree", "nuclei", str(src), str(cpath), str(tmp_path / out)]) == 0
    zarr_out, tif_out = io.read(tmp_path / "n.ome.zarr"), io.read(tmp_path / "n.ome.tif")
    assert zarr_out.shape == (2, 1, 16, 96, 96) and zarr_out.voxel_size.isclose(bf.voxel_size)
    np.testing.assert_array_equal(zarr_out.numpy(), tif_out.numpy())
    # the CLI reads each frame's prediction back from a scratch store, box by box: the labels held in memory
    np.testing.assert_array_equal(zarr_out.numpy(), in_memory)
    assert not np.array_equal(zarr_out.numpy()[0], zarr_out.numpy()[1])  # each frame its own prediction
    # a frame that fails after the first was written: nothing is left, not a store that looks complete
    two = tmp_path / "cells2.ome.tif"
    io.write(Image(np.concatenate([field.labels["cell"], np.zeros_like(field.labels["cell"])])[:, None],
                   voxel_size=bf.voxel_size), two)  # fmt: skip
    assert run(["labelfree", "nuclei", str(src), str(two), str(tmp_path / "bad.ome.zarr")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("bad")) == []
    assert not any(".tmp" in p.name or p.name.startswith(".") for p in tmp_path.iterdir())


@pytest.mark.filterwarnings("ignore:resampling input", "ignore:the model was trained on channel")
@pytest.mark.parametrize("suffix", [".ome.zarr", ".ome.tif"])
def test_written_nuclei_hold_no_frame_of_cells_or_nuclei(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """``write_nuclei`` reads the cells once, a few planes at a time (one frame of cells serving a two-frame
    time-lapse), and writes each nucleus into a scratch Zarr as it comes, never a whole frame: same labels in the
    OME-Zarr, or the OME-TIFF (written from the scratch frames, lazily), as the frames made in memory."""
    import subcell.io
    import subcell.labelfree.cell_prior as cell_prior
    import subcell.labelfree.nuclei as nuclei
    from subcell.io._ngff import Volume
    from subcell.labelfree.pretrained import load_model
    from subcell.synth import synth_field
    from tests.labelfree.test_nuclei import PlaneReader

    field = synth_field(shape=(16, 160, 160), voxel_size=(0.3, 0.3, 0.3), seed=11)
    bf = field.image.channel("brightfield")
    movie = bf.with_data(np.concatenate([bf.numpy(), np.roll(bf.numpy(), 5, axis=-1)]), step="movie")
    cells = field.labels["cell"][:, None]
    model = load_model("nucleus")
    frames = nuclei.nuclei_frames(model, movie, Image(cells, voxel_size=bf.voxel_size))
    in_memory = np.concatenate([lab.numpy() for _, lab in frames])
    monkeypatch.setattr(cell_prior, "SLAB_BYTES", 4 * 160 * 160 * 16)  # 4 planes a slab
    writes: list[int] = []
    made = nuclei._zarr_in

    class Recorded:  # the scratch nuclei array, recording the size of every write
        def __init__(self, a: object) -> None:
            self.a, self.shape, self.dtype = a, a.shape, a.dtype  # type: ignore[attr-defined]
            self.ndim = len(self.shape)

        def __getitem__(self, box: tuple[slice, ...]) -> np.ndarray:
            return self.a[box]  # type: ignore[index, no-any-return]

        def __setitem__(self, box: tuple[slice, ...], v: np.ndarray) -> None:
            writes.append(v.size)
            self.a[box] = v  # type: ignore[index]

    def zarr_in(folder: Path):  # type: ignore[no-untyped-def]
        new = made(folder)
        return lambda name, *a: Recorded(new(name, *a)) if name.startswith("nuclei") else new(name, *a)

    monkeypatch.setattr(nuclei, "_zarr_in", zarr_in)
    written = subcell.io.write
    lazy_written: list[bool] = []

    def write(image: Image, *a: object, **kw: object) -> object:  # the OME-TIFF path: given a lazy image
        lazy_written.append(not isinstance(image.data, np.ndarray))
        return written(image, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(subcell.io, "write", write)
    boxes_read: list[int] = []  # the prediction's boxes, read straight from its scratch Zarr (not through Dask)
    box = Volume.__getitem__

    def read_box(self: object, b: tuple[slice, ...]) -> np.ndarray:
        got = box(self, b)  # type: ignore[arg-type]
        boxes_read.append(got.size)
        return got

    monkeypatch.setattr(Volume, "__getitem__", read_box)
    reader = PlaneReader(cells)
    lazy = reader.image().with_metadata(voxel_size=bf.voxel_size)
    stages: list[tuple[str, int, int]] = []
    n = nuclei.write_nuclei(model, movie, lazy, tmp_path / f"n{suffix}", progress=lambda *a: stages.append(a))
    out = io.read(tmp_path / f"n{suffix}").numpy()
    np.testing.assert_array_equal(out, in_memory)
    assert lazy_written == ([True] if suffix == ".ome.tif" else [])
    assert [p.name for p in tmp_path.iterdir()] == [f"n{suffix}"]  # the scratch folder is gone
    assert n == len(set(np.unique(in_memory)) - {0}) >= 5
    assert sorted(reader.planes) == list(range(16))  # each plane of the cells read once, for both frames
    assert 0 < max(writes) < 16 * 160 * 160 / 4  # one nucleus's box at a time, never the frame
    assert len(writes) == sum(len(set(np.unique(f)) - {0}) for f in in_memory)
    n_cells = len(set(np.unique(cells)) - {0})
    assert len(boxes_read) == 2 * n_cells and max(boxes_read) < 16 * 160 * 160 / 4  # each cell once a frame
    # progress: each frame's prediction (tiles), then its four passes over the cells
    assert list(dict.fromkeys(s for s, _, _ in stages)) == [
        f"frame {t}/2: {what}" for t in (1, 2) for what in ("prediction", "nuclei")
    ]
    for t in (1, 2):
        done = [(d, total) for s, d, total in stages if s == f"frame {t}/2: nuclei"]
        assert [d for d, _ in done] == list(range(1, 4 * n_cells + 1)) and done[-1][1] == 4 * n_cells
