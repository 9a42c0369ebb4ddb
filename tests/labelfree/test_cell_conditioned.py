"""Models conditioned on the cell outlines: the cells' depth as a second input, in training, pretraining,
prediction (whole and tiled) and ``labelfree nuclei``."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from subcell import Image, io
from subcell.errors import MetadataError, ValueRangeError
from subcell.labelfree import LabelFreeModel, PredictConfig, predict_image, train_labelfree
from subcell.labelfree.cell_prior import cell_depth
from subcell.labelfree.config import AugmentConfig, PretrainConfig
from subcell.labelfree.data import PatchDraw, PatchSampler, Volume
from tests.labelfree.conftest import VOXEL, paired_volume, tiny_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def cells_of(shape: tuple[int, int, int], shift: int = 0) -> np.ndarray:
    """Four cells, the quadrants of the inner planes (ids 1-4), ``shift`` px along x."""
    lab = np.zeros(shape, np.uint16)
    z, y, x = shape
    h, w = y // 2, x // 2
    for i, (ys, xs) in enumerate([(slice(1, h), slice(1, w)), (slice(1, h), slice(w, x - 1)),
                                  (slice(h, y - 1), slice(1, w)), (slice(h, y - 1), slice(w, x - 1))]):  # fmt: skip
        lab[2 : z - 2, ys, xs] = i + 1
    return np.roll(lab, shift, axis=2)


def as_labels(lab: np.ndarray) -> Image:
    return Image(lab[None, None], voxel_size=VOXEL, channel_names=["cells"])


@pytest.fixture(scope="module")
def cell_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three bright-field / DNA pairs with their cell labels (``mask_cell``), and a manifest."""
    folder = tmp_path_factory.mktemp("cells")
    rows = []
    for i, split in enumerate(["train", "train", "val"]):
        image = paired_volume(i)
        io.write(image, folder / f"c{i}.ome.zarr")
        io.write(as_labels(cells_of(image.shape[2:], shift=3 * i)), folder / f"c{i}_cells.ome.zarr")
        rows.append([f"c{i}", f"c{i}.ome.zarr", "brightfield", f"c{i}.ome.zarr", "dna", f"c{i}_cells.ome.zarr", split])
    with (folder / "manifest.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "source", "source_channel", "target", "target_channel", "mask_cell", "split"])
        w.writerows(rows)
    return folder / "manifest.csv"


@pytest.fixture(scope="module")
def conditioned(cell_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cond") / "model"
    return train_labelfree(tiny_config(cell_dataset, out, iterations=4, cells="mask_cell")).folder  # type: ignore[return-value]


def test_a_model_trained_with_cells_takes_their_depth_as_a_second_input(conditioned: Path) -> None:
    model = LabelFreeModel.load(conditioned)
    assert model.cell_conditioned and model.input_channels == ["brightfield", "cell_depth"]
    assert model.network.in_channels == 2
    image = paired_volume(7).channel("brightfield")
    lab = cells_of(image.shape[2:])
    pred = predict_image(model, image, PredictConfig(precision="fp32"), cells=as_labels(lab)).numpy()[0, 0]
    # what the prediction must be: the network on the z-scored image and the cells' depth, whole
    x = image.numpy()[0, 0].astype(np.float64)
    x = ((x - x.mean()) / x.std()).astype(np.float32)
    depth = cell_depth(lab, VOXEL)
    with torch.no_grad():
        direct = model.network.eval()(torch.from_numpy(np.stack([x, depth])[None]))[0, 0].numpy()
    np.testing.assert_allclose(pred, direct, atol=1e-4)
    tiled = predict_image(model, image, PredictConfig(precision="fp32", tile=(16, 24, 24)), cells=as_labels(lab))
    np.testing.assert_allclose(tiled.numpy()[0, 0], pred, atol=1e-4)  # the depth is tiled with the image
    other = predict_image(model, image, PredictConfig(precision="fp32"), cells=as_labels(cells_of(lab.shape, 9)))
    assert np.abs(other.numpy()[0, 0] - pred).max() > 1e-3  # the cells change the prediction


def test_prediction_refuses_missing_extra_or_misplaced_cells(conditioned: Path, tmp_path: Path) -> None:
    model = LabelFreeModel.load(conditioned)
    image = paired_volume(7).channel("brightfield")
    with pytest.raises(ValueRangeError, match="second input") as err:
        predict_image(model, image)
    assert err.value.field == "cells"
    with pytest.raises(MetadataError, match="grid"):
        predict_image(model, image, cells=as_labels(cells_of((16, 48, 40))))
    # the one label rule: whole-number floats are ids (the same prediction), fractional values are refused
    lab = cells_of(image.shape[2:])
    ints = predict_image(model, image, PredictConfig(precision="fp32"), cells=as_labels(lab)).numpy()
    floats = predict_image(model, image, PredictConfig(precision="fp32"), cells=as_labels(lab.astype(np.float32)))
    np.testing.assert_array_equal(floats.numpy(), ints)
    with pytest.raises(ValueRangeError, match="fractional"):
        predict_image(model, image, cells=as_labels(lab.astype(np.float32) + 0.5))
    plain = dataclasses.replace(model, cell_conditioned=False)
    with pytest.raises(ValueRangeError, match="takes no cell outlines"):
        predict_image(plain, image, cells=as_labels(cells_of(image.shape[2:])))


def test_fine_tuning_must_agree_with_the_initial_models_cell_input(
    cell_dataset: Path, conditioned: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueRangeError, match="takes the cell outlines") as err:
        train_labelfree(tiny_config(cell_dataset, tmp_path / "a", init=str(conditioned), iterations=1))
    assert err.value.field == "cells"
    plain = train_labelfree(tiny_config(cell_dataset, tmp_path / "plain", iterations=1)).folder
    with pytest.raises(ValueRangeError, match="takes no cell outlines"):
        train_labelfree(tiny_config(cell_dataset, tmp_path / "b", init=str(plain), iterations=1, cells="mask_cell"))
    tuned = train_labelfree(tiny_config(cell_dataset, tmp_path / "c", init=str(conditioned), iterations=1,
                                        cells="mask_cell"))  # fmt: skip
    assert tuned.model.cell_conditioned


def test_intensity_augmentation_changes_the_image_and_leaves_the_cell_depth_alone() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 16, 16)).astype(np.float32)
    vol = Volume("v", x, x[:1].copy(), None, np.arange(10), np.zeros(1), np.ones(1))
    sampler = PatchSampler([vol], (8, 16, 16), augment=AugmentConfig())  # one image channel, as every model has
    draw = PatchDraw(0, (0, 0, 0), flip_x=True, rot90=1, gain=1.2, offset=0.3, invert=True, blur=1.0, noise=0.5)
    geometric = dataclasses.replace(draw, gain=1.0, offset=0.0, invert=False, blur=0.0, noise=0.0)
    got, _, _ = sampler.apply(draw)
    moved, _, _ = sampler.apply(geometric)
    np.testing.assert_array_equal(got[1], moved[1])  # the depth only moves with the patch
    np.testing.assert_array_equal(moved[1], np.rot90(x[1, :, :, ::-1], 1, axes=(-2, -1)))
    assert np.abs(got[0] - moved[0]).mean() > 0.5  # the image is changed
    both = PatchSampler([vol], (8, 16, 16), augment=AugmentConfig(), image_channels=2)  # were both images
    assert np.abs(both.apply(draw)[0][1] - moved[1]).mean() > 0.5


