"""`subcell report`: a self-contained page for a run folder, rendered in a real browser (every image loads, no
text over a figure), figures at physical aspect whose texts do not collide, provenance, and refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from subcell import io, synth
from subcell.cli.main import run
from subcell.errors import InputFileError, OutputExistsError
from subcell.plotting import orthoviews_png, overlapping_text, subplots
from subcell.report import collect_sections, write_report
from subcell.track.tracks import fates
from tests.report.browser import available, inspect_page


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small run: a synthetic field, its nucleus segmentation beside it, a table, tracks, a figure."""
    from subcell.segment import load_workflow, segment_image
    from subcell.track import TrackConfig, track_timelapse
    from subcell.track.figures import lineage_png

    out = tmp_path_factory.mktemp("run")
    field = synth.synth_field(shape=(12, 96, 96), seed=3)
    synth.write_field(field, out / "field.ome.zarr")
    labels = segment_image(field.image, load_workflow("nucleus"))
    io.write(labels, out / "field_nucleus.ome.zarr")
    io.write_table(field.cells, out / "cells.csv")
    lapse = synth.synth_field(shape=(6, 96, 96), voxel_size=(0.6, 0.3, 0.3), seed=5, **{"time.frames": 5})
    result = track_timelapse(lapse.labels["nucleus"], voxel_size=(0.6, 0.3, 0.3), time_interval_s=300.0,
                             config=TrackConfig())  # fmt: skip
    io.write_table(result.table, out / "tracks.parquet")
    io.write_table(result.lineage, out / "lineage.parquet")
    (out / "lineage.png").write_bytes(lineage_png(result.table, result.lineage, time_interval_s=300.0))
    (out / "run.json").write_text(json.dumps({"command": "subcell test-run --seed 3", "lines": ["step one done"]}))
    return out


def test_sections_found_with_their_provenance(run_folder: Path) -> None:
    sections = {s.name: s for s in collect_sections(run_folder)}
    assert {"Run", "Segmentation", "Dynamics", "Tables"} <= set(sections)
    seg = sections["Segmentation"]
    assert "F1@0.5" in seg.lines[0] and len(seg.figures) == 2 and seg.tables  # overlay; the worst objects drawn
    worst = seg.tables[0][1]
    assert list(worst.columns) == ["true_id", "pred_id", "iou"] and worst.iou.is_monotonic_increasing
    assert sections["Run"].provenance["command"] == "subcell test-run --seed 3"
    assert "field_nucleus.ome.zarr" in seg.provenance  # the segmentation's own history (workflow, parameters)
    assert "tracks" in sections["Dynamics"].lines[0] and sections["Dynamics"].figures
    assert "per track (median) speed" in sections["Dynamics"].lines[1]  # how the cells moved
    lineage = pd.read_parquet(run_folder / "lineage.parquet")  # how the tracks began and ended
    assert sections["Dynamics"].lines[2] == f"tracks.parquet: tracks {fates(lineage)}" and "begin: " in fates(lineage)
    assert "per track (median) growth rate" in sections["Dynamics"].lines[3]  # and grew


def test_tracks_of_an_empty_movie_are_reported_without_a_figure(tmp_path: Path) -> None:
    """Nothing segmented in any frame: 0 tracks is a result to report (the lineage figure failed on its empty
    axis limits and took the whole report with it)."""
    from subcell.track import TrackConfig, track_timelapse

    result = track_timelapse(np.zeros((4, 3, 16, 16), np.uint16), voxel_size=(1, 0.5, 0.5), time_interval_s=60.0,
                             config=TrackConfig())  # fmt: skip
    io.write_table(result.table, tmp_path / "tracks.parquet")
    io.write_table(result.lineage, tmp_path / "lineage.parquet")
    dynamics = {s.name: s for s in collect_sections(tmp_path)}["Dynamics"]
    assert dynamics.lines == ["tracks.parquet: 0 tracks over 0 frames, 0 divisions, 0 detections"]
    assert not dynamics.figures


def test_full_cycles_are_reported_with_their_duration_and_added_volume() -> None:
    from subcell.report.collect import _growth_line

    lineage = pd.DataFrame({"growth_rate_per_h": [0.1, 0.2, np.nan], "full_cycle": [False, True, True],
                            "duration_min": [60.0, 600.0, 720.0], "volume_added_um3": [5.0, 400.0, 500.0]})  # fmt: skip
    line = _growth_line(lineage, "t/tracks.parquet")
    assert "growth rate 0.150 /h, doubling in 4.6 h" in line
    assert "2 full cycles (born at a division, ending in one): median 11.0 h, volume added 450 µm³" in line


