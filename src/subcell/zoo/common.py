"""What every subcell bioimage.io export shares: output and license checks, the two weight formats, spec
validation with one-line errors, the atomic write and bioimageio.core's test before the package is in place."""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from subcell.errors import InputFileError, ValueRangeError

__all__ = [
    "ExportResult",
    "bioimageio_cache",
    "check_package_output",
    "jsonable",
    "quiet_torchscript",
    "run_package_test",
    "save_weights",
    "validated",
    "weights_descr",
    "write_package",
]  # fmt: skip


def bioimageio_cache() -> None:
    """bioimageio.core and .spec cache downloads under ``BIOIMAGEIO_CACHE_PATH``; subcell never downloads, so
    a temporary folder is enough when the user set none (it must be set before they are imported)."""
    import os

    os.environ.setdefault("BIOIMAGEIO_CACHE_PATH", str(Path(tempfile.gettempdir()) / "subcell-bioimageio-cache"))


@contextmanager
def quiet_torchscript() -> Iterator[None]:
    """torch 2.13 deprecates ``torch.jit``, but TorchScript is the weight format bioimage.io runners (deepImageJ,
    ilastik, bioimageio.core) read; tracing turns shape-dependent Python values into constants, which the tests
    check by running every traced network at other shapes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


@dataclass
class ExportResult:
    path: Path
    size_bytes: int
    test_seconds: float | None
    test_shape: tuple[int, ...]


def check_package_output(output: str | Path, *, license: str, overwrite: bool) -> Path:
    """Fail before any work: the output must be a new (or overwritable) ``.zip``, the license an SPDX id."""
    from subcell.io._atomic import check_output

    output = Path(output)
    if output.suffix != ".zip":
        raise InputFileError("a bioimage.io package is a .zip file", path=output)
    check_output(output, overwrite=overwrite)
    _check_license(license)
    return output


def save_weights(folder: Path, module: torch.nn.Module, traceable: torch.nn.Module, example: Any) -> None:
    """``weights.pt`` (the state dict of ``module``) and ``weights_torchscript.pt`` (``traceable`` traced on
    ``example``, which computes the same function)."""
    torch.save({k: v.cpu() for k, v in module.state_dict().items()}, folder / "weights.pt")
    with torch.no_grad(), quiet_torchscript():
        traced = torch.jit.trace(traceable.eval(), example, check_trace=False)
    traced.save(str(folder / "weights_torchscript.pt"))


def weights_descr(folder: Path, architecture: Any) -> Any:
    from bioimageio.spec.model import v0_5

    version = v0_5.Version(torch.__version__.split("+")[0])
    return v0_5.WeightsDescr(
        torchscript=v0_5.TorchscriptWeightsDescr(source=folder / "weights_torchscript.pt", pytorch_version=version),
        pytorch_state_dict=v0_5.PytorchStateDictWeightsDescr(
            source=folder / "weights.pt", architecture=architecture, pytorch_version=version
        ),
    )


def write_package(descr: Any, output: Path, *, test: bool) -> float | None:
    """Zip ``descr`` under a temporary name, test it, then move it into place; returns the test's seconds."""
    from bioimageio.spec import save_bioimageio_package

    from subcell.io._atomic import commit, discard, temporary_sibling

    tmp = temporary_sibling(output)
    try:
        save_bioimageio_package(descr, output_path=tmp)
        seconds = run_package_test(tmp, name=output) if test else None
        commit(tmp, output)
    except BaseException:
        discard(tmp)
        raise
    return seconds


def _check_license(license: str) -> None:
    from bioimageio.spec.model.v0_5 import LicenseId

    try:
        LicenseId(license)
    except ValueError:  # pydantic's ValidationError is a ValueError; its message lists every SPDX id
        raise ValueRangeError(
            f"{license!r} is not an SPDX license id (e.g. BSD-3-Clause, MIT, CC-BY-4.0)", field="license"
        ) from None


def validated(cls: Any, **kwargs: Any) -> Any:
    """Build a spec object; a value the spec refuses (a license that is not an SPDX id, ...) is one line."""
    import pydantic

    try:
        return cls(**kwargs)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        msg = err["msg"] if len(err["msg"]) < 200 else err["msg"][:200] + " …"
        raise ValueRangeError(f"the bioimage.io spec refuses it: {msg}", field=field) from None


def jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def run_package_test(path: str | Path, *, name: str | Path | None = None) -> float:
    """Run ``bioimageio.core.test_model`` on a package (every weight format, CPU); raise with its first error
    (naming ``name``, the package's final path, when ``path`` is a temporary).

    Returns the seconds it took.
    """
    import time

    bioimageio_cache()
    from bioimageio.core import test_model

    t0 = time.perf_counter()
    with quiet_torchscript():
        summary = test_model(Path(path), devices=["cpu"])
    seconds = time.perf_counter() - t0
    if summary.status != "passed":
        errors = [e.msg for d in summary.details for e in d.errors]
        first = errors[0].splitlines()[0] if errors else summary.status
        raise InputFileError(f"bioimage.io test failed: {first}", path=Path(name or path))
    return seconds
