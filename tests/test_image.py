from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from subcell import Image, Provenance, VoxelSize
from subcell.errors import ChannelError, ValueRangeError


def test_dims_are_expanded_to_tczyx_in_canonical_order() -> None:
    data = np.arange(3 * 4 * 5 * 6).reshape(3, 4, 5, 6)  # Z C Y X
    img = Image(data, voxel_size=(1, 0.5, 0.5), dims="ZCYX")
    assert img.shape == (1, 4, 3, 5, 6)
    np.testing.assert_array_equal(img.numpy()[0, 2, 1], data[1, 2])


def test_2d_image_is_a_single_plane() -> None:
    img = Image(np.zeros((7, 9)), voxel_size=(1, 0.3, 0.3), dims="YX")
    assert img.sizes == {"T": 1, "C": 1, "Z": 1, "Y": 7, "X": 9}
    assert not img.is_3d


def test_select_channel_by_name_and_index_keeps_axes_and_is_lazy() -> None:
    data = da.from_array(np.arange(2 * 3 * 4 * 4).reshape(2, 3, 4, 4), chunks=1)
    img = Image(data, voxel_size=(1, 1, 1), dims="CZYX", channel_names=["bf", "dna"])
    dna = img.channel("dna")
    assert dna.is_lazy and dna.channel_names == ("dna",)
    np.testing.assert_array_equal(dna.numpy(squeeze=True), data[1].compute())
    np.testing.assert_array_equal(img.channel(-1).numpy(), dna.numpy())
    assert img.sel(channel=["dna", "bf"]).channel_names == ("dna", "bf")


def test_unknown_channel_names_the_available_ones() -> None:
    img = Image(np.zeros((2, 4, 4)), voxel_size=(1, 1, 1), dims="CYX", channel_names=["bf", "dna"])
    with pytest.raises(ChannelError, match=r"unknown channel 'membrane'.*\['bf', 'dna'\]"):
        img.channel("membrane")
    with pytest.raises(ChannelError, match="out of range"):
        img.channel(2)


def test_timepoint_selection_and_compute() -> None:
    data = da.from_array(np.arange(5 * 2 * 3 * 3).reshape(5, 2, 3, 3), chunks=1)
    img = Image(data, voxel_size=(1, 1, 1), dims="TZYX", time_interval=2.0)
    t3 = img.timepoint(3).compute()
    assert not t3.is_lazy and t3.shape == (1, 1, 2, 3, 3)
    np.testing.assert_array_equal(t3.numpy()[0, 0], data[3].compute())
    assert t3.time_interval == 2.0


@pytest.mark.parametrize("bad", [(0, 1, 1), (1, -0.1, 1), (1, 1, float("nan")), (1, 1)])
def test_voxel_size_must_be_three_positive_numbers(bad: tuple[float, ...]) -> None:
    with pytest.raises(ValueRangeError, match="voxel_size"):
        VoxelSize.of(bad)


def test_channel_names_must_match_and_be_unique() -> None:
    with pytest.raises(ValueRangeError, match="2 channel names given for 3 channels"):
        Image(np.zeros((3, 4, 4)), voxel_size=(1, 1, 1), dims="CYX", channel_names=["a", "b"])
    with pytest.raises(ValueRangeError, match="unique"):
        Image(np.zeros((2, 4, 4)), voxel_size=(1, 1, 1), dims="CYX", channel_names=["a", "a"])


def test_with_data_records_the_step_in_provenance() -> None:
    img = Image(np.ones((4, 4)), voxel_size=(1, 1, 1), dims="YX", provenance=Provenance(source="a.tif", step="read"))
    out = img.with_data(img.numpy() * 2, step="double", parameters={"factor": 2})
    assert out.provenance.step == "double" and out.provenance.parameters == {"factor": 2}
    assert out.provenance.history[-1]["step"] == "read"
    assert out.provenance.source == "a.tif"
    assert Provenance.from_dict(out.provenance.to_dict()) == out.provenance


def test_materialize_computes_without_importing_distributed_and_honours_a_configured_scheduler() -> None:
    import subprocess
    import sys

    import dask

    from subcell.image import materialize

    lazy = da.arange(24, chunks=5).reshape(2, 12)
    assert np.array_equal(materialize(lazy), np.arange(24).reshape(2, 12))
    plain = np.ones(3)
    assert materialize(plain) is plain
    calls = []

    def counting_get(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return dask.get(*args, **kwargs)

    with dask.config.set(scheduler=counting_get):
        assert np.array_equal(materialize(lazy + 1), np.arange(1, 25).reshape(2, 12))
    assert calls, "a scheduler set in dask.config was bypassed"
    # a fresh process reading, computing and writing an OME-Zarr with a pyramid (over 256 px), normalising,
    # resampling and casting lazy arrays never pays the import of distributed
    code = (
        "import sys, tempfile, dask.array as da, numpy as np\n"
        "from subcell import Image, io\n"
        "d = tempfile.mkdtemp()\n"
        "img = Image(da.from_array(np.arange(2 * 320 * 320, dtype=np.float32).reshape(2, 320, 320), chunks=(1, 160, 160)),"
        " voxel_size=(1, 0.5, 0.5), dims='ZYX')\n"
        "io.write(img, d + '/a.ome.zarr')\n"
        "back = io.read(d + '/a.ome.zarr').numpy()\n"
        "assert back.sum() == img.numpy().sum()\n"
        "from subcell.transforms import percentile_normalize, zscore\n"
        "from subcell.transforms.resample import resample_linear\n"
        "from subcell.io._cast import lossless_cast\n"
        "lazy = img.data[0, 0]\n"
        "assert abs(float(zscore(lazy).mean())) < 1e-4 and percentile_normalize(lazy).max() == 1\n"
        "assert resample_linear(lazy, voxel_size=(1, 0.5, 0.5), target_voxel_size=(1, 1, 1)).shape[-1] == 160\n"
        "assert lossless_cast(lazy, np.float64).dtype == np.float64\n"
        "print('distributed' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    # once distributed is imported a client may exist: the choice is Dask's again (a user's cluster is used)
    import distributed  # noqa: F401

    from subcell.image import dask_scheduler

    assert dask_scheduler() is None
