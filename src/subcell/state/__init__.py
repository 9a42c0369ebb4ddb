"""Cell state: classify cells (mitotic stage, cell-cycle phase) from their shape and intensities, and smooth
the states along tracks with the order biology allows."""

from __future__ import annotations

from subcell.state.config import StateConfig
from subcell.state.evaluate import confusion_png, cross_validate
from subcell.state.features import cell_features, store_features
from subcell.state.model import StateModel, fit_state_model, load_state_model, save_state_model
from subcell.state.smooth import ordered_transitions, smooth_tracks, transitions_table, viterbi

__all__ = [
    "StateConfig",
    "StateModel",
    "cell_features",
    "confusion_png",
    "cross_validate",
    "fit_state_model",
    "load_state_model",
    "ordered_transitions",
    "save_state_model",
    "smooth_tracks",
    "store_features",
    "transitions_table",
    "viterbi",
]
