"""A real napari window on a virtual screen (Xvfb, software OpenGL): a store opened with the plugin shows its
labels over its image at the right physical scale. Skips with the reason when no virtual screen can be had."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")

from subcell import Image, io

XVFB = shutil.which("Xvfb")


@pytest.fixture
def display() -> str:  # type: ignore[misc]
    if XVFB is None:
        pytest.skip("no Xvfb (Debian package xvfb; `make install` installs it as root)")
    number = 90 + os.getpid() % 100
    proc = subprocess.Popen([XVFB, f":{number}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.0)
    if proc.poll() is not None:
        pytest.skip(f"Xvfb could not start a screen :{number}")
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)


def test_labels_overlay_the_image_at_physical_scale(tmp_path: Path, display: str) -> None:
    # 100 × 200 voxels of 0.5 × 0.25 µm: a 50 µm square on screen only if the voxel size is honoured;
    # the labels cover the right half in x
    img = np.full((1, 1, 3, 100, 200), 1000, np.uint16)
    lab = np.zeros((1, 1, 3, 100, 200), np.int32)
    lab[..., 100:] = 1
    store = tmp_path / "square.ome.zarr"
    io.write(Image(img, voxel_size=(1.0, 0.5, 0.25), channel_names=["bf"]), store, labels={"half": lab[:, 0]})
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "LIBGL_ALWAYS_SOFTWARE": "1"}
    out = tmp_path / "seen.json"
    script = Path(__file__).with_name("real_viewer_script.py")
    r = subprocess.run([sys.executable, str(script), str(store), str(out)], env=env, capture_output=True, text=True,
                       timeout=240)  # fmt: skip
    if r.returncode != 0 and "could not connect to display" in r.stderr.lower():
        pytest.skip("Qt could not use the virtual screen")
    assert r.returncode == 0, r.stderr[-2000:]
    seen = json.loads(out.read_text())
    assert seen["layers"] == ["Image", "Labels"]
    y0, y1, x0, x1 = seen["image"]
    h, w = y1 - y0 + 1, x1 - x0 + 1
    assert abs(w / h - 1.0) < 0.04, seen  # 50 µm × 50 µm: square (200 × 100 voxels would be 2:1)
    ly0, ly1, lx0, lx1 = seen["labels"]
    assert abs(lx0 - (x0 + w / 2)) < 0.03 * w and abs(lx1 - x1) < 0.03 * w, seen  # the right half, on the image
    assert abs(ly0 - y0) < 0.03 * h and abs(ly1 - y1) < 0.03 * h, seen
