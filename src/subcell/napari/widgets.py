"""napari dock widgets: synthesize a field, run a segmentation workflow (with a preview around the current
slice), label-free prediction with progress and cancel (and nuclei in a cells layer); a time-lapse's drift and
bleaching in :mod:`subcell.napari.corrections`. Forms come from the pydantic configs
(:class:`~subcell.napari.forms.ConfigForm`); long work runs in a worker thread so the viewer never freezes.

Each widget takes the viewer (napari passes it) and only uses ``viewer.layers``, ``viewer.dims`` and
``viewer.add_layer``-style calls, so the tests drive them with a ``ViewerModel`` as well as a real viewer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, SpinBox, TextEdit

from subcell.napari.forms import ConfigForm
from subcell.napari.reader import image_layers

__all__ = ["PixelsWidget", "PredictWidget", "SegmentWidget", "SynthWidget", "image_from_layer"]


def _add(viewer: Any, layers: list[tuple[Any, dict[str, Any], str]]) -> list[Any]:
    added = []
    for data, kw, kind in layers:
        out = viewer._add_layer_from_data(data, kw, kind)
        added += out if isinstance(out, list) else [out]
    return added


def image_from_layer(layer: Any) -> Any:
    """A subcell :class:`~subcell.image.Image` (T, 1, Z, Y, X; µm) from an Image or Labels layer at physical scale
    (a 2D layer is one plane).

    A layer backed by a lazy array (an OME-Zarr opened by the reader, a Dask array) stays lazy: a preview reads
    its slab and a prediction streams its tiles, instead of the whole volume being loaded on the Qt thread first.
    """
    from subcell.image import Image

    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if not isinstance(data, np.ndarray):
        import dask.array as da

        data = data if isinstance(data, da.Array) else da.from_array(data)
    scale = tuple(float(s) for s in layer.scale)
    if data.ndim == 2:  # a single plane: one z of an unused size
        data = data[None]
        scale = (1.0, *scale)
    if data.ndim == 3:
        data = data[None]
        scale = (1.0, *scale)
    if data.ndim != 4:
        raise ValueError(f"layer {layer.name!r} has {data.ndim} axes; a (T,) Z, Y, X stack is needed")
    return Image(data[:, None], voxel_size=scale[-3:], channel_names=[layer.name])


def _image_layer_names(viewer: Any) -> list[str]:
    return [lay.name for lay in viewer.layers if type(lay).__name__ == "Image"]


NO_CELLS = "(none)"


def _labels_layer_names(viewer: Any) -> list[str]:
    return [lay.name for lay in viewer.layers if type(lay).__name__ == "Labels"]


def _nuclei(prediction: Any, cells: Any) -> Any:
    """Nucleus instances in ``cells`` from a prediction: its ``nucleus`` output, else its first (a ``dna``
    prediction is bright in the nuclei too)."""
    from subcell.labelfree.nuclei import NucleiConfig, nuclei_in_cells

    names = [c for c in prediction.channel_names if not c.endswith("_std")]
    channel = "nucleus" if "nucleus" in names else names[0]
    return nuclei_in_cells(prediction, cells.compute() if cells.is_lazy else cells, NucleiConfig(channel=channel))


def _run(worker_fn: Callable[[], Iterator[Any]], on_yield: Callable[[Any], None], on_done: Callable[[Any], None],
         on_error: Callable[[Exception], None]) -> Any:  # fmt: skip
    """Start a napari generator worker (a thread; results come back on the Qt thread)."""
    from napari.qt.threading import create_worker

    worker = create_worker(worker_fn, _start_thread=False)
    worker.yielded.connect(on_yield)
    worker.returned.connect(on_done)
    worker.errored.connect(on_error)
    worker.start()
    return worker


class _Base(Container):
    def __init__(self, viewer: Any, widgets: list[Any]) -> None:
        self.status = Label(value="")
        super().__init__(widgets=[*widgets, self.status])
        self.viewer = viewer
        self.worker: Any = None

    def _config(self, form: ConfigForm) -> Any:
        """The form's validated config, or None with the refusal shown in the status line."""
        try:
            return form.values()
        except ValueError as exc:
            self._error(exc)
            return None

    def _error(self, exc: Exception) -> None:
        self.status.value = f"error: {' '.join(str(exc).split())}"[:300]


