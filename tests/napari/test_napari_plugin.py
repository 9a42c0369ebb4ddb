"""The napari plugin as a person uses it: the manifest, drag-and-drop reading of every output kind at physical
scale, widgets whose forms are the configs, work in a worker thread with progress and cancel, sample data.
Qt runs offscreen (no GL needed: widgets are driven with a ViewerModel); the real viewer test is separate."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.components import ViewerModel

from subcell import Image, io, synth
from subcell.napari.reader import get_reader


def _open(viewer: ViewerModel, path: Path) -> list:  # type: ignore[type-arg]
    reader = get_reader(str(path))
    assert reader is not None, f"the plugin refused {path}"
    added = []
    for data, kw, kind in reader(str(path)):
        out = viewer._add_layer_from_data(data, kw, kind)
        added += out if isinstance(out, list) else [out]
    return added


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    field = synth.synth_field(shape=(10, 300, 272), voxel_size=(0.5, 0.2, 0.25), seed=2)  # > 256 px: a pyramid
    return synth.write_field(field, tmp_path_factory.mktemp("np") / "field.ome.zarr")


class _CountingVolume:
    """A huge (T, C, Z, Y, X) image that holds no memory (a broadcast ramp along x) and counts the voxels read."""

    def __init__(self, shape: tuple[int, ...], key: tuple[int, int] | None = None, counter: list[int] | None = None):
        self.shape, self.key, self.counter = shape, key, counter if counter is not None else [0]

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        if self.key is None:  # [t, c]: a lazy (Z, Y, X) view
            return _CountingVolume(self.shape[2:], key, self.counter)
        out = np.asarray(np.broadcast_to(np.arange(self.shape[-1], dtype=np.float32), self.shape)[key])
        self.counter[0] += out.size
        return out


def test_contrast_limits_of_an_image_without_a_pyramid_read_a_bounded_sample() -> None:
    from subcell.napari.reader import _LIMITS_SAMPLE, _limits

    big = _CountingVolume((3, 2, 200, 4096, 4096))  # one level of 3.4 G voxels per timepoint and channel
    lo, hi = _limits(big, 1)
    assert 0 < big.counter[0] <= _LIMITS_SAMPLE  # not the whole volume
    full_lo, full_hi = np.percentile(np.arange(4096), [0.5, 99.8])  # every plane is the same ramp
    assert abs(lo - full_lo) < 8 and abs(hi - full_hi) < 8
    small = _CountingVolume((1, 1, 5, 40, 30))  # a small one is read whole
    _limits(small, 0)
    assert small.counter[0] == 5 * 40 * 30


def test_manifest_is_valid_and_registered() -> None:
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("subcell")
    kinds = {c.id for c in manifest.contributions.commands}
    assert {"subcell.get_reader", "subcell.synth_widget", "subcell.segment_widget", "subcell.predict_widget",
            "subcell.pixels_widget", "subcell.sample_field"} <= kinds  # fmt: skip
    for cmd in manifest.contributions.commands:  # every command resolves to an importable object
        module, _, attr = cmd.python_name.partition(":")
        assert hasattr(__import__(module, fromlist=[attr]), attr)


def test_ome_zarr_opens_at_physical_scale_with_names_limits_labels_features(store: Path) -> None:
    viewer = ViewerModel()
    _open(viewer, store)
    image = io.read(store)
    images = [lay for lay in viewer.layers if type(lay).__name__ == "Image"]
    assert [lay.name for lay in images] == list(image.channel_names)
    for lay in images:
        np.testing.assert_allclose(lay.scale, (1.0, 0.5, 0.2, 0.25))
        assert lay.multiscale and len(lay.data) >= 2  # lazy pyramid, napari picks the level
        lo, hi = lay.contrast_limits
        assert hi > lo
        assert str(lay.units[-1]) == "micrometer"
    labels = {lay.name: lay for lay in viewer.layers if type(lay).__name__ == "Labels"}
    # one Labels layer per NGFF label; a label named like a channel says so
    assert {n if n not in image.channel_names else f"{n} labels" for n in io.label_names(store)} == set(labels)
    np.testing.assert_allclose(labels["nucleus"].scale, (1.0, 0.5, 0.2, 0.25))
    feats = labels["cell"].features
    ids = set(np.unique(np.asarray(labels["cell"].data[0]))) - {0}
    assert set(feats["index"]) == ids and "cell_volume_um3" in feats  # one row per label value
    # the image and its labels cover the same physical extent
    np.testing.assert_allclose(images[0].extent.world, labels["nucleus"].extent.world)


def test_tracks_cell_stores_and_segmentations_open(tmp_path: Path, store: Path) -> None:
    from subcell.cli.main import run

    lapse = synth.synth_field(shape=(6, 96, 96), voxel_size=(0.6, 0.3, 0.3), seed=5, **{"time.frames": 6,
                              "time.division_probability": 0.3})  # fmt: skip
    movie = synth.write_field(lapse, tmp_path / "movie.ome.zarr")
    assert run(["track", str(movie), str(tmp_path / "tracks"), "--label", "nucleus"]) == 0
    viewer = ViewerModel()
    _open(viewer, tmp_path / "tracks")
    tracks = next(lay for lay in viewer.layers if type(lay).__name__ == "Tracks")
    table = io.read_table(tmp_path / "tracks" / "tracks.parquet")
    assert len(tracks.data) == len(table) and tracks.data.shape[1] == 5
    lineage = io.read_table(tmp_path / "tracks" / "lineage.parquet")
    assert len(tracks.graph) == int((lineage.parent_track > 0).sum())  # every daughter → its parent
    labels = next(lay for lay in viewer.layers if type(lay).__name__ == "Labels")
    np.testing.assert_allclose(labels.scale[1:], (0.6, 0.3, 0.3))
    # its geff (what other tracking tools read): the same tracks and divisions, with the labels it names
    graph_layers = _open(ViewerModel(), tmp_path / "tracks" / "tracks.geff")
    assert [type(lay).__name__ for lay in graph_layers] == ["Labels", "Tracks"]
    assert len(graph_layers[1].data) == len(table) and len(graph_layers[1].graph) == len(tracks.graph)
    np.testing.assert_allclose(np.sort(graph_layers[1].data[:, 2:], axis=0), np.sort(tracks.data[:, 2:], axis=0))
    # a segmentation written as an image opens as Labels
    seg = tmp_path / "field_nucleus.ome.zarr"
    assert run(["segment", str(store), str(seg), "-w", "nucleus"]) == 0
    added = _open(ViewerModel(), seg)
    assert [type(lay).__name__ for lay in added] == ["Labels"]
    # a cell store: a stack browsable along the cell axis, its table kept
    assert run(["cells", "extract", str(store), str(store), str(tmp_path / "cells.zarr"), "-c", "dna"]) == 0
    cells = _open(ViewerModel(), tmp_path / "cells.zarr")
    store_table = io.read_cell_store(tmp_path / "cells.zarr").extracted
    assert cells[0].data.shape[0] == len(store_table) and len(cells[0].metadata["table"]) == len(store_table)
    assert get_reader(str(tmp_path / "notes.txt")) is None  # not ours: napari asks other readers


def test_every_scene_of_a_multi_series_file_opens_at_its_own_scale(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "plate.ome.tif"  # two positions of a plate, as one OME-TIFF with two series
    with tifffile.TiffWriter(path, ome=True) as w:
        for value, (n, px) in enumerate([(32, 0.2), (16, 0.4)], 1):
            w.write(np.full((4, n, n), value, np.uint16), photometric="minisblack",
                    metadata={"axes": "ZYX", "PhysicalSizeX": px, "PhysicalSizeY": px, "PhysicalSizeZ": 0.5})  # fmt: skip
    layers = _open(ViewerModel(), path)
    assert [lay.name for lay in layers] == ["Image:0 c0", "Image:1 c0"] and [lay.visible for lay in layers] == [
        True,
        False,
    ]
    assert [float(np.asarray(lay.data).max()) for lay in layers] == [1.0, 2.0]  # each its own pixels
    np.testing.assert_allclose([lay.scale[-1] for lay in layers], [0.2, 0.4])  # and its own voxel size


def test_a_plate_opens_as_one_mosaic_with_each_field_in_its_well(tmp_path: Path) -> None:
    from tests.conftest import write_plate

    fields = {"A/1": [np.full((2, 8, 12), 1, np.uint16), np.full((2, 8, 12), 2, np.uint16)],
              "B/3": [np.full((2, 8, 12), 3, np.uint16)]}  # fmt: skip
    write_plate(tmp_path / "screen.zarr", fields, voxel_size=(1.0, 0.5, 0.5))
    nuclei = np.zeros((1, 1, 2, 8, 12), np.int32)
    nuclei[..., 2:6, 3:9] = 4
    io.write(Image(nuclei, voxel_size=(1.0, 0.5, 0.5), channel_names=["nuclei"]),
             tmp_path / "screen.zarr" / "A" / "1" / "1" / "labels" / "nuclei", is_label=True)  # fmt: skip
    layer, labels, wells = _open(ViewerModel(), tmp_path / "screen.zarr")
    mosaic = np.asarray(layer.data)[
        0
    ]  # (Z, Y, X) of the one timepoint: rows A-B, columns 1-3, two fields side by side per well
    gap = 2  # 12 px × PLATE_GAP, rounded
    assert mosaic.shape == (2, 2 * (8 + gap), 3 * (2 * 12 + gap))
    origins = layer.metadata["field_origin_px"]
    assert origins == {"A/1/0": (0, 0), "A/1/1": (0, 12), "B/3/0": (10, 52)}
    for name, value in (("A/1/0", 1), ("A/1/1", 2), ("B/3/0", 3)):
        y, x = origins[name]
        assert (mosaic[:, y : y + 8, x : x + 12] == value).all()
    assert mosaic.sum() == 2 * 8 * 12 * (1 + 2 + 3)  # everything else (empty wells, gaps) is blank
    np.testing.assert_allclose(layer.scale[-3:], (1.0, 0.5, 0.5))
    assert layer.name == "screen c0"
    lab = np.asarray(labels.data)[0]  # the one field's label on the same layout, blank elsewhere
    assert labels.name == "nuclei" and lab.shape == mosaic.shape and type(labels).__name__ == "Labels"
    y, x = origins["A/1/1"]
    np.testing.assert_array_equal(lab[:, y : y + 8, x : x + 12], nuclei[0, 0])
    assert lab.sum() == nuclei.sum()
    assert wells.name == "wells" and list(wells.features["well"]) == ["A1", "B3"]  # each well named at its corner
    np.testing.assert_array_equal(wells.data, [origins["A/1/0"], origins["B/3/0"]])


def test_a_plate_of_fields_in_other_axes_opens_at_full_resolution(tmp_path: Path) -> None:
    import warnings

    import zarr
    from ome_zarr.format import FormatV05

    from tests.conftest import _ome_zarr_writer

    writer, fmt = _ome_zarr_writer(), FormatV05()
    root = zarr.open_group(str(tmp_path / "czyx.zarr"), mode="w", zarr_format=3)
    writer.write_plate_metadata(root, ["A"], ["1"], ["A/1"], fmt=fmt)
    well = root.require_group("A").require_group("1")
    writer.write_well_metadata(well, ["0"], fmt=fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        writer.write_image(np.full((2, 4, 64, 64), 7, np.uint16), well.require_group("0"), axes="czyx", fmt=fmt,
                           scale_factors=[2], scale={"c": 1.0, "z": 1.0, "y": 0.5, "x": 0.5},
                           axes_units={a: "micrometer" for a in "zyx"})  # fmt: skip
    layers = _open(ViewerModel(), tmp_path / "czyx.zarr")  # a (C, Z, Y, X) pyramid: its full level, as 5D
    assert [lay.name for lay in layers] == ["czyx c0", "czyx c1", "wells"] and not layers[0].multiscale
    assert np.asarray(layers[1].data).shape == (1, 4, 72, 72) and int(np.asarray(layers[1].data).max()) == 7


def test_a_bioformats2raw_store_opens_series_by_series(tmp_path: Path) -> None:
    from tests.conftest import write_bioformats2raw

    write_bioformats2raw(tmp_path / "run.zarr", [np.full((2, 4, 4), v, np.uint16) for v in (5, 6)], ["left", "right"],
                         listed=True)  # fmt: skip
    layers = _open(ViewerModel(), tmp_path / "run.zarr")
    assert [lay.name for lay in layers] == ["left c0", "right c0"] and [lay.visible for lay in layers] == [True, False]
    assert [int(np.asarray(lay.data).max()) for lay in layers] == [5, 6]
    # a plate converted with --no-hcs: its OME-XML places the series in wells, so it opens as a plate mosaic
    plate = (
        '<Plate ID="Plate:0" Name="p"><Well ID="Well:0" Row="0" Column="0"><WellSample ID="WellSample:0" '
        'Index="0"><ImageRef ID="Image:1"/></WellSample></Well><Well ID="Well:1" Row="1" Column="2">'
        '<WellSample ID="WellSample:1" Index="1"><ImageRef ID="Image:0"/></WellSample></Well></Plate>'
    )
    write_bioformats2raw(tmp_path / "p.zarr", [np.full((2, 4, 4), v, np.uint16) for v in (5, 6)], ["left", "right"],
                         listed=True, plate_xml=plate)  # fmt: skip
    image, wells = _open(ViewerModel(), tmp_path / "p.zarr")
    assert sorted(wells.features["well"]) == ["A1", "B3"]
    origins = image.metadata["field_origin_px"]
    assert origins["right"] == (0, 0) and origins["left"][0] > 4 and origins["left"][1] > 2 * 4  # B3: row 2, column 3
    mosaic = np.asarray(image.data[0] if image.multiscale else image.data)[0, 0]
    (y, x) = origins["left"]
    assert (mosaic[0:4, 0:4] == 6).all() and (mosaic[y : y + 4, x : x + 4] == 5).all()
    assert mosaic.sum() == 16 * (5 + 6)


def test_an_ome_tiff_plate_opens_as_one_mosaic(tmp_path: Path) -> None:
    """An HCS export (OME-TIFF whose OME-XML places its images in wells) opens as the plate, like an OME-Zarr one."""
    from tests.conftest import ome_plate_xml, write_ome_tiff

    arrays = write_ome_tiff(tmp_path / "s.ome.tif", ["p0", "p1", "p2"], ome_plate_xml({(0, 0): [0, 1], (1, 1): [2]}))
    image, wells = _open(ViewerModel(), tmp_path / "s.ome.tif")
    assert image.name == "s c0" and list(wells.features["well"]) == ["A1", "B2"]
    origins = image.metadata["field_origin_px"]
    mosaic = np.asarray(image.data)[0]  # (Z, Y, X) of the one channel
    for name, a in zip(["p0", "p1", "p2"], arrays, strict=True):
        y, x = origins[name]
        np.testing.assert_array_equal(mosaic[:, y : y + 8, x : x + 10], a)
    assert mosaic.sum() == sum(int(a.sum()) for a in arrays)  # blank between the fields and wells
    np.testing.assert_allclose(image.scale[-3:], (0.5, 0.2, 0.2))


def test_forms_are_the_configs() -> None:
    from subcell.labelfree.config import PredictConfig
    from subcell.napari.forms import ConfigForm
    from subcell.synth.config import SynthConfig

    form = ConfigForm(SynthConfig, ("shape", "voxel_size", "n_cells", "seed"))
    cfg = form.values()
    assert cfg == SynthConfig()  # defaults are the config's own
    form.widgets["seed"].value = 7
    form.widgets["n_cells"].value = "3"
    assert form.values().seed == 7 and form.values().n_cells == 3  # type: ignore[attr-defined]
    p = ConfigForm(PredictConfig, ("memory_limit_gb", "precision", "tile"))
    assert list(p.widgets["precision"].choices) == ["auto", "fp32", "bf16", "fp16"]
    assert p.widgets["memory_limit_gb"].tooltip == PredictConfig.model_fields["memory_limit_gb"].description
    p.widgets["tile"].value = "16 32 32"
    assert p.values().tile == (16, 32, 32)  # type: ignore[attr-defined]
    assert p.widgets["memory_limit_gb"].min == 0  # the config's gt=0 bounds the spin box
    p.widgets["tile"].value = "16 32"
    with pytest.raises(ValueError, match="tile"):
        p.values()


def test_synth_and_segment_widgets_run_in_a_worker(qtbot) -> None:  # type: ignore[no-untyped-def]
    from subcell.napari.widgets import SegmentWidget, SynthWidget

    viewer = ViewerModel()
    w = SynthWidget(viewer)
    w.form.widgets["shape"].value = "10 96 96"
    w.form.widgets["seed"].value = 4
    worker = w.start()
    qtbot.waitUntil(lambda: not worker.is_running and "cells" in w.status.value, timeout=60_000)
    names = [lay.name for lay in viewer.layers]
    assert "synth4 dna" in names and "synth4 nucleus" in names
    seg = SegmentWidget(viewer)
    seg.layer.value = "synth4 dna"
    assert "steps" in seg.yaml.value  # the built-in workflow's YAML, editable
    viewer.dims.set_current_step(1, 5)
    worker = seg.preview()
    qtbot.waitUntil(lambda: "preview:" in seg.status.value, timeout=60_000)
    preview = viewer.layers["preview"]
    assert preview.data.shape[1] == 2 * SegmentWidget.PREVIEW_HALF_DEPTH + 1  # a slab, not the volume
    assert preview.translate[1] == pytest.approx(1 * viewer.layers["synth4 dna"].scale[1])  # placed at its z
    worker = seg.start()
    qtbot.waitUntil(lambda: "nucleus:" in seg.status.value, timeout=60_000)
    full = viewer.layers["nucleus"].data
    truth = np.asarray(viewer.layers["synth4 nucleus"].data)
    assert full.shape == truth.shape and (full > 0).sum() > 0
    seg.yaml.value = "steps: [not a workflow"
    assert seg.start() is None  # refused before any work starts
    assert seg.status.value.startswith("error: workflow parameters: not valid YAML") and "\n" not in seg.status.value


def test_pixels_widget_trains_on_painted_scribbles_and_segments(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from subcell.napari.widgets import PixelsWidget
    from subcell.segment.pixels import load_pixel_classifier

    rng = np.random.default_rng(0)
    truth = np.zeros((4, 48, 48), bool)
    truth[:, 10:22, 10:22] = truth[:, 28:40, 26:44] = True
    image = (100 + 80 * truth + rng.normal(0, 10, truth.shape)).astype(np.float32)
    paint = np.zeros(truth.shape, np.uint8)
    paint[2, 14:18, 12:20] = paint[2, 32:36, 30:40] = 2  # inside both squares
    paint[2, 2:4, 2:46] = paint[2, 24:26, 2:46] = 1  # two background lines
    viewer = ViewerModel()
    viewer.add_image(image, name="fov", scale=(0.5, 0.2, 0.2))
    viewer.add_labels(paint, name="scribbles", scale=(0.5, 0.2, 0.2))
    w = PixelsWidget(viewer)
    w.layer.value, w.scribbles.value, w.folder.value = "fov", "scribbles", str(tmp_path / "clf")
    worker = w.start()
    qtbot.waitUntil(lambda: not worker.is_running and "held-out" in w.status.value, timeout=120_000)
    result = np.asarray(viewer.layers["pixels"].data)
    assert result.shape == truth.shape and ((result > 0) == truth).mean() > 0.97
    assert load_pixel_classifier(tmp_path / "clf").classes == (1, 2)  # the folder `subcell segment -w` takes
    from subcell.napari.widgets import SegmentWidget

    seg = SegmentWidget(viewer)  # its workflow.yaml, loaded in the Segment widget, runs there too
    seg.layer.value, seg.file.value = "fov", str(tmp_path / "clf")
    assert "model: ." in seg.yaml.value  # the file as it is, its classifier found beside it
    worker = seg.start()
    qtbot.waitUntil(lambda: not worker.is_running and "objects" in seg.status.value, timeout=120_000)
    assert np.array_equal(np.asarray(viewer.layers["pixels_clf"].data)[0] > 0, result > 0)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("not a classifier")
    w.folder.value = str(tmp_path / "other")
    assert w.start() is None and "not a pixel classifier folder" in w.status.value  # never replaced


def test_a_lazy_layer_stays_lazy_until_a_widget_reads_what_it_needs() -> None:
    import dask.array as da

    from subcell.napari.widgets import image_from_layer

    viewer = ViewerModel()
    data = da.random.default_rng(0).random((2, 12, 40, 48), chunks=(1, 4, 40, 48)).astype(np.float32)
    layer = viewer.add_image(data, name="big", scale=(1, 0.5, 0.2, 0.2))
    image = image_from_layer(layer)
    assert image.is_lazy and image.shape == (2, 1, 12, 40, 48)  # nothing loaded yet
    np.testing.assert_allclose(image.voxel_size.as_tuple(), (0.5, 0.2, 0.2))
    slab = image.sel(t=1).sel(z=slice(4, 8))
    np.testing.assert_array_equal(slab.numpy()[0, 0], data[1, 4:8].compute())
    plain = image_from_layer(viewer.add_image(np.ones((5, 8, 8), np.float32), name="small"))
    assert not plain.is_lazy and plain.shape == (1, 1, 5, 8, 8)


def test_predict_widget_reports_progress_and_cancels(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    from subcell.image import VoxelSize
    from subcell.labelfree import LabelFreeModel, preset
    from subcell.napari.widgets import PredictWidget

    torch.manual_seed(0)
    model = LabelFreeModel.create(preset("resunet", depth=1, base_channels=4, z_levels=1), input_channel="bf",
                                  targets=["dna"], voxel_size=VoxelSize(0.5, 0.5, 0.5), patch_size=(8, 16, 16))  # fmt: skip
    folder = model.save(tmp_path / "m")
    viewer = ViewerModel()
    rng = np.random.default_rng(0)
    viewer.add_image(rng.normal(size=(1, 16, 64, 64)).astype(np.float32), name="bf", scale=(1, 0.5, 0.5, 0.5))
    w = PredictWidget(viewer)
    w.model_path.value = str(folder)
    w.layer.value = "bf"
    w.form.widgets["precision"].value = "fp32"
    w.form.widgets["tile"].value = "16 32 32"  # small tiles (for this network's edge reach): many progress steps
    worker = w.start()
    qtbot.waitUntil(lambda: "predicted" in w.status.value, timeout=120_000)
    assert w.progress.max > 4 and w.progress.value == w.progress.max
    assert viewer.layers["predicted dna"].data.shape == (1, 16, 64, 64)
    # a layer off the model's grid: by default the prediction comes back on the layer's own grid, to lie over it
    viewer.add_image(rng.normal(size=(1, 16, 60, 70)).astype(np.float32), name="bf2", scale=(1, 0.5, 0.4, 0.6))
    w.layer.reset_choices()
    w.layer.value = "bf2"
    w.start()
    qtbot.waitUntil(lambda: "predicted" in w.status.value and "predicted dna [1]" in viewer.layers, timeout=120_000)
    over = viewer.layers["predicted dna [1]"]
    assert over.data.shape == (1, 16, 60, 70) and tuple(over.scale) == pytest.approx((1, 0.5, 0.4, 0.6))
    w.layer.value = "bf"
    n_layers = len(viewer.layers)
    worker = w.start()
    w.cancel()  # before the first tile is done: the prediction stops at the next progress report
    qtbot.waitUntil(lambda: not worker.is_running and w.status.value == "cancelled", timeout=120_000)
    assert len(viewer.layers) == n_layers  # nothing half-done was added


def test_predict_widget_finds_one_nucleus_per_cell_of_a_cells_layer(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With a cells layer chosen, the prediction also gives a ``nuclei`` labels layer on the cells' grid: one
    nucleus per cell, inside it, with its id."""
    torch = pytest.importorskip("torch")
    from subcell.image import VoxelSize
    from subcell.labelfree import LabelFreeModel, preset
    from subcell.napari.widgets import PredictWidget

    torch.manual_seed(0)
    model = LabelFreeModel.create(preset("resunet", depth=1, base_channels=4, z_levels=1), input_channel="bf",
                                  targets=["dna"], voxel_size=VoxelSize(0.5, 0.5, 0.5), patch_size=(8, 16, 16))  # fmt: skip
    viewer = ViewerModel()
    viewer.add_image(np.random.default_rng(0).normal(size=(1, 12, 40, 60)).astype(np.float32), name="bf",
                     scale=(1, 0.5, 0.5, 0.5))  # fmt: skip
    cells = np.zeros((1, 12, 40, 60), np.uint16)
    cells[0, 1:11, 2:38, 2:29], cells[0, 1:11, 2:38, 31:58] = 4, 9
    viewer.add_labels(cells, name="cells", scale=(1, 0.5, 0.5, 0.5))
    w = PredictWidget(viewer)
    w.model_path.value = str(model.save(tmp_path / "m"))
    w.layer.value, w.cells.value = "bf", "cells"
    w.form.widgets["precision"].value = "fp32"
    w.start()
    qtbot.waitUntil(lambda: "nuclei" in w.status.value, timeout=120_000)
    nuclei = viewer.layers["nuclei"]
    lab = np.asarray(nuclei.data)
    assert type(nuclei).__name__ == "Labels" and lab.shape == cells.shape
    assert tuple(nuclei.scale) == pytest.approx((1, 0.5, 0.5, 0.5))
    assert set(np.unique(lab)) == {0, 4, 9} and np.all(cells[lab > 0] == lab[lab > 0])
    assert w.status.value.endswith("; 2 nuclei in cells")


