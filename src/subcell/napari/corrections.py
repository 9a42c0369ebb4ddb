"""napari dock widgets for what a microscope does to a time-lapse: its stage drift (``subcell drift``) and its
photobleaching (``subcell bleach``), each taken out of an image layer and the result added as a new layer; the
work runs in a worker thread (:mod:`subcell.napari.widgets`)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, PushButton

from subcell.napari.forms import ConfigForm
from subcell.napari.widgets import _Base, _image_layer_names, _labels_layer_names, _run, image_from_layer

__all__ = ["BleachWidget", "DriftWidget"]


def _inputs(widget: Any) -> tuple[Any, Any, Any] | None:
    """A widget's validated config, its time-lapse layer as an :class:`~subcell.image.Image`, and the layer; None
    with the refusal in the status line."""
    cfg = widget._config(widget.form)
    if cfg is None or not widget.layer.value:
        return None
    layer = widget.viewer.layers[widget.layer.value]
    image = image_from_layer(layer)
    if image.shape[0] < 2:
        widget._error(ValueError(f"layer {layer.name!r} has one frame: a time-lapse is needed"))
        return None
    return cfg, image, layer


class DriftWidget(_Base):
    """Measure a time-lapse layer's stage drift and add it with the drift taken out (``subcell drift``); a labels
    layer of the same movie can be moved by the same amounts."""

    FIELDS = ("reference", "lateral_only", "canvas", "subpixel")

    def __init__(self, viewer: Any) -> None:
        from subcell.transforms.drift import DriftConfig

        self.form = ConfigForm(DriftConfig, self.FIELDS)
        self.layer = ComboBox(label="time-lapse layer", choices=lambda *_: _image_layer_names(viewer))
        self.follow = ComboBox(label="labels layer to move too", choices=lambda *_: ["", *_labels_layer_names(viewer)])
        self.run_button = PushButton(text="Correct drift")
        super().__init__(viewer, [self.layer, self.follow, self.form.container, self.run_button])
        self.run_button.changed.connect(self.start)
        viewer.layers.events.inserted.connect(self._new_layers)

    def _new_layers(self, *_: Any) -> None:
        self.layer.reset_choices()
        self.follow.reset_choices()

    def start(self) -> Any:
        from subcell.image import Image
        from subcell.transforms.drift import DRIFT_COLUMNS, correct_drift, drift_extent, estimate_drift

        if (given := _inputs(self)) is None:
            return None
        cfg, image, layer = given
        follow_name = self.follow.value
        follow = self.viewer.layers[follow_name] if follow_name else None
        self.status.value = "measuring the drift…"

        def work() -> Generator[Any, None, Any]:
            yield "measuring"
            table = estimate_drift(image.data[:, 0], voxel_size=image.voxel_size, reference=cfg.reference,
                                   lateral_only=cfg.lateral_only, upsample=cfg.upsample_factor)  # fmt: skip
            drift = table[DRIFT_COLUMNS].to_numpy()
            moved = correct_drift(image, drift, canvas=cfg.canvas, subpixel=cfg.subpixel).numpy()[:, 0]
            labels = None
            if follow is not None:
                lab = Image(np.asarray(follow.data)[:, None], voxel_size=image.voxel_size)
                labels = correct_drift(lab, drift, canvas=cfg.canvas, labels=True).numpy()[:, 0]
            return drift, moved, labels

        def done(result: Any) -> None:
            drift, moved, labels = result
            kw = {"scale": layer.scale, "translate": layer.translate}
            self.viewer.add_image(moved, name=f"{layer.name} drift-corrected", **kw)
            if labels is not None:
                self.viewer.add_labels(labels, name=f"{follow_name} drift-corrected", **kw)
            self.status.value = f"drift {drift_extent(drift)}"

        self.worker = _run(work, lambda _: None, done, self._error)
        return self.worker


class BleachWidget(_Base):
    """Make up for a fluorescence time-lapse layer's photobleaching (``subcell bleach``): the layer added brought
    back to frame 0's level (float32), the last frame's signal and the largest factor in the status line."""

    FIELDS = ("method", "background")

    def __init__(self, viewer: Any) -> None:
        from subcell.transforms.bleach import BleachConfig

        self.form = ConfigForm(BleachConfig, self.FIELDS)
        self.layer = ComboBox(label="time-lapse layer", choices=lambda *_: _image_layer_names(viewer))
        self.run_button = PushButton(text="Correct bleaching")
        super().__init__(viewer, [self.layer, self.form.container, self.run_button])
        self.run_button.changed.connect(self.start)
        viewer.layers.events.inserted.connect(lambda *_: self.layer.reset_choices())

    def start(self) -> Any:
        from subcell.transforms.bleach import bleach_curve, bleach_factors, correct_bleach

        if (given := _inputs(self)) is None:
            return None
        cfg, image, layer = given
        self.status.value = "measuring the bleaching…"

        def work() -> Generator[Any, None, Any]:
            yield "measuring"
            curve = bleach_curve(image.data[:, 0], background=cfg.background)
            factors = np.ones(len(curve)) if cfg.method == "histogram" else bleach_factors(curve, cfg.method)[0]
            fixed = correct_bleach(image, factors[:, None], background=curve["background"].iloc[0], method=cfg.method)
            return curve, factors, fixed.numpy()[:, 0]

        def done(result: Any) -> None:
            curve, factors, fixed = result
            self.viewer.add_image(fixed, name=f"{layer.name} bleach-corrected", scale=layer.scale,
                                  translate=layer.translate)  # fmt: skip
            signal = curve["signal"].to_numpy()
            self.status.value = (f"last frame {signal[-1] / signal[0]:.0%} of frame 0's signal; largest factor "
                                 f"{factors.max():.3f}")  # fmt: skip

        self.worker = _run(work, lambda _: None, done, self._error)
        return self.worker
