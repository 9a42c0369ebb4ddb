"""The demo's time-lapse step: segment every frame, track, classify cell states along the tracks, and score all of it
against the synthetic truth (tracks, divisions, per-frame mitotic stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["dynamics_step"]

_SHAPE = (8, 192, 192)
_VOXEL = (0.6, 0.3, 0.3)
# short mitotic stages so that a 10-frame time-lapse shows several; the stage order for the track decoder
# (daughters start in telophase, as the generator records them)
_TIMELAPSE: dict[str, Any] = {
    "time.frames": 10,
    "time.division_probability": 0.05,
    "time.stage_frames": {"prophase": 2, "metaphase": 1, "anaphase": 1, "telophase": 1},
    # the step reads DNA and membrane only: no filament walks for mitochondria, microtubules and ER (most of a
    # frame's rendering time)
    "rules.mito_per_um3": 0.0,
    "rules.microtubule_count": (0, 0),
    "rules.er_tubules_per_um3": 0.0,
}
_ORDER = ["telophase", "interphase", "prophase", "metaphase", "anaphase"]


def _extract(image: Any, nuclei: np.ndarray, store: Path, source: str) -> Any:
    """The nuclei of every frame into a store (crops of the DNA and membrane channels around each nucleus, the
    nucleus as the object's mask: the stage is read from the chromatin); frame and label_id per crop."""
    from subcell import io
    from subcell.cells import ExtractConfig, extract_to_store

    cfg = ExtractConfig(channels=["dna", "membrane"], box=(24, 48, 48), voxel_um=0.5, border="flag",
                        oversize="rescale", missing_nucleus="skip")  # fmt: skip
    extract_to_store([(image, nuclei, nuclei, {"source": source})], store, cfg, overwrite=True)
    return io.read_cell_store(store)


def _truth_stage(field: Any, table: Any) -> np.ndarray:
    """The generator's stage of each extracted (frame, label_id) row labelled with truth ids."""
    truth = field.cells.rename(columns={"cell_id": "label_id"})[["frame", "label_id", "stage"]]
    return table.merge(truth, on=["frame", "label_id"], how="left").stage.fillna("interphase").astype(str).to_numpy()


def _matched_truth(seg: np.ndarray, truth: np.ndarray) -> dict[tuple[int, int], int]:
    """(frame, segmented id) → the true id it is paired with (the project's IoU matching, IoU >= 0.5)."""
    from subcell.metrics import match_instances

    return {(t, int(p)): int(g) for t in range(seg.shape[0])
            for g, p, iou in match_instances(seg[t], truth[t], thresholds=(0.5,)).pairs if p and iou >= 0.5}  # fmt: skip


def _state_model(seed: int, work: Path) -> Any:
    """A state classifier trained on another synthetic time-lapse's truth nuclei (features + gradient boosting)."""
    from subcell import synth
    from subcell.state import StateConfig, fit_state_model, store_features

    train = synth.synth_field(shape=_SHAPE, voxel_size=_VOXEL, seed=seed + 200, **_TIMELAPSE)
    st = _extract(train.image, train.labels["nucleus"], work / "state_train.zarr", "train")
    return fit_state_model(store_features(st), _truth_stage(train, st.extracted), StateConfig())


def dynamics_step(out: Path, *, seed: int) -> str:
    """A short synthetic time-lapse with divisions: segment the nuclei of every frame, track them, classify each tracked cell's mitotic stage with a model trained on another synthetic time-lapse,
    smooth the stages along the tracks, score tracks, divisions and stages against the exact truth, and draw the
    lineages coloured by stage."""
    from subcell import io, synth
    from subcell.segment import load_workflow, segment_image
    from subcell.state import smooth_tracks, store_features, transitions_table
    from subcell.track import TrackConfig, track_timelapse, tracks_from_lineage
    from subcell.track.evaluate import evaluate_tracks
    from subcell.track.figures import lineage_png

    field = synth.synth_field(shape=_SHAPE, voxel_size=_VOXEL, seed=seed + 100, **_TIMELAPSE)
    path = synth.write_field(field, out / "timelapse.ome.zarr", overwrite=True)
    vs, dt = field.image.voxel_size.as_tuple(), float(field.image.time_interval or 300.0)
    # a dense colony: nuclei pressed together are split along the dim band of stain between them too
    nuclei = segment_image(field.image.channel("dna"), load_workflow("nucleus_dense")).numpy()[:, 0]
    result = track_timelapse(nuclei, voxel_size=vs, time_interval_s=dt, config=TrackConfig())
    parents = dict(zip(field.lineage.track_id, field.lineage.parent_id, strict=True))
    truth = tracks_from_lineage(field.labels["nucleus"], parents, voxel_size=vs, time_interval_s=dt)
    score, _ = evaluate_tracks(result, truth)

    # states: the tracked cells (segmented, not truth) classified frame by frame, then decoded along each track
    model = _state_model(seed, out)
    st = _extract(field.image, nuclei, out / "timelapse_cells.zarr", path.name)
    proba = model.predict_proba(store_features(st))
    table = st.extracted[["frame", "label_id"]].merge(
        result.table[["t", "label", "track_id", "parent_track"]], left_on=["frame", "label_id"],
        right_on=["t", "label"], how="left")  # fmt: skip
    on = table.track_id.notna().to_numpy()
    sel = table[on].astype({"track_id": int, "parent_track": int}).reset_index(drop=True)
    order = [c for c in _ORDER if c in model.classes]
    raw = np.asarray(model.classes)[proba[on].argmax(axis=1)]
    smoothed = smooth_tracks(sel, proba[on], model.classes, order=order, cyclic=True)
    match = _matched_truth(nuclei, field.labels["nucleus"])
    stage = {(int(r.frame), int(r.cell_id)): str(r.stage) for r in field.cells.itertuples()}
    true = np.array([stage.get((int(t), match.get((int(t), int(i)), -1)), "") for t, i in zip(sel.t, sel.label,
                                                                                             strict=True)])  # fmt: skip
    known = true != ""
    acc_raw, acc_smooth = float(np.mean(raw[known] == true[known])), float(np.mean(smoothed[known] == true[known]))
    states = sel[["t", "label"]].assign(state=smoothed, state_raw=raw, state_true=true)
    tab = result.table.merge(states, on=["t", "label"], how="left")
    io.write_table(tab, out / "tracks.parquet", overwrite=True)
    io.write_table(transitions_table(sel.assign(state=smoothed), time_interval_s=dt), out / "transitions.csv",
                   overwrite=True)  # fmt: skip
    (out / "lineage.png").write_bytes(lineage_png(tab, result.lineage, time_interval_s=dt, state="state"))
    divisions = int((result.lineage.parent_track > 0).sum() // 2)
    mitotic = known & (true != "interphase")
    return (
        f"[8/8] time-lapse {path.name}: {field.image.shape[0]} frames segmented and tracked: "
        f"{len(result.lineage)} tracks, {divisions} divisions; vs truth TRA {score['TRA']:.3f}, "
        f"division F1 {score['division_f1']:.2f} ({score['true_divisions']} true); states of {int(known.sum())} "
        f"tracked cells ({int(mitotic.sum())} mitotic) vs truth: {acc_raw:.2f} per frame, {acc_smooth:.2f} smoothed "
        f"along tracks → {out / 'lineage.png'}"
    )
