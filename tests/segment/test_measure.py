from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from subcell.errors import ValueRangeError
from subcell.segment import measure_objects, structures_per_cell

VS = (0.5, 0.2, 0.2)


def _ball(shape: tuple[int, int, int], centre: tuple[float, float, float], r_um: float) -> np.ndarray:
    z, y, x = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, VS, strict=True)], indexing="ij")
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= r_um**2


def test_volume_centroid_surface_and_sphericity_of_a_ball() -> None:
    lab = np.zeros((40, 100, 100), np.int32)
    lab[_ball(lab.shape, (10, 10, 10), 4.0)] = 3
    t = measure_objects(lab, voxel_size=VS).set_index("label")
    row = t.loc[3]
    assert row.volume_um3 == pytest.approx(4 / 3 * np.pi * 4**3, rel=0.03)
    assert row.voxels * 0.5 * 0.2 * 0.2 == pytest.approx(row.volume_um3)
    assert (row.centroid_z_um, row.centroid_y_um, row.centroid_x_um) == pytest.approx((10, 10, 10), abs=0.05)
    assert row.surface_area_um2 == pytest.approx(4 * np.pi * 16, rel=0.08)
    assert 0.9 < row.sphericity <= 1.05
    assert row.axis_major_um == pytest.approx(8.0, rel=0.05) and row.axis_minor_um == pytest.approx(8.0, rel=0.05)
    assert not row.touches_border


def test_intensity_statistics_and_border_flag() -> None:
    lab = np.zeros((2, 10, 10), np.int32)
    lab[:, :3, :3] = 1
    lab[:, 5:8, 5:8] = 2
    img = np.arange(200, dtype=np.float32).reshape(2, 10, 10)
    t = measure_objects(lab, voxel_size=VS, intensity={"dna": img}, surface=False).set_index("label")
    assert t.loc[1].touches_border and not t.loc[2].touches_border
    assert t.loc[2, "dna_mean"] == pytest.approx(img[lab == 2].mean())
    assert t.loc[2, "dna_integrated"] == pytest.approx(img[lab == 2].sum())
    with pytest.raises(ValueRangeError, match="intensity 'dna' has shape"):
        measure_objects(lab, voxel_size=VS, intensity={"dna": img[:1]})


def test_structures_per_cell_fraction_and_count() -> None:
    cells = np.zeros((1, 20, 40), np.int32)
    cells[0, :, :20] = 1
    cells[0, :, 20:] = 2
    spots = np.zeros_like(cells, dtype=bool)
    spots[0, 2:4, 2:4] = True  # two spots in cell 1
    spots[0, 10:12, 10:12] = True
    spots[0, 5:9, 25:29] = True  # one bigger spot in cell 2
    t = structures_per_cell(cells, {"vesicles": spots}, voxel_size=VS).set_index("label")
    assert t.loc[1, "vesicles_count"] == 2 and t.loc[2, "vesicles_count"] == 1
    assert t.loc[1, "vesicles_volume_fraction"] == pytest.approx(8 / 400)
    assert t.loc[2, "vesicles_volume_fraction"] == pytest.approx(16 / 400)


def test_centroids_follow_the_ngff_convention_like_regionprops() -> None:
    """Voxel i sits at i·voxel: the same centroid as skimage's regionprops(spacing=) and the NGFF scale."""
    from skimage.measure import regionprops

    lab = np.zeros((5, 9, 11), np.int32)
    lab[1:4, 2:5, 3:10] = 1
    lab[0, 0, 0] = 2
    ours = measure_objects(lab, voxel_size=VS, surface=False).set_index("label")
    for p in regionprops(lab, spacing=VS):
        assert tuple(ours.loc[p.label, ["centroid_z_um", "centroid_y_um", "centroid_x_um"]]) == pytest.approx(
            p.centroid
        )
    assert ours.loc[2, "centroid_x_um"] == 0.0


