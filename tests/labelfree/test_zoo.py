"""bioimage.io packages: export passes bioimageio.core's test, round-trips to the folder model, a third-party
package runs through the tiled path honouring its size constraints, halo, pre- and postprocessing; bad packages
and bad exports are refused in one line with nothing left behind."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("bioimageio.core")

from subcell.errors import InputFileError, SubcellError, ValueRangeError  # noqa: E402
from subcell.image import Image, VoxelSize  # noqa: E402
from subcell.labelfree import LabelFreeModel, PredictConfig, predict_image, preset  # noqa: E402
from subcell.labelfree.pretrained import load_model  # noqa: E402
from subcell.zoo.common import run_package_test  # noqa: E402
from subcell.zoo.export import export_labelfree  # noqa: E402
from subcell.zoo.package import load_package  # noqa: E402

VS = (0.4, 0.2, 0.2)
# bioimageio.spec 0.5.12 leaves the files it hashes and the zips it reads open (closed by the garbage collector)
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIOIMAGEIO_CACHE_PATH", str(tmp_path / "bioimageio-cache"))


def _model(uncertainty: bool = False) -> LabelFreeModel:
    torch.manual_seed(0)
    m = LabelFreeModel.create(
        preset("resunet", depth=2, base_channels=4, z_levels=1), input_channel="brightfield",
        targets=["dna", "membrane"], voxel_size=VoxelSize(*VS), uncertainty=uncertainty, patch_size=(8, 32, 32),
    )  # fmt: skip
    for mod in m.network.modules():
        if isinstance(mod, torch.nn.BatchNorm3d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    m.training = {"data": "synthetic test fields", "steps": 3, "validation": {"val_r_dna": 0.5}}
    return m.eval() if hasattr(m, "eval") else m


def _image(shape: tuple[int, int, int] = (20, 80, 72), seed: int = 1) -> Image:
    rng = np.random.default_rng(seed)
    from scipy import ndimage as ndi

    vol = ndi.gaussian_filter(rng.normal(0, 1, shape), 2) * 50 + 500
    return Image(vol.astype(np.float32), voxel_size=VS, dims="ZYX", channel_names=["brightfield"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabelFreeModel, Path]:
    import os

    os.environ.setdefault("BIOIMAGEIO_CACHE_PATH", str(tmp_path_factory.mktemp("cache")))
    model = _model(uncertainty=True)
    out = tmp_path_factory.mktemp("zoo") / "model.zip"
    result = export_labelfree(model, _image(), out, authors=["A. Tester"])  # runs bioimageio.core.test_model
    assert result.test_seconds is not None and result.size_bytes == out.stat().st_size
    return model, out


def test_export_writes_a_package_that_bioimageio_core_passes(exported: tuple[LabelFreeModel, Path]) -> None:
    # export_labelfree ran bioimageio.core.test_model on both weight formats (it raises unless the test passed)
    _, path = exported
    names = zipfile.ZipFile(path).namelist()
    assert {"rdf.yaml", "weights_torchscript.pt", "weights.pt", "test_input.npy", "test_output.npy", "cover.png",
            "README.md"} <= set(names)  # fmt: skip
    import yaml

    rdf = yaml.safe_load(zipfile.ZipFile(path).read("rdf.yaml"))
    assert rdf["format_version"].startswith("0.5")
    space = [a for a in rdf["inputs"][0]["axes"] if a["type"] == "space"]
    assert [(a["id"], a["scale"], a["unit"]) for a in space] == [
        ("z", 0.4, "micrometer"), ("y", 0.2, "micrometer"), ("x", 0.2, "micrometer")]  # fmt: skip
    assert any(p["id"] == "zero_mean_unit_variance" for p in rdf["inputs"][0]["preprocessing"])
    out_channels = next(a for a in rdf["outputs"][0]["axes"] if a["type"] == "channel")["channel_names"]
    assert out_channels == ["dna", "membrane", "dna_std", "membrane_std"]
    readme = zipfile.ZipFile(path).read("README.md").decode()
    assert "synthetic test fields" in readme and "val_r_dna" in readme and "10.1038/s41592-018-0111-2" in readme


def test_package_round_trips_to_the_folder_model_tiled_and_whole(exported: tuple[LabelFreeModel, Path]) -> None:
    model, path = exported
    package = load_model(path)  # the same entry point as `labelfree predict --model X.zip`
    assert package.targets == ["dna", "membrane", "dna_std", "membrane_std"]
    assert package.voxel_size.isclose(VoxelSize(*VS))
    image = _image((24, 100, 90), seed=3)
    for cfg in (PredictConfig(precision="fp32"), PredictConfig(precision="fp32", tile=(16, 48, 48))):
        ours = predict_image(model, image, cfg)
        theirs = predict_image(package, image, cfg)
        assert ours.channel_names == theirs.channel_names
        np.testing.assert_allclose(theirs.numpy(), ours.numpy(), atol=1e-5)
    assert theirs.provenance.parameters["tiles"] > 1


def test_a_probability_model_exports_its_sigmoid_as_postprocessing(tmp_path: Path) -> None:
    import yaml

    from subcell.labelfree.model import PROBABILITY

    model = _model()
    model.normalization["target"] = PROBABILITY  # as training with loss: bce_dice leaves it
    out = tmp_path / "p.zip"
    export_labelfree(model, _image(), out)  # bioimageio.core's test checks the test output through the sigmoid
    rdf = yaml.safe_load(zipfile.ZipFile(out).read("rdf.yaml"))
    assert rdf["outputs"][0]["postprocessing"][0]["id"] == "sigmoid"
    package = load_model(out)
    cfg = PredictConfig(precision="fp32", tile=(16, 48, 48))
    image = _image((24, 100, 90), seed=3)
    ours, theirs = predict_image(model, image, cfg).numpy(), predict_image(package, image, cfg).numpy()
    assert ours.min() >= 0 and ours.max() <= 1 and ours.std() > 0.01
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


class _Smooth(torch.nn.Module):
    """A 'third-party' network: two 3×3×3 convolutions (reach 2 voxels), any size, no batch axis."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.a = torch.nn.Conv3d(1, 3, 3, padding=1)
        self.b = torch.nn.Conv3d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (z, y, x) → (z, y, x, c): an unusual axis order
        y = self.b(torch.relu(self.a(x[None, None])))[0]
        return y.permute(1, 2, 3, 0)


