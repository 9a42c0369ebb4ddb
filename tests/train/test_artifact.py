"""Model folders: what is saved loads again, and anyone the umask lets read a file can read the weights."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import torch

from subcell.train.artifact import load_artifact, save_artifact


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_saved_weights_get_the_permissions_of_any_other_written_file(tmp_path: Path) -> None:
    # safetensors creates its file owner-only (0600) whatever the umask: a lab sharing a model folder on a
    # cluster could read model.json but not the weights
    old = os.umask(0o022)
    try:
        folder = save_artifact(tmp_path / "m", {"w": torch.arange(6.0).reshape(2, 3)}, {"kind": "toy"})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert _mode(folder / "weights.safetensors") == _mode(folder / "model.json") == _mode(plain) == 0o644
    tensors, meta = load_artifact(folder, kind="toy")
    assert torch.equal(tensors["w"], torch.arange(6.0).reshape(2, 3)) and meta["kind"] == "toy"