def test_tracking_scores_of_evaluate_tracks_are_reported(tmp_path: Path) -> None:
    """An `evaluate-tracks -o` folder: its scores, and divisions said as not scored where the truth had no lineage."""
    scores = {"TRA": 0.93, "DET": 0.95, "LNK": 0.87, "SEG": 0.68, "division_precision": float("nan"),
              "division_recall": float("nan"), "division_f1": float("nan"), "true_divisions": None,
              "predicted_divisions": 4, "true_tracks": 11, "predicted_tracks": 22}  # fmt: skip
    (tmp_path / "scores").mkdir()
    (tmp_path / "scores" / "metrics.json").write_text(json.dumps(scores))
    lines = {s.name: s for s in collect_sections(tmp_path)}["Dynamics"].lines
    assert lines[0] == "scores: tracking scores TRA 0.9300 DET 0.9500 LNK 0.8700 SEG 0.6800"
    assert "divisions not scored" in lines[1] and "11 true tracks, 22 predicted" in lines[2]
    scores |= {"true_divisions": 3, "division_precision": 0.5, "division_recall": 1.0, "division_f1": 2 / 3}
    (tmp_path / "scores" / "metrics.json").write_text(json.dumps(scores))
    lines = {s.name: s for s in collect_sections(tmp_path)}["Dynamics"].lines
    assert "precision 0.500 recall 1.000 F1 0.667 (3 true, 4 predicted)" in lines[1]
    scores |= {"BIO": 0.5, "CT": 0.25, "TF": 0.75, "BC": None, "CCA": None, "OP_CTB": 0.805, "OP_CLB": 0.685}
    (tmp_path / "scores" / "metrics.json").write_text(json.dumps(scores))
    lines = {s.name: s for s in collect_sections(tmp_path)}["Dynamics"].lines
    assert (
        lines[1]
        == "scores: biological measures and overall scores BIO 0.5000 CT 0.2500 TF 0.7500 OP_CTB 0.8050 OP_CLB 0.6850"
    )


@pytest.mark.skipif(available() is not None, reason=str(available()))
def test_report_renders_in_a_real_browser(run_folder: Path, tmp_path: Path) -> None:
    page = write_report(run_folder, tmp_path / "report.html")
    html = page.read_text()
    assert "src='data:image/png;base64," in html and "<details>" in html and "src='http" not in html
    for width in (1200, 520):  # a desktop window and a narrow one
        seen = inspect_page(page, tmp_path / f"shot{width}.png", width=width)
        assert seen["images"] >= 2 and seen["broken"] == []
        assert seen["overlaps"] == [] and seen["wide"] == 0
        assert (tmp_path / f"shot{width}.png").stat().st_size > 10_000
    # the check itself catches a broken figure and a caption drawn over one
    bad = tmp_path / "bad.html"
    head, _, tail = html.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1).rpartition("</figure>")
    bad.write_text(head + "</figure><p style='position:relative;top:-80px'>words over a figure</p>" + tail)
    seen = inspect_page(bad, tmp_path / "bad.png")
    assert len(seen["broken"]) == 1 and seen["overlaps"]


def test_orthoviews_draw_and_the_overlap_check_catches_colliding_texts() -> None:
    import matplotlib.pyplot as plt

    vol = np.zeros((10, 60, 80), np.float32)
    vol[3:7, 20:40, 30:50] = 1.0
    png = orthoviews_png({"a": vol, "b": vol}, (1.0, 0.25, 0.25), contours={"a": (vol > 0).astype(np.int32)})
    assert png.startswith(b"\x89PNG")  # drawn under SUBCELL_CHECK_FIGURES (conftest): no overlapping texts
    # the overlap check fails a figure whose texts collide
    fig, ax = subplots()
    ax.set_title("a long title that runs into", fontsize=20)
    ax.text(0.5, 1.02, "a long title that runs into", transform=ax.transAxes, fontsize=20, ha="center")
    assert overlapping_text(fig)
    plt.close(fig)


