"""Single-cell extraction: crops, masks, alignment, box handling, the cell store, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from subcell import Image
from subcell.cells import ExtractConfig, extract_cells, extract_to_store, match_nuclei
from subcell.cells.align import Alignment
from subcell.errors import ValueRangeError
from subcell.io import read_cell_store

VS = (0.5, 0.25, 0.25)


def ellipsoid(shape, center, radii, vs=VS):  # type: ignore[no-untyped-def]
    grids = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, vs, strict=True)], indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii, strict=True)) <= 1


def field(shape=(24, 96, 192), cells=((6, 12, 10, 3, 8, 4), (6, 12, 36, 3, 4, 4))):  # type: ignore[no-untyped-def]
    """Cells as ellipsoids (centre z/y/x µm, radii z/y/x µm) with nuclei of half their radii."""
    lab = np.zeros(shape, np.int32)
    nuc = np.zeros(shape, np.int32)
    for i, (cz, cy, cx, rz, ry, rx) in enumerate(cells, start=1):
        lab[ellipsoid(shape, (cz, cy, cx), (rz, ry, rx))] = i
        nuc[ellipsoid(shape, (cz, cy, cx), (rz / 2, ry / 2, rx / 2))] = i
    img = np.stack([(lab > 0) * 100.0 + 10, (nuc > 0) * 50.0])
    return Image(img, voxel_size=VS, dims="CZYX", channel_names=["membrane", "dna"]), lab, nuc


CFG = ExtractConfig(box=(16, 48, 48), voxel_um=0.5, margin_um=0.5, border="flag")


def test_crops_keep_volume_and_centre_the_nucleus() -> None:
    image, lab, nuc = field()
    crops = list(extract_cells(image, lab, nuc, CFG))
    assert [c.row["label_id"] for c in crops] == [1, 2]
    for c in crops:
        assert c.crop is not None and c.crop.shape == (4, 16, 48, 48)
        cell_vol = c.crop[2].sum() * 0.5**3
        assert cell_vol == pytest.approx(c.row["cell_volume_um3"], rel=0.08)
        centre = np.argwhere(c.crop[3] > 0).mean(axis=0)
        assert np.allclose(centre, (np.array(CFG.box) - 1) / 2, atol=1.0)
        assert set(np.unique(c.crop[2])) <= {0.0, 1.0}


def test_long_axis_becomes_x_and_sign_is_fixed() -> None:
    image, lab, nuc = field()
    crop = next(extract_cells(image, lab, nuc, CFG)).crop  # cell 1 is long in y (8 µm vs 4 µm)
    assert crop is not None
    pts = np.argwhere(crop[2] > 0)
    ext = pts.max(axis=0) - pts.min(axis=0)
    assert ext[2] > 1.6 * ext[1]


def test_turned_and_mirrored_field_gives_the_same_crop() -> None:
    """An egg-shaped cell (mass skewed to one side) extracted from the field, turned 90° and mirrored."""
    shape = (24, 96, 96)
    lab = np.zeros(shape, np.int32)
    body = ellipsoid(shape, (6, 12, 12), (3, 4, 7)) | ellipsoid(shape, (6, 13.5, 16), (3, 3, 4))
    lab[body] = 1
    nuc = (ellipsoid(shape, (6, 12, 11), (1.5, 2, 2)) & body).astype(np.int32)
    base = None
    for k, flip in ((0, False), (1, False), (0, True), (3, True)):
        lk, nk = np.rot90(lab, k, axes=(1, 2)), np.rot90(nuc, k, axes=(1, 2))
        if flip:
            lk, nk = lk[:, :, ::-1], nk[:, :, ::-1]
        img = Image(np.ascontiguousarray(lk[None] * 1.0), voxel_size=VS, dims="CZYX", channel_names=["m"])
        crop = next(extract_cells(img, np.ascontiguousarray(lk), np.ascontiguousarray(nk), CFG)).crop
        assert crop is not None
        if base is None:
            base = crop[1] > 0
            continue
        m = crop[1] > 0
        assert 2 * (m & base).sum() / (m.sum() + base.sum()) > 0.9, (k, flip)


def test_alignment_maps_crop_back_into_the_cell() -> None:
    image, lab, nuc = field()
    c = next(extract_cells(image, lab, nuc, CFG))
    row = c.row
    a = Alignment((row["align_centroid_z_um"], row["align_centroid_y_um"], row["align_centroid_x_um"]),
                  row["align_angle_rad"], row["align_flip_y"], row["align_scale"])  # fmt: skip
    q = (np.argwhere(c.crop[2] > 0) - (np.array(CFG.box) - 1) / 2) * CFG.voxel_um  # type: ignore[index]
    p = np.round(a.to_field(q) / np.array(VS)).astype(int)
    assert np.mean(lab[tuple(p.T)] == 1) > 0.95
    assert np.allclose(a.to_aligned(a.to_field(q)), q)


def test_border_and_oversize_policies_are_recorded() -> None:
    image, lab, nuc = field(cells=((6, 2.0, 10, 3, 3, 3), (6, 12, 36, 3, 4, 4)))
    skip = list(extract_cells(image, lab, nuc, CFG.model_copy(update={"border": "skip"})))
    assert skip[0].crop is None and "border" in skip[0].row["status"] and skip[1].crop is not None
    small = CFG.model_copy(update={"box": (8, 12, 12)})
    rejected = [c.row for c in extract_cells(image, lab, nuc, small)]
    assert all(r["status"].startswith("rejected") for r in rejected)
    # each cell says the box it fits in: that box (the largest over the cells) keeps them all, one voxel less not
    fit = tuple(max(r[f"fit_box_{a}"] for r in rejected) for a in "zyx")
    assert all(c.crop is not None for c in extract_cells(image, lab, nuc, small.model_copy(update={"box": fit})))
    for ax in range(3):
        tight = tuple(n - 1 if i == ax else n for i, n in enumerate(fit))
        kept = [c.crop is not None for c in extract_cells(image, lab, nuc, small.model_copy(update={"box": tight}))]
        assert not all(kept), (ax, tight)
    rescaled = list(extract_cells(image, lab, nuc, small.model_copy(update={"oversize": "rescale"})))
    assert all(c.crop is not None and c.row["align_scale"] > 1 for c in rescaled)
    # rescaled cells still fill the box without touching its faces
    m = rescaled[1].crop[2] > 0  # type: ignore[index]
    assert m.any() and not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, :, -1].any())


def test_store_round_trip_and_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    image, lab, nuc = field()
    table = extract_to_store([(image, lab, nuc, {"source": "a", "structure": "dna"})], tmp_path / "c.zarr", CFG)
    store = read_cell_store(tmp_path / "c.zarr" / "cells.parquet")
    assert store.channel_names == ["membrane", "dna", "cell_mask", "nucleus_mask"]
    assert store.crops.shape == (2, 4, 16, 48, 48) and store.voxel_um == 0.5
    assert list(table.structure) == ["dna", "dna"] and {"cell_sphericity", "nucleus_volume_um3"} <= set(table.columns)
    direct = next(extract_cells(image, lab, nuc, CFG)).crop
    assert np.array_equal(store.crop(0), direct)


def test_bad_input_is_one_line_and_writes_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    image, lab, nuc = field()
    with pytest.raises(ValueRangeError, match="nucleus labels are empty"):
        list(extract_cells(image, lab, np.zeros_like(nuc), CFG))
    no_nuc = nuc.copy()
    no_nuc[no_nuc == 2] = 0
    with pytest.raises(ValueRangeError, match="cell 2 contains no nucleus"):
        list(extract_cells(image, lab, no_nuc, CFG))
    skipped = list(extract_cells(image, lab, no_nuc, CFG.model_copy(update={"missing_nucleus": "skip"})))
    assert skipped[1].row["status"] == "rejected: no nucleus"
    with pytest.raises(ValueRangeError, match="shape"):
        list(extract_cells(image, lab[:, :50], nuc[:, :50], CFG))
    with pytest.raises(ValueError, match="at least 4"):
        ExtractConfig(box=(2, 32, 32))
    out = tmp_path / "bad.zarr"
    with pytest.raises(ValueRangeError, match="box"):
        extract_to_store([(image, lab, nuc, {})], out, CFG.model_copy(update={"box": (4, 6, 6)}))
    with pytest.raises(ValueRangeError):
        extract_to_store([(image, lab, nuc, {}), (image, lab, no_nuc, {})], out, CFG)
    assert not out.exists() and not list(tmp_path.glob(".bad.zarr*"))
    # every cell rejected: why, counted, and what keeps them (it said "no cell was extracted (2 rejected)")
    picky = CFG.model_copy(update={"border": "skip", "min_cell_volume_um3": 1000.0})
    edge = field(cells=((6, 2.0, 10, 3, 3, 3), (6, 12, 36, 3, 4, 4)))
    with pytest.raises(ValueRangeError, match=r"no cell was extracted: 2 rejected, 1 touching the field border \(--border "
                       r"flag keeps them, flagged\); 1 too small$"):  # fmt: skip
        extract_to_store([(*edge, {})], out, picky)
    assert not out.exists()


def test_nucleus_matching_by_overlap() -> None:
    cells = np.zeros((1, 4, 8), np.int32)
    cells[0, :, :4], cells[0, :, 4:] = 1, 2
    nuclei = np.zeros_like(cells)
    nuclei[0, 1:3, 1:3], nuclei[0, 1:3, 5:7] = 7, 3
    assert match_nuclei(cells, nuclei) == {1: 7, 2: 3}


def test_cli_takes_nuclei_from_a_separate_file_and_explains_rejections(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from subcell import io
    from tests.conftest import subcell_cli

    image, lab, nuc = field(cells=((6, 12, 10, 3, 8, 4), (6, 12, 36, 3, 4, 4), (6, 1, 22, 3, 3, 3)))  # 3rd: border
    io.write(image, tmp_path / "fov.ome.tif")
    io.write(Image(lab[None, None], voxel_size=VS), tmp_path / "cells.ome.tif")
    io.write(Image(nuc[None, None], voxel_size=VS), tmp_path / "nuclei.ome.tif")
    r = subcell_cli("cells", "extract", str(tmp_path / "fov.ome.tif"), str(tmp_path / "cells.ome.tif"),
                    str(tmp_path / "c.zarr"), "--nuclei", str(tmp_path / "nuclei.ome.tif"), "--box", "16", "48", "48")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "2 of 3 cells" in r.stdout and "1 touching the field border (--border flag" in r.stdout
    store = read_cell_store(tmp_path / "c.zarr")
    assert sorted(store.table[store.table.crop_index >= 0].nucleus_id) == [1, 2]


def test_a_stored_time_lapse_is_extracted_a_timepoint_at_a_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Cell and nucleus labels of two timepoints on storage (read lazily, as `cells extract` reads them): the crops and
    table of the same labels in memory, from one read of each timepoint of each."""
    import dask.array as da

    from tests.conftest import StoredArray

    image, lab, nuc = field()
    moved = np.roll(lab, 4, axis=2), np.roll(nuc, 4, axis=2)
    labs, nucs = np.stack([lab, moved[0]]), np.stack([nuc, moved[1]])
    img2 = Image(np.stack([image.numpy()[0]] * 2), voxel_size=VS, dims="TCZYX", channel_names=image.channel_names)
    whole = extract_to_store([(img2, labs, nucs, {})], tmp_path / "whole.zarr", CFG)
    stored = [StoredArray(a, (1, *a.shape[1:])) for a in (labs, nucs)]
    lazy = extract_to_store([(img2, *stored, {})], tmp_path / "lazy.zarr", CFG)
    assert lazy.equals(whole) and set(whole.frame) == {0, 1} and (whole.crop_index >= 0).sum() == 4
    assert np.array_equal(read_cell_store(tmp_path / "lazy.zarr").crops, read_cell_store(tmp_path / "whole.zarr").crops)
    for s in stored:
        assert s.reads == [int(np.prod(lab.shape))] * 2  # one timepoint at a time, each once
    dask_lazy = extract_to_store([(img2, *(da.from_array(a, chunks=(1, *lab.shape)) for a in (labs, nucs)), {})],
                                 tmp_path / "dask.zarr", CFG)  # fmt: skip
    assert dask_lazy.equals(whole)


