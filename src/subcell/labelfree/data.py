"""Training data for label-free models: manifest rows → cached, resampled, normalised volumes → random patches.

Every training image is read once, resampled to the model's voxel size (:func:`resample_linear`, the same
function prediction uses), z-scored per image and kept in memory as float32. Patches are then drawn from all of
them (an image is chosen with probability proportional to its size), a configurable share centred on target
foreground (voxels above 1 standard deviation, or inside the loss mask). Augmentations are sampled from the
run's random generator and then applied, so a seed fixes the whole patch stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from subcell.errors import ChannelError, ManifestError, MetadataError, ValueRangeError
from subcell.image import Image, VoxelSize
from subcell.io.manifest import ManifestRow

if TYPE_CHECKING:
    from subcell.labelfree.config import AugmentConfig

__all__ = ["PatchSampler", "Volume", "load_volumes", "normalize_input", "pad_to_patch", "split_rows"]

_MAX_FOREGROUND = 200_000  # foreground centres kept per volume (a uniform subsample)


@dataclass
class Volume:
    """One training image at the model's voxel size: input ``(C_in, Z, Y, X)``, targets ``(C_out, Z, Y, X)``."""

    name: str
    input: np.ndarray
    target: np.ndarray
    weight: np.ndarray | None
    foreground: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.input.shape[1:])  # type: ignore[return-value]


def pad_to_patch(volume: Volume, patch: Sequence[int]) -> Volume:
    """``volume`` padded at the end of every axis shorter than ``patch`` (e.g. a single-cell crop), with zero
    loss weight in the padding, so small images train instead of being refused. Input and targets are padded
    with 0 (their mean after z-scoring)."""
    need = [max(0, int(p) - s) for s, p in zip(volume.shape, patch, strict=True)]
    if not any(need):
        return volume
    pads = [(0, n) for n in need]
    weight = volume.weight if volume.weight is not None else np.ones(volume.shape, np.float32)
    new_shape = tuple(s + n for s, n in zip(volume.shape, need, strict=True))
    fg = np.ravel_multi_index(np.unravel_index(volume.foreground, volume.shape), new_shape)
    return Volume(
        name=volume.name,
        input=np.pad(volume.input, [(0, 0), *pads]),
        target=np.pad(volume.target, [(0, 0), *pads]),
        weight=np.pad(weight, pads),
        foreground=fg,
        target_mean=volume.target_mean,
        target_std=volume.target_std,
    )


def normalize_input(volume: np.ndarray, *, name: str = "input") -> np.ndarray:
    """Z-score each channel of ``(C, Z, Y, X)`` over the whole image (the normalization models record)."""
    out = np.empty(volume.shape, np.float32)
    for c in range(volume.shape[0]):
        v = volume[c].astype(np.float32, copy=False)
        if not np.all(np.isfinite(v)):
            raise ValueRangeError("contains NaN or Inf values; clean or mask them before prediction", field=name)
        sd = float(v.std())
        out[c] = (v - float(v.mean())) / (sd if sd > 0 else 1.0)
    return out


def split_rows(
    rows: Sequence[ManifestRow], *, val_fraction: float, rng: np.random.Generator
) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """(train, val) rows: the manifest's ``split`` column, or ``val_fraction`` of the train rows held out."""
    train = [r for r in rows if r.split in (None, "train")]
    val = [r for r in rows if r.split == "val"]
    if not val and val_fraction > 0 and len(train) >= 2:
        n_val = max(1, round(val_fraction * len(train)))
        picked = set(rng.choice(len(train), size=min(n_val, len(train) - 1), replace=False).tolist())
        val = [r for i, r in enumerate(train) if i in picked]
        train = [r for i, r in enumerate(train) if i not in picked]
    return train, val