def test_a_single_plane_is_measured_in_2d_whatever_its_z_voxel() -> None:
    """2D images get area, perimeter and circularity; the made-up z voxel size of a 2D image changes nothing."""
    yy, xx = np.mgrid[:64, :64]
    lab = (((yy - 30) ** 2 + (xx - 30) ** 2) <= 15**2).astype(np.int32)[None]  # a disc of radius 15 px
    tables = [measure_objects(lab, voxel_size=(z, 0.2, 0.2)) for z in (0.1, 1.0, 5.0)]
    row = tables[0].iloc[0]
    assert "volume_um3" not in tables[0].columns and "centroid_z_um" not in tables[0].columns
    assert row.area_um2 == pytest.approx(np.pi * 3.0**2, rel=0.02)
    assert row.perimeter_um == pytest.approx(2 * np.pi * 3.0, rel=0.03)
    assert 0.95 < row.circularity <= 1.05
    for other in tables[1:]:
        pd.testing.assert_frame_equal(other, tables[0])


def test_2d_segmentation_does_not_depend_on_the_z_voxel_size() -> None:
    """The review found 36 nuclei with z = 1 µm and 1 with z = 0.1 µm on the same 2D image."""
    from subcell.segment import load_workflow, run_workflow

    rng = np.random.default_rng(4)
    img = rng.normal(0, 0.05, (1, 128, 128)).astype(np.float32)
    yy, xx = np.mgrid[:128, :128]
    for cy, cx in [(30, 30), (30, 90), (90, 40), (95, 95), (60, 64)]:
        img[0][((yy - cy) ** 2 + (xx - cx) ** 2) <= 12**2] += 1.0
    wf = load_workflow("nucleus")
    results = [run_workflow(wf, {"dna": img}, voxel_size=(z, 0.3, 0.3)) for z in (0.1, 1.0, 5.0)]
    assert results[0].max() == 5
    assert all(np.array_equal(r, results[0]) for r in results[1:])


def test_a_stored_time_lapse_is_measured_frame_by_frame() -> None:
    """Labels, intensity and structures on storage: one read of each frame of each, the table of the same arrays
    in memory."""
    from scipy import ndimage as ndi

    from subcell.segment import measure_frames
    from tests.conftest import StoredArray

    rng = np.random.default_rng(3)
    labels = np.stack([ndi.label(ndi.gaussian_filter(rng.random((6, 40, 40)), 2) > 0.55)[0] for _ in range(3)])
    dna = rng.normal(100, 10, labels.shape).astype(np.float32)
    spots = (rng.random(labels.shape) > 0.97).astype(np.uint8)
    whole = measure_frames(labels, voxel_size=(0.5, 0.2, 0.2), intensity={"dna": dna}, structures={"spots": spots})
    stored = [StoredArray(a, (1, 3, 20, 20)) for a in (labels.astype(np.int32), dna, spots)]
    lazy = measure_frames(stored[0], voxel_size=(0.5, 0.2, 0.2), intensity={"dna": stored[1]},
                          structures={"spots": stored[2]})  # fmt: skip
    assert lazy.equals(whole) and len(whole) > 6 and whole.t.nunique() == 3
    for s in stored:
        assert s.reads == [6 * 40 * 40] * 3  # one frame at a time, each once


@pytest.mark.parametrize("shape", [(4, 16, 16), (1, 16, 16)])
def test_labels_without_objects_give_the_same_columns_and_dtypes(shape: tuple[int, ...]) -> None:
    """An empty field (no nucleus found, a frame after every cell left) is a table of no rows with every column of
    one with objects: it was a table of no columns (its movie's frames then concatenated with NaN in the others,
    an empty field's table written with one column ``t``)."""
    from subcell.segment import measure_frames

    one = np.zeros(shape, np.uint16)
    one[..., 2:6, 2:6] = 1
    dna = np.full(shape, 7, np.float32)
    kw = {"voxel_size": (0.5, 0.2, 0.2), "intensity": {"dna": dna}, "skeleton": True}
    full, empty = measure_objects(one, **kw), measure_objects(np.zeros_like(one), **kw)  # type: ignore[arg-type]
    assert len(full) == 1 and len(empty) == 0
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()  # the same columns, in the same order, of the same types
    movie = measure_frames(np.stack([np.zeros_like(one), one]), voxel_size=(0.5, 0.2, 0.2),
                           structures={"spots": np.stack([one, one]).astype(bool)})  # fmt: skip
    assert movie.t.tolist() == [1] and movie.spots_count.dtype == np.int64 and movie.label.dtype == np.int64
    nothing = measure_frames(np.zeros((2, *shape), np.uint16), voxel_size=(0.5, 0.2, 0.2),
                             structures={"spots": np.zeros((2, *shape), bool)})  # fmt: skip
    assert len(nothing) == 0 and list(nothing.columns) == list(movie.columns)


