"""Rasterize a colony into one region of the field: labels, structure densities and masks, refractive index.

Every cell is drawn from its own random stream (seed, cell id, frame) in field coordinates (µm), then clipped
to the region, so a region rendered alone equals the same region cut out of the whole field.

Structure rules (the ground truth the integrated-cell model must learn), relative to cell and nucleus:

* ``dna`` – fills the nucleus with a chromatin texture (heterochromatin foci), excluded from nucleoli; in
  mitosis condensed into a metaphase plate through the cell centre.
* ``nuclear_envelope`` – a shell of ``envelope_thickness_um`` on the nuclear surface (absent in mitosis).
* ``nucleoli`` – ``nucleoli_count`` spheres of radius ~``nucleolus_radius_um`` strictly inside the nucleus
  (absent in mitosis).
* ``membrane`` – a shell of ``membrane_thickness_um`` on the cell surface (walls shared with neighbours, apical
  dome, basal side).
* ``mitochondria`` – tubes of radius ``mito_radius_um`` and length ~``mito_length_um`` in the cytoplasm,
  seeded with density ∝ exp(−d / ``mito_decay_um``), d the distance to the nuclear surface.
* ``microtubules`` – ``microtubule_count`` filaments radiating from a centrosome just above the nucleus
  (apical side) to the cell periphery; in mitosis from the two spindle poles. They are far thinner than the
  PSF, so their mask marks the voxels within the PSF's half maximum of the centre line.
* ``golgi`` – ``golgi_blobs`` cisternae in a perinuclear cap on the apical shoulder of the nucleus (at 0.6 of
  its lateral radius, ``golgi_apical_offset_um`` above the nuclear surface there); dispersed in mitosis.
* ``er`` – the endoplasmic reticulum: perinuclear sheets continuous with the nuclear envelope (a layer
  ``er_sheet_um`` thick just outside it) and a network of thin, wiggly tubules through the cytoplasm, seeded
  with density ∝ exp(−d / ``er_decay_um``); in mitosis no sheets and tubules spread evenly. Tubules are thinner
  than the PSF, so, as for microtubules, their mask is the PSF's half-maximum core around the centre line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.synth.cell_points import cell_points, ellipsoid_rho, in_cytoplasm
from subcell.synth.colony import Cell, Colony
from subcell.synth.config import STRUCTURES, SynthConfig
from subcell.synth.optics import line_gain, psf_sigma_voxels

__all__ = ["RegionRender", "render_region"]


@dataclass
class RegionRender:
    """Everything rasterized for one region (arrays are ZYX of the region's shape)."""

    cell: np.ndarray
    nucleus: np.ndarray
    density: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]  # uint8 0/1 per structure; the owning cell is the ``cell`` label there
    delta_n: np.ndarray
    counts: dict[int, dict[str, int]] = field(default_factory=dict)
    region: tuple[slice, slice, slice] | None = None  # where the region lies in the field (voxels)


def _axis_centres(sl: slice, size: float) -> np.ndarray:
    """Where the generator samples its world: voxel i covers [i, i+1)·size and is sampled at its middle.

    The world's frame is therefore half a voxel off the image frame (NGFF: voxel i at i·size); the truth tables
    report label centroids in the image frame, like every measurement table.
    """
    return (np.arange(sl.start, sl.stop) + 0.5) * size


def _band_cover(d: np.ndarray, lo: Any, hi: Any, width: Any) -> np.ndarray:
    """The fraction of a voxel covered by a thin band ``lo <= d < hi``, the voxel ``width`` µm across along the
    band's normal and centred at ``d`` (µm along it): partial-volume rasterization of a sheet, which
    sampling at the voxel's centre loses whenever the sheet is thinner than the voxel (a 0.25 µm membrane
    between planes 0.5 µm apart: a microscope still sees its light). By hand: the bands are analytic (walls,
    domes, shells) and no imaging library rasterizes those with coverage."""
    return np.clip((np.minimum(d + width / 2, hi) - np.maximum(d - width / 2, lo)) / width, 0, 1).astype(np.float32)


