"""Colony geometry in micrometres: where cells and nuclei are, before anything is rasterized.

Cells are the Voronoi regions of seeds in the substrate plane (neighbours share walls), capped at a maximum
radius at the colony edge, with a domed apical surface. Everything here is analytic and deterministic for a
seed, so any block of a large field can be rendered independently and agree with its neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from subcell.synth.config import MITOTIC_STAGES, SynthConfig

__all__ = ["MITOTIC_STAGES", "Cell", "Colony", "make_colony", "step_colony"]

SUBSTRATE_Z_UM = 1.0  # the coverslip surface lies 1 µm above the first plane


@dataclass(frozen=True)
class Cell:
    """One cell: Voronoi seed, dome, nucleus ellipsoid, mitotic state (lengths in µm)."""

    id: int
    yx: tuple[float, float]
    radius: float  # nominal lateral radius (half the distance to the nearest neighbour, slightly enlarged)
    reach: float  # the cell never extends further than this from its seed (bounds edge cells of the colony)
    height: float
    nucleus_center: tuple[float, float, float]
    nucleus_radii: tuple[float, float, float]  # (rz, ry, rx) before rotation
    nucleus_angle: float  # rotation of the nucleus ellipse in the yx plane (radians)
    mitotic: bool = False
    plate_angle: float = 0.0  # metaphase plate normal in the yx plane (mitotic cells): the spindle axis
    parent: int = 0
    stage: str = "interphase"  # a mitotic cell's stage (MITOTIC_STAGES); cells mitotic in frame 0: metaphase
    stage_age: int = 0  # frames already spent in the stage

    def rng(self, seed: int, frame: int = 0) -> np.random.Generator:
        """The cell's own random stream: the same wherever and in whichever block it is rendered."""
        return np.random.default_rng([seed, self.id, frame])