def test_a_mask_is_measured_per_connected_component() -> None:
    """An organelle mask (0/1, or an ImageJ 0/255 mask) is measured per 26-connected component; instance ids are
    kept as they are; --no-components measures the mask as one object."""
    from subcell.segment import mask_components, measure_frames

    mask = np.zeros((2, 6, 30, 30), np.uint8)
    mask[:, 1:4, 2:8, 2:8] = 1  # a block
    mask[:, 2, 12:20, 12] = 1  # a tubule ...
    mask[:, 3, 20:26, 13] = 1  # ... that goes on one plane up and one voxel over: corners touch
    mask[1, 2, 25:28, 25:28] = 1  # a fragment that appears in the second frame
    table = measure_frames(mask, voxel_size=VS)
    assert table.attrs["components"] and table.groupby("t").size().tolist() == [2, 3]
    assert table.loc[table.t == 0, "voxels"].sort_values().tolist() == [8 + 6, 3 * 6 * 6]
    assert measure_frames(mask * 255, voxel_size=VS).equals(table)  # a Fiji binary mask: the same objects
    assert measure_frames(mask.astype(bool), voxel_size=VS).equals(table)
    whole = measure_frames(mask, voxel_size=VS, components=False)
    assert not whole.attrs["components"] and len(whole) == 2 and whole.voxels.tolist() == [mask[0].sum(), mask[1].sum()]
    ids = mask.astype(np.int32) * 7  # instance ids (one object, id 7, in two pieces): kept unless asked
    kept = measure_frames(ids, voxel_size=VS)
    assert not kept.attrs["components"] and kept.label.tolist() == [7, 7]
    assert measure_frames(ids, voxel_size=VS, components=True).groupby("t").size().tolist() == [2, 3]
    assert mask_components(np.array([[0, 2], [1, 0]])) is None and mask_components(np.zeros((2, 2), np.float32)) is None
    # a segmentation that found nothing is no mask (no "measured per component" note): no object either way
    assert mask_components(np.zeros((2, 2), np.uint16)) is None and mask_components(np.zeros((2, 2), bool)) is None
    assert not measure_frames(np.zeros((1, 2, 4, 4), np.uint16), voxel_size=VS).attrs["components"]


def test_measure_cli_says_a_mask_is_measured_per_component(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell import io
    from subcell.cli.main import run
    from subcell.image import Image

    mask = np.zeros((4, 20, 20), np.uint8)
    mask[1:3, 2:6, 2:6] = 1
    mask[1:3, 10:16, 10:16] = 1
    src = io.write(Image(mask, voxel_size=VS, dims="ZYX"), tmp_path / "mito.ome.tif")
    capsys.readouterr()
    assert run(["measure", str(src), str(tmp_path / "parts.csv")]) == 0
    assert "is a mask: each connected component measured" in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "parts.csv").voxels.tolist() == [32, 72]
    assert run(["measure", str(src), str(tmp_path / "whole.csv"), "--no-components"]) == 0
    assert "is a mask" not in capsys.readouterr().err and len(pd.read_csv(tmp_path / "whole.csv")) == 1