def _read_row(row: ManifestRow, path_field: str) -> Image:
    from subcell.io import read

    path = row.source if path_field == "source" else row.target
    if path is None:
        raise ManifestError(row.source, [f"row {row.row}, column 'target': missing; every training row needs a target"])
    from subcell.io.reader import axes_for

    # the row's axes describe its source, and a target of the same layout when that is a plain TIFF too
    axes = row.axes if path_field == "source" else axes_for(path, row.axes)
    return read(path, voxel_size=row.voxel_size, scene=row.scene, axes=axes)


def _channel(image: Image, channel: str | None, *, path: object, field: str) -> np.ndarray:
    if channel is None:
        if image.shape[1] != 1:
            raise ChannelError(
                f"image has {image.shape[1]} channels {list(image.channel_names)}; name one",
                path=str(path),
                field=field,
            )
        return image.numpy()[:, 0]
    if image.shape[1] == 1 and channel not in image.channel_names:
        return image.numpy()[:, 0]  # a single-channel file: its one channel, whatever the file calls it
    return image.channel(channel).numpy()[:, 0]


def _to_model_grid(arr: np.ndarray, voxel_size: VoxelSize, model_vs: VoxelSize) -> np.ndarray:
    from subcell.transforms.resample import resample_linear

    if voxel_size.isclose(model_vs):
        return arr.astype(np.float32, copy=False)
    return resample_linear(arr, voxel_size=voxel_size, target_voxel_size=model_vs)


def _row_mask(row: ManifestRow, column: str, option: str, voxel_size: VoxelSize, shape: tuple[int, ...]) -> np.ndarray:
    """The (T, Z, Y, X) mask or labels of a row's mask ``column`` (named by the config's ``option``)."""
    from subcell.io import read
    from subcell.io.reader import axes_for

    mpath = row.masks.get(column)
    if mpath is None:
        raise ManifestError(row.source, [f"row {row.row}, column '{column}': missing (config {option})"])
    m = read(mpath, voxel_size=row.voxel_size or voxel_size, axes=axes_for(mpath, row.axes)).numpy()[:, 0]
    if m.shape[1:] != shape[1:]:
        raise MetadataError(f"mask shape {m.shape[1:]} does not match image {shape[1:]}", path=mpath)
    return m


def _cell_depth_on_grid(labels: np.ndarray, voxel_size: VoxelSize, model_vs: VoxelSize) -> np.ndarray:
    """Each voxel's depth in its cell, on the labels' own grid, then resampled to the model grid as the image is
    (what pretraining and prediction do too)."""
    from subcell.io import as_labels
    from subcell.labelfree.cell_prior import cell_depth

    depth = cell_depth(as_labels(labels, what="cell labels"), voxel_size.as_tuple())
    return _to_model_grid(depth[None], voxel_size, model_vs)[0]


