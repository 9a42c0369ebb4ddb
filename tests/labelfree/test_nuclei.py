"""Nuclei inside segmented cells (``subcell.labelfree.nuclei``): score = prediction + cell depth, a threshold, one
object per cell with the cell's id."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from subcell import Image
from subcell.errors import ChannelError, MetadataError, ValueRangeError
from subcell.labelfree.nuclei import NucleiConfig, nuclei_in_cells

VS = (0.5, 0.25, 0.25)


def two_cells() -> np.ndarray:
    """Cells 3 and 7, side by side, 8 × 24 × 24 voxels each (4 × 6 × 6 µm)."""
    cells = np.zeros((10, 28, 54), np.uint16)
    cells[1:9, 2:26, 2:26] = 3
    cells[1:9, 2:26, 28:52] = 7
    return cells


def prediction_with_blobs() -> np.ndarray:
    """A high score in a ball in each cell: off-centre in cell 7; the ball in cell 3 has a hole and a speckle apart."""
    zz, yy, xx = np.indices((10, 28, 54))
    p = np.zeros((10, 28, 54), np.float32)
    ball3 = (zz - 5) ** 2 / 9 + ((yy - 14) ** 2 + (xx - 14) ** 2) / 49 <= 1
    ball7 = (zz - 5) ** 2 / 9 + ((yy - 8) ** 2 + (xx - 44) ** 2) / 25 <= 1
    p[ball3 | ball7] = 1.0
    p[5, 14, 14] = 0.0  # a hole
    p[2, 23, 4] = 1.0  # a speckle, apart from the nucleus
    return p


def as_image(a: np.ndarray, names: list[str] | None = None) -> Image:
    return Image(a[None, None] if a.ndim == 3 else a, voxel_size=VS, channel_names=names)


def test_one_nucleus_per_cell_with_the_cells_id_holes_filled_speckles_dropped() -> None:
    p = prediction_with_blobs()
    out = nuclei_in_cells(as_image(p, ["nucleus"]), as_image(two_cells()), NucleiConfig(prior_weight=0.0))
    lab = out.numpy()[0, 0]
    assert out.channel_names == ("nucleus",) and out.voxel_size.isclose(VS) and lab.dtype == np.uint16
    assert set(np.unique(lab)) == {0, 3, 7}
    expected = ndi.binary_fill_holes(p > 0.5)
    expected[2, 23, 4] = False
    assert np.array_equal(lab > 0, expected)  # the hole filled, the speckle gone, nothing else
    assert np.all(two_cells()[lab > 0] == lab[lab > 0])  # each nucleus inside its own cell
    for i in (3, 7):
        assert ndi.label(lab == i)[1] == 1


def test_the_prior_weight_moves_the_nucleus_from_the_prediction_to_the_middle_of_its_cell() -> None:
    cells, p = two_cells(), prediction_with_blobs()
    centre_of_7 = np.array(ndi.center_of_mass(cells == 7))
    outs = {w: nuclei_in_cells(as_image(p, ["nucleus"]), as_image(cells), NucleiConfig(prior_weight=w)).numpy()[0, 0]
            for w in (0.0, 0.5, 1.0)}  # fmt: skip
    off = [np.linalg.norm(np.array(ndi.center_of_mass(outs[w] == 7)) - centre_of_7) for w in (0.0, 0.5, 1.0)]
    assert off[0] > 5 and off[2] < 1 and off[2] < off[1] < off[0], off  # the blob, between, the cell's middle
    # the outlines alone: the same nuclei whatever the prediction says
    other = nuclei_in_cells(as_image(np.random.default_rng(0).random(p.shape).astype(np.float32), ["nucleus"]),
                            as_image(cells), NucleiConfig(prior_weight=1.0)).numpy()[0, 0]  # fmt: skip
    assert np.array_equal(other, outs[1.0])


def test_a_share_gives_each_cell_that_share_of_its_volume() -> None:
    cells = two_cells()
    flat = np.zeros(cells.shape, np.float32)
    lab = nuclei_in_cells(as_image(flat, ["nucleus"]), as_image(cells), NucleiConfig(share=0.3)).numpy()[0, 0]
    for i in (3, 7):
        assert abs((lab == i).sum() / (cells == i).sum() - 0.3) < 0.03


def test_timepoints_share_one_frame_of_cells_and_a_mask_is_split_into_its_cells() -> None:
    mask = (two_cells() > 0).astype(np.uint8) * 255  # one value: two separate cells
    p = prediction_with_blobs()
    moved = np.roll(p, 6, axis=1)  # the nuclei of the second timepoint sit elsewhere
    pred = Image(np.stack([p, moved])[:, None], voxel_size=VS, channel_names=["nucleus"])
    out = nuclei_in_cells(pred, as_image(mask), NucleiConfig(prior_weight=0.0)).numpy()
    assert out.shape == (2, 1, *p.shape)
    assert set(np.unique(out)) == {0, 1, 2}
    assert not np.array_equal(out[0], out[1])
    assert out[1, 0, 5, 14 + 6, 14] > 0 and out[0, 0, 5, 14 + 6, 44] == 0
    one = np.where(two_cells() == 7, 7, 0).astype(np.uint16)  # a single cell keeps its id
    assert set(np.unique(nuclei_in_cells(pred, as_image(one)).numpy())) == {0, 7}


def test_bad_inputs_are_one_line_errors() -> None:
    p, cells = as_image(prediction_with_blobs(), ["nucleus"]), two_cells()
    with pytest.raises(ValueRangeError, match="cell labels are floats with fractional values"):
        nuclei_in_cells(p, as_image(cells.astype(np.float32) + 0.5))
    with pytest.raises(ValueRangeError, match="cell labels must be non-negative ids"):
        nuclei_in_cells(p, as_image(cells.astype(np.int32) - 5))
    # labels saved as floats of whole numbers are labels (the project's one rule, subcell.io.as_labels)
    whole = nuclei_in_cells(p, as_image(cells.astype(np.float32))).numpy()
    np.testing.assert_array_equal(whole, nuclei_in_cells(p, as_image(cells)).numpy())
    with pytest.raises(ValueRangeError, match="no labelled cell"):
        nuclei_in_cells(p, as_image(np.zeros_like(cells)))
    with pytest.raises(ChannelError, match=r"no 'nucleus' output; it has \['dna'\]"):
        nuclei_in_cells(as_image(prediction_with_blobs(), ["dna"]), as_image(cells))
    three = Image(np.stack([cells] * 3)[:, None], voxel_size=VS)
    two = Image(np.stack([prediction_with_blobs()] * 2)[:, None], voxel_size=VS, channel_names=["nucleus"])
    with pytest.raises(MetadataError, match="3 timepoints of cells for 2"):
        nuclei_in_cells(two, three)
    with pytest.raises(ValueError, match="prior_weight"):
        NucleiConfig(prior_weight=1.5)


def test_single_planes_use_the_in_plane_depth() -> None:
    cells = two_cells()[5:6]  # one plane (1, Y, X)
    flat = np.zeros(cells.shape, np.float32)
    lab = nuclei_in_cells(as_image(flat, ["nucleus"]), as_image(cells), NucleiConfig(share=0.25)).numpy()[0, 0]
    assert set(np.unique(lab)) == {0, 3, 7}
    for i in (3, 7):
        centre = np.array(ndi.center_of_mass(cells == i))
        assert np.linalg.norm(np.array(ndi.center_of_mass(lab == i)) - centre) < 1  # the middle of each cell
        assert abs((lab == i).sum() / (cells == i).sum() - 0.25) < 0.03


def many_cells(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy prediction and 12 touching cells (a Voronoi tiling of random seeds) of a 20 × 60 × 80 field."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros((20, 60, 80), np.int32)
    seeds[rng.integers(3, 17, 12), rng.integers(5, 55, 12), rng.integers(5, 75, 12)] = np.arange(1, 13)
    _, nearest = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    cells = seeds[tuple(nearest)].astype(np.uint16)
    cells[:, :3] = 0  # some background
    p = ndi.gaussian_filter(rng.normal(size=cells.shape), 2).astype(np.float32)
    return p, cells


class CountingReader:
    """A ``(Z, Y, X)`` array that records the size of every read (what :func:`nuclei_by_cell` holds at once)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.shape, self.reads = a, a.shape, []  # type: ignore[var-annotated]

    def __getitem__(self, box: tuple[slice, ...]) -> np.ndarray:
        out = self.a[box]
        self.reads.append(out.size)
        return out