def test_pretraining_fields_carry_the_depth_of_the_cells_kept(tmp_path: Path) -> None:
    from subcell.labelfree.pretrain import synthetic_volume

    base = {
        "output": tmp_path / "pre", "targets": ["nucleus"], "field_um": (8.0, 24.0, 24.0), "voxel_size": (0.5, 0.4, 0.4),
        "network": {"preset": "resunet", "depth": 1, "base_channels": 4}, "patch_size": (8, 16, 16), "threads": 1,
    }  # fmt: skip
    plain = synthetic_volume(PretrainConfig.model_validate(base), (3,))
    kept = synthetic_volume(PretrainConfig.model_validate({**base, "cells": True, "drop_cells": 0.0}), (3,))
    half = PretrainConfig.model_validate({**base, "cells": True, "drop_cells": 0.5})
    some = synthetic_volume(half, (3,))
    assert plain.input.shape[0] == 1 and kept.input.shape[0] == 2
    np.testing.assert_array_equal(kept.input[0], plain.input[0])  # the same field, the same image
    np.testing.assert_array_equal(kept.target, plain.target)
    depth = kept.input[1]
    assert depth.min() >= 0 and depth.max() <= 1 and depth.max() > 0.5
    inside = kept.target[0] > kept.target[0].min()  # nucleus voxels lie in cells: their depth is positive
    assert (depth[inside] > 0).mean() > 0.95
    # cells left out lose their depth, the others keep it; over a few fields some are left out, not all
    left, total = 0, 0
    for key in [(3,), (4,), (5,), (6,)]:
        if key == (3,):
            full, part = kept.input[1], some.input[1]
        else:
            full = synthetic_volume(PretrainConfig.model_validate({**base, "cells": True, "drop_cells": 0.0}),
                                    key).input[1]  # fmt: skip
            part = synthetic_volume(half, key).input[1]
        assert np.all(part <= full + 1e-6)  # leaving cells out only removes depth (resampled linearly)
        left, total = left + int((part > 0).sum()), total + int((full > 0).sum())
    assert 0.2 * total < left < 0.8 * total
    again = synthetic_volume(half, (3,))
    np.testing.assert_array_equal(again.input, some.input)  # which cells are left out is part of the field's key
    with pytest.raises(ValidationError, match="3D models"):
        PretrainConfig.model_validate({**base, "cells": True, "two_d": True})