@dataclass
class Colony:
    """All cells of a field plus the geometry lookups shared by the renderer."""

    cells: list[Cell]
    config: SynthConfig
    substrate_z: float = SUBSTRATE_Z_UM
    frame: int = 0
    _tree: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from scipy.spatial import cKDTree

        seeds = np.array([c.yx for c in self.cells], dtype=np.float64).reshape(-1, 2)
        self._tree = cKDTree(seeds) if len(seeds) else None
        self.radius_cap = np.array([c.reach for c in self.cells])
        self.heights = np.array([c.height for c in self.cells])
        # per-cell arrays for the vectorised lookups (random walks call them tens of thousands of times per field)
        self._seeds = seeds
        self.mitotic = np.array([c.mitotic for c in self.cells], dtype=bool)
        self.nucleus_centres = np.array([c.nucleus_center for c in self.cells], dtype=np.float64).reshape(-1, 3)
        self.nucleus_radii = np.array([c.nucleus_radii for c in self.cells], dtype=np.float64).reshape(-1, 3)
        # (cos, sin) of each nucleus's angle, computed per cell with math as for one ellipsoid (same rounding)
        self.nucleus_trig = np.array([(math.cos(c.nucleus_angle), math.sin(c.nucleus_angle)) for c in self.cells],
                                     dtype=np.float64).reshape(-1, 2)  # fmt: skip
        # a smooth warp of the plane (a few random plane waves, fixed per seed): Voronoi walls become curved and
        # irregular like real cell outlines, and every lookup (labels, masks, organelle placement) shares it
        wrng = np.random.default_rng([self.config.seed, 0x3A])
        self._warp_k = wrng.uniform(-1, 1, (2, 4, 2)) * (2 * math.pi / 6.0)  # wavelengths of ~4-12 µm
        self._warp_phase = wrng.uniform(0, 2 * math.pi, (2, 4))
        self._warp_amp = self.config.cells.wall_irregularity_um / 2.0

    def warp(self, yx: np.ndarray) -> np.ndarray:
        """Where the Voronoi geometry looks up a point (µm): ``yx`` displaced by the field's smooth warp."""
        if self._warp_amp == 0:
            return yx
        arg = np.einsum("nd,akd->nak", yx, self._warp_k) + self._warp_phase[None]
        return yx + self._warp_amp * np.sin(arg).sum(axis=2)

    def owner(self, yx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the owning cell (-1 outside every cell) and the distance to its wall (µm) for (N, 2) points."""
        n = len(self.cells)
        if n == 0:
            return np.full(len(yx), -1), np.zeros(len(yx))
        k = 2 if n > 1 else 1
        yx = self.warp(yx)
        dist, idx = self._tree.query(yx, k=k)
        if k == 1:
            dist = np.stack([dist, np.full_like(dist, np.inf)], axis=1)
            idx = np.stack([idx, idx], axis=1)
        d1, d2 = dist[:, 0], dist[:, 1]
        i1 = idx[:, 0]
        seeds = self._tree.data
        # distance to the Voronoi wall (perpendicular bisector) between the nearest and second-nearest seeds
        sep = np.linalg.norm(seeds[idx[:, 1]] - seeds[i1], axis=1) if k == 2 else np.full(len(yx), np.inf)
        with np.errstate(invalid="ignore", divide="ignore"):
            wall = np.where(np.isfinite(sep) & (sep > 0), (d2**2 - d1**2) / (2 * sep), np.inf)
        cap = self.radius_cap[i1]
        wall = np.minimum(wall, cap - d1)
        inside = d1 <= cap
        return np.where(inside, i1, -1), wall

    def owner_index(self, yx: np.ndarray) -> np.ndarray:
        """Index of the owning cell (-1 outside every cell) for (N, 2) points; cheaper than :meth:`owner`."""
        if not self.cells:
            return np.full(len(yx), -1)
        dist, idx = self._tree.query(self.warp(yx), k=1)
        return np.where(dist <= self.radius_cap[idx], idx, -1)

    def apex(self, index: np.ndarray, yx: np.ndarray) -> np.ndarray:
        """Height (µm above the substrate) of the apical surface over points owned by cell ``index``."""
        out = np.zeros(len(yx))
        ok = index >= 0
        if not ok.any():
            return out
        own = index[ok]
        r = self.radius_cap[own]
        rho = np.linalg.norm(yx[ok] - self._seeds[own], axis=1) / r
        dome = np.sqrt(np.clip(1 - rho**2, 0, 1))
        mit = self.mitotic[own]
        # interphase: one continuous apical surface over the packed cells (heights blended between neighbours, as
        # in an epithelium), dipping slightly at the junctions; mitotic: rounded (a sphere of the cell radius)
        k = min(6, len(self.cells))
        dist, nb = self._tree.query(yx[ok], k=k)
        dist, nb = dist.reshape(len(r), k), nb.reshape(len(r), k)
        w = np.exp(-0.5 * (dist / (0.6 * self.radius_cap[nb])) ** 2) + 1e-12
        smooth = (w * self.heights[nb]).sum(axis=1) / w.sum(axis=1)
        out[ok] = np.where(mit, self.heights[index[ok]] * dome, smooth * (0.8 + 0.2 * dome))
        return out


def _nucleus_for(
    yx: tuple[float, float], radius: float, height: float, config: SynthConfig, rng: np.random.Generator
) -> tuple[tuple[float, float, float], tuple[float, float, float], float]:
    """An ellipsoidal nucleus filling ``nucleus_fraction`` of the cell, kept clear of its walls and apex."""
    cell_volume = math.pi * (1.1 * radius) ** 2 * height * 0.9
    v = config.cells.nucleus_fraction * cell_volume
    r_lat_max = 0.8 * radius  # radius ≈ half the mean distance to the neighbours
    rz = min(0.36 * height, (3 * v / (4 * math.pi)) ** (1 / 3))
    r_lat = math.sqrt(3 * v / (4 * math.pi * rz))
    r_lat = min(r_lat, r_lat_max)
    elong = rng.uniform(1.0, 1.3)
    ry, rx = r_lat * math.sqrt(elong), min(r_lat / math.sqrt(elong), r_lat_max)
    ry = min(ry, r_lat_max)
    cz = SUBSTRATE_Z_UM + 0.3 + rz
    return (cz, yx[0], yx[1]), (rz, ry, rx), rng.uniform(0, math.pi)


def _sample_seeds(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Dart throwing inside the colony with a minimum spacing of the smallest diameter × 0.8."""
    lo, hi = (np.asarray(b, dtype=np.float64) for b in config.colony_bounds_um)
    ey, ex = hi - lo
    area = ey * ex * config.cells.colony_fill
    d_min, d_max = config.cells.diameter_um
    d_mean = 0.5 * (d_min + d_max)
    n = config.n_cells or max(1, int(area / (math.pi * (d_mean / 2) ** 2)))
    centre = (lo + hi) / 2
    # the colony is a rectangle covering colony_fill of the field (widened by cells.beyond_field_um)
    half = np.array([ey, ex]) / 2 * math.sqrt(config.cells.colony_fill)
    min_sep = 0.8 * d_min
    pts: list[np.ndarray] = []
    tries = 0
    while len(pts) < n and tries < 200:
        tries += 1
        cand = centre + rng.uniform(-1, 1, (max(64, 4 * n), 2)) * half
        for p in cand:
            if len(pts) >= n:
                break
            if not pts or np.min(np.linalg.norm(np.asarray(pts) - p, axis=1)) >= min_sep:
                pts.append(p)
    return np.asarray(pts).reshape(-1, 2)


def make_colony(config: SynthConfig) -> Colony:
    """Place the cells of one field (frame 0)."""
    rng = np.random.default_rng([config.seed, 0xC0])
    seeds = _sample_seeds(config, rng)
    return Colony(_cells_from_seeds(seeds, list(range(1, len(seeds) + 1)), config, rng), config)


def _cells_from_seeds(
    seeds: np.ndarray,
    ids: list[int],
    config: SynthConfig,
    rng: np.random.Generator,
    *,
    mitotic: set[int] | None = None,
    parents: dict[int, int] | None = None,
    heights: dict[int, float] | None = None,
    stages: dict[int, tuple[str, int, float]] | None = None,
) -> list[Cell]:
    from scipy.spatial import cKDTree

    d_min, d_max = config.cells.diameter_um
    h_min, h_max = config.cells.height_um
    if len(seeds) > 1:  # typical distance to the neighbours that share a wall
        k = min(len(seeds), 5)
        nn = cKDTree(seeds).query(seeds, k=k)[0][:, 1:].mean(axis=1)
    else:
        nn = np.array([d_max])
    cells = []
    for s, cid, d_nn in zip(seeds, ids, nn, strict=True):
        radius = float(np.clip(d_nn / 2, d_min / 2, d_max / 2))
        is_mitotic = bool(rng.random() < config.cells.mitotic_fraction) if mitotic is None else cid in mitotic
        height = heights[cid] if heights and cid in heights else float(rng.uniform(h_min, h_max))
        if is_mitotic:  # rounded up: as tall as wide (within the stack's budget)
            height = float(min(max(height, 1.6 * radius), h_max * 1.3))
        n_c, n_r, n_a = _nucleus_for((float(s[0]), float(s[1])), radius, height, config, rng)
        cells.append(
            Cell(
                id=int(cid),
                yx=(float(s[0]), float(s[1])),
                radius=radius,
                reach=max(radius * 1.35, d_max / 2 * 1.1),
                height=float(height),
                nucleus_center=n_c,
                nucleus_radii=n_r,
                nucleus_angle=n_a,
                mitotic=is_mitotic,
                plate_angle=float(rng.uniform(0, math.pi)),
                parent=(parents or {}).get(int(cid), 0),
                stage="metaphase" if is_mitotic else "interphase",
            )
        )
    if stages:  # a dividing cell keeps its stage and spindle axis from frame to frame
        cells = [replace(c, stage=stages[c.id][0], stage_age=stages[c.id][1], plate_angle=stages[c.id][2])
                 if c.id in stages else c for c in cells]  # fmt: skip
    return cells


def step_colony(
    colony: Colony, rng: np.random.Generator, next_id: int
) -> tuple[Colony, int, list[tuple[int, int, int]]]:
    """Advance one frame: drift, shape change, mitosis stage by stage, division into two daughters.

    A cell enters mitosis (prophase) with ``time.division_probability`` per frame and spends ``time.stage_frames``
    frames in each stage; after anaphase it divides (the frame where two chromatin masses are first apart, as the
    Cell Tracking Challenge marks divisions), its daughters placed along its spindle axis, and the daughters spend
    telophase (compact chromatin, rounded) before interphase.
    Returns the new colony, the next free id, and the divisions as ``(parent, daughter_a, daughter_b)``.
    """
    cfg = colony.config
    t = cfg.time
    lo, hi = (np.asarray(b, dtype=np.float64) for b in cfg.colony_bounds_um)
    spacing = 0.8 * cfg.cells.diameter_um[0]  # the closest two cells' seeds come (frame 0 places them so)
    room = _nearest_neighbour(colony._seeds) >= spacing  # contact inhibition: a compressed cell does not divide
    seeds, ids, mitotic, parents, heights = [], [], set(), {}, {}
    stages: dict[int, tuple[str, int, float]] = {}
    divisions = []
    for c, has_room in zip(colony.cells, room, strict=True):
        leaving = False
        if c.mitotic:
            stage, age = c.stage, c.stage_age + 1
            if age >= t.stage_frames.get(stage, 1):
                if stage == "anaphase":  # the chromatin has separated: two daughters along the spindle
                    axis = c.plate_angle
                    off = 0.45 * c.radius * np.array([math.sin(axis), math.cos(axis)])
                    a, b = next_id, next_id + 1
                    next_id += 2
                    for child, sign in ((a, 1), (b, -1)):
                        seeds.append(np.clip(np.array(c.yx) + sign * off, lo, hi))
                        ids.append(child)
                        parents[child] = c.id
                        mitotic.add(child)  # daughters begin in telophase: compact chromatin, still rounded
                        stages[child] = ("telophase", 0, axis)
                    divisions.append((c.id, a, b))
                    continue
                leaving = stage == "telophase"
                if not leaving:
                    stage, age = MITOTIC_STAGES[MITOTIC_STAGES.index(stage) + 1], 0
            if not leaving:
                stages[c.id] = (stage, age, c.plate_angle)
        step = rng.normal(0, t.speed_um_per_frame, 2)
        seeds.append(np.clip(np.array(c.yx) + step, lo, hi))
        ids.append(c.id)
        heights[c.id] = float(np.clip(c.height * rng.uniform(0.95, 1.05), *cfg.cells.height_um))
        if leaving:  # telophase is over: back to interphase, flattening to a new height
            heights.pop(c.id)
        elif c.mitotic or (rng.random() < t.division_probability and has_room):
            mitotic.add(c.id)
            heights.pop(c.id)
            if c.id not in stages:
                stages[c.id] = (MITOTIC_STAGES[0], 0, float(rng.uniform(0, math.pi)))
    cells = _cells_from_seeds(
        _push_apart(np.asarray(seeds, dtype=np.float64).reshape(-1, 2), spacing, (lo, hi), rng),
        ids,
        cfg,
        rng,
        mitotic=mitotic,
        parents=parents,
        heights=heights,
        stages=stages,
    )
    # daughters keep their parent's id bookkeeping; the rest keep their own
    cells = [replace(c, parent=parents.get(c.id, 0)) for c in cells]
    return Colony(cells, cfg, frame=colony.frame + 1), next_id, divisions


def _nearest_neighbour(yx: np.ndarray) -> np.ndarray:
    """Distance (µm) from each seed to its nearest other seed (infinite for a lone cell)."""
    from scipy.spatial import cKDTree

    if len(yx) < 2:
        return np.full(len(yx), np.inf)
    return cKDTree(yx).query(yx, k=2)[0][:, 1]


def _push_apart(
    yx: np.ndarray,
    spacing: float,
    bounds: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    iterations: int = 4,
) -> np.ndarray:
    """Cells push each other apart: each pair of seeds closer than ``spacing`` moves apart along the line joining
    them, closing half the overlap per iteration (daughters separate over a few frames, along their spindle axis),
    within ``bounds`` (the colony's lowest and highest (y, x), µm). Without it independent random walks and divisions piled cells onto each other: after 50
    frames at the default division rate the median distance between neighbours was 2.4 µm for 10–20 µm cells.
    A few Jacobi iterations of a pairwise spring (no library simulates cell packing at this level)."""
    from scipy.spatial import cKDTree

    yx = yx.copy()
    for _ in range(iterations):
        pairs = cKDTree(yx).query_pairs(spacing, output_type="ndarray")
        if not len(pairs):
            break
        d = yx[pairs[:, 1]] - yx[pairs[:, 0]]
        dist = np.linalg.norm(d, axis=1)
        same = dist < 1e-6  # two seeds on one point: a random direction
        if same.any():
            angle = rng.uniform(0, 2 * math.pi, int(same.sum()))
            d[same] = np.stack([np.sin(angle), np.cos(angle)], axis=1)
            dist[same] = 1.0
        push = (0.25 * (spacing - np.where(same, 0.0, dist)) / dist)[:, None] * d
        np.add.at(yx, pairs[:, 0], -push)
        np.add.at(yx, pairs[:, 1], push)
        np.clip(yx, bounds[0], bounds[1], out=yx)
    return yx