class SynthWidget(_Base):
    """A synthetic hiPSC field with exact truth (``subcell synth``): image channels + truth labels."""

    FIELDS = ("shape", "voxel_size", "n_cells", "seed")

    def __init__(self, viewer: Any) -> None:
        from subcell.synth.config import SynthConfig

        self.form = ConfigForm(SynthConfig, self.FIELDS, values={"shape": (16, 128, 128)})
        self.run_button = PushButton(text="Synthesize")
        super().__init__(viewer, [self.form.container, self.run_button])
        self.run_button.changed.connect(self.start)

    def start(self) -> Any:
        from subcell import synth

        cfg = self._config(self.form)
        if cfg is None:
            return None
        self.status.value = "synthesizing…"

        def work() -> Iterator[Any]:
            yield "generating"
            return synth.synth_field(cfg)  # type: ignore[arg-type,return-value]

        def done(field: Any) -> None:
            labels = {k: v for k, v in field.labels.items() if k in ("nucleus", "cell")}
            _add(self.viewer, image_layers(field.image, labels, prefix=f"synth{cfg.seed} "))  # type: ignore[attr-defined]
            self.status.value = f"{len(field.cells)} cells, {field.image.sizes}"

        self.worker = _run(work, lambda _: None, done, self._error)
        return self.worker


class SegmentWidget(_Base):
    """Run a built-in or YAML workflow on an image layer; the YAML is editable (validated like ``subcell segment``
    validates files); ``Preview`` segments a slab around the current slice only."""

    PREVIEW_HALF_DEPTH = 4  # planes above and below the current slice

    def __init__(self, viewer: Any) -> None:
        from subcell.segment.workflow import builtin_workflows

        self.workflow = ComboBox(label="workflow", choices=sorted(builtin_workflows()), value="nucleus")
        self.file = FileEdit(label="or YAML (or a pixel classifier's workflow.yaml)", mode="r", filter="*.yaml")  # type: ignore[arg-type]
        self.yaml = TextEdit(label="parameters")
        self.layer = ComboBox(label="image layer", choices=lambda *_: _image_layer_names(viewer))
        self.preview_button = PushButton(text="Preview (current slice)")
        self.run_button = PushButton(text="Segment")
        super().__init__(viewer, [self.workflow, self.file, self.yaml, self.layer, self.preview_button,
                                  self.run_button])  # fmt: skip
        self.workflow.changed.connect(self._load_builtin)
        self.file.changed.connect(self._load_file)
        self.preview_button.changed.connect(self.preview)
        self.run_button.changed.connect(self.start)
        viewer.layers.events.inserted.connect(lambda *_: self.layer.reset_choices())
        self._load_builtin()

    def _load_builtin(self, *_: Any) -> None:
        from subcell.segment.workflow import workflow_yaml

        self.yaml.value = workflow_yaml(self.workflow.value)
        self.base: Path | None = None

    def _load_file(self, *_: Any) -> None:
        p = Path(str(self.file.value))
        if p.is_dir() and (p / "workflow.yaml").is_file():  # a pixel classifier's folder
            p = p / "workflow.yaml"
        if p.is_file():
            self.yaml.value = p.read_text()
            self.base = p.parent  # its relative paths (a classifier beside it) stay the file's

    def _parsed(self) -> Any:
        import tempfile

        from subcell.errors import SubcellError
        from subcell.segment import load_workflow

        with tempfile.TemporaryDirectory() as d:  # the one loader and validator of workflow files
            path = Path(d) / "workflow.yaml"
            path.write_text(self.yaml.value)
            try:
                return load_workflow(path, relative_to=self.base)
            except SubcellError as exc:
                raise ValueError(f"workflow parameters: {str(exc).replace(str(path) + ': ', '')}") from None

    def _segment(self, workflow: Any, z_slab: tuple[int, int] | None) -> Any:
        from subcell.segment import segment_image

        layer = self.viewer.layers[self.layer.value]
        image = image_from_layer(layer)
        t = int(self.viewer.dims.current_step[0]) if image.shape[0] > 1 else 0
        image = image.sel(t=t)
        if z_slab is not None:
            image = image.sel(z=slice(*z_slab))
        channels = {name: 0 for name in workflow.inputs}
        return image, segment_image(image, workflow, channels=channels).numpy()[:, 0], layer

    def preview(self) -> Any:
        layer = self.viewer.layers[self.layer.value] if self.layer.value else None
        if layer is None:
            self._error(ValueError("no image layer"))
            return None
        n_z = (layer.data[0] if getattr(layer, "multiscale", False) else layer.data).shape[-3]
        z = int(self.viewer.dims.current_step[-3]) if len(self.viewer.dims.current_step) >= 3 else n_z // 2
        z = min(max(z, 0), n_z - 1)
        slab = (max(0, z - self.PREVIEW_HALF_DEPTH), min(n_z, z + self.PREVIEW_HALF_DEPTH + 1))
        return self._start(slab, "preview")

    def start(self) -> Any:
        return self._start(None, None)

    def _start(self, slab: tuple[int, int] | None, name: str | None) -> Any:
        """Segment the slab (a preview) or the volume; the result layer is ``name``, or the workflow's name (the
        YAML's, which may come from a file, not the built-in chosen in the list)."""
        try:
            workflow = self._parsed()  # refused here, on the Qt thread, before any work starts
        except ValueError as exc:
            self._error(exc)
            return None
        name = name or workflow.name
        self.status.value = "segmenting…"

        def work() -> Iterator[Any]:
            yield "segmenting"
            return self._segment(workflow, slab)

        def done(result: Any) -> None:
            image, labels, layer = result
            translate = np.zeros(4)
            translate[1:] = np.asarray(layer.translate)[-3:]
            if slab is not None:
                translate[1] += slab[0] * image.voxel_size.z
            scale = (1.0, *image.voxel_size.as_tuple())
            existing = [lay for lay in self.viewer.layers if lay.name == name]
            if existing:
                existing[0].data, existing[0].translate = labels, translate
            else:
                self.viewer._add_layer_from_data(labels, {"name": name, "scale": scale, "translate": translate},
                                                 "labels")  # fmt: skip
            self.status.value = f"{name}: {len(np.unique(labels)) - 1} objects"

        self.worker = _run(work, lambda _: None, done, self._error)
        return self.worker


