"""The block engine: one way to process volumes larger than memory.

- :class:`BlockGrid` cuts a volume into blocks: the region each block writes (its core), the region it reads
  (core + halo, clipped to the volume, optionally aligned) and where the core sits in what was read.
- :func:`map_blocks` runs a per-block function over a grid, serially or through an executor (the seam where
  a Dask client plugs in); per-block results (small summaries) come back in grid order.
- :func:`label_blocks` labels the connected objects of a volume block by block;
  :mod:`subcell.blocks.components` joins objects across block faces (one union-find, built on
  ``scipy.sparse.csgraph``) and orders ids canonically, so labels computed block-wise equal those computed whole.
"""

from subcell.blocks.components import canonical_order, components_of_pairs, face_pairs
from subcell.blocks.engine import map_blocks
from subcell.blocks.grid import Block, BlockGrid
from subcell.blocks.label import Objects, label_blocks

__all__ = [
    "Block",
    "BlockGrid",
    "Objects",
    "canonical_order",
    "components_of_pairs",
    "face_pairs",
    "label_blocks",
    "map_blocks",
]
