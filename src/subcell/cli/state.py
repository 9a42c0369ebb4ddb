"""``subcell state train|predict|evaluate``: cell-state classification from a cell store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.options import ConfigOpt, OverwriteOpt, SetOpt

__all__ = ["state_app"]

state_app = typer.Typer(help="Cell state (mitotic stage, cell-cycle phase) from single cells.", no_args_is_help=True)

ColumnOpt = Annotated[
    Optional[str], typer.Option("--column", help="Table column holding each cell's state (default: state).")  # noqa: UP045
]
ChannelOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--channel", "-c", help="Image channel with intensity features (repeat; default: all)."),
]


def _config(config: Path | None, set_: list[str] | None, **overrides: Any) -> Any:
    from subcell.config import load_validated
    from subcell.state import StateConfig

    return load_validated(StateConfig, config, overrides=overrides, assignments=set_ or ())


def _labelled(store_path: Path, cfg: Any) -> tuple[Any, Any, Any]:
    """Features, states and groups of a store's labelled cells; one-line errors naming the store and column."""
    from subcell.errors import ValueRangeError
    from subcell.io import read_cell_store
    from subcell.state import store_features

    store = read_cell_store(store_path)
    table = store.extracted
    for col in [cfg.column] + ([cfg.groups] if cfg.groups else []):
        if col not in table.columns:
            raise ValueRangeError(f"no column {col!r} in the cell table (columns: {', '.join(map(str, table.columns))})",
                                  path=store_path, field=col)  # fmt: skip
    known = table[cfg.column].notna().to_numpy()
    classes = sorted(table.loc[known, cfg.column].astype(str).unique())
    if len(classes) < 2:
        raise ValueRangeError(f"need at least two classes, the table has {classes}", path=store_path, field=cfg.column)
    if cfg.classifier == "cnn":  # the crops themselves, no features
        from subcell.state.cnn import load_crops

        feats: Any = load_crops(store, table[known], cfg.channels, two_d=cfg.cnn.two_d)
    else:
        feats = store_features(store, channels=cfg.channels, lmax=cfg.sh_lmax)[known].reset_index(drop=True)
    y = table.loc[known, cfg.column].astype(str).to_numpy()
    g = table.loc[known, cfg.groups].to_numpy() if cfg.groups else None
    return feats, y, g


def _prepare(store: Path, output: Path, overwrite: bool, config: Path | None, set_: list[str] | None,
             **overrides: Any) -> tuple[Any, Any, Any, Any]:  # fmt: skip
    """Check the output (before any work), validate the config, read the labelled cells' features."""
    from subcell.io._atomic import check_output

    check_output(output, overwrite=overwrite)
    cfg = _config(config, set_, **overrides)
    return (cfg, *_labelled(store, cfg))


GroupsOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--groups", help="Column grouping the cross-validation folds (field, source, structure)."),
]


