"""Shared fixtures: small synthetic images, the installed CLI, and the real-data folder (opt-in)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Under pytest-xdist (`make test` runs `-n`), the workers share the cores: each gets its share of threads, set
# before torch is imported and inherited by the commands a test runs. Two torch processes each spinning up one
# OpenMP thread per core ran the torch tests ~3x slower than one after the other (measured on 2 cores).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from subcell import Image  # noqa: E402

# every figure a test draws is checked: texts that overlap (titles over tick labels, ...) fail the test
os.environ.setdefault("SUBCELL_CHECK_FIGURES", "1")


class StoredArray:
    """A chunked array on storage (Zarr in memory) that records the size of every region read from it: a test of
    code that must read lazily checks what it read."""

    def __init__(self, data: np.ndarray, chunks: tuple[int, ...]) -> None:
        import zarr

        self.z = zarr.create_array(store=zarr.storage.MemoryStore(), shape=data.shape, chunks=chunks, dtype=data.dtype)
        self.z[...] = data
        self.shape, self.dtype, self.chunks, self.ndim = data.shape, data.dtype, self.z.chunks, data.ndim
        self.reads: list[int] = []

    def __getitem__(self, key: object) -> np.ndarray:
        out = np.asarray(self.z[key])
        self.reads.append(out.size)
        return out

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        self.reads.append(int(np.prod(self.shape)))
        return self.z[...]


def garble_tiff_pixels(path: Path) -> None:
    """Overwrite the first page's (compressed) pixel data of a TIFF with junk, keeping its metadata intact: the
    file opens and states its shape, and decoding that page fails."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        start, length = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    data = path.read_bytes()
    path.write_bytes(data[:start] + b"\xff" * length + data[start + length :])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def make_image(dims: str, shape: tuple[int, ...], dtype: str = "uint16", *, seed: int = 0, dask: bool = False) -> Image:
    """A random image with distinct metadata, for round trips."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.floating):
        data = rng.normal(10, 3, shape).astype(dt)
    else:
        data = rng.integers(0, np.iinfo(dt).max, shape, endpoint=True).astype(dt)
    if dask:
        import dask.array as da

        data = da.from_array(data, chunks=tuple(max(1, s // 2) for s in shape))
    n_c = shape[dims.index("C")] if "C" in dims else 1
    return Image(
        data,
        voxel_size=(0.29, 0.108, 0.0975),
        dims=dims,
        channel_names=[f"ch-{i}" for i in range(n_c)],
        time_interval=4.5 if "T" in dims else None,
    )


def full_cycle_tracks() -> tuple[Any, Any, tuple[float, float, float]]:
    """(truth, prediction, voxel size) of a hand-made 2D movie: a cell (1) divides into 2 and 3; 2 divides again into 4
    and 5 (a full cycle: the CTC's CCA is defined). The prediction finds the first division and misses the second
    (5 a new track, and 2's track goes on as 4)."""
    from subcell.track import tracks_from_lineage

    lab = np.zeros((9, 1, 40, 40), np.uint16)
    lab[0:2, 0, 16:22, 16:22] = 1
    lab[2:5, 0, 8:14, 16:22], lab[2:9, 0, 26:32, 16:22] = 2, 3
    lab[5:9, 0, 2:8, 10:16], lab[5:9, 0, 10:16, 24:30] = 4, 5
    vs = (0.29, 0.108, 0.108)
    pred_lab = lab.copy()
    pred_lab[pred_lab == 4] = 2
    return (tracks_from_lineage(lab, {2: 1, 3: 1, 4: 2, 5: 2}, voxel_size=vs),
            tracks_from_lineage(pred_lab, {2: 1, 3: 1}, voxel_size=vs), vs)  # fmt: skip


def write_plate(path: Path, fields: dict[str, list[np.ndarray]], *, version: str = "0.5",
                voxel_size: tuple[float, float, float] = (0.5, 0.2, 0.2),
                acquisitions: dict[int, str] | None = None, field_acquisitions: dict[str, list[int]] | None = None,
                ) -> None:  # fmt: skip
    """An HCS plate written as other tools write one (ome-zarr-py's writer, NGFF ``version``): ``fields`` maps a
    well path (``"B/3"``) to its fields' ``(Z, Y, X)`` arrays, in the plate's order; ``acquisitions`` (id → name)
    and ``field_acquisitions`` (well → each field's acquisition id) for a plate imaged more than once."""
    import zarr
    from ome_zarr.format import FormatV04, FormatV05

    writer = _ome_zarr_writer()
    fmt = FormatV05() if version == "0.5" else FormatV04()
    root = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    rows = sorted({w.split("/")[0] for w in fields})
    columns = sorted({w.split("/")[1] for w in fields}, key=int)
    acq = [{"id": i, "name": n} for i, n in (acquisitions or {}).items()] or None
    writer.write_plate_metadata(root, rows, columns, list(fields), fmt=fmt, name=path.name.split(".")[0],
                                acquisitions=acq)  # fmt: skip
    scale = dict(zip("zyx", voxel_size, strict=True))
    for well, arrays in fields.items():
        group = root.require_group(well)
        images = [{"path": str(i), **({"acquisition": field_acquisitions[well][i]} if field_acquisitions else {})}
                  for i in range(len(arrays))]  # fmt: skip
        writer.write_well_metadata(group, images, fmt=fmt)
        for i, a in enumerate(arrays):
            write_ngff_image(a, group.require_group(str(i)), fmt, scale)


def write_ngff_image(array: np.ndarray, group: object, fmt: object, scale_um: dict[str, float]) -> None:
    """One ``(Z, Y, X)`` image into a zarr group with ome-zarr-py's writer (a single level, µm), as other tools write
    one (its deprecation notice about its own downsampler silenced: no levels are made)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _ome_zarr_writer().write_image(array[None, None], group, axes="tczyx", fmt=fmt, scale_factors=[],
                                       scale={"t": 1.0, "c": 1.0, **scale_um},
                                       axes_units={a: "micrometer" for a in "zyx"})  # fmt: skip


def write_bioformats2raw(path: Path, arrays: list[np.ndarray], names: list[str] | None, listed: bool,
                         plate_xml: str = "") -> None:  # fmt: skip
    """A bioformats2raw layout (NGFF 0.4, as bioformats2raw writes): a group per series, the OME group listing them
    (``listed``) and the companion OME-XML naming them (``names``), with ``plate_xml`` (a ``Plate`` element, as
    ``--no-hcs`` leaves it) before the images."""
    import zarr
    from ome_zarr.format import FormatV04

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    for i, a in enumerate(arrays):
        write_ngff_image(a, root.require_group(str(i)), FormatV04(), {"z": 1.0, "y": 0.5, "x": 0.5})
    ome = root.require_group("OME")
    if listed:
        ome.attrs["series"] = [str(i) for i in range(len(arrays))]
    if names is not None:
        images = "".join(f'<Image ID="Image:{i}" Name="{n}"/>' for i, n in enumerate(names))
        (path / "OME" / "METADATA.ome.xml").write_text(
            f'<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">{plate_xml}{images}'
            "</OME>"
        )


def _ome_zarr_writer() -> Any:
    """``ome_zarr.writer``, whose import builds a deprecated default downsampler (a DeprecationWarning)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import ome_zarr.writer

    return ome_zarr.writer


@pytest.fixture
def real_data() -> Path:
    root = os.environ.get("SUBCELL_TEST_DATA")
    if not root:
        pytest.skip("SUBCELL_TEST_DATA is not set (point it at the shared real-data folder)")
    path = Path(root)
    if not path.is_dir():
        pytest.skip(f"SUBCELL_TEST_DATA={root} is not a folder")
    return path


def subcell_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``subcell`` entry point."""
    exe = Path(sys.executable).parent / "subcell"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "subcell"]
    # a guard against hangs, not a speed check: the whole demo takes ~150 s alone on 2 cores, more when shared
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=900)


def cli_user_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI's entry point in-process (what the installed ``subcell`` calls, without another interpreter)
    on a user mistake: exit status 2 and one line on stderr, which is returned."""
    from subcell.cli.main import run

    capsys.readouterr()
    assert run(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def profiled_ops(fn: Callable[[], object]) -> set[str]:
    """The names of the operators (``aten::...``) that ``fn()`` runs, from the torch profiler."""
    from torch.profiler import profile

    with profile() as prof:
        fn()
    return {e.name for e in prof.events()}


def pytest_configure(config: pytest.Config) -> None:
    if _WORKERS > 1 and "torch" in sys.modules:  # a plugin imported torch before this file set OMP_NUM_THREADS
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def ome_plate_xml(wells: dict[tuple[int, int], list[int]], name: str = "screen1", plate_id: int = 0) -> str:
    """A ``Plate``: (row, column), 0-based, → the image indices of its fields in order."""
    body, sample = "", 0
    for (r, c), images in wells.items():
        body += f'<Well ID="Well:{plate_id}:{r}:{c}" Row="{r}" Column="{c}">'
        for i in images:
            body += f'<WellSample ID="WellSample:{sample}" Index="{sample}"><ImageRef ID="Image:{i}"/></WellSample>'
            sample += 1
        body += "</Well>"
    return f'<Plate ID="Plate:{plate_id}" Name="{name}">{body}</Plate>'


OME_META = {"axes": "ZYX", "PhysicalSizeZ": 0.5, "PhysicalSizeY": 0.2, "PhysicalSizeX": 0.2}


def write_ome_tiff(path: Path, names: list[str], plate_xml: str = "") -> list[np.ndarray]:
    """An OME-TIFF of one 3×8×10 image per name (image i: 100·(i + 1) plus noise), with ``plate_xml`` inserted into
    its OME-XML as an HCS export has it."""
    import tifffile

    rng = np.random.default_rng(1)
    arrays = [(rng.integers(0, 50, (3, 8, 10)) + 100 * (i + 1)).astype(np.uint16) for i in range(len(names))]
    with tifffile.TiffWriter(path, ome=True) as tw:
        for a, name in zip(arrays, names, strict=True):
            tw.write(a, metadata={**OME_META, "Name": name})
    if plate_xml:
        insert_plate_xml(path, plate_xml)
    return arrays


def insert_plate_xml(path: Path, plate_xml: str) -> None:
    """Put a ``Plate`` element into an OME-TIFF's OME-XML, before its images (where the schema has plates)."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        xml = tf.ome_metadata
    at = xml.index("<Image ")
    tifffile.tiffcomment(path, (xml[:at] + plate_xml + xml[at:]).encode())