@pytest.mark.parametrize("share", [None, 0.3])
def test_cell_by_cell_from_zarr_equals_the_whole_arrays_reading_one_box_at_a_time(tmp_path, share) -> None:  # type: ignore[no-untyped-def]
    """The block-wise result is the whole one, to the bit: the prediction read from a Zarr array box by box, the
    cells a slab at a time, the labels written into a Zarr array cell by cell; no read larger than a cell's box."""
    import zarr

    from subcell.labelfree.cell_prior import cell_boxes, nuclei_by_cell, nuclei_from_score, nucleus_score

    p, cells = many_cells()
    score = nucleus_score(p, cells, VS)
    whole = nuclei_from_score(score, cells, share=share)
    assert len(set(np.unique(whole)) - {0}) >= 10  # most cells got a nucleus
    if share:  # each cell on its own, by hand: its top share, largest piece, holes filled; no cell touches another's
        for i in range(1, 13):
            own = cells == i
            order = np.argsort(-score[own], kind="stable")[: round(share * own.sum())]
            top = np.zeros(own.sum(), bool)
            top[order] = True
            mask = np.zeros(cells.shape, bool)
            mask[own] = top
            pieces, _ = ndi.label(mask)
            largest = pieces == np.argmax(np.bincount(pieces.ravel())[1:]) + 1
            np.testing.assert_array_equal(whole == i, ndi.binary_fill_holes(largest) & own)
    pz = zarr.create_array(str(tmp_path / "p.zarr"), shape=p.shape, chunks=(8, 16, 16), dtype="float32")
    pz[:] = p
    largest = max(int(np.prod([s.stop - s.start for s in box])) for _, box in cell_boxes(cells))
    for cache_gb, passes in ((0.0, 2 if share else 4), (1.0, 1)):  # every pass reads again, or the first is kept
        reader = CountingReader(pz)
        out = zarr.create_array(str(tmp_path / f"n{cache_gb}.zarr"), shape=p.shape, chunks=(8, 16, 16), dtype="uint16")
        nuclei_by_cell(reader, cells, VS, share=share, out=out, cache_gb=cache_gb)
        np.testing.assert_array_equal(out[:], whole)
        assert max(reader.reads) == largest < cells.size / 4  # the prediction is read one cell's box at a time
        assert len(reader.reads) == 12 * passes  # z-scores, (Otsu's range and counts,) labels
    # a budget for every cell's scores but not for every cell's prediction and depth: the first pass keeps what
    # fits, its scores free room, and the second pass keeps the scores of the others, so none is read a third time
    sizes = []
    for i, box in cell_boxes(cells):
        own = cells[box] == i
        sizes.append((own.nbytes + 8 * own.sum(), own.nbytes + 4 * own.sum()))
    budget, kept, free = sum(b for _, b in sizes), 0, sum(b for _, b in sizes)
    for first, _ in sizes:
        if first <= free:
            kept, free = kept + 1, free - first
    assert 0 < kept < 12
    reader = CountingReader(pz)
    got = nuclei_by_cell(reader, cells, VS, share=share, cache_gb=budget / 1e9)
    np.testing.assert_array_equal(got, whole)
    assert len(reader.reads) == 12 + (12 - kept)
    boxes = cell_boxes(cells, slab=3)  # cells spanning slabs: their boxes merged
    assert [b for _, b in boxes] == [b for b in ndi.find_objects(cells) if b is not None]


