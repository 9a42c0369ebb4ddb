"""The integrated cell as a bioimage.io package: bioimage.io's own test passes, the package computes the model's
expected structures (decoder at z = 0) for other cells and batches, bad input is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from toy_cells import BOX

torch = pytest.importorskip("torch")
pytest.importorskip("bioimageio.core")

from subcell.errors import InputFileError, ValueRangeError  # noqa: E402
from subcell.integrated import IntegratedModel, VAEConfig, load_cells  # noqa: E402
from subcell.integrated.objective import predicted_mean  # noqa: E402
from subcell.zoo.integrated import export_integrated  # noqa: E402

pytestmark = [  # bioimageio.spec 0.5.12 leaves the files it hashes open (closed by the garbage collector)
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
]


def _model() -> IntegratedModel:
    torch.manual_seed(0)
    cfg = VAEConfig(latent_dim=4, depth=2, base_channels=8)
    return IntegratedModel.create(reference_channels=["cell_mask", "nucleus_mask"], structures=["dna", "cap"],
                                  box=BOX, voxel_um=0.5, reference_config=cfg, conditional_config=cfg)  # fmt: skip


def test_export_passes_bioimageio_and_computes_the_expected_structures(
    toy_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIOIMAGEIO_CACHE_PATH", str(tmp_path / "cache"))
    model = _model()
    model.net.eval()
    result = export_integrated(model, toy_store, tmp_path / "ic.zip")  # runs bioimageio.core.test_model
    assert result.test_seconds is not None and result.test_shape == (1, 2, *BOX)
    from bioimageio.spec import load_model_description

    from subcell.zoo.package import _weights  # the package's own TorchScript, as a zoo runner loads it

    descr = load_model_description(tmp_path / "ic.zip", perform_io_checks=False)
    net, kind = _weights(descr, tmp_path / "ic.zip", "cpu")
    assert kind == "torchscript"
    data = load_cells([toy_store], reference_channels=model.reference_channels, structures=[])
    ref = torch.from_numpy(np.asarray(data.reference[1:4], np.float32))  # other cells, a batch of 3
    with torch.inference_mode():
        got = net(ref).numpy()
        z = torch.zeros(3, 4)
        want = np.concatenate([predicted_mean(model.net.conditional.decode(z, ref, torch.full((3,), s)), ["gaussian"])
                               for s in range(2)], axis=1)  # fmt: skip
    assert got.shape == (3, 2, *BOX)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_export_refuses_bad_input(toy_store: Path, tmp_path: Path) -> None:
    from subcell.cli.main import run

    model = _model()
    folder = model.save(tmp_path / "m")
    assert run(["integrated", "export", str(folder), str(tmp_path / "ic.zip")]) == 2  # no test data
    other = IntegratedModel.create(reference_channels=["cell_mask", "nucleus_mask"], structures=["dna"],
                                   box=(8, 8, 8), voxel_um=0.5, reference_config=VAEConfig(latent_dim=2, depth=1),
                                   conditional_config=VAEConfig(latent_dim=2, depth=1))  # fmt: skip
    with pytest.raises(ValueRangeError, match="box"):
        export_integrated(other, toy_store, tmp_path / "ic.zip", test=False)
    with pytest.raises(InputFileError, match="cell store"):
        export_integrated(model, tmp_path / "missing.zarr", tmp_path / "ic.zip", test=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
