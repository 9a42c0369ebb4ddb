"""Labels written into the OME-Zarr image they segment (``IMAGE/labels/NAME``): on its grid, in its NGFF version,
listed in its ``labels`` group, atomically, the image untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from subcell import Image, io
from subcell.cli.main import run
from subcell.errors import InputFileError, OutputExistsError, ValueRangeError
from tests.conftest import cli_user_error


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file() and "labels" not in f.parts}  # fmt: skip


def _field(tmp_path: Path, version: str) -> Path:
    rng = np.random.default_rng(0)
    image = Image(rng.integers(0, 1000, (2, 2, 4, 24, 20)).astype(np.uint16), voxel_size=(0.5, 0.2, 0.25),
                  channel_names=["dna", "membrane"], time_interval=60.0)  # fmt: skip
    return io.write(image, tmp_path / "field.ome.zarr", ngff_version=version)


def _labels(value: int = 3, shape: tuple[int, ...] = (2, 1, 4, 24, 20)) -> Image:
    data = np.zeros(shape, np.int32)
    data[:, :, 1:3, 5:15, 4:12] = value
    return Image(data, voxel_size=(0.5, 0.2, 0.25), channel_names=["nucleus"], time_interval=60.0)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_label_goes_into_its_image_in_the_images_format(tmp_path: Path, version: str) -> None:
    field = _field(tmp_path, version)
    before = _tree_digest(field)
    io.write(_labels(3), field / "labels" / "nucleus", is_label=True)
    io.write(_labels(7), field / "labels" / "cell", is_label=True)
    assert io.label_names(field) == ["nucleus", "cell"] and _tree_digest(field) == before  # the image untouched
    np.testing.assert_array_equal(io.read_labels(field, "cell").numpy(), _labels(7).numpy())
    v3 = (field / "labels" / "cell" / "zarr.json").is_file()
    assert v3 == (version == "0.5") and v3 != (field / "labels" / "cell" / ".zattrs").is_file()
    assert not list((field / "labels").glob(".*partial*"))  # nothing half-written left beside it
    import warnings

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    with warnings.catch_warnings():  # (ome-zarr-py notes it read 0.4 where it defaults to 0.5)
        warnings.simplefilter("ignore")
        nodes = list(Reader(parse_url(str(field)))())  # another NGFF reader finds both labels of the image
    assert sum(any(type(s).__name__ == "Label" for s in n.specs) for n in nodes) == 2


def test_a_label_off_the_images_grid_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    field = _field(tmp_path, "0.5")
    with pytest.raises(ValueRangeError, match=r"must have its grid; sizes differ \(Y 25 vs 24\)"):
        io.write(_labels(shape=(2, 1, 4, 25, 20)), field / "labels" / "nucleus", is_label=True)
    wrong = _labels().with_metadata(voxel_size=(0.5, 0.2, 0.2))
    with pytest.raises(ValueRangeError, match=r"must have its voxel size \(µm x: 0.2 vs 0.25\)"):
        io.write(wrong, field / "labels" / "nucleus", is_label=True)
    with pytest.raises(ValueRangeError, match="only integer labels or masks go into an image's labels/, got float32"):
        io.write(_labels().with_data(_labels().numpy().astype(np.float32), step="test"), field / "labels" / "nucleus")
    assert not (field / "labels").exists() and io.label_names(field) == []


def test_an_existing_label_is_replaced_only_when_asked(tmp_path: Path) -> None:
    field = _field(tmp_path, "0.4")
    io.write(_labels(3), field / "labels" / "nucleus", is_label=True)
    killed = field / "labels" / ".nucleus.partial-0123456789ab"  # what a killed write of it left
    other = field / "labels" / ".cell.partial-0123456789ab"  # another label's writer, still at work
    killed.mkdir()
    other.mkdir()
    with pytest.raises(OutputExistsError):
        io.write(_labels(4), field / "labels" / "nucleus", is_label=True)
    io.write(_labels(5), field / "labels" / "nucleus", is_label=True, overwrite=True)
    assert io.label_names(field) == ["nucleus"] and int(io.read_labels(field, "nucleus").numpy().max()) == 5
    assert not killed.exists() and other.exists()


def test_segment_writes_into_the_field_and_measure_reads_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from subcell import synth

    field = synth.write_field(synth.synth_field(shape=(12, 160, 160), n_cells=2, seed=3), tmp_path / "f.ome.zarr")
    target = field / "labels" / "found"
    assert run(["segment", str(field), str(target), "-w", "nucleus", "-c", "dna"]) == 0
    assert "found" in io.label_names(field)
    assert run(["measure", str(target), str(tmp_path / "m.parquet")]) == 0
    err = cli_user_error(capsys, "segment", str(field), str(tmp_path / "f.ome.zarr" / "other" / "x"), "-w", "nucleus",
                         "-c", "dna")  # fmt: skip
    assert "IMAGE.ome.zarr/labels/NAME" in err


def test_a_mask_goes_in_as_a_label_and_a_scratch_folder_first_is_no_problem(tmp_path: Path) -> None:
    import zarr

    from subcell.io._atomic import scratch_beside

    field = _field(tmp_path, "0.5")
    mask = _labels(1).with_data(_labels(1).numpy().astype(np.uint8), step="test")  # a mask workflow's 0/1 output
    target = field / "labels" / "mito"
    with scratch_beside(target) as scratch:  # a writer's intermediates (labelfree nuclei) before any labels/ group
        assert scratch.parent == field / "labels"
        (scratch / "prediction.npy").write_bytes(b"kept")  # read back after the label is written: still there
        io.write(mask, target)  # not flagged as labels: an integer image into labels/ is one
        assert (scratch / "prediction.npy").read_bytes() == b"kept"
    assert io.label_names(field) == ["mito"] and io.is_label_image(target)
    assert "labels" in dict(zarr.open_group(str(field / "labels"), mode="r").attrs)["ome"]  # a proper group
    np.testing.assert_array_equal(io.read_labels(field, "mito").numpy(), mask.numpy())


def test_labelfree_nuclei_write_into_the_bright_field_image(tmp_path: Path) -> None:
    """The command that keeps scratch files beside its output (its prediction, read back) writes into labels/ too."""
    from subcell import synth

    field = synth.write_field(synth.synth_field(shape=(12, 160, 160), n_cells=2, seed=3), tmp_path / "f.ome.zarr")
    assert run(["labelfree", "nuclei", str(field), str(field / "labels" / "cell"), str(field / "labels" / "found"),
                "--input-channel", "brightfield", "--quiet"]) == 0  # fmt: skip
    hidden = {p.name for p in (field / "labels").glob(".*")}
    assert "found" in io.label_names(field) and hidden <= {
        ".zattrs",
        ".zgroup",
        ".subcell.lock",
    }  # no temporary or scratch left
    found = io.read_labels(field, "found").numpy()
    assert found.shape == io.read_labels(field, "cell").shape and found.max() > 0


def _register_many(field: str, prefix: str, n: int) -> None:
    from subcell.io.ngff_labels import register_label

    for i in range(n):
        register_label(Path(field) / "labels" / f"{prefix}{i}")


def test_writers_listing_labels_in_one_image_at_once_keep_each_others(tmp_path: Path) -> None:
    """Two batches writing different labels into the same images: each read-extend-replace of the list holds the
    labels group's lock, so no writer replaces the list with one that lacks the other's labels."""
    import multiprocessing

    field = _field(tmp_path, "0.4")
    io.write(_labels(3), field / "labels" / "nucleus", is_label=True)  # (creates the labels group)
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_register_many, args=(str(field), p, 40)) for p in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    names = io.label_names(field)
    assert len(names) == 81 and set(names) == {"nucleus", *(f"{p}{i}" for p in "ab" for i in range(40))}


def test_a_labels_list_held_too_long_by_another_writer_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from filelock import FileLock

    from subcell.io import ngff_labels

    field = _field(tmp_path, "0.4")
    io.write(_labels(3), field / "labels" / "nucleus", is_label=True)
    monkeypatch.setattr(ngff_labels, "LOCK_WAIT_S", 0.2)
    with (
        FileLock(str(field / "labels" / ".subcell.lock")),
        pytest.raises(InputFileError, match=r"held \.subcell\.lock"),
    ):
        ngff_labels.register_label(field / "labels" / "cell")
    assert io.label_names(field) == ["nucleus"]