def test_physical_aspect_of_the_views() -> None:
    """The XZ view of a 10 µm-deep, 20 µm-wide volume is drawn half as tall as wide, whatever the voxels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import subcell.plotting as plotting

    figs = []
    orig = plotting.png_bytes
    plotting.png_bytes = lambda fig, **kw: figs.append(fig) or b""  # type: ignore[assignment,func-returns-value]
    try:
        orthoviews_png({"v": np.random.default_rng(0).random((10, 40, 80))}, (1.0, 0.5, 0.25))
    finally:
        plotting.png_bytes = orig  # type: ignore[assignment]
    fig = figs[0]
    fig.canvas.draw()
    xy, xz, _ = fig.axes
    bx, bz = xy.get_window_extent(), xz.get_window_extent()
    assert abs(bx.width - bz.width) < 2  # XY and XZ share the x scale
    assert abs(bz.height / bz.width - 10 / 20) < 0.03  # z 10 µm over x 20 µm
    assert abs(bx.height / bx.width - 20 / 20) < 0.03  # y 20 µm over x 20 µm
    plt.close(fig)


def test_report_refuses_what_it_cannot_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("nothing here")
    with pytest.raises(InputFileError, match="nothing to report"):
        write_report(tmp_path / "empty", tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(InputFileError, match="not a folder"):
        write_report(tmp_path / "missing", tmp_path / "r.html")
    assert run(["report", str(tmp_path / "empty"), str(tmp_path / "r.html")]) == 2
    assert "nothing to report" in capsys.readouterr().err
    (tmp_path / "empty" / "fig.png").write_bytes(_tiny_png())
    write_report(tmp_path / "empty", tmp_path / "r.html")
    with pytest.raises(OutputExistsError):
        write_report(tmp_path / "empty", tmp_path / "r.html")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _tiny_png() -> bytes:
    from subcell.plotting import png_bytes

    fig, ax = subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    return png_bytes(fig)


def test_a_segmentation_too_large_to_hold_is_reported_in_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The segmentation section of a stored field reads each volume in blocks: its traced peak stays a fraction of
    one label volume, and its figures and scores are those of the same volumes in memory."""
    import tracemalloc

    from scipy import ndimage as ndi

    from subcell import plotting
    from subcell.io import OmeZarrWriter
    from subcell.metrics import match_instances, pieces
    from subcell.report import figures as figures_module
    from subcell.report.collect import Section, _segmentation_sections

    shape = (64, 256, 256)
    rng = np.random.default_rng(0)
    truth, _ = ndi.label(ndi.gaussian_filter(rng.random(shape, np.float32), (2, 6, 6)) > 0.52)
    truth = truth.astype(np.int32)
    pred = np.where(np.roll(truth, 2, axis=2) > 0, np.roll(truth, 2, axis=2) + 7, 0).astype(np.int32)
    image = (1000 + 300 * (truth > 0) + rng.normal(0, 30, shape)).astype(np.uint16)
    kw = {"shape": (1, 1, *shape), "voxel_size": (0.5, 0.3, 0.3), "chunks": (1, 1, 8, 64, 64)}  # 128 chunks
    with OmeZarrWriter(tmp_path / "f.ome.zarr", dtype="uint16", channel_names=["dna"], **kw) as w:  # type: ignore[arg-type]
        w.write(image[None, None])
        w.add_label("nucleus", truth)
    with OmeZarrWriter(tmp_path / "f_nucleus.ome.zarr", dtype="int32", channel_names=["nucleus"], is_label=True,
                       **kw) as w:  # type: ignore[arg-type]  # fmt: skip
        w.write(pred[None, None])

    def section() -> tuple[list[str], list[tuple[str, bytes]], Any]:
        found: dict[str, Section] = {}
        _segmentation_sections(tmp_path, lambda name: found.setdefault(name, Section(name)), set())
        s = found["Segmentation"]
        return s.lines, s.figures, s.tables[0][1]

    def drawn(fig: Any) -> bytes:  # the drawing's memory is that of its planes and crops, whatever the field
        import matplotlib.pyplot as plt

        plt.close(fig)
        return b"png"

    volume = truth.nbytes
    with monkeypatch.context() as mp:
        mp.setattr(pieces, "PIECE_VOXELS", 1 << 15)  # a block: one chunk
        mp.setattr(plotting, "LIMIT_SAMPLE_VOXELS", 1 << 15)
        mp.setattr(plotting, "png_bytes", drawn)
        mp.setattr(figures_module, "png_bytes", drawn)
        section()  # once first: what it imports is not the field's memory
        tracemalloc.start()
        try:
            lines, _, worst = section()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < volume / 2, f"peak {peak / 2**20:.1f} MB, one label volume {volume / 2**20:.1f} MB"
    m = match_instances(pred, truth)
    assert f"{m.n_pred} objects" in lines[0] and f"F1@0.5 {m.f1(0.5):.3f}" in lines[0] and m.n_true > 10
    assert worst.equals(m.objects().sort_values("iou").head(8))
    _, whole_figures, _ = section()  # the figures of the stored field equal those of the volumes in memory
    from subcell.plotting import orthoviews_png
    from subcell.report.figures import worst_objects_png

    pairs = [(int(r.true_id), int(r.pred_id), float(r.iou)) for r in worst.head(4).itertuples()]
    assert whole_figures[0][1] == orthoviews_png({"nucleus on dna": image.astype(np.float32)}, (0.5, 0.3, 0.3),
                                                 contours={"nucleus on dna": pred})  # fmt: skip
    assert whole_figures[1][1] == worst_objects_png(image, truth, pred, pairs, (0.5, 0.3, 0.3))
    # a segmentation beside an image without true labels: its objects counted a block of chunks at a time
    from subcell.report.collect import _object_count

    stored = io.read(tmp_path / "f_nucleus.ome.zarr").data[0, 0]
    with monkeypatch.context() as mp:
        mp.setattr(pieces, "PIECE_VOXELS", 1 << 15)
        assert _object_count(stored) == len(np.unique(pred)) - 1 == m.n_pred
