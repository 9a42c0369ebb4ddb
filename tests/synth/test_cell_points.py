"""The structure points of all cells drawn in lockstep equal each cell drawn alone (the batching is for speed),
and the walks lie where the rendered labels say the cell's cytoplasm is."""

from __future__ import annotations

import numpy as np

from subcell.synth import synth_field
from subcell.synth.cell_points import cell_points
from subcell.synth.colony import make_colony
from subcell.synth.config import SynthConfig


def test_cells_drawn_together_equal_cells_drawn_alone_and_walk_in_their_cytoplasm() -> None:
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
    # independent of the cytoplasm test the walks use: the rasterized labels of the same field (voxel centres, so
    # a point near a wall may fall in the neighbour's voxel)
    field = synth_field(cfg)
    cell, nucleus = field.labels["cell"][0], field.labels["nucleus"][0]
    for i, c in enumerate(colony.cells):
        points = np.concatenate(together[i]["mitochondria"] + together[i]["er"])
        assert len(points) > 1000 and max(len(p) for p in together[i]["microtubules"]) > 10
        idx = np.floor(points / np.asarray(cfg.voxel_size)).astype(int)
        idx = idx[np.all((idx >= 0) & (idx < cell.shape), axis=1)]
        assert (cell[tuple(idx.T)] == c.id).mean() > 0.95, c.id
        if not c.mitotic:
            assert (nucleus[tuple(idx.T)] == c.id).mean() < 0.02, c.id