class PixelsWidget(_Base):
    """Paint scribbles (class 1, 2, …) in a Labels layer over an image layer, then train a pixel classifier on them
    and segment the image with it (``subcell pixels train`` + ``segment -w``); paint more and train again. The
    classifier folder is written where asked, for ``subcell segment``/``batch`` on a whole collection."""

    def __init__(self, viewer: Any) -> None:
        self.layer = ComboBox(label="image layer", choices=lambda *_: _image_layer_names(viewer))
        self.scribbles = ComboBox(label="scribbles layer", choices=lambda *_: _labels_layer_names(viewer))
        self.foreground = SpinBox(label="foreground class", value=2, min=1, max=65535)
        self.folder = FileEdit(label="save classifier to", mode="d", value=str(Path.cwd() / "pixel_classifier"))  # type: ignore[arg-type]
        self.run_button = PushButton(text="Train and segment")
        super().__init__(viewer, [self.layer, self.scribbles, self.foreground, self.folder, self.run_button])
        self.run_button.changed.connect(self.start)
        for box in (self.layer, self.scribbles):
            viewer.layers.events.inserted.connect(lambda *_, b=box: b.reset_choices())

    def start(self) -> Any:
        from subcell.segment.filters import normalize
        from subcell.segment.pixels import META, NORMALIZE, save_model_folder, train_pixel_classifier

        if not self.layer.value or not self.scribbles.value:
            self._error(ValueError("choose an image layer and a labels layer of scribbles"))
            return None
        folder = Path(str(self.folder.value))
        if folder.exists() and not (folder / META).is_file():  # only an earlier classifier is replaced
            self._error(ValueError(f"{folder} exists and is not a pixel classifier folder"))
            return None
        image = image_from_layer(self.viewer.layers[self.layer.value])
        t = int(self.viewer.dims.current_step[0]) if image.shape[0] > 1 else 0
        image = image.sel(t=t)
        marks = np.asarray(self.viewer.layers[self.scribbles.value].data)
        marks = marks[t] if marks.ndim == 4 else marks
        marks = marks[None] if marks.ndim == 2 else marks
        if marks.shape != image.shape[2:]:
            self._error(ValueError(f"scribbles {marks.shape} and image {image.shape[2:]} (Z, Y, X) differ"))
            return None
        foreground = int(self.foreground.value)
        self.status.value = "training…"

        def work() -> Generator[str, None, Any]:
            from subcell.segment import load_workflow, segment_image

            yield "training"
            pixels = image.numpy()[0, 0]
            clf = train_pixel_classifier([(normalize(pixels, **NORMALIZE), marks.astype(np.int64))],
                                         voxel_size=image.voxel_size)  # fmt: skip
            clf.meta.update(trained_on=[f"napari layer {self.layer.value!r}"])
            save_model_folder(clf, folder, foreground=foreground, overwrite=True)
            yield "segmenting"
            labels = segment_image(image, load_workflow(folder), channels={"image": 0}).numpy()[0, 0]
            return clf, labels

        def done(result: Any) -> None:
            from subcell.segment.pixels import held_out_summary

            clf, labels = result
            scale = image.voxel_size.as_tuple()
            existing = [lay for lay in self.viewer.layers if lay.name == "pixels"]
            if existing:
                existing[0].data = labels
            else:
                self.viewer._add_layer_from_data(labels, {"name": "pixels", "scale": scale}, "labels")
            self.status.value = f"{folder.name}: {held_out_summary(clf)}"

        self.worker = _run(work, lambda step: setattr(self.status, "value", f"{step}…"), done, self._error)
        return self.worker