def test_cli_refuses_fractional_label_channels_in_one_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell import io
    from tests.conftest import cli_user_error

    image, lab, nuc = field()
    io.write(image, tmp_path / "fov.ome.tif")
    io.write(Image(np.stack([lab, nuc / 3.0]).astype(np.float32)[None], voxel_size=VS), tmp_path / "labels.ome.tif")
    err = cli_user_error(capsys, "cells", "extract", str(tmp_path / "fov.ome.tif"), str(tmp_path / "labels.ome.tif"),
                         str(tmp_path / "c.zarr"), "--box", "16", "48", "48")  # fmt: skip
    assert "fractional values" in err and "labels.ome.tif" in err and not (tmp_path / "c.zarr").exists()
    # another field's labels: the file is named (it said "cell labels: cell labels have shape …")
    io.write(Image(np.stack([lab, nuc])[:, :, :50][None], voxel_size=VS), tmp_path / "other.ome.tif")
    err = cli_user_error(capsys, "cells", "extract", str(tmp_path / "fov.ome.tif"), str(tmp_path / "other.ome.tif"),
                         str(tmp_path / "c.zarr"))  # fmt: skip
    assert f"{tmp_path / 'other.ome.tif'}: labels in channel 'c0' have (Z, Y, X) (24, 50, 192), the field " in err
    assert not (tmp_path / "c.zarr").exists()