def _third_party(folder: Path, *, tamper: bool = False, two_inputs: bool = False) -> Path:
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5

    net = _Smooth().eval()
    rng = np.random.default_rng(0)
    x = (rng.gamma(2.0, 100.0, (20, 44, 32))).astype(np.float32)
    lo, hi = np.percentile(x, [1, 99.8]).astype(np.float32)
    with torch.no_grad():
        y = torch.sigmoid(net(torch.from_numpy((x - lo) / (hi - lo + 1e-6)))).numpy()
    if tamper:
        y = y + 0.5
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        torch.jit.trace(net, torch.from_numpy(x)).save(str(folder / "w.pt"))
    (folder / "README.md").write_text("a third-party test model")
    axes_in = [v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=v0_5.ParameterizedSize(min=20, step=12), scale=s,
                                   unit="nanometer") for a, s in zip("zyx", (400.0, 200.0, 200.0), strict=True)]  # fmt: skip
    axes_out = [
        v0_5.SpaceOutputAxisWithHalo(id=v0_5.AxisId(a), size=v0_5.SizeReference(tensor_id=v0_5.TensorId("raw"),
            axis_id=v0_5.AxisId(a)), halo=3, scale=s, unit="nanometer")
        for a, s in zip("zyx", (400.0, 200.0, 200.0), strict=True)
    ] + [v0_5.ChannelAxis(channel_names=[v0_5.Identifier("fg"), v0_5.Identifier("boundary")])]  # fmt: skip
    inputs = [
        v0_5.InputTensorDescr(
            id=v0_5.TensorId(name), axes=axes_in, test_tensor=v0_5.FileDescr(source=folder / "x.npy"),
            preprocessing=[v0_5.ScaleRangeDescr(kwargs=v0_5.ScaleRangeKwargs(
                axes=[v0_5.AxisId(a) for a in "zyx"], min_percentile=1, max_percentile=99.8))],
        ) for name in (["raw", "extra"] if two_inputs else ["raw"])
    ]  # fmt: skip
    descr = v0_5.ModelDescr(
        name="third party smoother", description="test", authors=[v0_5.Author(name="Someone Else")],
        cite=[v0_5.CiteEntry(text="none", doi=v0_5.Doi("10.1000/xyz"))], license="MIT",
        documentation=v0_5.FileDescr(source=folder / "README.md"), inputs=inputs,
        outputs=[v0_5.OutputTensorDescr(id=v0_5.TensorId("prob"), axes=axes_out,
                                        test_tensor=v0_5.FileDescr(source=folder / "y.npy"),
                                        postprocessing=[v0_5.SigmoidDescr()])],
        weights=v0_5.WeightsDescr(torchscript=v0_5.TorchscriptWeightsDescr(
            source=folder / "w.pt", pytorch_version=v0_5.Version("2.0"))),
    )  # fmt: skip
    out = folder / "third_party.zip"
    save_bioimageio_package(descr, output_path=out)
    return out