def _band_mask(cover: np.ndarray, thickness: float, width: Any) -> np.ndarray:
    """The voxels of a band's mask: at least half as covered as a voxel can be (a band thinner than the voxel
    covers at most ``thickness / width`` of it), so a thin sheet's mask is one or two voxels thick at any
    voxel size, never empty."""
    return cover >= 0.5 * np.minimum(1.0, thickness / np.asarray(width))


def _mitotic_chromatin(c: Cell, dist: np.ndarray, yb: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Condensed chromosomes of a dividing cell after prophase, in the yx plane of its spindle axis: metaphase a
    plate across the axis; anaphase two plates moving apart along it; telophase (a daughter, just divided) one
    compact mass."""
    normal = (math.sin(c.plate_angle), math.cos(c.plate_angle))
    along = (yb - c.nucleus_center[1]) * normal[0] + (xb - c.nucleus_center[2]) * normal[1]
    radial = np.sqrt(np.maximum(dist**2 - along**2, 0))  # distance from the spindle axis
    r = max(c.nucleus_radii[1:])
    if c.stage == "anaphase":  # the daughters form at ±0.45 × the cell radius; the plates are half-way there
        return (np.abs(np.abs(along) - 0.22 * c.radius) < 0.5) & (radial < 0.6 * r)
    if c.stage == "telophase":  # a daughter's compact chromatin mass, at its own centre
        return dist < 0.45 * r
    return (np.abs(along) < 0.6) & (radial < 0.75 * r)  # metaphase


def _bbox(
    cell: Cell, region: tuple[slice, slice, slice], vs: tuple[float, float, float], substrate_z: float
) -> tuple[slice, slice, slice] | None:
    """The cell's bounding box in region-local voxel slices, or None if it misses the region."""
    r = cell.reach + 0.5
    spans = (
        (substrate_z - 0.5, substrate_z + cell.height + 0.5),
        (cell.yx[0] - r, cell.yx[0] + r),
        (cell.yx[1] - r, cell.yx[1] + r),
    )
    out: list[slice] = []
    for axis, (a, b) in enumerate(spans):
        lo = max(region[axis].start, math.floor(a / vs[axis]))
        hi = min(region[axis].stop, math.ceil(b / vs[axis]) + 1)
        if hi <= lo:
            return None
        out.append(slice(lo - region[axis].start, hi - region[axis].start))
    return (out[0], out[1], out[2])


def _ball_slices(
    coords: tuple[np.ndarray, np.ndarray, np.ndarray], centre: np.ndarray, radius: tuple[float, float, float]
) -> tuple[slice, ...]:
    """Index slices of sorted voxel-centre coordinates within ``radius`` of ``centre`` on each axis."""
    return tuple(
        slice(int(np.searchsorted(c, m - r)), int(np.searchsorted(c, m + r, side="right")))
        for c, m, r in zip(coords, centre, radius, strict=True)
    )


def _ellipsoid_footprint(radii_vox: tuple[float, ...]) -> np.ndarray:
    """Boolean ellipsoid with the given radii in voxels (at least the centre voxel)."""
    r = [max(0, math.floor(x)) for x in radii_vox]
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    dist = sum((g / max(x, 1e-6)) ** 2 for g, x in zip(grids, radii_vox, strict=True))
    return np.asarray(dist <= 1.0 + 1e-9)


def _splat(
    points: np.ndarray, region: tuple[slice, slice, slice], vs: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray, ...]:
    idx = np.floor(points / vs).astype(np.int64) - np.array([s.start for s in region])
    ok = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
    idx = idx[ok]
    return idx[:, 0], idx[:, 1], idx[:, 2]


def _add_granules(
    speckle: np.ndarray,
    colony: Colony,
    index: int,
    region: tuple[slice, slice, slice],
    vs: np.ndarray,
    seed: int,
    weight: np.float32,
) -> None:
    """Splat one cell's granules (points in its cytoplasm, bright and dark) into ``speckle`` (drawn from their
    own stream, so the fluorescence structures are unchanged by them)."""
    ri = colony.config.refractive_index
    cell = colony.cells[index]
    rz, ry, rx = cell.nucleus_radii
    v_cyto = max(0.0, math.pi * cell.radius**2 * cell.height * 0.8 - 4 / 3 * math.pi * rz * ry * rx)
    rng = np.random.default_rng([seed, cell.id, colony.frame, 0x6A])
    n = int(rng.poisson(ri.granules_per_um3 * v_cyto))
    if n == 0:
        return
    lo = np.array([colony.substrate_z, cell.yx[0] - cell.reach, cell.yx[1] - cell.reach])
    hi = np.array([colony.substrate_z + cell.height, cell.yx[0] + cell.reach, cell.yx[1] + cell.reach])
    cand = rng.uniform(lo, hi, (n * 3, 3))
    pts = cand[in_cytoplasm(colony, cand, np.full(len(cand), index))][:n]
    amp = ri.granule_index * rng.lognormal(0.0, 0.5, len(pts))
    dark = rng.random(len(pts)) < ri.dark_granule_fraction
    amp = np.where(dark, -np.minimum(amp, ri.cytoplasm), amp).astype(np.float32)
    idx = np.floor(pts / vs).astype(np.int64) - np.array([s.start for s in region])
    ok = np.all((idx >= 0) & (idx < np.array(speckle.shape)), axis=1)
    np.add.at(speckle, (idx[ok, 0], idx[ok, 1], idx[ok, 2]), amp[ok] * weight)


def _organelle_mesh(
    coords: tuple[np.ndarray, np.ndarray, np.ndarray], origin: tuple[float, float, float],
    rng: np.random.Generator, scale_um: tuple[float, float], voxel_um: np.ndarray, waves: int = 48,
) -> np.ndarray:  # fmt: skip
    """A band-limited random field of unit variance (before voxel averaging) on the box ``coords`` (µm axis
    centres), in coordinates relative to ``origin``: the sum of ``waves`` plane waves with random directions,
    wavelengths log-uniform in ``scale_um`` and random phases (a Gaussian random field whose spectrum lies in that
    band). Each voxel holds the field's average over its extent (a wave's amplitude times the sinc of its phase
    step across the voxel), so waves near or below the grid's resolution fade instead of aliasing into pixel noise.

    Written by hand because it must be a function of position alone: any block of a large field, or the cell
    after it moved in a time-lapse, sees the same texture (a filtered noise array would depend on the box)."""
    lam = np.exp(rng.uniform(math.log(scale_um[0]), math.log(scale_um[1]), waves))
    d = rng.normal(size=(waves, 3))
    k = 2 * math.pi * d / (np.linalg.norm(d, axis=1, keepdims=True) * lam[:, None])
    phase = rng.uniform(0, 2 * math.pi, waves)
    amp = np.prod(np.sinc(k * voxel_um[None, :] / (2 * math.pi)), axis=1)  # np.sinc(t) = sin(πt)/(πt)
    z, y, x = (np.asarray(c, np.float32) - np.float32(o) for c, o in zip(coords, origin, strict=True))
    out = np.zeros((len(z), len(y), len(x)), np.float32)
    for kz, ky, kx, ph, a in zip(k[:, 0], k[:, 1], k[:, 2], phase, amp, strict=True):
        arg = (np.float32(kz) * z + np.float32(ph))[:, None, None] + (np.float32(ky) * y)[None, :, None]
        out += np.float32(a) * np.cos(arg + (np.float32(kx) * x)[None, None, :])
    out *= np.float32(math.sqrt(2.0 / waves))
    return out


def render_region(colony: Colony, region: tuple[slice, slice, slice], *, seed: int) -> RegionRender:
    """Rasterize ``region`` (voxel slices of the field) of ``colony``."""
    cfg = colony.config
    vs = np.asarray(cfg.voxel_size, dtype=np.float64)
    rules = cfg.rules
    shape = tuple(s.stop - s.start for s in region)
    z = _axis_centres(region[0], vs[0])
    y = _axis_centres(region[1], vs[1])
    x = _axis_centres(region[2], vs[2])
    yy, xx = np.meshgrid(y, x, indexing="ij")
    yx = np.stack([yy.ravel(), xx.ravel()], axis=1)
    owner, wall = colony.owner(yx)
    apex = colony.apex(owner, yx).reshape(shape[1:]).astype(np.float32)
    owner2d = owner.reshape(shape[1:])
    wall2d = wall.reshape(shape[1:]).astype(np.float32)
    zr = (z - colony.substrate_z).astype(np.float32)[:, None, None]
    inside = (owner2d[None] >= 0) & (zr >= 0) & (zr <= apex[None])
    ids = np.array([c.id for c in colony.cells] + [0], dtype=np.int32)
    cell = np.where(inside, ids[owner2d][None], np.int32(0))

    # the membrane, one bilayer of thickness t wherever the cell meets something: the walls (|d| < t/2 about the
    # boundary), the basal side (the first t above the substrate) and the apical dome (the last t below it), as
    # each voxel's covered fraction (`_band_cover`), so a sheet thinner than the z-step is not lost between planes
    t_m = float(rules.membrane_thickness_um)
    column = (owner2d >= 0)[None]
    walls = _band_cover(wall2d, -t_m / 2, t_m / 2, float(vs[1]))[None] * inside
    basal = _band_cover(zr, 0.0, t_m, float(vs[0])) * column
    apical = _band_cover(zr, apex[None] - t_m, apex[None], float(vs[0])) * column
    cover = np.maximum(np.maximum(walls, basal), apical)
    density = {s: np.zeros(shape, np.float32) for s in STRUCTURES}
    density["membrane"] = cover.astype(np.float32)
    nucleus = np.zeros(shape, np.int32)
    masks = {s: np.zeros(shape, bool) for s in STRUCTURES}
    masks["membrane"] = inside & (  # the labelled cell's voxels the membrane covers (its light may reach beyond)
        _band_mask(walls, t_m, float(vs[1]))
        | _band_mask(basal, t_m, float(vs[0]))
        | _band_mask(apical, t_m, float(vs[0]))
    )
    ri = cfg.refractive_index
    delta_n = np.where(inside, np.float32(ri.cytoplasm), np.float32(0))
    speckle = np.zeros(shape, np.float32)  # granules and chromatin foci, blurred to their size below
    texture = np.zeros(shape, np.float32)  # the cytoplasm's organelle mesh, added after the boundary smoothing
    counts: dict[int, dict[str, int]] = {}
    # a chromatin focus adds ~0.4 to the blurred DNA density at its centre
    sigma = psf_sigma_voxels(cfg.optics, cfg.voxel_size)
    foci_weight = np.float32(0.4 * (2 * math.pi) ** 1.5 * np.prod(sigma))
    tube_fp = _ellipsoid_footprint(tuple(rules.mito_radius_um / v for v in vs))
    line_fp = _ellipsoid_footprint(tuple(1.1774 * s for s in sigma))  # half width at half maximum
    # the ER channel is scaled for sub-resolution lines (line_gain); this per-voxel weight makes the perinuclear
    # sheet, once blurred across its normal, about as bright as a tubule (a brightness calibration, not a thickness)
    granule_sigma = tuple(ri.granule_radius_um / 1.5 / v for v in vs)
    # a splatted point of this weight, blurred by granule_sigma, peaks at 1 (so amplitudes are index increments)
    granule_weight = np.float32((2 * math.pi) ** 1.5 * np.prod(granule_sigma))
    sheet_weight = np.float32(math.sqrt(2 * math.pi) * sigma[1] * vs[1] / 0.25 / line_gain(sigma))
    # a filament is points STEP_UM apart: at one unit each, a line was brighter the larger the pixel (more points per
    # voxel: 1.85x from 0.108 to 0.2 um pixels, against the sheets, whose light is per um). Weighted by the pixel
    # size its light per um is the same at any voxel size, in any direction; images at the default pixel unchanged
    default_pixel = SynthConfig.model_fields["voxel_size"].default[2]
    line_weight = np.float32(default_pixel / math.sqrt(float(vs[1]) * float(vs[2])))

    drawn = {}  # the cells in this region: their bounding box and their voxels in it
    for index, c in enumerate(colony.cells):
        box = _bbox(c, region, tuple(vs), colony.substrate_z)  # type: ignore[arg-type]
        if box is not None and (mine := cell[box] == c.id).any():
            drawn[index] = (box, mine)
    points = cell_points(colony, list(drawn), seed)  # all cells' walks at once (see cell_points)
    for index, (box, mine) in drawn.items():
        c = colony.cells[index]
        rng = c.rng(seed, colony.frame)
        coords = (z[box[0]], y[box[1]], x[box[2]])
        zz = coords[0][:, None, None]
        yb = coords[1][None, :, None]
        xb = coords[2][None, None, :]
        condensing = c.mitotic and c.stage == "prophase"  # chromatin condenses inside a still intact envelope
        rz, ry, rx = c.nucleus_radii
        radii = (0.85 * rz, 0.85 * ry, 0.85 * rx) if condensing else c.nucleus_radii
        rho, dist = ellipsoid_rho(zz, yb, xb, c.nucleus_center, radii, c.nucleus_angle)
        clear = (wall2d[box[1:]][None] > 0.3) & ((apex[box[1:]][None] - zr[box[0]]) > 0.3)
        if c.mitotic and not condensing:
            nuc = _mitotic_chromatin(c, dist, yb, xb) & mine & clear
            nucleoli_n = 0
        else:
            nuc = (rho <= 1.0) & mine & clear
            # the envelope's shell as each voxel's covered fraction along the ray from the centre (the voxel's
            # extent along that ray: its sides projected on it), so it is not lost between coarse planes
            t_e = float(rules.envelope_thickness_um)
            with np.errstate(invalid="ignore", divide="ignore"):
                along = (np.abs(zz - c.nucleus_center[0]) * vs[0] + np.abs(yb - c.nucleus_center[1]) * vs[1]
                         + np.abs(xb - c.nucleus_center[2]) * vs[2]) / np.maximum(dist, 1e-6)  # fmt: skip
            width = np.maximum(along, float(vs.min()))
            shell = _band_cover(dist * (1 - 1 / np.maximum(rho, 1e-6)), -t_e / 2, t_e / 2, width)
            near = mine & clear & (rho > 0.5)
            density["nuclear_envelope"][box] = np.where(near, shell, density["nuclear_envelope"][box])
            masks["nuclear_envelope"][box] |= near & _band_mask(shell, t_e, width)
            if rules.er_sheet_um > 0:  # perinuclear ER sheets, continuous with the outer nuclear membrane
                # a band 0.375 µm thick by default: covered fractions too, or coarse planes skip it over the cap
                out_d = dist * (1 - 1 / np.maximum(rho, 1e-6))
                sheet = _band_cover(out_d, t_e / 2, rules.er_sheet_um, width) * (mine & clear)
                density["er"][box] = np.maximum(density["er"][box], sheet * sheet_weight)
                masks["er"][box] |= _band_mask(sheet, rules.er_sheet_um - t_e / 2, width)
            # nucleoli: spheres strictly inside the nucleus (dissolved from prophase on)
            k = 0 if condensing else int(rng.integers(rules.nucleoli_count[0], rules.nucleoli_count[1] + 1))
            nucleoli_n = 0
            r_min = min(c.nucleus_radii)
            for _ in range(k):
                r = rules.nucleolus_radius_um * rng.uniform(0.7, 1.2)
                r = min(r, 0.45 * r_min)
                for _try in range(50):
                    u = rng.uniform(-1, 1, 3)
                    if np.linalg.norm(u) <= max(0.0, 1 - r / r_min - 0.15):
                        break
                ca, sa = math.cos(c.nucleus_angle), math.sin(c.nucleus_angle)
                du, dv = u[1] * c.nucleus_radii[1], u[2] * c.nucleus_radii[2]
                centre = (
                    c.nucleus_center[0] + u[0] * c.nucleus_radii[0],
                    c.nucleus_center[1] + ca * du - sa * dv,
                    c.nucleus_center[2] + sa * du + ca * dv,
                )
                sb = _ball_slices(coords, np.asarray(centre), (r, r, r))
                d2 = (zz[sb[0]] - centre[0]) ** 2 + (yb[:, sb[1]] - centre[1]) ** 2 + (xb[:, :, sb[2]] - centre[2]) ** 2
                ball = (d2 <= r * r) & nuc[sb]
                density["nucleoli"][box][sb][ball] = 1.0
                masks["nucleoli"][box][sb][ball] = True
                nucleoli_n += 1
        nucleus[box][nuc] = c.id
        dna = np.where(nuc, np.float32(0.6), np.float32(0))
        if not c.mitotic:
            dna = np.where(density["nucleoli"][box] > 0, dna * np.float32(0.3), dna)
        else:
            dna = np.where(nuc, np.float32(1.0), np.float32(0))
        density["dna"][box] += dna
        masks["dna"][box][nuc] = True
        delta_n[box][nuc] = ri.nucleus
        delta_n[box][(density["nucleoli"][box] > 0) & nuc] = ri.nucleoli
        _add_granules(speckle, colony, index, region, vs, seed, granule_weight)
        if ri.cytoplasm_texture > 0:  # in the cell's own frame and stream: it moves with the cell, fixed over time
            origin = (colony.substrate_z, c.yx[0], c.yx[1])
            mesh = _organelle_mesh(coords, origin, np.random.default_rng([seed, c.id, 0x7E57]), ri.texture_scale_um, vs)
            texture[box][mine] = mesh[mine]

        pts = points[index]
        counts[c.id] = {
            "nucleoli": nucleoli_n,
            "mitochondria": len(pts["mitochondria"]),
            "microtubules": len(pts["microtubules"]),
            "golgi": int(sum(len(p) for p in pts["golgi"])),
        }
        if pts["dna_foci"]:
            iz, iy, ix = _splat(np.concatenate(pts["dna_foci"]), region, vs, shape)
            np.add.at(density["dna"], (iz, iy, ix), foci_weight)
            np.add.at(speckle, (iz, iy, ix), np.float32(ri.chromatin_texture) * granule_weight)
        for name, footprint in (("mitochondria", tube_fp), ("microtubules", line_fp), ("er", line_fp)):
            if not pts[name]:
                continue
            iz, iy, ix = _splat(np.concatenate(pts[name]), region, vs, shape)
            local = np.zeros(mine.shape, bool)
            oz, oy, ox = box[0].start, box[1].start, box[2].start
            inb = (iz >= oz) & (iz < box[0].stop) & (iy >= oy) & (iy < box[1].stop) & (ix >= ox) & (ix < box[2].stop)
            local[iz[inb] - oz, iy[inb] - oy, ix[inb] - ox] = True
            grown = ndi.binary_dilation(local, structure=footprint) & mine
            masks[name][box] |= grown
            if name == "mitochondria":  # tubes with a physical radius: the density is the tube itself
                density[name][box][grown] = 1.0
            else:  # sub-resolution filaments: a line of points; the mask is the PSF's half-maximum core
                np.add.at(density[name], (iz, iy, ix), line_weight)
        for g in pts["golgi"][0] if pts["golgi"] else []:
            r = rules.golgi_radius_um * rng.uniform(0.7, 1.3)
            sb = _ball_slices(coords, g, (0.7 * r, r, r))
            d2 = ((zz[sb[0]] - g[0]) / 0.7) ** 2 + (yb[:, sb[1]] - g[1]) ** 2 + (xb[:, :, sb[2]] - g[2]) ** 2
            blob = (d2 <= r * r) & mine[sb] & ((rho[sb] > 1.05) | c.mitotic)
            density["golgi"][box][sb][blob] = 1.0
            masks["golgi"][box][sb][blob] = True

    delta_n += density["membrane"] * np.float32(ri.membrane)  # a partly covered voxel: its mean index
    delta_n += density["nuclear_envelope"] * np.float32(ri.nuclear_envelope)
    delta_n += np.minimum(density["mitochondria"], 1) * np.float32(ri.mitochondria)
    delta_n += density["golgi"] * np.float32(ri.golgi)
    delta_n += ndi.gaussian_filter(speckle, granule_sigma, mode="constant", truncate=3.0)
    if ri.smoothing_um > 0:  # real index boundaries are soft: no cell has a step edge at the voxel scale
        ndi.gaussian_filter(delta_n, tuple(ri.smoothing_um / v for v in vs), output=delta_n, mode="nearest")
    if ri.cytoplasm_texture > 0:  # keeps its own fine scale; fades softly into the nucleus and the medium
        weight = ((cell > 0) & (nucleus == 0)).astype(np.float32)
        if ri.smoothing_um > 0:
            ndi.gaussian_filter(weight, tuple(ri.smoothing_um / v for v in vs), output=weight, mode="nearest")
        delta_n += texture * weight * np.float32(ri.cytoplasm_texture)
    return RegionRender(
        cell=cell, nucleus=nucleus, density=density, masks={s: m.view(np.uint8) for s, m in masks.items()},
        delta_n=delta_n, counts=counts, region=region,
    )  # fmt: skip
