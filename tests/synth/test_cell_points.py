"""The structure points of all cells drawn in lockstep equal each cell drawn alone (the batching is for speed)."""

from __future__ import annotations

import numpy as np

from subcell.synth.cell_points import cell_points, in_cytoplasm
from subcell.synth.colony import make_colony
from subcell.synth.config import SynthConfig


def test_cells_drawn_together_equal_cells_drawn_alone() -> None:
    cfg = SynthConfig(shape=(12, 96, 128), voxel_size=(0.5, 0.3, 0.3), seed=1, cells={"mitotic_fraction": 0.4})
    colony = make_colony(cfg)
    indices = list(range(len(colony.cells)))
    assert len(indices) >= 4 and any(c.mitotic for c in colony.cells)
    together = cell_points(colony, indices, seed=1)
    for i in indices:
        alone = cell_points(colony, [i], seed=1)[i]
        assert together[i].keys() == alone.keys()
        for name, paths in alone.items():
            assert len(together[i][name]) == len(paths), (i, name)
            for a, b in zip(together[i][name], paths, strict=True):
                np.testing.assert_array_equal(a, b)
    # every walk stays in its own cell's cytoplasm, and the walks really are walks (several steps each)
    for i in indices:
        for name in ("mitochondria", "er"):
            points = np.concatenate(together[i][name])
            assert in_cytoplasm(colony, points, np.full(len(points), i)).all(), (i, name)
        assert max(len(p) for p in together[i]["microtubules"]) > 10
