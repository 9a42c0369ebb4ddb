"""Fixtures of the integrated-cell tests (helpers live in toy_cells.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from toy_cells import write_toy_store

pytest.importorskip("torch")


@pytest.fixture(scope="session")
def toy_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_store(tmp_path_factory.mktemp("toy") / "cells.zarr", 40)