def test_sample_data() -> None:
    from subcell.napari.sample import sample_field

    layers = sample_field()
    kinds = [k for _, _, k in layers]
    assert kinds.count("labels") == 2 and layers[0][1]["name"][0] == "brightfield"


def test_drift_widget_adds_the_movie_and_its_labels_without_the_drift(qtbot) -> None:  # type: ignore[no-untyped-def]
    from subcell.napari.corrections import DriftWidget
    from tests.transforms.test_drift import blobs, drifted

    truth = np.array([[0, 0, 0], [0, 3, -2], [0, 6, 1]])
    movie = drifted(blobs((3, 120, 120)), truth, (3, 96, 96))
    lab = (movie > np.percentile(movie, 95)).astype(np.uint8)
    viewer = ViewerModel()
    viewer.add_image(movie, name="movie", scale=(1.0, 1.0, 0.5, 0.5))  # (T, Z, Y, X); µm
    viewer.add_labels(lab, name="cells", scale=(1.0, 1.0, 0.5, 0.5))
    w = DriftWidget(viewer)
    w.layer.value, w.follow.value = "movie", "cells"
    worker = w.start()
    qtbot.waitUntil(lambda: not worker.is_running and "drift at most" in w.status.value, timeout=60_000)
    assert w.status.value == "drift at most 0.00 µm in z, 3.00 in y, 1.00 in x"
    fixed, fixed_lab = viewer.layers["movie drift-corrected"].data, viewer.layers["cells drift-corrected"].data
    assert fixed.shape == (3, 3, 96 + 6, 96 + 3) and fixed_lab.shape == fixed.shape
    np.testing.assert_array_equal(fixed[2, :, 0:96, 0:96], movie[2])  # frame 2 moved back by (6, 1): at the corner
    assert set(np.unique(fixed_lab)) == {0, 1}
    still = DriftWidget(viewer)
    viewer.add_image(movie[0], name="one frame", scale=(1.0, 0.5, 0.5))
    still.layer.value = "one frame"
    assert still.start() is None and "has one frame" in still.status.value


