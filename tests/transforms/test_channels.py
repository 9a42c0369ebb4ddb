"""One file per channel stacked into one image: ``stack_channels`` and ``subcell convert A B C OUT``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from subcell.errors import ChannelError, MetadataError, ValueRangeError
from subcell.image import Image, Provenance
from subcell.transforms.channels import stack_channels

VS = (0.5, 0.2, 0.2)


def _img(values: np.ndarray, name: str, source: str, **kw: object) -> Image:
    return Image(values, voxel_size=kw.pop("voxel_size", VS), dims="ZYX", channel_names=[name],  # type: ignore[arg-type]
                 provenance=Provenance(source=source), **kw)  # type: ignore[arg-type]  # fmt: skip


def test_channels_are_stacked_in_order_promoted_and_lazy() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (3, 8, 9)).astype(np.uint8)
    b = rng.integers(0, 60000, (3, 8, 9)).astype(np.uint16)
    out = stack_channels([_img(a, "membrane", "a.tif"), _img(b, "dna", "b.tif")])
    assert out.is_lazy and out.channel_names == ("membrane", "dna") and out.dtype == np.uint16
    arr = out.numpy()
    assert np.array_equal(arr[0, 0], a) and np.array_equal(arr[0, 1], b)
    assert out.provenance.step == "stack_channels" and out.provenance.parameters["sources"] == ["a.tif", "b.tif"]
    named = stack_channels([_img(a, "c0", "a.tif"), _img(b, "c0", "b.tif")], channel_names=["x", "y"])
    assert named.channel_names == ("x", "y")
    # files that name no channel (each its c0) are named after the files, less the start they all share
    for files, names in ((["run/fov_C=0.tif", "run/fov_C=1.tif"], ("C=0", "C=1")),
                         (["DAPI.ome.tif", "GFP.ome.tif"], ("DAPI", "GFP")),
                         (["exp1_dapi.tif", "exp1_gfp.tif"], ("dapi", "gfp"))):  # fmt: skip
        by_file = stack_channels([_img(a, "c0", files[0]), _img(b, "c0", files[1])])
        assert by_file.channel_names == names, files


def test_inputs_that_cannot_be_stacked_are_refused_naming_the_file() -> None:
    a = _img(np.zeros((3, 8, 9), np.uint8), "c0", "a.tif")
    with pytest.raises(ChannelError, match=r"y/a\.tif: channel_names: channel 'c0' is also in a\.tif"):
        stack_channels([a, _img(np.zeros((3, 8, 9), np.uint8), "c0", "y/a.tif")])  # files of one name
    with pytest.raises(ValueRangeError, match=r"b\.tif: shape: .*\(1, 3, 8, 10\) differ"):
        stack_channels([a, _img(np.zeros((3, 8, 10), np.uint8), "c1", "b.tif")])
    with pytest.raises(MetadataError, match=r"b\.tif: voxel_size"):
        stack_channels([a, _img(np.zeros((3, 8, 9), np.uint8), "c1", "b.tif", voxel_size=(0.5, 0.3, 0.3))])
    with pytest.raises(ValueRangeError, match="3 channel names given for 2 channels"):
        stack_channels([a, _img(np.zeros((3, 8, 9), np.uint8), "c1", "b.tif")], channel_names=["x", "y", "z"])


def test_convert_stacks_one_file_per_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from subcell import io
    from subcell.cli.main import run
    from tests.conftest import cli_user_error

    rng = np.random.default_rng(1)
    planes = [rng.integers(0, 4000, (2, 16, 16)).astype(np.uint16) for _ in range(3)]
    files = []
    for i, p in enumerate(planes):  # plain TIFFs as many microscopes write them: no voxel size
        files.append(tmp_path / f"fov_C={i}.tif")
        tifffile.imwrite(files[-1], p, photometric="minisblack")
    out = tmp_path / "fov.ome.zarr"
    vs = ["--voxel-size", "0.29", "0.1", "0.1", "--axes", "ZYX"]
    assert run(["convert", *map(str, files), str(out), *vs]) == 0  # named after the files: C=0, C=1, C=2
    assert io.read(out).channel_names == ("C=0", "C=1", "C=2")
    assert run(["convert", *map(str, files), str(out), *vs, "--channel-names", "membrane,tubulin,dna",
                "--overwrite"]) == 0  # fmt: skip
    image = io.read(out)
    assert image.channel_names == ("membrane", "tubulin", "dna") and image.voxel_size.as_tuple() == (0.29, 0.1, 0.1)
    assert np.array_equal(image.numpy()[0], np.stack(planes))
    other = tmp_path / "small.tif"
    tifffile.imwrite(other, planes[0][:, :8], photometric="minisblack")
    err = cli_user_error(capsys, "convert", str(files[0]), str(other), str(tmp_path / "x.ome.zarr"), *vs)
    assert "small.tif" in err and "differ" in err and not (tmp_path / "x.ome.zarr").exists()