def test_skeleton_length_branches_and_ends_of_tubes() -> None:
    """A rod, a cross (one junction, no length added by the arms' diagonal neighbours) and a 3D T of tubes."""
    from subcell.metrics.shape import skeleton_stats

    rod = np.zeros((5, 20, 40), bool)
    rod[2, 9:11, 5:35] = True  # 30 voxels long, 2 wide: its skeleton runs 29 steps of 0.1 µm
    assert skeleton_stats(rod, (0.5, 0.1, 0.1)) == pytest.approx(
        {"skeleton_length_um": 2.9, "branch_points": 0, "end_points": 2}
    )
    cross = np.zeros((1, 30, 30), bool)
    cross[0, 15, 3:27] = cross[0, 3:27, 15] = True
    assert skeleton_stats(cross, (1.0, 0.2, 0.2)) == pytest.approx(
        {"skeleton_length_um": 2 * 23 * 0.2, "branch_points": 1, "end_points": 4}
    )
    z, y, x = np.mgrid[:20, :60, :60]
    tee = (((y - 30) ** 2 + (z - 10) ** 2 < 9) & (x > 5) & (x < 55)) | (
        ((x - 30) ** 2 + (z - 10) ** 2 < 9) & (y >= 30) & (y < 55)
    )
    stats = skeleton_stats(tee, (0.2, 0.2, 0.2))
    assert stats["branch_points"] == 1 and stats["end_points"] == 3
    # 49 + 25 voxels of axis, less about a radius (3 voxels) at each of the three free ends
    assert stats["skeleton_length_um"] == pytest.approx((49 + 25 - 3 * 3) * 0.2, rel=0.05)
    # a bump on a tube's surface is pruned as a spur; a side tube three radii long is a branch
    z, y, x = np.mgrid[:9, :30, :60]
    tube = ((y - 15) ** 2 + (z - 4) ** 2 <= 9) & (x > 5) & (x < 55)
    bump, side = tube.copy(), tube.copy()
    bump[3:6, 18:21, 28:31] = True
    side[3:6, 15:28, 28:31] = True
    assert (
        skeleton_stats(bump, (0.2,) * 3)["branch_points"] == 0 and skeleton_stats(bump, (0.2,) * 3)["end_points"] == 2
    )
    assert (
        skeleton_stats(side, (0.2,) * 3)["branch_points"] == 1 and skeleton_stats(side, (0.2,) * 3)["end_points"] == 3
    )
    # in a plane, the z size is a placeholder: it changes nothing (the radius is measured in the plane)
    flat = np.zeros((1, 40, 80), bool)
    flat[0, 14:27, 6:75] = True
    flat[0, 26:29, 38:41] = True
    assert skeleton_stats(flat, (0.1, 0.2, 0.2)) == skeleton_stats(flat, (10.0, 0.2, 0.2))
    assert skeleton_stats(flat, (10.0, 0.2, 0.2))["branch_points"] == 0
    table = measure_objects(cross.astype(np.int32), voxel_size=(1.0, 0.2, 0.2), skeleton=True)
    assert table.loc[0, "branch_points"] == 1 and "skeleton_length_um" in table


def test_each_object_has_its_local_background() -> None:
    """Two nuclei of equal DNA content on backgrounds of 100 and 300 (an illumination gradient across the field):
    their integrated intensities differ by the background under them; less background × voxels they are equal.
    A third object packed among others has no unlabelled voxel around it: NaN."""
    lab = np.zeros((1, 40, 80), np.int32)
    img = np.full((1, 40, 80), 100.0)
    img[:, :, 40:] = 300.0
    lab[0, 10:20, 10:20], lab[0, 10:20, 50:60] = 1, 2
    img[lab > 0] += 50.0  # the same signal in both
    lab[0, 30:40, 60:80] = 3  # fills its surroundings with 4 and 5 (no unlabelled voxel within reach)
    lab[0, 22:30, 60:80], lab[0, 22:40, 50:60] = 4, 5
    t = measure_objects(lab, voxel_size=(1.0, 0.5, 0.5), intensity={"dna": img}, background_um=2.0).set_index("label")
    assert t.loc[1, "dna_background"] == 100.0 and t.loc[2, "dna_background"] == 300.0
    own = t.dna_integrated - t.dna_background * t.pixels
    assert own.loc[1] == pytest.approx(own.loc[2]) == pytest.approx(100 * 50.0)
    assert np.isnan(t.loc[3, "dna_background"])  # (in 2D the ring is lateral only: a single plane)