class _Cancelled(Exception):
    pass


class PredictWidget(_Base):
    """Label-free prediction of the chosen image layer (tiled, memory-bounded) with progress and cancel."""

    FIELDS = ("memory_limit_gb", "tile", "precision", "tta", "output_grid")

    def __init__(self, viewer: Any) -> None:
        from subcell.labelfree.config import PredictConfig

        self.model = ComboBox(label="model", choices=self._models, value="dna")
        self.model_path = FileEdit(label="or model folder / .zip", mode="r")  # type: ignore[arg-type]
        self.layer = ComboBox(label="bright-field layer", choices=lambda *_: _image_layer_names(viewer))
        # with a cells layer: nucleus instances too, one per cell with its id (``subcell labelfree nuclei``)
        self.cells = ComboBox(label="cells layer → nuclei", choices=lambda *_: [NO_CELLS, *_labels_layer_names(viewer)])
        self.form = ConfigForm(PredictConfig, self.FIELDS)
        # in a viewer the prediction is laid over its layer: on the layer's own grid unless the user asks otherwise
        self.form.widgets["output_grid"].value = "input"
        self.progress = ProgressBar(value=0, max=1, label="tiles")
        self.run_button = PushButton(text="Predict")
        self.cancel_button = PushButton(text="Cancel")
        super().__init__(viewer, [self.model, self.model_path, self.layer, self.cells, self.form.container,
                                  self.progress, self.run_button, self.cancel_button])  # fmt: skip
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        viewer.layers.events.inserted.connect(self._reset_layer_choices)
        self._cancel = threading.Event()

    def _reset_layer_choices(self, *_: Any) -> None:
        self.layer.reset_choices()
        self.cells.reset_choices()

    @staticmethod
    def _models(*_: Any) -> list[str]:
        from subcell.labelfree.pretrained import list_models

        return [r["name"] for r in list_models()]

    def cancel(self) -> None:
        self._cancel.set()
        self.status.value = "cancelling…"

    def start(self) -> Any:
        from subcell.labelfree import predict_image
        from subcell.labelfree.pretrained import load_model

        cfg = self._config(self.form)
        if cfg is None:
            return None
        if not self.layer.value:
            self._error(ValueError("no image layer to predict from"))
            return None
        spec = str(self.model_path.value) if str(self.model_path.value) not in ("", ".") else self.model.value
        image = image_from_layer(self.viewer.layers[self.layer.value])
        cells_layer = self.viewer.layers[self.cells.value] if self.cells.value not in (None, NO_CELLS) else None
        cells = image_from_layer(cells_layer) if cells_layer is not None else None
        self._cancel.clear()
        self.status.value = f"predicting with {spec}…"

        def work() -> Generator[Any, None, Any]:
            model = load_model(spec)
            box: dict[str, Any] = {}
            latest: list[tuple[int, int]] = []

            def progress(done: int, total: int) -> None:
                if self._cancel.is_set():
                    raise _Cancelled
                latest.append((done, total))

            def target() -> None:
                try:
                    box["out"] = predict_image(model, image, cfg, progress=progress)  # type: ignore[arg-type]
                    if cells is not None:
                        box["nuclei"] = _nuclei(box["out"], cells)
                except BaseException as exc:  # handed to the Qt thread below
                    box["error"] = exc

            th = threading.Thread(target=target, daemon=True)
            th.start()
            while th.is_alive():
                th.join(0.05)
                if latest:
                    yield latest[-1]
            if isinstance(box.get("error"), _Cancelled):
                return None
            if "error" in box:
                raise box["error"]
            return box["out"], box.get("nuclei")

        def step(pair: tuple[int, int]) -> None:
            self.progress.max, self.progress.value = pair[1], pair[0]

        def done(out: Any) -> None:
            if out is None:
                self.status.value = "cancelled"
                return
            out, nuclei = out
            _add(self.viewer, image_layers(out, prefix="predicted "))
            self.status.value = f"predicted {', '.join(out.channel_names)}"
            if nuclei is not None and cells_layer is not None:
                _add(self.viewer, [(nuclei.numpy()[:, 0], {"name": "nuclei", "scale": tuple(cells_layer.scale)},
                                    "labels")])  # fmt: skip
                self.status.value += f"; {len(np.unique(nuclei.numpy())) - 1} nuclei in {self.cells.value}"

        self.worker = _run(work, step, done, self._error)
        return self.worker
