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