def test_bleach_widget_adds_the_movie_back_at_frame_0s_level(qtbot) -> None:  # type: ignore[no-untyped-def]
    from subcell.napari.corrections import BleachWidget
    from tests.transforms.test_bleach import OFFSET, bleached_movie

    movie, truth = bleached_movie()
    viewer = ViewerModel()
    viewer.add_image(movie, name="dna", scale=(1.0, 1.0, 0.5, 0.5))
    w = BleachWidget(viewer)
    w.layer.value = "dna"
    w.form.widgets["background"].value = str(OFFSET)
    worker = w.start()
    qtbot.waitUntil(lambda: not worker.is_running and "largest factor" in w.status.value, timeout=60_000)
    assert w.status.value == "last frame 41% of frame 0's signal; largest factor 2.411"
    fixed = viewer.layers["dna bleach-corrected"].data
    np.testing.assert_allclose(fixed[-1], truth, rtol=2e-3)


def test_measure_widget_puts_the_table_in_the_layers_features(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The labels layer measured at its scale in µm, with an image layer's intensities, the nuclei's N/C ratios
    and the neighbours: the same table as `measure_frames`, one row per label in the layer's features."""
    from subcell.metrics.neighbours import NeighbourSpec
    from subcell.napari.measure import MeasureWidget
    from subcell.segment import measure_frames
    from tests.metrics.test_compartments import _plane

    cells, nuclei, img = _plane()
    viewer = ViewerModel()
    viewer.add_labels(cells[0], name="cells", scale=(0.2, 0.2))
    viewer.add_labels(nuclei[0], name="nuclei", scale=(0.2, 0.2))
    viewer.add_image(img[0], name="yap", scale=(0.2, 0.2))
    w = MeasureWidget(viewer)
    w.layer.value, w.nuclei.value, w.intensity.value = "cells", "nuclei", ["yap"]
    w.neighbours.value, w.radial.value = True, 3
    w.save.value = str(tmp_path / "t.csv")
    worker = w.start()
    qtbot.waitUntil(lambda: not worker.is_running and "objects" in w.status.value, timeout=60_000)
    feats = viewer.layers["cells"].features.set_index("index")
    direct = measure_frames(cells[None], voxel_size=(1.0, 0.2, 0.2), intensity={"yap": img[None]},
                            nuclei=nuclei[None], neighbours=NeighbourSpec()).set_index("label")  # fmt: skip
    assert sorted(feats.index) == [3, 7] and np.allclose(feats["yap_nc_ratio"], direct["yap_nc_ratio"])
    assert feats.loc[3, "area_um2"] == pytest.approx(1600 * 0.04) and (feats["colony_cells"] == 1).all()
    assert "yap_radial_mean" in feats and np.isfinite(feats["yap_radial_mean"]).all()
    assert (tmp_path / "t.csv").exists() and "written to" in w.status.value
    viewer.add_image(np.zeros((10, 10)), name="small", scale=(0.2, 0.2))
    w.intensity.value = ["small"]
    assert w.start() is None and "has shape" in w.status.value
