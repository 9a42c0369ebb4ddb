"""Point sets (µm, field coordinates) of each cell's filamentous and punctate structures: chromatin foci,
mitochondria, microtubules, Golgi cisternae and ER tubules, drawn as persistent random walks and by rejection
sampling inside the cytoplasm.

Every cell draws from its own random stream, so cells are independent. A walk step asks "which of these points
are in my cytoplasm?", a test that is cheap per point (two KD-tree queries) but costly per call, and a cell asks it
several hundred times. So each cell's drawing is written as a generator that *yields* the points it needs tested
and receives the answer, and :func:`cell_points` advances all cells in lockstep, answering one step of every cell
with one vectorised test. Each cell still draws its stream in exactly the order of a cell-by-cell run, and each
point's answer does not depend on the others in the batch, so the points are bit-identical to that run (a field
took up to 2.4× longer when every cell asked alone: benchmarks/synth/results_walks.md). Python generators give
this interleaving without threads or callbacks; no library offers it for our own geometry.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np

from subcell.synth.colony import Cell, Colony

__all__ = ["STEP_UM", "cell_points", "ellipsoid_rho", "in_cytoplasm"]

STEP_UM = 0.1  # sampling of filaments and tubules

# a cell's drawing: yields points to test, receives their in-cytoplasm mask, returns its result
_Drawing = Generator[np.ndarray, np.ndarray, object]


def ellipsoid_rho(
    z: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    centre: tuple[float, float, float],
    radii: tuple[float, float, float],
    angle: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Ellipsoid radial coordinate ρ (1 on the surface) and Euclidean distance to the centre."""
    dz, dy, dx = z - centre[0], y - centre[1], x - centre[2]
    return _rho(dz, dy, dx, radii, math.cos(angle), math.sin(angle)), np.sqrt(dz**2 + dy**2 + dx**2)


def _rho(dz: np.ndarray, dy: np.ndarray, dx: np.ndarray, radii: Any, ca: Any, sa: Any) -> np.ndarray:
    """ρ of offsets from the centre; radii and (cos, sin) of the angle are scalars or one per point."""
    u = ca * dy + sa * dx
    v = -sa * dy + ca * dx
    return np.sqrt((dz / radii[0]) ** 2 + (u / radii[1]) ** 2 + (v / radii[2]) ** 2)


def _nucleus_rho(cell: Cell, p: np.ndarray) -> np.ndarray:
    return ellipsoid_rho(p[:, 0], p[:, 1], p[:, 2], cell.nucleus_center, cell.nucleus_radii, cell.nucleus_angle)[0]