@state_app.command("train")
def train(
    store: Annotated[Path, typer.Argument(help="Cell store (subcell cells extract) whose table has the states.")],
    model: Annotated[Path, typer.Argument(help="Output model folder.")],
    column: ColumnOpt = None,
    channel: ChannelOpt = None,
    groups: GroupsOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Train the state classifier on every labelled cell; its cross-validated scores go into the model folder."""
    from subcell.state import cross_validate, fit_state_model, save_state_model

    cfg, feats, y, g = _prepare(store, model, overwrite, config, set_, column=column, channels=channel, groups=groups)
    if cfg.classifier == "cnn":
        import numpy as np

        from subcell.state.cnn import CNNClassifier
        from subcell.train.run import checkpoint_dir

        cv = cross_validate(None, y, cfg, groups=g, crops=feats)
        clf = CNNClassifier(cfg, feats, checkpoint=checkpoint_dir(model), on_message=typer.echo)
        fitted: Any = clf.fit(np.arange(len(y))[:, None], y).model
        fitted.metrics = {k: v for k, v in cv.items() if k != "predictions"}
        fitted.save(model, overwrite=overwrite)
    else:
        fitted = fit_state_model(feats, y, cfg)
        cv = cross_validate(feats, y, cfg, groups=g)
        fitted.metrics = {k: v for k, v in cv.items() if k != "predictions"}
        save_state_model(fitted, model, overwrite=overwrite)
    typer.echo(f"wrote {model}: {len(y)} cells, classes {fitted.classes}; cross-validated macro-F1 "
               f"{cv['macro_f1']:.3f}, accuracy {cv['accuracy']:.3f} (chance {cv['chance_accuracy']:.3f})")  # fmt: skip


@state_app.command("predict")
def predict(
    store: Annotated[Path, typer.Argument(help="Cell store to classify.")],
    output: Annotated[Path, typer.Argument(help="Table (.parquet or .csv): one row per cell, state + probabilities.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Model folder from `subcell state train`.")],
    tracks: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--tracks",
            help="tracks.parquet (or a `subcell track` folder) of the labels the cells came "
            "from: smooth states along each track.",
        ),
    ] = None,
    order: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--order", help="With --tracks: states in biological order, comma-separated (default: sorted)."),
    ] = None,
    cyclic: Annotated[
        bool, typer.Option("--cyclic", help="With --tracks: the last state may return to the first.")
    ] = False,
    switch_cost: Annotated[float, typer.Option("--switch-cost", help="Cost (nats) of a change of state.", min=0)] = 2.0,
    transitions: Annotated[
        Optional[Path], typer.Option("--transitions", help="With --tracks: table of state visits per track.")  # noqa: UP045
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Classify every cell of a store; optionally smooth along tracks (no going back, daughters start over)."""
    import numpy as np

    from subcell.errors import ValueRangeError
    from subcell.io import read_cell_store, read_table, write_table
    from subcell.io._atomic import check_output
    from subcell.state import load_state_model, smooth_tracks, store_features, transitions_table

    check_output(output, overwrite=overwrite)
    if transitions is not None:
        check_output(transitions, overwrite=overwrite)
    m = load_state_model(model)
    st = read_cell_store(store)
    cfg = m.config
    if m.kind == "cnn":
        from subcell.state.cnn import load_crops

        proba = m.predict_proba(load_crops(st, st.extracted, m.channels, two_d=m.two_d))
    else:
        feats = store_features(st, channels=cfg.get("channels"), lmax=int(cfg.get("sh_lmax", 8)))
        proba = m.predict_proba(feats)
    ids = [c for c in ("source", "structure", "frame", "label_id", "crop_index") if c in st.extracted.columns]
    out = st.extracted[ids].copy()
    out["state"] = np.asarray(m.classes)[proba.argmax(axis=1)]
    for i, c in enumerate(m.classes):
        out[f"p_{c}"] = proba[:, i]
    if tracks is not None:
        tab = read_table(tracks / "tracks.parquet" if tracks.is_dir() else tracks, what="tracks table")
        taken = [c for c in ("t", "time_min", "label", "track_id", "parent_track") if c in tab]
        keyed = out.merge(tab[taken], left_on=["frame", "label_id"], right_on=["t", "label"], how="left")
        on_track = keyed["track_id"].notna().to_numpy()
        if not on_track.any():
            raise ValueRangeError("no cell matches a tracked object (frame, label_id) ↔ (t, label): were the cells "
                                  "extracted from the tracked labels?", path=tracks, field="tracks")  # fmt: skip
        sel = keyed[on_track].astype({"track_id": int, "parent_track": int})
        order_list = [s.strip() for s in order.split(",")] if order else sorted(m.classes)
        smoothed = smooth_tracks(sel, proba[on_track], m.classes, order=order_list, cyclic=cyclic,
                                 switch_cost=switch_cost)  # fmt: skip
        out["track_id"] = keyed["track_id"].to_numpy()
        out["state_smoothed"] = None
        out.loc[on_track, "state_smoothed"] = smoothed
        if transitions is not None:
            visits = transitions_table(sel.assign(state=smoothed))  # (minutes from the tracks' time_min)
            write_table(visits, transitions, overwrite=overwrite)
            typer.echo(
                f"wrote {transitions}: {len(visits)} visits to a state, {int(visits['complete'].sum())} "
                "complete (entry and exit seen: their durations are the states')"
            )
    write_table(out, output, overwrite=overwrite)
    counts = out["state"].value_counts().to_dict()
    typer.echo(f"wrote {output}: {len(out)} cells; {counts}")


@state_app.command("evaluate")
def evaluate(
    store: Annotated[Path, typer.Argument(help="Cell store whose table has the states.")],
    output: Annotated[Path, typer.Argument(help="Output folder: metrics.json, confusion CSV + PNG per classifier.")],
    column: ColumnOpt = None,
    channel: ChannelOpt = None,
    groups: GroupsOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    classifiers: Annotated[
        str, typer.Option("--classifiers", help="Comma-separated: logistic, gradient_boosting, cnn (minutes on a CPU).")
    ] = "logistic,gradient_boosting",
    overwrite: OverwriteOpt = False,
) -> None:
    """Cross-validate classifiers side by side (same folds): macro-F1, per-class recall, confusion."""
    import json

    import pandas as pd

    from subcell.errors import ValueRangeError
    from subcell.io import write_bundle
    from subcell.state import confusion_png, cross_validate

    names = [c.strip() for c in classifiers.split(",") if c.strip()]
    bad = [c for c in names if c not in ("logistic", "gradient_boosting", "cnn")]
    if bad or not names:
        raise ValueRangeError(f"unknown classifiers {bad}; choose from logistic, gradient_boosting, cnn",
                              field="classifiers")  # fmt: skip
    cfg, _, y, g = _prepare(store, output, overwrite, config, set_, column=column, channels=channel, groups=groups)
    inputs = {}
    for kind in ("features", "cnn"):
        wanted = [c for c in names if (c == "cnn") == (kind == "cnn")]
        if wanted:
            inputs[kind] = _labelled(store, cfg.model_copy(update={"classifier": wanted[0]}))[0]
    results, files, tables = {}, {}, {}
    for clf in names:
        x = inputs["cnn" if clf == "cnn" else "features"]
        r = cross_validate(None if clf == "cnn" else x, y, cfg.model_copy(update={"classifier": clf}), groups=g,
                           crops=x if clf == "cnn" else None)  # fmt: skip
        results[clf] = {k: v for k, v in r.items() if k != "predictions"}
        tables[f"confusion_{clf}.csv"] = pd.DataFrame(r["confusion"], index=r["classes"], columns=r["classes"]
                                                      ).rename_axis("true").reset_index()  # fmt: skip
        files[f"confusion_{clf}.png"] = confusion_png(r)
        typer.echo(f"{clf}: macro-F1 {r['macro_f1']:.3f}, accuracy {r['accuracy']:.3f} (majority-class chance "
                   f"{r['chance_accuracy']:.3f}, uniform {r['uniform_chance']:.3f}); {r['folds']} folds"
                   + (f" grouped by {cfg.groups}" if cfg.groups else ""))  # fmt: skip
    files["metrics.json"] = json.dumps(results, indent=2).encode()
    write_bundle(output, tables=tables, files=files, overwrite=overwrite)
    typer.echo(f"wrote {output}")