def test_the_cli_names_the_box_that_holds_the_rejected_cells(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell import io
    from subcell.cli.main import run

    image, lab, nuc = field()
    io.write(image, tmp_path / "f.ome.tif")
    io.write(Image(np.stack([lab, nuc]), voxel_size=VS, dims="CZYX", channel_names=["cell", "nucleus"]),
             tmp_path / "lab.ome.tif")  # fmt: skip
    args = ["cells", "extract", str(tmp_path / "f.ome.tif"), str(tmp_path / "lab.ome.tif"), "--border", "flag"]
    assert run([*args, str(tmp_path / "a.zarr"), "--box", "16", "24", "24"]) == 0  # the second cell fits
    out = capsys.readouterr().out
    assert "1 of 2 cells; not extracted: 1 larger than the box (--box " in out
    box = out.split("--box ")[1].split(" holds")[0].split()
    assert run([*args, str(tmp_path / "b.zarr"), "--box", *box]) == 0
    assert "2 of 2 cells" in capsys.readouterr().out
    assert run([*args, str(tmp_path / "c.zarr"), "--box", "8", "12", "12"]) == 2  # none fits: said in the error
    err = capsys.readouterr().err
    assert "the box (" in err and "CLI: --box " in err and not (tmp_path / "c.zarr").exists()
    assert run([*args, str(tmp_path / "c.zarr"), "--box", *err.split("CLI: --box ")[1].split(",")[0].split()]) == 0


def test_axes_reach_plain_tiff_labels_beside_an_ome_tiff_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import tifffile

    from subcell import io
    from subcell.cli.main import run

    image, lab, nuc = field()
    io.write(image, tmp_path / "f.ome.tif")
    tifffile.imwrite(tmp_path / "lab.tif", np.stack([lab, nuc]).astype(np.uint16), photometric="minisblack")
    args = ["cells", "extract", str(tmp_path / "f.ome.tif"), str(tmp_path / "lab.tif"), "--border", "flag"]
    assert run([*args, str(tmp_path / "a.zarr")]) == 2  # the TIFF's axes are not in the file
    assert run([*args, str(tmp_path / "b.zarr"), "--axes", "CZYX"]) == 0  # they reach it, not the OME-TIFF field
    assert read_cell_store(tmp_path / "b.zarr" / "cells.parquet").crops.shape[0] == 2
