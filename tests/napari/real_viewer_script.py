"""Run inside Xvfb by test_real_viewer: open a store with the plugin in a real napari window, screenshot the
canvas with and without the labels, and print where the image and the labels landed (JSON)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())]


def main(store: str, out: str) -> None:
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(900, 800)
    layers = viewer.open(store, plugin="subcell")
    image = next(lay for lay in layers if type(lay).__name__ == "Image")
    labels = next(lay for lay in layers if type(lay).__name__ == "Labels")
    image.colormap = "gray"
    image.contrast_limits = (0, 1000)
    viewer.reset_view()
    labels.visible = False
    plain = viewer.screenshot(canvas_only=True, flash=False)
    labels.visible = True
    labels.opacity = 1.0
    over = viewer.screenshot(canvas_only=True, flash=False)
    np.save(Path(out).with_suffix(".npy"), over)
    lit = plain[..., :3].max(axis=-1) > 128  # the bright image on the dark canvas
    changed = np.abs(over[..., :3].astype(int) - plain[..., :3].astype(int)).max(axis=-1) > 30
    seen = {"image": bbox(lit), "labels": bbox(changed), "shape": list(plain.shape),
            "layers": [type(lay).__name__ for lay in layers]}  # fmt: skip
    Path(out).write_text(json.dumps(seen))
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