def test_the_score_is_z_scored_over_all_cells() -> None:
    """The cell-by-cell means and deviations are those of all cell voxels at once."""
    from subcell.labelfree.cell_prior import cell_depth, nucleus_score

    p, cells = many_cells(1)
    inside = cells > 0
    d = cell_depth(cells, VS)
    want = 0.3 * (p - p[inside].mean()) / p[inside].std() + 0.7 * (d - d[inside].mean()) / d[inside].std()
    got = nucleus_score(p, cells, VS, prior_weight=0.7)
    np.testing.assert_allclose(got[inside], want[inside], atol=1e-5)
    assert not got[~inside].any()


class PlaneReader:
    """A ``(T, C, Z, Y, X)`` label array read through Dask one plane per chunk (as bioio reads a TIFF): records
    which planes are read."""

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.shape, self.dtype, self.ndim = a, a.shape, a.dtype, a.ndim
        self.planes: list[int] = []

    def __getitem__(self, box: tuple[slice, ...]) -> np.ndarray:
        out = self.a[box]
        if out.size:
            self.planes.extend(range(*box[2].indices(self.shape[2])))
        return out

    def image(self) -> Image:
        import dask.array as da

        return Image(da.from_array(self, chunks=(1, 1, 1, *self.shape[3:]), asarray=False), voxel_size=VS)


