"""Flat-field (shading) estimated from a collection's fields and taken out: ``subcell flatfield``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from subcell.errors import ValueRangeError
from subcell.image import Image
from subcell.transforms.shading import correct_flatfield, estimate_flatfield, shading_sample
from tests.conftest import cli_user_error

DARK = 100.0


def _shading(shape: tuple[int, int]) -> np.ndarray:
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    s = (1 - 0.2 * (x**2 + y**2)) * (1 + 0.1 * x)
    return (s / s.mean()).astype(np.float32)


def _fields(n: int, shape: tuple[int, ...] = (2, 96, 128), seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` recorded fields: a texture that lies anywhere (blurred gamma noise) times the shading, over a dark level."""
    rng = np.random.default_rng(seed)
    s = _shading(shape[-2:])
    out = []
    for _ in range(n):
        content = ndi.gaussian_filter(rng.gamma(2.0, 50.0, shape), (0, 3, 3)) + 20
        out.append(content * s + DARK)
    return out, s


def test_a_known_shading_is_recovered_from_fields_whose_content_lies_anywhere() -> None:
    fields, s = _fields(48)
    flat = estimate_flatfield([shading_sample(f.mean(axis=0), dark=DARK) for f in fields], s.shape)
    assert flat.shape == s.shape and flat.dtype == np.float32 and flat.mean() == pytest.approx(1.0, abs=1e-5)
    assert np.sqrt(np.mean((flat / s - 1) ** 2)) < 0.01
    # without the dark level taken off, the offset reads as unshaded light: the estimate comes out too flat
    flat0 = estimate_flatfield([shading_sample(f.mean(axis=0)) for f in fields], s.shape)
    assert np.ptp(flat0) < 0.8 * np.ptp(s) and np.sqrt(np.mean((flat0 / s - 1) ** 2)) > 0.02
    corrected = correct_flatfield(fields[0], flat, dark=DARK)
    assert corrected.dtype == np.float32
    truth = (fields[0] - DARK) / s
    assert np.abs(corrected / truth - 1).max() < 0.05


def test_samples_are_small_and_normalised_and_empty_fields_are_skipped() -> None:
    sample = shading_sample(np.full((1000, 600), 300.0), dark=DARK)
    assert max(sample.shape) == 128 and sample.shape == (128, 77) and np.allclose(sample, 1.0)
    assert np.isnan(shading_sample(np.full((50, 50), DARK), dark=DARK)).all()  # nothing above the dark level
    fields, s = _fields(8)
    samples = [shading_sample(f.mean(axis=0), dark=DARK) for f in fields]
    with_empty = estimate_flatfield([*samples, np.full(samples[0].shape, np.nan, np.float32)], s.shape)
    assert np.array_equal(with_empty, estimate_flatfield(samples, s.shape))
    with pytest.raises(ValueRangeError, match="no field has signal"):
        estimate_flatfield([np.full((8, 8), np.nan, np.float32)], (8, 8))
    with pytest.raises(ValueRangeError, match="flat-field is 96×128 but the image's planes are 96×127"):
        correct_flatfield(np.zeros((2, 96, 127)), s)


def _write_fields(tmp_path: Path, n: int, shape: tuple[int, int, int] = (2, 96, 128)) -> tuple[list[Path], np.ndarray]:
    from subcell.io import write

    dna, s = _fields(n, shape, seed=1)
    mito, _ = _fields(n, shape, seed=2)
    paths = []
    for i in range(n):
        data = np.stack([dna[i], mito[i]], axis=1).astype(np.uint16)  # Z C Y X
        path = tmp_path / f"f{i:02d}.ome.tif"
        write(Image(data, voxel_size=(0.5, 0.2, 0.2), dims="ZCYX", channel_names=["dna", "mito"]), path)
        paths.append(path)
    return paths, s