def in_cytoplasm(colony: Colony, p: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Whether each point ``p`` (N, 3 µm) lies in the cytoplasm of cell ``which`` (N cell indices): inside the
    cell (its Voronoi region, above the substrate, below the apical surface) and, unless the cell is mitotic,
    outside its nucleus (ρ > 1.08)."""
    owner = colony.owner_index(p[:, 1:])
    mine = owner == which
    apex = np.zeros(len(p))
    if mine.any():
        apex[mine] = colony.apex(owner[mine], p[mine, 1:])
    zr = p[:, 0] - colony.substrate_z
    inside = mine & (zr >= 0) & (zr <= apex)
    test = inside & ~colony.mitotic[which]
    if test.any():
        w = which[test]
        q = p[test] - colony.nucleus_centres[w]
        trig = colony.nucleus_trig[w]
        rho = _rho(q[:, 0], q[:, 1], q[:, 2], colony.nucleus_radii[w].T, trig[:, 0], trig[:, 1])
        inside[test] = rho > 1.08
    return inside


def cell_points(colony: Colony, indices: Sequence[int], seed: int) -> dict[int, dict[str, list[np.ndarray]]]:
    """The structure point sets of the cells ``indices`` of ``colony``: ``{index: {structure: [points…]}}``
    (mitochondria, microtubules, er: one (K, 3) path per filament; dna_foci, golgi: one array)."""
    drawings = {i: _draw_cell(colony, i, seed) for i in indices}
    result: dict[int, dict[str, list[np.ndarray]]] = {}
    pending: dict[int, np.ndarray] = {}

    def advance(i: int, answer: np.ndarray | None) -> None:
        try:
            pending[i] = next(drawings[i]) if answer is None else drawings[i].send(answer)
        except StopIteration as done:
            pending.pop(i, None)
            result[i] = done.value  # type: ignore[assignment]

    for i in indices:
        advance(i, None)
    while pending:
        asking = list(pending)
        sizes = [len(pending[i]) for i in asking]
        points = np.concatenate([pending[i] for i in asking]).reshape(-1, 3)
        answers = in_cytoplasm(colony, points, np.repeat(np.asarray(asking, dtype=np.intp), sizes))
        for i, answer in zip(asking, np.split(answers, np.cumsum(sizes)[:-1]), strict=True):
            advance(i, answer)
    return result


def _walks(
    starts: np.ndarray, directions: np.ndarray, n_steps: np.ndarray, rng: np.random.Generator, *,
    wiggle: float, retries: int = 0,
) -> Generator[np.ndarray, np.ndarray, list[np.ndarray]]:  # fmt: skip
    """Persistent random walks in the cytoplasm; each stops when it leaves (returns the visited points)."""
    n = len(starts)
    # visited points as (walk, point) chunks per step, split per walk at the end
    walk_ids: list[np.ndarray] = [np.arange(n)]
    points: list[np.ndarray] = [np.asarray(starts, dtype=np.float64)]
    pos = starts.copy()
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    live = np.arange(n)
    for step in range(int(n_steps.max(initial=0))):
        live = live[step < n_steps[live]]
        if not len(live):
            break
        dl = d[live] + rng.normal(0, wiggle, (len(live), 3))
        dl /= np.linalg.norm(dl, axis=1, keepdims=True)
        nxt = pos[live] + dl * STEP_UM
        ok = yield nxt
        for _retry in range(retries):  # blocked (nucleus, wall): bend towards a new direction
            blocked = np.flatnonzero(~ok)
            if not len(blocked):
                break
            nd = dl[blocked] + rng.normal(0, 0.7, (len(blocked), 3))
            nd /= np.linalg.norm(nd, axis=1, keepdims=True)
            dl[blocked] = nd
            nxt[blocked] = pos[live[blocked]] + nd * STEP_UM
            ok[blocked] = yield nxt[blocked]
        live, dl, nxt = live[ok], dl[ok], nxt[ok]
        d[live] = dl
        pos[live] = nxt
        walk_ids.append(live)
        points.append(nxt)
    ids = np.concatenate(walk_ids)
    order = np.argsort(ids, kind="stable")  # per walk, in step order
    ends = np.cumsum(np.bincount(ids, minlength=n))
    return np.split(np.concatenate(points)[order], ends[:-1]) if n else []


def _near_nucleus(
    colony: Colony, cell: Cell, apex_c: float, n: int, decay: float, rng: np.random.Generator
) -> Generator[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` points in the cytoplasm with density ∝ exp(-d / decay), d the distance to the nuclear surface."""
    starts: list[np.ndarray] = []
    box_lo = np.array([colony.substrate_z, cell.yx[0] - cell.reach, cell.yx[1] - cell.reach])
    box_hi = np.array([apex_c, cell.yx[0] + cell.reach, cell.yx[1] + cell.reach])
    for _ in range(60):
        cand = rng.uniform(box_lo, box_hi, (max(64, n * 8), 3))
        cand = cand[(yield cand)]
        if len(cand):
            rho = _nucleus_rho(cell, cand)
            dist = np.linalg.norm(cand - np.array(cell.nucleus_center), axis=1)
            d_surf = np.clip(dist * (1 - 1 / np.maximum(rho, 1e-6)), 0, None) if not cell.mitotic else dist
            keep = rng.random(len(cand)) < np.exp(-d_surf / decay)
            starts.extend(cand[keep])
        if len(starts) >= n:
            break
    return np.asarray(starts[:n]).reshape(-1, 3)


def _draw_cell(colony: Colony, index: int, seed: int) -> _Drawing:
    """One cell's point sets, drawn from its own stream (see the module docstring for the yields)."""
    cell = colony.cells[index]
    rules = colony.config.rules
    rng = cell.rng(seed, colony.frame)
    rz, ry, rx = cell.nucleus_radii
    cz = cell.nucleus_center[0]
    apex_c = colony.substrate_z + colony.apex(np.array([index]), np.array([cell.yx]))[0]
    out: dict[str, list[np.ndarray]] = {"mitochondria": [], "microtubules": [], "dna_foci": [], "golgi": [], "er": []}

    # chromatin foci inside the nucleus
    n_foci = int(12 + 3 * rz * ry * rx)
    foci = rng.uniform(-1, 1, (n_foci * 3, 3)) * np.array(cell.nucleus_radii) + np.array(cell.nucleus_center)
    out["dna_foci"].append(foci[_nucleus_rho(cell, foci) < 0.9][:n_foci])

    # mitochondria: seeds accepted with probability exp(-d / decay), d the distance to the nuclear surface
    v_cyto = max(0.0, math.pi * cell.radius**2 * cell.height * 0.8 - 4 / 3 * math.pi * rz * ry * rx)
    n_mito = int(rng.poisson(rules.mito_per_um3 * v_cyto))
    if n_mito:
        starts_arr = yield from _near_nucleus(colony, cell, apex_c, n_mito, rules.mito_decay_um, rng)
        lengths = rules.mito_length_um * rng.uniform(0.5, 1.5, len(starts_arr))
        dirs = rng.normal(0, 1, (len(starts_arr), 3)) * np.array([0.4, 1, 1])
        steps = (lengths / STEP_UM).astype(int)
        out["mitochondria"] = yield from _walks(starts_arr, dirs, steps, rng, wiggle=0.15, retries=2)

    # microtubules from the centrosome (interphase) or the two spindle poles (mitosis)
    if cell.mitotic:
        normal = np.array([0.0, math.sin(cell.plate_angle), math.cos(cell.plate_angle)])
        centre = np.array(cell.nucleus_center)
        poles = [centre + normal * 0.55 * ry, centre - normal * 0.55 * ry]
    else:
        poles = [np.array([min(cz + rz + 0.4, apex_c - 0.4), cell.yx[0], cell.yx[1]])]
    n_mt = int(rng.integers(rules.microtubule_count[0], rules.microtubule_count[1] + 1))
    if n_mt:
        starts_arr = np.concatenate([np.repeat(p[None], math.ceil(n_mt / len(poles)), 0) for p in poles])[:n_mt]
        dirs = rng.normal(0, 1, (n_mt, 3)) * np.array([0.35, 1, 1])
        steps = np.full(n_mt, int(30 / STEP_UM))
        out["microtubules"] = yield from _walks(starts_arr, dirs, steps, rng, wiggle=0.03, retries=4)

    # Golgi: perinuclear, apical (interphase); dispersed (mitosis)
    n_g = int(rng.integers(rules.golgi_blobs[0], rules.golgi_blobs[1] + 1))
    if n_g:
        if cell.mitotic:
            box = np.array([cell.height / 2, cell.radius, cell.radius])
            cand = rng.uniform(-1, 1, (n_g * 20, 3)) * box + np.array([colony.substrate_z + cell.height / 2, *cell.yx])
        else:
            # a perinuclear cap on the apical shoulder of the nucleus
            pol = rng.uniform(0, 2 * math.pi)
            gz = min(cz + 0.8 * rz + rules.golgi_apical_offset_um, apex_c - 0.5)
            g = np.array([gz, cell.yx[0] + 0.6 * ry * math.sin(pol), cell.yx[1] + 0.6 * rx * math.cos(pol)])
            cand = g + rng.normal(0, 1, (n_g * 20, 3)) * np.array([0.3, 0.9, 0.9])
        cand = cand[(yield cand)]
        out["golgi"].append(cand[:n_g])

    # ER tubules: many short, wiggly walks, denser near the nucleus (drawn last: the streams above are unchanged)
    n_er = int(rng.poisson(rules.er_tubules_per_um3 * v_cyto))
    if n_er:
        decay = math.inf if cell.mitotic else rules.er_decay_um
        starts_arr = yield from _near_nucleus(colony, cell, apex_c, n_er, decay, rng)
        lengths = rules.er_length_um * rng.uniform(0.5, 1.5, len(starts_arr))
        dirs = rng.normal(0, 1, (len(starts_arr), 3)) * np.array([0.4, 1, 1])
        steps = (lengths / STEP_UM).astype(int)
        out["er"] = yield from _walks(starts_arr, dirs, steps, rng, wiggle=0.3, retries=2)
    return out