def test_cells_become_labels_slab_by_slab_and_a_mask_is_split_across_blocks(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The label rule runs on slabs of a few planes, each plane read once, into a Zarr array; a mask's pieces,
    labelled in lateral blocks and joined across them, are numbered exactly as ``ndi.label`` numbers them whole."""
    import subcell.io
    import subcell.labelfree.cell_prior as cell_prior
    import subcell.labelfree.nuclei as nuclei

    rng = np.random.default_rng(3)
    mask = ndi.gaussian_filter(rng.normal(size=(20, 60, 80)), 2) > 0.15  # winding pieces across the blocks
    want, n = ndi.label(mask)
    assert n > 5
    monkeypatch.setattr(cell_prior, "SLAB_BYTES", 3 * 60 * 80 * 16)  # 3 planes a slab
    monkeypatch.setattr(nuclei, "PIECES_BLOCK", 16)  # 4 × 5 lateral blocks
    sizes: list[int] = []
    rule = subcell.io.as_labels
    monkeypatch.setattr(subcell.io, "as_labels", lambda a, **k: sizes.append(int(np.prod(a.shape))) or rule(a, **k))
    reader = PlaneReader((mask * 255).astype(np.uint8)[None, None])
    lab = nuclei._instance_labels(reader.image(), 0, nuclei._zarr_in(tmp_path))
    assert type(lab).__module__.startswith("zarr") and lab.dtype == np.int32
    np.testing.assert_array_equal(lab[:], want)
    assert sorted(reader.planes) == list(range(20))  # each plane read once
    assert max(sizes) == 3 * 60 * 80  # never more than a slab at once
    # ids are kept as they are; floats of whole numbers become ids; a fractional value in the last slab is refused
    _, cells = many_cells()
    ids = nuclei._instance_labels(Image(cells.astype(np.float32)[None, None], voxel_size=VS), 0,
                                  nuclei._zarr_in(tmp_path))  # fmt: skip
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids[:], cells)
    bad = cells.astype(np.float32)
    bad[-1, -1, -1] = 0.5
    with pytest.raises(ValueRangeError, match="fractional"):
        nuclei._instance_labels(Image(bad[None, None], voxel_size=VS), 0, nuclei._zarr_in(tmp_path))
