"""OME-Zarr stores written by other tools: scenes, units, channel labels and old NGFF versions, read by zarr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from subcell import io
from subcell.errors import InputFileError, MetadataError


def _axes(names: str, units: dict[str, str]) -> list[dict[str, Any]]:
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    return [{"name": a, "type": kinds[a], **({"unit": units[a]} if a in units else {})} for a in names]


def _store(
    path: Path, images: list[tuple[str | None, str, np.ndarray, list[float], dict[str, str]]], **attrs: Any
) -> Path:
    """A v2 store with one multiscale per image (name, axes, array, level-0 scale, units), as another tool writes."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    multiscales = []
    for i, (name, axes, array, scale, units) in enumerate(images):
        group.create_array(f"im{i}/0", data=array, chunks=tuple(max(1, s // 2) for s in array.shape))
        ms: dict[str, Any] = {
            "version": "0.4",
            "axes": _axes(axes, units),
            "datasets": [{"path": f"im{i}/0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
        }
        if name is not None:
            ms["name"] = name
        multiscales.append(ms)
    group.attrs.update({"multiscales": multiscales, **attrs})
    return path


def test_scenes_units_and_labels_of_a_foreign_store(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, (2, 3, 4, 10, 12)).astype(np.uint8)
    b = rng.random((5, 8, 8)).astype(np.float32)
    nm = {"z": "nanometer", "y": "nanometer", "x": "nanometer", "t": "minute"}
    um = {"z": "micrometer", "y": "micrometer", "x": "micrometer"}
    p = _store(
        tmp_path / "foreign.zarr",
        [("first", "tczyx", a, [2.0, 1.0, 500.0, 100.0, 100.0], nm), ("second", "zyx", b, [1.0, 0.25, 0.25], um)],
        omero={"channels": [{"label": "bf"}, {"label": "dna"}, {"label": "mem"}]},
    )
    first = io.read(p)
    np.testing.assert_array_equal(first.numpy(), a)
    assert first.voxel_size.as_tuple() == pytest.approx((0.5, 0.1, 0.1))  # nm → µm
    assert first.time_interval == pytest.approx(120.0)  # minutes → s
    assert list(first.channel_names) == ["bf", "dna", "mem"]
    assert first.is_lazy and first.data.chunks[-1] == (6, 6)  # the store's own chunks, nothing loaded
    for scene in (1, "second"):
        second = io.read(p, scene=scene)
        np.testing.assert_array_equal(second.numpy(squeeze=True), b)
        assert second.voxel_size.as_tuple() == pytest.approx((1.0, 0.25, 0.25))
    with pytest.raises(
        MetadataError, match=r"foreign\.zarr: scene: unknown scene 'third'; the file has 2: first, second"
    ):
        io.read(p, scene="third")


def test_unnamed_scenes_are_numbered(tmp_path: Path) -> None:
    um = {"y": "micrometer", "x": "micrometer"}
    arrays = [np.full((6, 6), i, np.uint16) for i in range(2)]
    p = _store(tmp_path / "two.zarr", [(None, "yx", arr, [0.2, 0.2], um) for arr in arrays])
    assert io.read(p, scene="Image:1").numpy().max() == 1
    assert io.read(p).numpy().max() == 0


def test_axes_without_units_need_the_voxel_size(tmp_path: Path) -> None:
    arr = np.arange(4 * 6 * 6, dtype=np.uint16).reshape(4, 6, 6)
    p = _store(tmp_path / "nounit.zarr", [("im", "zyx", arr, [1.0, 1.0, 1.0], {})])
    with pytest.raises(MetadataError, match=r"nounit\.zarr: voxel_size: voxel size unknown.*no length unit"):
        io.read(p)
    assert io.read(p, voxel_size=(0.5, 0.2, 0.2)).voxel_size.as_tuple() == (0.5, 0.2, 0.2)


def test_ngff_before_axes_reads_trailing_tczyx(tmp_path: Path) -> None:
    """NGFF 0.1–0.3 stored no axes; their arrays were the trailing axes of TCZYX."""
    arr = np.arange(2 * 4 * 6 * 6, dtype=np.uint16).reshape(2, 4, 6, 6)
    group = zarr.open_group(str(tmp_path / "old.zarr"), mode="w", zarr_format=2)
    group.create_array("0", data=arr)
    group.attrs["multiscales"] = [{"version": "0.3", "datasets": [{"path": "0"}]}]
    img = io.read(tmp_path / "old.zarr", voxel_size=(0.5, 0.2, 0.2))
    assert img.sizes["C"] == 2 and img.sizes["Z"] == 4
    np.testing.assert_array_equal(img.numpy()[0], arr)


def test_axes_that_contradict_the_array(tmp_path: Path) -> None:
    arr = np.zeros((4, 6, 6), np.uint16)
    um = {"y": "micrometer", "x": "micrometer"}
    p = _store(tmp_path / "bad.zarr", [("im", "yx", arr, [0.2, 0.2], um)])
    with pytest.raises(InputFileError, match=r"bad\.zarr: NGFF axes \['y', 'x'\] do not match the array's 3"):
        io.read(p)


def test_level0_volume_reads_one_timepoint_and_channel_box_by_box(tmp_path: Path) -> None:
    """``level0_volume`` is volume (t, c) of the full-resolution level of the named scene, each box read from the
    store: the same values as the Dask image ``read`` gives; a store that is not TCZYX is refused by name."""
    from subcell.io._ngff import level0_volume

    um = {"z": "micrometer", "y": "micrometer", "x": "micrometer"}
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 3, 4, 6, 8), dtype=np.float32), rng.random((1, 1, 2, 3, 4), dtype=np.float32)
    path = _store(tmp_path / "two.ome.zarr", [("a", "tczyx", b, [1.0] * 5, um), ("b", "tczyx", a, [1.0] * 5, um)])
    vol = level0_volume(path, 1, 2, scene="b")
    assert vol.shape == (4, 6, 8) and vol.dtype == np.float32
    box = (slice(1, 3), slice(2, 5), slice(0, 7))
    np.testing.assert_array_equal(vol[box], a[1, 2][box])
    np.testing.assert_array_equal(vol[box], io.read(path, scene="b").data[1, 2][box].compute())
    zyx = _store(tmp_path / "zyx.ome.zarr", [(None, "zyx", a[0, 0], [1.0] * 3, {})])
    with pytest.raises(InputFileError, match=r"zyx\.ome\.zarr.*expected a \(T, C, Z, Y, X\) array, got 3"):
        level0_volume(zyx, 0, 0)