def test_labelfree_nuclei_feeds_the_cells_to_a_conditioned_model_and_skips_the_prior(
    conditioned: Path, tmp_path: Path
) -> None:
    from subcell.labelfree.nuclei import NucleiConfig, _checked, nuclei_frames, write_nuclei

    model = LabelFreeModel.load(conditioned)
    image = paired_volume(7).channel("brightfield")
    lab = as_labels(cells_of(image.shape[2:]))
    cfg = NucleiConfig(channel="dna")
    assert _checked(model, image, lab, cfg).prior_weight == 0.0
    assert _checked(dataclasses.replace(model, cell_conditioned=False), image, lab, cfg).prior_weight == 0.5
    assert _checked(model, image, lab, NucleiConfig(channel="dna", prior_weight=0.3)).prior_weight == 0.3
    pcfg = PredictConfig(precision="fp32")
    in_memory = next(nuclei_frames(model, image, lab, cfg, pcfg))[1].numpy()
    n = write_nuclei(model, image, lab, tmp_path / "n.ome.zarr", cfg, pcfg)
    written = io.read(tmp_path / "n.ome.zarr").numpy()
    np.testing.assert_array_equal(written, in_memory)  # both paths give the model the same cells
    assert n == 4


def test_a_conditioned_model_is_not_exported_to_bioimageio(conditioned: Path, tmp_path: Path) -> None:
    from subcell.zoo.export import export_labelfree

    with pytest.raises(ValueRangeError, match="second input"):
        export_labelfree(LabelFreeModel.load(conditioned), paired_volume(7), tmp_path / "m.zip")


def test_the_cli_asks_for_the_cells_in_one_line(conditioned: Path, tmp_path: Path) -> None:
    from tests.conftest import subcell_cli

    io.write(paired_volume(7).channel("brightfield"), tmp_path / "bf.ome.zarr")
    args = ["labelfree", "predict", str(tmp_path / "bf.ome.zarr"), str(tmp_path / "p.ome.zarr"), "--model",
            str(conditioned), "--quiet"]  # fmt: skip
    r = subcell_cli(*args)
    assert r.returncode != 0 and "--cells" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "p.ome.zarr").exists()
    io.write(as_labels(cells_of((16, 48, 48))), tmp_path / "cells.ome.zarr")
    r = subcell_cli(*args, "--cells", str(tmp_path / "cells.ome.zarr"))
    assert r.returncode == 0, r.stderr
    assert io.read(tmp_path / "p.ome.zarr").shape[1] == 1


