"""napari dock widget for ``subcell measure``: a labels layer measured in µm (sizes, shapes, the chosen image
layers' intensities, each cell's nucleus and cytoplasm with N/C ratios, where the signal lies from the nucleus
to the edge, its neighbours and colony), the table
put in the layer's ``features`` (one row per label value: napari colours and lists labels by it) and its
``metadata["measurements"]`` (every frame of a time-lapse), optionally written to a file."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, PushButton, Select, SpinBox

from subcell.napari.widgets import NO_CELLS, _Base, _image_layer_names, _labels_layer_names, _run, image_from_layer

__all__ = ["MeasureWidget"]


class MeasureWidget(_Base):
    """Measure a labels layer (``subcell measure``) in the voxel size of its scale."""

    def __init__(self, viewer: Any) -> None:
        self.layer = ComboBox(label="labels layer", choices=lambda *_: _labels_layer_names(viewer))
        self.intensity = Select(label="intensities", choices=lambda *_: _image_layer_names(viewer))
        self.nuclei = ComboBox(label="nuclei layer (N/C)", choices=lambda *_: [NO_CELLS, *_labels_layer_names(viewer)])
        self.nc_margin = FloatSpinBox(label="N/C margin (µm)", value=0.3, min=0.0, max=10.0, step=0.1)
        self.radial = SpinBox(label="radial shells (0: off)", value=0, min=0, max=20)
        self.neighbours = CheckBox(label="neighbours and colony", value=False)
        self.neighbour_um = FloatSpinBox(label="neighbour distance (µm)", value=1.0, min=0.0, max=100.0, step=0.5)
        self.colony_gap = FloatSpinBox(label="colony gap (µm)", value=1.0, min=0.0, max=100.0, step=0.5)
        self.save = LineEdit(label="save table to (.csv, .parquet)", value="")
        self.run_button = PushButton(text="Measure")
        super().__init__(viewer, [self.layer, self.intensity, self.nuclei, self.nc_margin, self.radial, self.neighbours,
                                  self.neighbour_um, self.colony_gap, self.save, self.run_button])  # fmt: skip
        self.run_button.changed.connect(self.start)
        viewer.layers.events.inserted.connect(self._new_layers)

    def _new_layers(self, *_: Any) -> None:
        for w in (self.layer, self.intensity, self.nuclei):
            w.reset_choices()

    def start(self) -> Any:
        from subcell.metrics.neighbours import NeighbourSpec
        from subcell.segment import measure_frames

        if not self.layer.value:
            self._error(ValueError("no labels layer to measure"))
            return None
        layer = self.viewer.layers[self.layer.value]
        try:
            image = image_from_layer(layer)
            labels = image.numpy()[:, 0]
            chans = {}
            for name in self.intensity.value:
                data = image_from_layer(self.viewer.layers[name]).numpy()[:, 0]
                if data.shape != labels.shape:
                    raise ValueError(f"layer {name!r} has shape {data.shape}, the labels {labels.shape}")
                chans[name] = data
            nuclei = None
            if self.nuclei.value and self.nuclei.value != NO_CELLS:
                nuclei = image_from_layer(self.viewer.layers[self.nuclei.value]).numpy()[:, 0]
            spec = NeighbourSpec(self.neighbour_um.value, self.colony_gap.value) if self.neighbours.value else None
        except ValueError as exc:
            self._error(exc)
            return None
        voxel = image.voxel_size
        target = self.save.value.strip() or None
        self.status.value = "measuring…"

        def work() -> Generator[Any, None, Any]:
            yield "measuring"
            table = measure_frames(labels, voxel_size=voxel, intensity=chans, nuclei=nuclei,
                                   nc_margin_um=self.nc_margin.value, neighbours=spec,
                                   radial=self.radial.value if chans else 0)  # fmt: skip
            if target is not None:
                from subcell.io import write_table

                write_table(table, target, overwrite=True)
            return table

        def done(table: Any) -> None:
            frame = int(self.viewer.dims.current_step[0]) if labels.shape[0] > 1 else 0
            shown = table[table["t"] == frame].drop(columns=["t"]).rename(columns={"label": "index"})
            layer.features = shown.reset_index(drop=True)
            layer.metadata["measurements"] = table
            where = f"; written to {target}" if target else ""
            self.status.value = f"{len(table)} objects, {len(table.columns)} columns in the layer's features{where}"

        self.worker = _run(work, lambda _: None, done, self._error)
        return self.worker
