"""The CLI through the installed entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from subcell import Image, __version__, io
from tests.conftest import cli_user_error, subcell_cli


def test_version() -> None:
    r = subcell_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"subcell {__version__}"


def test_help_imports_no_heavy_libraries() -> None:
    code = (
        "import sys; from subcell.cli.main import app; "
        "heavy = [m for m in ('numpy', 'dask', 'zarr', 'torch', 'bioio', 'pandas', 'skimage') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == ""
    assert subcell_cli("--help").returncode == 0


def test_info_json_and_text(tmp_path: Path) -> None:
    img = Image(
        np.zeros((2, 3, 10, 12), np.uint16), voxel_size=(0.29, 0.1, 0.1), dims="CZYX", channel_names=["bf", "dna"]
    )
    path = io.write(img, tmp_path / "i.ome.zarr")
    r = subcell_cli("info", str(path), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["dims"] == {"T": 1, "C": 2, "Z": 3, "Y": 10, "X": 12}
    assert d["voxel_size_um"] == [0.29, 0.1, 0.1] and d["channels"] == ["bf", "dna"]
    text = subcell_cli("info", str(path)).stdout
    assert "z=0.29 y=0.1 x=0.1 µm" in text and "bf, dna" in text


def test_info_describes_several_files_and_says_which_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from subcell.cli.main import run

    a = io.write(Image(np.zeros((3, 8, 8), np.uint8), voxel_size=(1, 0.5, 0.5), dims="ZYX"), tmp_path / "a.ome.tif")
    b = io.write(Image(np.zeros((2, 4, 8, 8), np.uint8), voxel_size=(1, 0.5, 0.5), dims="TZYX", time_interval=30),
                 tmp_path / "b.ome.zarr")  # fmt: skip
    (tmp_path / "bad.tif").write_bytes(b"II*\x00 not a TIFF")
    capsys.readouterr()
    assert run(["info", str(a), str(tmp_path / "bad.tif"), str(b), "--json"]) == 2  # the others still described
    out, err = capsys.readouterr()
    found = json.loads(out)
    assert [d["path"] for d in found] == [str(a), str(tmp_path / "bad.tif"), str(b)]
    assert found[0]["dims"]["Z"] == 3 and found[2]["time_interval_s"] == 30 and "error" in found[1]
    assert err.startswith("error: ") and "bad.tif" in err and err.count("\n") == 1
    assert run(["info", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert text.count("file ") == 2 and "30 s (file)" in text


def test_convert_resamples_slab_by_slab_as_the_whole_volume(tmp_path: Path) -> None:
    from subcell.transforms.resample import resample_linear

    src = tmp_path / "in.ome.tif"
    data = np.random.default_rng(1).integers(0, 60000, (1, 2, 21, 30, 34), dtype=np.uint16)
    io.write(Image(data, voxel_size=(0.5, 0.2, 0.25), channel_names=["bf", "dna"]), src)
    out = tmp_path / "out.ome.zarr"
    r = subcell_cli("convert", str(src), str(out), "--resample", "0.29", "0.29", "0.29")
    assert r.returncode == 0, r.stderr
    back = io.read(out)
    assert back.shape == (1, 2, 36, 21, 29) and back.dtype == np.uint16 and back.channel_names == ("bf", "dna")
    assert back.voxel_size.isclose((0.29, 0.29, 0.29), rtol=0.02)
    whole = resample_linear(data.astype(np.float32), voxel_size=(0.5, 0.2, 0.25), target_voxel_size=back.voxel_size,
                            out_shape=back.shape[2:])  # fmt: skip
    np.testing.assert_array_equal(back.numpy(), np.clip(np.rint(whole), 0, 65535))  # 8-plane blocks, exact
    assert [h["step"] for h in back.provenance.history][-2:] == ["resample", "convert"]
    bad = subcell_cli("convert", str(src), str(tmp_path / "bad.ome.zarr"), "--resample", "0.29", "0", "0.29")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: voxel_size.y: expected a positive, finite number of micrometres, got 0.0"
    ]
    assert not (tmp_path / "bad.ome.zarr").exists()


def test_convert_resamples_labels_by_nearest_neighbour_and_refuses_fractional_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from subcell.transforms.resample import resample

    rng = np.random.default_rng(2)
    lab = np.zeros((17, 40, 44), np.uint16)
    for i in range(1, 30):  # boxes with ids far apart: a linear blend of two neighbours makes an id of neither
        z, y, x = rng.integers(0, (12, 32, 36))
        lab[z : z + 5, y : y + 8, x : x + 8] = i * 2000
    src, out = tmp_path / "cells.ome.tif", tmp_path / "cells.ome.zarr"
    io.write(Image(lab, voxel_size=(0.5, 0.2, 0.25), dims="ZYX", channel_names=["cells"]), src)
    assert subcell_cli("convert", str(src), str(out), "--resample", "0.29", "0.29", "0.29", "--labels").returncode == 0
    back = io.read(out)
    assert back.dtype == np.uint16 and back.shape[2:] == (29, 28, 38)
    whole = resample(lab, voxel_size=(0.5, 0.2, 0.25), target_voxel_size=back.voxel_size, labels=True)
    np.testing.assert_array_equal(back.numpy()[0, 0], whole)  # planes streamed in blocks: the whole-volume values
    assert set(np.unique(back.numpy())) <= set(np.unique(lab))
    assert back.provenance.history[-2]["parameters"]["method"] == "nearest neighbour (labels)"
    linear = tmp_path / "linear.ome.zarr"  # without --labels the ids are interpolated: new ids at the boundaries
    assert subcell_cli("convert", str(src), str(linear), "--resample", "0.29", "0.29", "0.29").returncode == 0
    assert not set(np.unique(io.read(linear).numpy())) <= set(np.unique(lab))
    fractional = tmp_path / "fractional.tif"
    tifffile.imwrite(fractional, (lab / 3.0).astype(np.float32))
    bad = tmp_path / "bad.ome.zarr"
    err = cli_user_error(capsys, "convert", str(fractional), str(bad), "--axes", "ZYX", "--voxel-size", "0.5", "0.2", "0.25",
                         "--resample", "0.29", "0.29", "0.29", "--labels")  # fmt: skip
    assert "fractional values" in err and not bad.exists()


def test_convert_with_voxel_size_and_channel_names(tmp_path: Path) -> None:
    src = tmp_path / "plain.tif"
    data = np.random.default_rng(0).integers(0, 999, (2, 5, 16, 16), dtype=np.uint16)
    tifffile.imwrite(src, data, photometric="minisblack")
    out = tmp_path / "out.ome.zarr"
    r = subcell_cli(
        "convert",
        str(src),
        str(out),
        "--axes",
        "CZYX",
        "--voxel-size",
        "0.5",
        "0.2",
        "0.2",
        "--channel-names",
        "bf,dna",
    )
    assert r.returncode == 0, r.stderr
    back = io.read(out)
    assert back.channel_names == ("bf", "dna") and back.voxel_size.as_tuple() == (0.5, 0.2, 0.2)
    np.testing.assert_array_equal(back.numpy()[0], data)
    assert back.provenance.history[-1]["step"] == "convert"
    again = subcell_cli("convert", str(src), str(out), "--axes", "CZYX", "--voxel-size", "0.5", "0.2", "0.2")
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_user_mistake_is_one_line_and_exit_2(tmp_path: Path) -> None:
    src = tmp_path / "plain.tif"
    tifffile.imwrite(src, np.zeros((5, 16, 16), np.uint16), photometric="minisblack")
    r = subcell_cli("convert", str(src), str(tmp_path / "o.ome.tif"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {src}: voxel_size: voxel size unknown") and "--voxel-size Z Y X" in lines[0]
    assert not (tmp_path / "o.ome.tif").exists()
    verbose = subcell_cli("--verbose", "convert", str(src), str(tmp_path / "o.ome.tif"))
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_missing_file_and_bad_usage(tmp_path: Path) -> None:
    r = subcell_cli("info", str(tmp_path / "absent.tif"))
    assert r.returncode == 2 and r.stderr.strip() == f"error: {tmp_path / 'absent.tif'}: file not found"
    usage = subcell_cli("convert", "only-one-arg")
    assert usage.returncode == 2


def test_manifest_check_reports_every_row(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("source,split\nmissing1.tif,train\nmissing2.tif,bogus\n")
    r = subcell_cli("manifest", "check", str(tmp_path / "m.csv"))
    assert r.returncode == 2
    assert (
        "row 1, column 'source'" in r.stderr
        and "row 2, column 'source'" in r.stderr
        and "row 2, column 'split'" in r.stderr
    )


@pytest.mark.slow  # 2.5-3 minutes: the default suite's budget; `make demo` runs the same steps
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    r = subcell_cli(
        "demo", "--out", str(tmp_path / "demo"), "--labelfree-minutes", "0.1", "--integrated-minutes", "0.1"
    )
    assert r.returncode == 0, r.stderr
    assert "[5/8] segmented field0 vs ground truth: nucleus F1@0.5=" in r.stdout
    assert "[6/8] label-free:" in r.stdout and "tile(s)" in r.stdout
    # the fields' 0.108 µm grid is resampled to the model's: said in the step's line, not as a library warning
    assert "resampled to the model's (z=0.29, y=0.29, x=0.29) µm" in r.stdout and "UserWarning" not in r.stderr
    assert "zero-shot (shipped model" in r.stdout and "fine-tuned from hipsc-bf-3d" in r.stdout
    line = next(x for x in r.stdout.splitlines() if "nuclei in the true cells" in x)
    with_model, outlines = (float(v) for v in re.findall(r"Dice (\d\.\d\d) against (\d\.\d\d)", line)[0])
    assert with_model > outlines  # the prediction adds to where a nucleus sits in its cell
    assert (tmp_path / "demo" / "field2_nuclei.ome.zarr").exists()
    assert "[7/8]" in r.stdout and "cells extracted" in r.stdout and "shuffled reference" in r.stdout
    assert "[8/8] time-lapse" in r.stdout and "TRA" in r.stdout and "divisions" in r.stdout
    assert "smoothed along tracks" in r.stdout
    tracks = pd.read_parquet(tmp_path / "demo" / "tracks.parquet")
    on = tracks.state_true.fillna("") != ""
    assert on.sum() > 50 and (tracks.state[on] == tracks.state_true[on]).mean() > 0.8
    assert {"state", "entry_frame"} <= set(pd.read_csv(tmp_path / "demo" / "transitions.csv").columns)
    demo = tmp_path / "demo"
    assert io.read_cell_store(demo / "cells.zarr").crops.shape[0] > 10
    assert (demo / "integrated_model" / "weights.safetensors").exists()
    report = (demo / "report.html").read_text()
    for name in (
        "integrated_samples.png",
        "integrated_latent_walk.png",
        "shape_modes.png",
        "labelfree_evaluation.png",
        "lineage.png",
    ):
        assert name in report and (demo / name).read_bytes()[:4] == b"\x89PNG"
    metrics = pd.read_csv(tmp_path / "demo" / "labelfree_metrics.csv")
    assert list(metrics["structure"]) == ["dna", "membrane"] and metrics["noise_ceiling"].between(0, 1).all()
    assert (tmp_path / "demo" / "labelfree_evaluation.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "demo" / "labelfree_model" / "weights.safetensors").exists()
    assert (tmp_path / "demo" / "field0_cells.csv").exists() and (
        tmp_path / "demo" / "field0_nucleus.ome.zarr"
    ).exists()
    assert io.read(tmp_path / "demo" / "field0_dna_isotropic.ome.tif").voxel_size.x > 0.2
    again = subcell_cli("demo", "--out", str(tmp_path / "demo"))
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_synth_command_writes_a_field_and_rejects_bad_parameters(tmp_path: Path) -> None:
    out = tmp_path / "s.ome.zarr"
    r = subcell_cli("synth", str(out), "--shape", "12", "96", "96", "--seed", "3", "--set", "noise.peak_photons=300")
    assert r.returncode == 0, r.stderr
    img = io.read(out)
    assert img.channel_names[0] == "brightfield" and img.sizes["Z"] == 12
    assert img.provenance.history[-1]["parameters"]["noise"]["peak_photons"] == 300
    bad = subcell_cli("synth", str(tmp_path / "b.ome.zarr"), "--shape", "12", "96", "-4")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "shape must be positive" in bad.stderr
    assert not (tmp_path / "b.ome.zarr").exists()


def test_workflows_list_and_show() -> None:
    listing = subcell_cli("workflows", "list")
    assert listing.returncode == 0 and "nucleus" in listing.stdout and "cells" in listing.stdout
    shown = subcell_cli("workflows", "show", "nucleus")
    assert shown.returncode == 0 and shown.stdout.startswith("name: nucleus")
    bad = subcell_cli("workflows", "show", "nope")
    assert bad.returncode == 2 and "unknown built-in workflow" in bad.stderr


def test_segment_measure_and_evaluate_on_a_synthetic_field(tmp_path: Path) -> None:
    import pandas as pd

    from subcell.synth import synth_field, write_field

    field = synth_field(shape=(16, 160, 160), seed=6)
    src = write_field(field, tmp_path / "f.ome.zarr")
    truth = tmp_path / "truth.ome.tif"
    io.write(Image(field.labels["nucleus"], voxel_size=field.config.voxel_size, dims="TZYX"), truth)
    nuc = tmp_path / "nuc.ome.zarr"
    r = subcell_cli("segment", str(src), str(nuc), "--workflow", "nucleus")
    assert r.returncode == 0, r.stderr
    seg = io.read(nuc)
    assert seg.voxel_size == field.image.voxel_size and seg.dtype == np.int32
    lab = seg.numpy()[0, 0]
    border = seg.provenance.history[-1]["parameters"]["border_ids"][0]
    assert border  # (some objects touch the field border)
    assert f"{len(np.unique(lab[lab > 0]))} objects, {len(border)} touching the border" in r.stdout
    ev = subcell_cli("evaluate-seg", str(nuc), str(truth), "--out", str(tmp_path / "ev.csv"))
    assert ev.returncode == 0, ev.stderr
    table = pd.read_csv(tmp_path / "ev.csv")
    assert table.loc[table.iou_threshold == 0.5, "f1"].item() >= 0.8
    m = subcell_cli("measure", str(nuc), str(tmp_path / "m.parquet"), "--intensity", str(src))
    assert m.returncode == 0, m.stderr
    meas = pd.read_parquet(tmp_path / "m.parquet")
    assert {"volume_um3", "surface_area_um2", "centroid_z_um", "dna_mean"} <= set(meas.columns)
    vol = np.bincount(lab.ravel())[1:] * float(np.prod(field.config.voxel_size))
    assert meas.volume_um3.to_numpy() == pytest.approx(vol[vol > 0])


def test_segment_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "one.ome.tif"
    io.write(
        Image(np.random.default_rng(0).random((4, 32, 32)).astype(np.float32), voxel_size=(0.3, 0.1, 0.1), dims="ZYX"),
        src,
    )
    r = subcell_cli("segment", str(src), str(tmp_path / "o.ome.zarr"), "--workflow", "cells")
    assert r.returncode == 2 and "needs a channel for input 'dna'" in r.stderr and r.stderr.count("\n") == 1
    # the same entry point in-process (the installed one is checked above): no interpreter per case
    missing = str(tmp_path / "missing.yaml")
    assert "missing.yaml" in cli_user_error(capsys, "segment", str(src), str(tmp_path / "o.ome.zarr"), "-w", missing)
    err = cli_user_error(capsys, "segment", str(src), str(tmp_path / "o.ome.zarr"), "-w", "nucleus", "-c", "dna")
    assert f"{src}: channel: unknown channel 'dna'" in err  # the file the channel was looked for in
    lab = tmp_path / "lab.ome.tif"
    io.write(Image(np.zeros((3, 16, 16), np.int32), voxel_size=(0.3, 0.1, 0.1), dims="ZYX"), lab)
    err = cli_user_error(capsys, "measure", str(lab), str(tmp_path / "t.csv"), "--intensity", str(src))
    assert "intensity image" in err
    other = io.write(
        Image(np.zeros((3, 16, 16), np.uint8), voxel_size=(0.5, 0.2, 0.2), dims="ZYX"), tmp_path / "o.ome.tif"
    )
    # another grid: said as such (it read "the given voxel size contradicts the file's", a size never given)
    err = cli_user_error(capsys, "measure", str(lab), str(tmp_path / "t.csv"), "--intensity", str(other))
    assert f"{other}: voxel_size: the intensity image has voxel size (z=0.5" in err and "given" not in err
    assert not (tmp_path / "o.ome.zarr").exists() and not (tmp_path / "t.csv").exists()
    copied = io.write(
        Image(np.ones((2, 4, 16, 16), np.uint16), voxel_size=(0.3, 0.1, 0.1), dims="CZYX", channel_names=["a", "b"]),
        tmp_path / "copied.ome.zarr",
    )
    # an image holding label images, given where labels go: the paths of those (it said only "one channel, got 2")
    io.write(
        Image(np.ones((4, 16, 16), np.uint16), voxel_size=(0.3, 0.1, 0.1), dims="ZYX"), copied / "labels" / "nuclei"
    )
    for command in (("measure", str(copied), str(tmp_path / "t.csv")), ("evaluate-seg", str(lab), str(copied))):
        err = cli_user_error(capsys, *command)
        assert (
            f"{copied}: label: this is an image holding the label images ['nuclei']; choose one with its path, " in err
        )
        assert f"e.g. {copied}/labels/nuclei" in err
    (copied / "0" / "0" / "1" / "0" / "0" / "0").write_bytes(b"not a chunk")  # channel b damaged
    err = cli_user_error(capsys, "segment", str(copied), str(tmp_path / "o.ome.zarr"), "-w", "nucleus", "-c", "b")
    assert f"{copied}: unreadable OME-Zarr pixel data in chunk 0/0/1/0/0/0 (" in err
    assert not (tmp_path / "o.ome.zarr").exists()


def test_evaluate_seg_scores_a_time_lapse_frame_by_frame_and_refuses_fractional_labels(tmp_path: Path) -> None:
    """Objects that move between frames: scored as one T×Z stack they would not match; per frame they all do."""
    truth = np.zeros((4, 1, 1, 40, 60), np.uint16)
    for t in range(4):
        truth[t, 0, 0, 5:15, 5 + 10 * t : 15 + 10 * t] = 1  # a moving object, id 1 in every frame
        truth[t, 0, 0, 25:35, 40:50] = 2
    pred = truth.copy()
    pred[pred == 2] = 7  # other ids, same objects
    for name, data in (("t.tif", truth), ("p.tif", pred)):
        tifffile.imwrite(tmp_path / name, data[:, 0, 0], metadata={"axes": "TYX"}, imagej=True)
    r = subcell_cli("evaluate-seg", str(tmp_path / "p.tif"), str(tmp_path / "t.tif"), "--out", str(tmp_path / "s.csv"),
                    "--objects", str(tmp_path / "f.csv"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "4 frames" in r.stdout
    summary, frames = pd.read_csv(tmp_path / "s.csv"), pd.read_csv(tmp_path / "f.csv")
    assert summary.loc[summary.iou_threshold == 0.5, "tp"].item() == 8 and (frames["f1@0.5"] == 1.0).all()
    frac = truth[:, 0, 0].astype(np.float32) / 2  # ids 0.5 and 1.0: truncation would merge/lose objects
    tifffile.imwrite(tmp_path / "frac.tif", frac, metadata={"axes": "TYX"}, imagej=True)
    bad = subcell_cli("evaluate-seg", str(tmp_path / "p.tif"), str(tmp_path / "frac.tif"))
    assert bad.returncode == 2 and "fractional" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    whole = truth[:, 0, 0].astype(np.float32)  # whole-number floats are fine
    tifffile.imwrite(tmp_path / "f32.tif", whole, metadata={"axes": "TYX"}, imagej=True)
    ok = subcell_cli("evaluate-seg", str(tmp_path / "p.tif"), str(tmp_path / "f32.tif"))
    assert ok.returncode == 0, ok.stderr