def test_cli_estimates_per_channel_and_applies_with_the_recorded_dark_level(tmp_path: Path) -> None:
    from subcell.cli.main import run
    from subcell.io import read, write

    paths, s = _write_fields(tmp_path, 24)
    flat_path = tmp_path / "flat.ome.tif"
    assert run(["flatfield", "estimate", *map(str, paths), str(flat_path), "-c", "dna", "--dark", str(DARK)]) == 0
    profile = read(flat_path)
    assert list(profile.channel_names) == ["dna"] and profile.provenance.history[-1]["parameters"]["dark"] == DARK
    flat = np.asarray(profile.numpy())[0, 0, 0]
    assert np.sqrt(np.mean((flat / s - 1) ** 2)) < 0.015
    out = tmp_path / "fixed.ome.zarr"
    assert run(["flatfield", "apply", str(paths[0]), str(flat_path), str(out)]) == 0
    fixed, raw = np.asarray(read(out).numpy()), np.asarray(read(paths[0]).numpy())
    assert fixed.dtype == np.float32
    np.testing.assert_allclose(fixed[0, 0], (raw[0, 0] - DARK) / flat, rtol=1e-5)
    np.testing.assert_array_equal(fixed[0, 1], raw[0, 1])  # mito: not in the flat-field, kept
    # a flat-field of one channel applied to another by -c; the dark level given overrides the recorded one
    assert run(["flatfield", "apply", str(paths[1]), str(flat_path), str(tmp_path / "m.ome.tif"), "-c", "mito",
                "--dark", "0"]) == 0  # fmt: skip
    np.testing.assert_allclose(np.asarray(read(tmp_path / "m.ome.tif").numpy())[0, 1],
                               np.asarray(read(paths[1]).numpy())[0, 1] / flat, rtol=1e-5)  # fmt: skip
    # a field whose file states another voxel size (the same camera, another objective's metadata): the grid counts
    other = tmp_path / "other.ome.tif"
    write(Image(np.asarray(read(paths[2]).numpy())[0], voxel_size=(1.0, 0.31, 0.31), dims="CZYX",
                channel_names=["dna", "mito"]), other)  # fmt: skip
    assert run(["flatfield", "apply", str(other), str(flat_path), str(tmp_path / "o.ome.tif")]) == 0


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell.cli.main import run
    from subcell.io import write

    paths, _ = _write_fields(tmp_path, 3)
    odd = tmp_path / "odd.ome.tif"
    write(Image(np.zeros((2, 2, 96, 120), np.uint16), voxel_size=(0.5, 0.2, 0.2), dims="ZCYX",
                channel_names=["dna", "mito"]), odd)  # fmt: skip
    flat = tmp_path / "flat.ome.tif"
    err = cli_user_error(capsys, "flatfield", "estimate", *map(str, paths), str(odd), str(flat))
    assert "odd.ome.tif" in err and "96×120 here but 96×128" in err and not flat.exists()
    err = cli_user_error(capsys, "flatfield", "estimate", *map(str, paths), str(flat), "-c", "er")
    assert "'er'" in err and not flat.exists()
    err = cli_user_error(capsys, "flatfield", "estimate", str(flat))
    assert "then the output flat-field" in err
    err = cli_user_error(capsys, "flatfield", "estimate", *map(str, paths), str(tmp_path / "flat.png"))
    assert "flat.png" in err
    assert run(["flatfield", "estimate", *map(str, paths), str(flat)]) == 0
    err = cli_user_error(capsys, "flatfield", "estimate", *map(str, paths), str(flat))
    assert "already exists" in err
    fixed = tmp_path / "fixed.ome.tif"
    err = cli_user_error(capsys, "flatfield", "apply", str(odd), str(flat), str(fixed))
    assert "flat.ome.tif" in err and "96×128 but" in err and not fixed.exists()


def test_batch_flatfield_apply_equals_single_runs(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    from subcell.cli.main import run
    from subcell.io import read

    paths, _ = _write_fields(tmp_path, 6)
    flat = tmp_path / "flat.ome.tif"
    assert run(["flatfield", "estimate", *map(str, paths), str(flat), "--dark", str(DARK)]) == 0
    rows = [{"id": p.name.split(".")[0], "source": p.name, "flatfield": "flat.ome.tif"} for p in paths[:2]]
    pd.DataFrame(rows).to_csv(tmp_path / "fields.csv", index=False)
    out = tmp_path / "flat_out"
    assert run(["batch", "flatfield-apply", str(tmp_path / "fields.csv"), str(out), "--workers", "1", "--quiet"]) == 0
    for p in paths[:2]:
        single = tmp_path / f"single_{p.name.split('.')[0]}.ome.zarr"
        assert run(["flatfield", "apply", str(p), str(flat), str(single)]) == 0
        np.testing.assert_array_equal(read(out / f"{p.name.split('.')[0]}.ome.zarr").numpy(), read(single).numpy())
    pd.DataFrame([{"id": "f00", "source": paths[0].name}]).to_csv(tmp_path / "bare.csv", index=False)
    capsys.readouterr()
    assert run(["batch", "flatfield-apply", str(tmp_path / "bare.csv"), str(tmp_path / "o2")]) == 2
    assert "row 1, column 'flatfield': the flat-field to take out" in capsys.readouterr().err  # (the manifest's list)
    assert not (tmp_path / "o2").exists()