def load_volumes(
    rows: Sequence[ManifestRow],
    *,
    input_channel: str | None,
    targets: Sequence[str] | None,
    voxel_size: VoxelSize | None,
    mask_column: str | None = None,
    patch_size: Sequence[int] | None = None,
    binarize_targets: bool = False,
    probability_targets: bool = False,
    cells_column: str | None = None,
) -> tuple[list[Volume], VoxelSize, list[str], str]:
    """Read, resample and normalise manifest rows (one :class:`Volume` per row and timepoint).

    Targets are z-scored per image, or with ``probability_targets`` binarized (> 0) and kept in [0, 1] (masks for a
    segmentation loss; resampling to the model grid softens their edges to fractions). With ``cells_column``, the
    cell instance labels of that mask column become a second input channel, each voxel's depth in its cell
    (:func:`~subcell.labelfree.cell_prior.cell_depth` on the model grid; a model conditioned on the cell outlines).

    Returns
    -------
    volumes, model voxel size, target names, input channel name
    """
    from subcell.transforms.resample import resample

    volumes: list[Volume] = []
    model_vs = voxel_size
    target_names: list[str] | None = list(targets) if targets else None
    in_name = input_channel
    for row in rows:
        src = _read_row(row, "source")
        tgt = _read_row(row, "target")
        ch_in = row.source_channel or in_name
        if target_names is None:
            if not row.target_channel:
                raise ManifestError(
                    row.source,
                    [f"row {row.row}, column 'target_channel': missing; name it or set `targets` in the config"],
                )
            target_names = [c.strip() for c in row.target_channel.split(",")]
        # the row's target_channel picks the channels in this file (names may differ between files, e.g.
        # "c3" in a 4-channel tile and "c2" in a 3-channel one); the config's targets name the model outputs
        ch_out = [c.strip() for c in row.target_channel.split(",")] if row.target_channel else list(target_names)
        if len(ch_out) != len(target_names):
            raise ManifestError(
                row.source,
                [
                    f"row {row.row}, column 'target_channel': {ch_out} has {len(ch_out)} channels, the model {target_names}"
                ],
            )
        if in_name is None:
            in_name = ch_in or src.channel_names[0]
        if model_vs is None:
            model_vs = src.voxel_size
        if src.shape[2:] != tgt.shape[2:] or src.shape[0] != tgt.shape[0]:
            raise MetadataError(
                f"target shape {tgt.shape} (TCZYX) does not match source shape {src.shape}",
                path=row.target,
                field="shape",
            )
        x = _channel(src, ch_in, path=row.source, field="source_channel")  # (T, Z, Y, X)
        ys = np.stack([_channel(tgt, c, path=row.target, field="target_channel") for c in ch_out], axis=1)
        if binarize_targets or probability_targets:
            ys = (ys > 0).astype(np.float32)
        mask = _row_mask(row, mask_column, "loss_mask", src.voxel_size, x.shape) if mask_column else None
        cells = _row_mask(row, cells_column, "cells", src.voxel_size, x.shape) if cells_column else None
        for t in range(x.shape[0]):
            if not np.all(np.isfinite(x[t])):
                raise ValueRangeError("input contains NaN or Inf values", field=f"{row.source}: source")
            xi = normalize_input(_to_model_grid(x[t][None], src.voxel_size, model_vs), name=str(row.source))
            if cells is not None:
                xi = np.concatenate([xi, _cell_depth_on_grid(cells[t if cells.shape[0] > 1 else 0], src.voxel_size,
                                                             model_vs)[None]])  # fmt: skip
            yi = _to_model_grid(ys[t], src.voxel_size, model_vs)
            mean = yi.reshape(yi.shape[0], -1).mean(axis=1)
            sd = yi.reshape(yi.shape[0], -1).std(axis=1)
            if not probability_targets:
                yi = (yi - mean[:, None, None, None]) / np.where(sd > 0, sd, 1)[:, None, None, None]
            wi = None
            if mask is not None:
                mt = mask[t if mask.shape[0] > 1 else 0]
                if not src.voxel_size.isclose(model_vs):
                    mt = resample(
                        mt, voxel_size=src.voxel_size, target_voxel_size=model_vs, labels=True
                    )  # nearest neighbour
                wi = (mt > 0).astype(np.float32)
                if not wi.any():
                    raise ValueRangeError("loss mask is empty: nothing to learn from", field=f"{row.source}: mask")
            shape = xi.shape[1:]
            if patch_size is not None and any(s < p for s, p in zip(shape, patch_size, strict=True)):
                raise ValueRangeError(
                    f"row {row.row}: image is {shape} voxels at the model voxel size {model_vs.as_tuple()} µm, "
                    f"smaller than patch_size {tuple(patch_size)}",
                    field="patch_size",
                )
            fg_mask = wi > 0 if wi is not None else (yi > (0.5 if probability_targets else 1.0)).any(axis=0)
            fg = np.flatnonzero(fg_mask)
            if fg.size > _MAX_FOREGROUND:
                fg = np.sort(np.random.default_rng(row.row).choice(fg, _MAX_FOREGROUND, replace=False))
            name = row.id or f"row{row.row}"
            volumes.append(
                Volume(
                    name=name if x.shape[0] == 1 else f"{name}_t{t}",
                    input=xi,
                    target=yi.astype(np.float32),
                    weight=wi,
                    foreground=fg,
                    target_mean=mean,
                    target_std=sd,
                )
            )
    if model_vs is None or target_names is None or in_name is None:
        raise ManifestError(rows[0].source if rows else "manifest", ["no rows to train on"])
    return volumes, model_vs, target_names, in_name