def _resampled_mask(blobs: int, seed: int = 0) -> np.ndarray:
    """A 0/255 mask (one ball, or many small balls) resized by 0.7 with linear interpolation, kept in uint8: what a
    mask scaled in an image viewer holds (its edges any value between)."""
    from skimage.transform import rescale

    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:40, :80, :80]
    mask = np.zeros((40, 80, 80), bool)
    centres = [(20, 40, 40)] if blobs == 1 else list(zip(rng.integers(6, 34, blobs), rng.integers(6, 74, blobs),
                                                          rng.integers(6, 74, blobs), strict=True))  # fmt: skip
    r = 15 if blobs == 1 else 3
    for z, y, x in centres:
        mask |= (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= r**2
    return np.rint(rescale(mask * 255.0, 0.7, order=1, preserve_range=True, anti_aliasing=False)).astype(np.uint8)


@pytest.mark.parametrize("blobs", [1, 40])
def test_a_mask_resampled_with_interpolation_is_told_from_instance_labels(blobs: int) -> None:
    from subcell.segment.measure import interpolated_mask

    resampled = _resampled_mask(blobs)
    assert len(np.unique(resampled)) > 20  # every edge value an "id"
    said = interpolated_mask(resampled)
    assert said is not None and "lie along the edges of id 255" in said and "--threshold 128" in said
    assert interpolated_mask((resampled >= 128).astype(np.uint8)) is None  # thresholded: a mask
    from skimage.measure import label

    assert interpolated_mask(label(resampled >= 128).astype(np.uint16)) is None  # its components: instance ids


def test_dense_instance_labels_are_not_taken_for_a_resampled_mask() -> None:
    from subcell.segment.measure import interpolated_mask
    from subcell.synth import synth_field

    field = synth_field(shape=(12, 128, 128), voxel_size=(0.5, 0.3, 0.3), seed=2)
    assert field.labels["cell"].max() >= 5
    for name in ("cell", "nucleus"):  # cells share walls: their ids touch, their interiors do not
        assert interpolated_mask(field.labels[name]) is None


def test_measure_refuses_a_resampled_mask_and_convert_thresholds_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell.cli.main import run
    from subcell.image import Image
    from subcell.io import write
    from tests.conftest import cli_user_error

    write(Image(_resampled_mask(1), voxel_size=(0.29, 0.3, 0.3), dims="ZYX"), tmp_path / "seg.ome.tif")
    err = cli_user_error(capsys, "measure", str(tmp_path / "seg.ome.tif"), str(tmp_path / "m.csv"))
    assert "seg.ome.tif" in err and "resampled with interpolation" in err and not (tmp_path / "m.csv").exists()
    assert run(["convert", str(tmp_path / "seg.ome.tif"), str(tmp_path / "mask.ome.zarr"), "--threshold", "128"]) == 0
    assert run(["measure", str(tmp_path / "mask.ome.zarr"), str(tmp_path / "m.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "m.csv")) == 1
    err = cli_user_error(capsys, "evaluate-seg", str(tmp_path / "mask.ome.zarr"), str(tmp_path / "seg.ome.tif"))
    assert "seg.ome.tif: labels:" in err and "--threshold 128" in err  # the truth too


def test_cells_extract_refuses_a_resampled_cell_mask(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell.image import Image
    from subcell.io import write
    from tests.conftest import cli_user_error

    cell = _resampled_mask(1)
    nucleus = (cell >= 200).astype(np.uint8)
    write(Image(np.stack([cell, nucleus]), voxel_size=(0.29, 0.3, 0.3), dims="CZYX", channel_names=["seg_cell", "seg_dna"]),
          tmp_path / "cell.ome.tif")  # fmt: skip
    err = cli_user_error(capsys, "cells", "extract", str(tmp_path / "cell.ome.tif"), str(tmp_path / "cell.ome.tif"),
                         str(tmp_path / "c.zarr"), "--cell-labels", "seg_cell", "--nucleus-labels", "seg_dna")  # fmt: skip
    assert "labels in channel 'seg_cell'" in err and "resampled with interpolation" in err
    assert not (tmp_path / "c.zarr").exists()
    from subcell.cli.main import run
    from subcell.io import read

    assert run(["convert", str(tmp_path / "cell.ome.tif"), str(tmp_path / "m.ome.zarr"), "-c", "seg_cell",
                "--threshold", "128"]) == 0  # the channel alone, made a mask  # fmt: skip
    mask = read(tmp_path / "m.ome.zarr")
    assert mask.channel_names == ("seg_cell",) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask.numpy()[0, 0], (cell >= 128).astype(np.uint8))


def test_excluded_voxels_leave_the_objects_and_their_background() -> None:
    """Cells without their nuclei: the cytoplasm; the nucleus is neither the object nor its local background."""
    from subcell.segment import measure_frames

    cells = np.zeros((1, 6, 40, 40), np.int32)
    cells[0, 1:5, 1:39, 1:39] = 3
    nuclei = np.zeros_like(cells)
    nuclei[0, 1:5, 4:36, 4:36] = 3  # more voxels than lie around the cell
    img = np.full(cells.shape, 5.0)  # outside the cell
    img[cells > 0] = 10.0  # cytoplasm
    img[nuclei > 0] = 1000.0  # nucleus
    t = measure_frames(cells, voxel_size=VS, intensity={"dna": img}, exclude=nuclei).set_index("label")
    assert t.loc[3, "voxels"] == (cells > 0).sum() - (nuclei > 0).sum()
    assert t.loc[3, "dna_mean"] == 10.0 and t.loc[3, "dna_background"] == 5.0
    whole = measure_frames(cells, voxel_size=VS, intensity={"dna": img}).set_index("label")
    assert whole.loc[3, "voxels"] == (cells > 0).sum() and whole.loc[3, "dna_mean"] > 10
    with pytest.raises(ValueRangeError, match="exclude"):
        measure_frames(cells, voxel_size=VS, exclude=nuclei[:, :3])


def test_measure_cli_measures_the_cytoplasm_with_exclude(tmp_path: Path) -> None:
    from subcell.cli.batch_commands import COMMANDS
    from subcell.cli.main import run
    from subcell.image import Image
    from subcell.io import write
    from subcell.io.manifest import ManifestRow
    from subcell.synth import synth_field

    f = synth_field(shape=(12, 128, 128), n_cells=2, seed=3)
    vs = f.image.voxel_size.as_tuple()
    for name in ("cell", "nucleus"):
        write(Image(f.labels[name][0].astype(np.uint16), voxel_size=vs, dims="ZYX"), tmp_path / f"{name}.ome.tif")
    out = tmp_path / "cyto.csv"
    assert (
        run(["measure", str(tmp_path / "cell.ome.tif"), str(out), "--exclude", str(tmp_path / "nucleus.ome.tif")]) == 0
    )
    cyto = pd.read_csv(out).set_index("label")
    cell, nucleus = f.labels["cell"][0], f.labels["nucleus"][0]
    for i in cyto.index:
        assert cyto.loc[i, "voxels"] == ((cell == i) & (nucleus == 0)).sum()
    row = ManifestRow(row=0, source=tmp_path / "cell.ome.tif", metadata={"exclude": "nucleus.ome.tif"})
    _, options, inputs = COMMANDS["measure"].row_args(row, tmp_path)
    assert (
        options[-2:] == ["--exclude", str(tmp_path / "nucleus.ome.tif")] and inputs[-1] == tmp_path / "nucleus.ome.tif"
    )