def test_third_party_package_runs_tiled_with_its_constraints(tmp_path: Path) -> None:
    package = load_package(_third_party(tmp_path))  # verifies its test tensors through our pre/postprocessing
    assert package.targets == ["fg", "boundary"] and package.halo == (3, 3, 3)
    assert package.voxel_size.isclose(VoxelSize(0.4, 0.2, 0.2))  # nanometres → µm
    rng = np.random.default_rng(5)
    vol = rng.gamma(2.0, 100.0, (44, 68, 56)).astype(np.float32)  # sizes the package accepts: no padding
    image = Image(vol, voxel_size=(0.4, 0.2, 0.2), dims="ZYX", channel_names=["raw"])
    with pytest.raises(ValueRangeError, match="minimum"):
        predict_image(package, image, PredictConfig(precision="fp32", tile=(30, 30, 30)))
    tiled = predict_image(package, image, PredictConfig(precision="fp32", tile=(32, 32, 32)))
    params = tiled.provenance.parameters
    assert all(t >= 3 for t in params["trim"]) and params["tiles"] > 8  # the halo is dropped at inner edges
    auto = predict_image(package, image, PredictConfig(precision="fp32", memory_limit_gb=0.35))
    assert all((t - 20) % 12 == 0 for t in auto.provenance.parameters["tile"])  # min 20 + k·12
    np.testing.assert_allclose(auto.numpy(), tiled.numpy(), atol=1e-5)
    lo, hi = np.percentile(vol, [1, 99.8]).astype(np.float32)
    with torch.no_grad():
        whole = torch.sigmoid(_Smooth()(torch.from_numpy((vol - lo) / (hi - lo + 1e-6)))).numpy()
    np.testing.assert_allclose(tiled.numpy()[0], np.moveaxis(whole, -1, 0), atol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_bad_packages_are_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    tampered = _third_party(tmp_path / "a", tamper=True)
    with pytest.raises(InputFileError, match="do not reproduce the package's test output"):
        load_package(tampered)
    with pytest.raises(InputFileError, match=r"bioimage\.io test failed"):  # what export runs before committing
        run_package_test(tampered)
    with pytest.raises(InputFileError, match="2 inputs and 1 outputs; one of each"):
        load_package(_third_party(tmp_path / "b", two_inputs=True))
    old = tmp_path / "old.yaml"
    old.write_text("format_version: 0.3.0\ntype: model\nname: x\n")
    with pytest.raises(InputFileError) as err:
        load_package(old)
    assert "\n" not in str(err.value)
    with pytest.raises(InputFileError, match="no such"):
        load_model(tmp_path / "missing.zip")


def test_bad_exports_leave_nothing(tmp_path: Path) -> None:
    model = _model()
    with pytest.raises(ValueRangeError, match="test input needs at least"):
        export_labelfree(model, _image((1, 40, 40)), tmp_path / "m.zip", test=False)
    with pytest.raises(SubcellError, match="not an SPDX license id"):
        export_labelfree(model, _image(), tmp_path / "m.zip", license="not-a-license", test=False)
    with pytest.raises(InputFileError, match=r"\.zip"):
        export_labelfree(model, _image(), tmp_path / "m.tar", test=False)
    assert list(tmp_path.iterdir()) == []


class _ReadRecorder:
    """An array-like that counts the voxels read from it (what a lazy reader would load)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim, self.read = data, data.shape, data.dtype, data.ndim, 0

    def __getitem__(self, index: object) -> np.ndarray:
        out = self.data[index]  # type: ignore[index]
        self.read += out.size
        return out


def test_export_reads_only_the_middle_of_a_large_sample_it_resamples(tmp_path: Path) -> None:
    import dask.array as da

    from subcell.transforms.crop import crop_or_pad
    from subcell.transforms.resample import resample_image

    fine = (0.2, 0.1, 0.1)  # half the model's voxel size: the sample is resampled for the test input
    vol = _image((48, 400, 400)).numpy()[0, 0]
    recorder = _ReadRecorder(vol)
    lazy = Image(
        da.from_array(recorder, chunks=(8, 64, 64)), voxel_size=fine, dims="ZYX", channel_names=["brightfield"]
    )
    out = tmp_path / "m.zip"
    export_labelfree(_model(), lazy, out, test=False)
    assert 0 < recorder.read < 0.2 * vol.size  # the middle the test crop needs, not the whole sample
    with zipfile.ZipFile(out) as z:
        test_in = np.load(z.open("test_input.npy"))[0, 0]
    # the middle of the sample: resampling the whole sample and cutting its middle gives the same region, on a grid
    # offset by less than a model voxel (the cut starts on a source voxel); a crop from elsewhere correlates near 0
    whole = resample_image(Image(vol, voxel_size=fine, dims="ZYX"), VS).numpy()[0, 0]
    ref = crop_or_pad(whole, test_in.shape)
    assert np.corrcoef(test_in.ravel(), ref.ravel())[0, 1] > 0.7
    elsewhere = whole[: test_in.shape[0], : test_in.shape[1], : test_in.shape[2]]
    assert abs(np.corrcoef(elsewhere.ravel(), ref.ravel())[0, 1]) < 0.5  # the check can tell regions apart


def test_cli_export_and_predict_with_a_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from subcell import io
    from subcell.cli.main import run

    folder = _model().save(tmp_path / "folder_model")
    io.write(_image(), tmp_path / "bf.ome.zarr")
    assert run(["labelfree", "export", str(folder), str(tmp_path / "m.zip")]) == 2
    err = capsys.readouterr().err
    assert "--sample" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "m.zip").exists()
    assert run(["labelfree", "export", str(folder), str(tmp_path / "m.zip"), "--sample", str(tmp_path / "bf.ome.zarr"),
                "--no-test"]) == 0  # fmt: skip
    meta = json.loads((folder / "model.json").read_text())
    for model, out in ((str(folder), "a.ome.zarr"), (str(tmp_path / "m.zip"), "b.ome.zarr")):
        assert run(["labelfree", "predict", str(tmp_path / "bf.ome.zarr"), str(tmp_path / out), "-m", model,
                    "--precision", "fp32", "--quiet"]) == 0  # fmt: skip
    a, b = io.read(tmp_path / "a.ome.zarr"), io.read(tmp_path / "b.ome.zarr")
    assert list(b.channel_names) == meta["targets"]
    np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-5)