@dataclass(frozen=True)
class PatchDraw:
    """The sampled parameters of one patch: where it is and how it is augmented."""

    volume: int
    start: tuple[int, int, int]
    flip_y: bool = False
    flip_x: bool = False
    flip_z: bool = False
    rot90: int = 0
    gain: float = 1.0
    offset: float = 0.0
    invert: bool = False
    region: tuple[int, int, int] | None = None  # voxels cut at ``start`` and resized to the patch (zoom)
    blur: float = 0.0  # σ of the input's Gaussian blur, voxels
    noise: float = 0.0  # std of the input's added noise
    noise_seed: int = 0


class PatchSampler:
    """Draws augmented patch batches from a list of :class:`Volume`.

    Parameters
    ----------
    volumes : list of Volume
    patch_size : (z, y, x)
    foreground_fraction : float
        Share of patches centred on a foreground voxel.
    augment : AugmentConfig, optional
        What to draw per patch (:class:`~subcell.labelfree.config.AugmentConfig`); None: plain patches.
    yx_isotropic : bool
        Quarter turns only when the y and x voxel sizes agree (and the patch is square).
    image_channels : int
        The leading input channels that are images (a model has one): gain, offset, inversion, blur and noise
        change only these; a cell-depth input after them moves with the patch and keeps its values.
    """

    def __init__(
        self,
        volumes: Sequence[Volume],
        patch_size: Sequence[int],
        *,
        foreground_fraction: float = 0.5,
        augment: AugmentConfig | None = None,
        yx_isotropic: bool = True,
        image_channels: int = 1,
    ) -> None:
        if not volumes:
            raise ValueRangeError("no training images", field="manifest")
        self.volumes = list(volumes)
        self.patch = tuple(int(p) for p in patch_size)
        self.fg_fraction = foreground_fraction
        self.augment = augment
        self.image_channels = image_channels
        self.rot_ok = yx_isotropic and self.patch[1] == self.patch[2]
        sizes = np.array(
            [np.prod([max(1, s - p + 1) for s, p in zip(v.shape, self.patch, strict=True)]) for v in volumes]
        )
        self.p_volume = sizes / sizes.sum()

    def draw(self, rng: np.random.Generator) -> PatchDraw:
        """Sample one patch's position and augmentation parameters."""
        vi = int(rng.choice(len(self.volumes), p=self.p_volume))
        vol = self.volumes[vi]
        use_fg = vol.foreground.size > 0 and rng.random() < self.fg_fraction
        if use_fg:
            centre = np.unravel_index(int(vol.foreground[rng.integers(vol.foreground.size)]), vol.shape)
            start = tuple(
                int(np.clip(c - p // 2, 0, s - p)) for c, p, s in zip(centre, self.patch, vol.shape, strict=True)
            )
        else:
            start = tuple(int(rng.integers(0, s - p + 1)) for p, s in zip(self.patch, vol.shape, strict=True))
        a = self.augment
        if a is None:
            return PatchDraw(vi, start)  # type: ignore[arg-type]
        draw = PatchDraw(
            vi,
            start,  # type: ignore[arg-type]
            flip_y=bool(a.flip_xy and rng.random() < 0.5),
            flip_x=bool(a.flip_xy and rng.random() < 0.5),
            flip_z=bool(a.flip_z and rng.random() < 0.5),
            rot90=int(rng.integers(4)) if (a.rotate90_xy and self.rot_ok) else 0,
            gain=float(1 + rng.uniform(-a.input_gain, a.input_gain)),
            offset=float(rng.uniform(-a.input_offset, a.input_offset)),
            # drawn last and only when switched on: runs without it keep their random stream
            invert=bool(a.invert_input and rng.random() < 0.5),
        )
        return dataclasses.replace(draw, **self._draw_degradations(rng, a, vol.shape, draw.start))  # type: ignore[arg-type]

    def _draw_degradations(
        self, rng: np.random.Generator, a: AugmentConfig, shape: tuple[int, ...], start: tuple[int, int, int]
    ) -> dict[str, object]:
        """Zoom, blur and noise of one patch, each drawn only when switched on (after every other draw)."""
        out: dict[str, object] = {}
        scale = a.scale
        if scale > 0:
            factor = float(np.exp(rng.uniform(-np.log1p(scale), np.log1p(scale))))
            spans = [p > 1 for p in self.patch]
            # one factor for every axis the patch spans, at most what the volume holds
            factor = min([factor] + [s / p for s, p, on in zip(shape, self.patch, spans, strict=True) if on])
            region = tuple(max(1, round(p * factor)) if on else p for p, on in zip(self.patch, spans, strict=True))
            if region != self.patch:
                centre = [st + p // 2 for st, p in zip(start, self.patch, strict=True)]
                out["start"] = tuple(
                    int(np.clip(c - r // 2, 0, s - r)) for c, r, s in zip(centre, region, shape, strict=True)
                )
                out["region"] = region
        blur = a.blur
        if blur > 0:
            out["blur"] = float(rng.uniform(0, blur))
        noise = a.noise
        if noise > 0:
            out["noise"] = float(rng.uniform(0, noise))
            out["noise_seed"] = int(rng.integers(2**31))
        return out

    def apply(self, d: PatchDraw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cut and augment the patch a :class:`PatchDraw` describes: (input, target, weight)."""
        vol = self.volumes[d.volume]
        size = d.region or self.patch
        sl = tuple(slice(s, s + p) for s, p in zip(d.start, size, strict=True))
        x = vol.input[(slice(None), *sl)]
        y = vol.target[(slice(None), *sl)]
        w = vol.weight[sl][None] if vol.weight is not None else np.ones((1, *size), np.float32)
        if d.region is not None:  # a zoom: the region resampled onto the patch as images onto the model grid
            from subcell.transforms.resample import resample, resample_linear

            grid = {
                "voxel_size": (1.0, 1.0, 1.0),
                "target_voxel_size": [r / p for r, p in zip(size, self.patch, strict=True)],
            }
            x, y = (resample_linear(v, **grid, out_shape=self.patch) for v in (x, y))  # type: ignore[arg-type]
            w = resample(w, **grid, labels=True)  # type: ignore[arg-type]  # nearest: the loss mask stays a mask
        arrays = [x, y, w]
        for axis, flag in ((-3, d.flip_z), (-2, d.flip_y), (-1, d.flip_x)):
            if flag:
                arrays = [np.flip(a, axis=axis) for a in arrays]
        if d.rot90:
            arrays = [np.rot90(a, k=d.rot90, axes=(-2, -1)) for a in arrays]
        x, y, w = (np.ascontiguousarray(a, dtype=np.float32) for a in arrays)
        # intensity changes are the microscope's: the image channels only, not a cell-depth input after them
        k = self.image_channels
        x, kept = (x, None) if k >= x.shape[0] else (x[:k], x[k:])
        if d.gain != 1.0 or d.offset != 0.0:
            x = x * d.gain + d.offset
        if d.invert:
            x = -x
        if d.blur > 0:
            from scipy.ndimage import gaussian_filter

            x = gaussian_filter(x, sigma=[0.0] + [d.blur if p > 1 else 0.0 for p in self.patch], mode="reflect")
        if d.noise > 0:
            x = x + np.random.default_rng(d.noise_seed).normal(0.0, d.noise, x.shape).astype(np.float32)
        if kept is not None:
            x = np.concatenate([x, kept])
        return x, y, w

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``size`` patches stacked: input ``(N, C_in, z, y, x)``, target ``(N, C_out, ...)``, weight ``(N, 1, ...)``."""
        parts = [self.apply(self.draw(rng)) for _ in range(size)]
        return tuple(np.stack([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]