def test_cells_on_a_coarser_grid_reach_the_model_on_the_images_grid(
    conditioned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from subcell.io import OmeZarrWriter
    from subcell.labelfree import predict_input
    from subcell.labelfree.nuclei import NucleiConfig, _model_cells, nuclei_frames
    from subcell.labelfree.predict import predict_to_zarr
    from subcell.transforms.align import align_to

    model = LabelFreeModel.load(conditioned)
    image = paired_volume(7).channel("brightfield")
    fine = cells_of(image.shape[2:])
    coarse = Image(fine[None, None, :, ::2, ::2], voxel_size=(VOXEL[0], 2 * VOXEL[1], 2 * VOXEL[2]),
                   channel_names=["cells"])  # fmt: skip
    handed = _model_cells(model, coarse)  # as labelfree nuclei hands them on: on their own grid
    assert handed is not None and handed.voxel_size.isclose(coarse.voxel_size)
    np.testing.assert_array_equal(handed.numpy(), coarse.numpy())
    from subcell.image import is_lazy
    from subcell.io._atomic import scratch_array

    stored = scratch_array(tmp_path, "cells", shape=coarse.shape[2:], dtype=np.uint16, chunks=(4, 16, 16))
    stored[:] = coarse.numpy()[0, 0]
    lazily = _model_cells(model, coarse, stored)  # labels write_nuclei made in scratch: handed on unread
    assert lazily is not None and is_lazy(lazily.data)
    np.testing.assert_array_equal(lazily.numpy(), coarse.numpy())
    given = Image(align_to(coarse, image, labels=True), voxel_size=image.voxel_size)  # resampled whole, in memory
    assert given.shape[2:] == image.shape[2:]
    lab = given.numpy()[0, 0]
    assert set(np.unique(lab)) == {0, 1, 2, 3, 4}
    assert np.mean(lab == fine) > 0.9  # the same cells, up to a voxel at their borders
    # the whole path: the prediction takes them (a misplaced cell input is refused), the nuclei land on the cells' grid
    nuclei = next(nuclei_frames(model, image, coarse, NucleiConfig(channel="dna"), PredictConfig(precision="fp32")))[1]
    assert nuclei.shape[2:] == coarse.shape[2:]
    nuc, cells = nuclei.numpy()[0, 0], coarse.numpy()[0, 0]
    assert set(np.unique(nuc)) == {0, 1, 2, 3, 4}  # one nucleus in every cell
    assert np.all(cells[nuc > 0] == nuc[nuc > 0])  # each inside its own cell, with its id
    assert _model_cells(dataclasses.replace(model, cell_conditioned=False), coarse) is None
    # the prediction puts them on the image's grid itself: what it predicts from the cells resampled there whole,
    # in memory, and streamed with both the resampled cells and their depth in the unfinished store's scratch
    cfg = PredictConfig(precision="fp32")
    want = predict_image(model, image, cfg, cells=given).numpy()
    np.testing.assert_array_equal(predict_image(model, image, cfg, cells=coarse).numpy(), want)
    monkeypatch.setattr(predict_input, "DEPTH_HELD_BYTES", 0)
    made: list[str] = []
    scratch_array = OmeZarrWriter.scratch_array
    monkeypatch.setattr(
        OmeZarrWriter, "scratch_array", lambda w, name, **k: made.append(name) or scratch_array(w, name, **k)
    )
    out = predict_to_zarr(model, image, tmp_path / "p.ome.zarr", cfg, cells=coarse)
    assert made == ["cells_on_grid", "cell_depth"]
    np.testing.assert_allclose(io.read(out).numpy()[:, :1], want, atol=1e-5)
    with pytest.raises(MetadataError, match="same field"):  # another grid that does not cover the image's field
        predict_image(model, image, cfg, cells=Image(fine[None, None, :, ::2, :16], voxel_size=coarse.voxel_size))


def _direct(model: LabelFreeModel, frame: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """The network on one z-scored frame and its cells' depth, whole: what every path must predict."""
    x = frame.astype(np.float64)
    x = ((x - x.mean()) / x.std()).astype(np.float32)
    with torch.no_grad():
        out = model.network.eval()(torch.from_numpy(np.stack([x, cell_depth(lab, VOXEL)])[None]))
    return out[0, 0].numpy()


def test_a_time_lapses_cell_depth_is_made_a_frame_at_a_time_in_memory_or_scratch(
    conditioned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dask
    import dask.array as da

    from subcell.io import OmeZarrWriter
    from subcell.labelfree import predict_input
    from subcell.labelfree.predict import predict_to_zarr
    from subcell.labelfree.predict_regions import predict_regions_to_zarr

    model = LabelFreeModel.load(conditioned)
    image = paired_volume(3, frames=3).channel("brightfield")
    labs = [cells_of(image.shape[2:], shift=s) for s in (0, 5, 11)]
    want = [_direct(model, image.numpy()[t, 0], labs[t]) for t in range(3)]

    def movie(broken: int | None = None) -> Image:
        def read(t: int) -> np.ndarray:
            if t == broken:
                raise OSError(f"frame {t} is unreadable")
            return labs[t]

        frames = [da.from_delayed(dask.delayed(read)(t), labs[t].shape, labs[t].dtype) for t in range(3)]
        return Image(da.stack(frames)[:, None], voxel_size=VOXEL, channel_names=["cells"])

    cfg = PredictConfig(precision="fp32")
    in_memory = predict_image(model, image, cfg, cells=movie()).numpy()
    for t in range(3):
        np.testing.assert_allclose(in_memory[t, 0], want[t], atol=1e-4)  # each frame with its own cells
    # every frame's depth forced into the unfinished store's scratch, streamed and by regions: the same prediction
    monkeypatch.setattr(predict_input, "DEPTH_HELD_BYTES", 0)
    made: list[str] = []
    scratch_array = OmeZarrWriter.scratch_array

    def spy(self: OmeZarrWriter, name: str, **kwargs: Any) -> Any:
        made.append(name)
        return scratch_array(self, name, **kwargs)

    monkeypatch.setattr(OmeZarrWriter, "scratch_array", spy)
    for name, run, arrays in [("rows", predict_to_zarr, ["cell_depth"] * 3),
                              ("regions", predict_regions_to_zarr, ["cell_depth_0", "cell_depth_1", "cell_depth_2"])]:  # fmt: skip
        made.clear()
        out = run(model, image, tmp_path / f"{name}.ome.zarr", cfg, cells=movie())
        assert made == arrays  # each frame's depth went to the store's scratch
        np.testing.assert_allclose(io.read(out).numpy()[:, :1], in_memory, atol=1e-5)
        assert not any(".scratch" in p.name or "cell_depth" in p.name for p in out.rglob("*"))  # none left
    # a frame not predicted is never read: its cells may be missing or broken
    two = predict_to_zarr(model, image, tmp_path / "two.ome.zarr", cfg.model_copy(update={"timepoints": [0, 2]}),
                          cells=movie(broken=1))  # fmt: skip
    np.testing.assert_allclose(io.read(two).numpy()[:, :1], in_memory[[0, 2]], atol=1e-5)
    with pytest.raises(OSError, match="frame 1"):
        predict_image(model, image, cfg, cells=movie(broken=1))


def test_cells_in_a_plain_tiff_on_another_grid_take_their_own_voxel_size(
    conditioned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain TIFF states no voxel size: ``--voxel-size`` gives the image's, ``--cells-voxel-size`` the cells'
    (another grid); the prediction is the one from the same cells in an OME-Zarr that states their grid."""
    import tifffile

    from subcell.cli.main import run

    bf = paired_volume(7).channel("brightfield")
    tifffile.imwrite(tmp_path / "bf.tif", bf.numpy()[0, 0])
    coarse = cells_of(bf.shape[2:])[:, ::2, ::2]
    coarse_vs = (VOXEL[0], 2 * VOXEL[1], 2 * VOXEL[2])
    tifffile.imwrite(tmp_path / "cells.tif", coarse)
    io.write(Image(coarse[None, None], voxel_size=coarse_vs, channel_names=["cells"]), tmp_path / "cells.ome.zarr")
    base = ["labelfree", "predict", str(tmp_path / "bf.tif"), "--model", str(conditioned), "--quiet",
            "--voxel-size", *map(str, VOXEL)]  # fmt: skip
    assert run([*base[:3], str(tmp_path / "ref.ome.zarr"), *base[3:], "--cells", str(tmp_path / "cells.ome.zarr")]) == 0
    assert run([*base[:3], str(tmp_path / "p.ome.zarr"), *base[3:], "--cells", str(tmp_path / "cells.tif"),
                "--cells-voxel-size", *map(str, coarse_vs)]) == 0  # fmt: skip
    np.testing.assert_array_equal(io.read(tmp_path / "p.ome.zarr").numpy(), io.read(tmp_path / "ref.ome.zarr").numpy())
    # without it the cells take the image's voxel size: half the field, refused in one line, nothing written
    capsys.readouterr()
    assert run([*base[:3], str(tmp_path / "q.ome.zarr"), *base[3:], "--cells", str(tmp_path / "cells.tif")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cells.tif" in errors[0] and "grid" in errors[0]
    assert not (tmp_path / "q.ome.zarr").exists()
