"""``subcell labelfree pretrain``: a label-free model trained on a stream of new, domain-randomized synthetic fields.

Synthetic fields carry no data license, so what is trained here can ship with the package. Field ``k`` of a run
is generated from the seed ``(seed, k)`` with everything a microscope varies drawn anew
(:mod:`subcell.synth.randomize`), so no field is seen twice and the model cannot learn one instrument. The
stream is a pure function of the step: a resumed run regenerates exactly the fields it would have had.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from subcell.errors import SubcellError
from subcell.image import VoxelSize
from subcell.labelfree.config import PretrainConfig
from subcell.labelfree.data import PatchSampler, Volume
from subcell.labelfree.model import LabelFreeModel
from subcell.labelfree.train import (
    TrainResult,
    _loss,
    checkpoint_dir,
    lr_schedule,
    patch_validator,
    resolve_network,
)
from subcell.process_pool import SpawnPool
from subcell.train import autocast_dtype, fit
from subcell.train.history import StepInfo
from subcell.train.run import isolated_torch_state, run_key, start_run

if TYPE_CHECKING:
    from subcell.synth.config import SynthConfig
    from subcell.synth.randomize import Randomization

__all__ = ["FieldStream", "draw_field", "pretrain_labelfree", "synthetic_volume"]


def _zscore(a: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = a.mean(axis=axes, keepdims=True)
    sd = a.std(axis=axes, keepdims=True)
    return ((a - mean) / np.where(sd > 0, sd, 1)).astype(np.float32), mean, sd


def draw_field(cfg: PretrainConfig, key: tuple[int, ...]) -> tuple[SynthConfig, np.random.Generator, Randomization]:
    """The randomized generator config of stream field ``key``, the random generator positioned after that draw
    (the camera response draws next) and the :class:`~subcell.synth.randomize.Randomization` in force."""
    from subcell.synth.randomize import Randomization, randomized_config

    rnd = Randomization().without(*(k for k, on in cfg.randomization.items() if not on))
    rng = np.random.default_rng([cfg.seed, 0x9E, *key])
    scfg = randomized_config(rng, extent_um=cfg.field_um, seed=int(rng.integers(2**31)), randomization=rnd)
    return scfg, rng, rnd


def synthetic_volume(cfg: PretrainConfig, key: tuple[int, ...]) -> Volume:
    """One randomized synthetic field at the model's voxel size, as a training :class:`Volume`.

    Input: the bright-field stack after the randomized camera response, z-scored (per plane for 2D models,
    which see one plane at a time); with ``cfg.cells`` a second channel, each voxel's depth in its cell
    (:func:`~subcell.labelfree.cell_prior.cell_depth`) with a share ``cfg.drop_cells`` of the cells left out, as a
    user's partial segmentation leaves them. Targets: noise-free fluorescence of structures, or 0/1 masks for
    ``nucleus`` / ``cell``, z-scored the same way. Patches are centred in cells (the foreground).
    """
    from subcell.synth import synth_field
    from subcell.synth.randomize import camera_response
    from subcell.transforms.resample import resample_linear

    scfg, rng, rnd = draw_field(cfg, key)
    field = synth_field(scfg)
    image = field.image
    bf = camera_response(image.channel("brightfield").numpy()[0, 0], rng, randomization=rnd)
    ys = []
    for t in cfg.targets:
        if t in ("nucleus", "cell"):
            ys.append((field.labels[t][0] > 0).astype(np.float32))
        else:
            ys.append(image.channel(f"{t}_noise_free").numpy()[0, 0].astype(np.float32))
    cell = (field.labels["cell"][0] > 0).astype(np.float32)
    depth = [_kept_cell_depth(np.asarray(field.labels["cell"][0]), scfg.voxel_size, cfg, key)] if cfg.cells else []
    src_vs = VoxelSize(*scfg.voxel_size)
    model_vs = VoxelSize(scfg.voxel_size[0], *cfg.voxel_size[1:]) if cfg.two_d else VoxelSize(*cfg.voxel_size)
    stack = np.stack([bf, *depth, *ys, cell])
    if not src_vs.isclose(model_vs):
        stack = resample_linear(stack, voxel_size=src_vs, target_voxel_size=model_vs)
    axes = (2, 3) if cfg.two_d else (1, 2, 3)
    n_in = 1 + len(depth)
    x, _, _ = _zscore(stack[:1], axes)
    if depth:
        x = np.concatenate([x, stack[1:n_in].astype(np.float32)])  # the depth as it is: 0 outside, 1 at the centre
    y, mean, sd = _zscore(stack[n_in:-1], axes)
    fg = np.flatnonzero(stack[-1] > 0.5)
    return Volume(
        name=f"synthetic{'-'.join(map(str, key))}", input=x, target=y, weight=None, foreground=fg,
        target_mean=mean.reshape(len(ys), -1).mean(axis=1), target_std=sd.reshape(len(ys), -1).mean(axis=1),
    )  # fmt: skip


def _kept_cell_depth(labels: np.ndarray, voxel_size: tuple[float, float, float], cfg: PretrainConfig,
                     key: tuple[int, ...]) -> np.ndarray:  # fmt: skip
    """The cell-depth input of a generated field: every cell's depth, with a share ``cfg.drop_cells`` of the cells
    (drawn from the field's key, so the stream stays a function of the step) set to 0 as unlabelled."""
    from subcell.labelfree.cell_prior import cell_depth

    labels = labels.astype(np.int32, copy=False)
    depth = cell_depth(labels, voxel_size)
    ids = np.unique(labels[labels > 0])
    dropped = ids[np.random.default_rng([cfg.seed, 0xD0, *key]).random(ids.size) < cfg.drop_cells]
    depth[np.isin(labels, dropped)] = 0
    return depth


def _worker_died() -> SubcellError:
    return SubcellError(
        "a field-generating worker process ended abruptly (out of memory, or a script without the "
        '`if __name__ == "__main__":` guard that spawned workers need); use fewer workers or 0',
        field="field_workers",
    )


class FieldStream:
    """Batches from the ``pool`` most recent fields; field ``k`` serves steps ``k·fields_every …``.

    ``start`` is the step a resumed run continues from, so the fields are the ones the interrupted run had.
    With ``cfg.field_workers`` > 0, that many processes generate the next fields while the network trains
    (a field takes seconds on one core, a GPU step milliseconds: generation, not the network, bounds a GPU run).
    A field is a pure function of its key, so a field made in a worker equals the one made here, and the run is
    the same. ``last`` is the last field the run will use (none is made beyond it). Use it as a context manager
    (or call :meth:`close`) so the workers end with the run.
    """

    def __init__(
        self, cfg: PretrainConfig, patch: tuple[int, int, int], *, start: int = 0, last: int | None = None
    ) -> None:
        self.cfg = cfg
        self.patch = patch
        self.calls = start
        self.cache: dict[int, Volume] = {}
        self.generated = 0
        self.from_workers = 0
        self.last = last
        self.pending: dict[tuple[int, ...], Future[Volume]] = {}
        self.workers: SpawnPool | None = None
        if cfg.field_workers:
            self.workers = SpawnPool(cfg.field_workers)
            self._ahead(start // cfg.fields_every)

    def _submit(self, key: tuple[int, ...]) -> None:
        if self.workers is not None and key not in self.pending:
            try:
                self.pending[key] = self.workers.submit(synthetic_volume, self.cfg, key)
            except BrokenProcessPool as exc:
                raise _worker_died() from exc

    def _ahead(self, k: int) -> None:
        """Keep the workers busy on the fields from ``k`` on (one each)."""
        assert self.workers is not None
        end = k + self.cfg.field_workers if self.last is None else min(k + self.cfg.field_workers, self.last + 1)
        for j in range(k, end):
            if j not in self.cache:
                self._submit((j,))

    def make(self, key: tuple[int, ...]) -> Volume:
        """The field of ``key``: from a worker when one has it (or can make it), else made here."""
        fut = self.pending.pop(key, None)
        if fut is None:
            return synthetic_volume(self.cfg, key)
        self.from_workers += 1
        try:
            return fut.result()
        except BrokenProcessPool as exc:
            raise _worker_died() from exc

    def make_many(self, keys: list[tuple[int, ...]]) -> list[Volume]:
        """Several fields at once, on the workers when there are any."""
        for key in keys:
            self._submit(key)
        return [self.make(key) for key in keys]

    def volume(self, k: int) -> Volume:
        if k not in self.cache:
            self.cache[k] = self.make((k,))
            self.generated += 1
        if self.workers is not None:
            self._ahead(k + 1)
        return self.cache[k]

    def __enter__(self) -> FieldStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the workers. Fields still queued are cancelled; a worker in the middle of a field (seconds to a
        minute for a large one) is terminated rather than waited for: nothing it would make is needed any more."""
        if self.workers is None:
            return
        if any(not f.done() for f in self.pending.values()):
            self.workers.terminate_workers()
        else:
            self.workers.shutdown(wait=True, cancel_futures=True)
        self.workers = None
        self.pending.clear()

    def batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        cfg = self.cfg
        k = self.calls // cfg.fields_every
        self.calls += 1
        ids = list(range(max(0, k - cfg.pool + 1), k + 1))
        for old in [i for i in self.cache if i not in ids]:
            del self.cache[old]
        vols = [self.volume(i) for i in ids]
        sampler = PatchSampler(vols, self.patch, foreground_fraction=cfg.foreground_fraction, augment=cfg.augment)
        return tuple(torch.from_numpy(a) for a in sampler.batch(rng, cfg.batch_size))


def _resume_step(folder: Path, resume: bool) -> int:
    meta = folder / "checkpoint.json"
    if not (resume and meta.exists()):
        return 0
    return int(json.loads(meta.read_text())["step"])


@isolated_torch_state
def pretrain_labelfree(
    config: PretrainConfig,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Pretrain a label-free model on generated fields and save it to ``config.output``."""
    from subcell import __version__

    cfg = config
    out = Path(cfg.output)
    setup = start_run(out, overwrite=cfg.overwrite, threads=cfg.threads, device=cfg.device, seed=cfg.seed,
                      on_message=on_message)  # fmt: skip
    model_vs = VoxelSize(*cfg.voxel_size)
    patch = (1, *cfg.patch_size[1:]) if cfg.two_d else cfg.patch_size
    net_cfg = resolve_network(cfg.network, model_vs, two_d=cfg.two_d)
    div = net_cfg.divisor()
    if any(p % d for p, d in zip(patch, div, strict=True)):
        from subcell.errors import ValueRangeError

        raise ValueRangeError(f"patch_size {patch} must be a multiple of {div}", field="patch_size")
    model = LabelFreeModel.create(net_cfg, input_channel="brightfield", targets=list(cfg.targets),
                                  voxel_size=model_vs, patch_size=patch, cell_conditioned=cfg.cells)  # fmt: skip
    device, ctx, rng, say = setup.device, setup.ctx, setup.rng, setup.say
    model.network.to(device)
    dtype = autocast_dtype(device, cfg.precision)
    optimizer = torch.optim.Adam(model.network.parameters(), lr=cfg.lr)
    ckpt = checkpoint_dir(out)
    iterations = cfg.stop_at or cfg.iterations
    last_field = (iterations - 1) // cfg.fields_every
    # the workers (if any) live for the validation fields and the training steps, and are gone before saving
    with FieldStream(cfg, patch, start=_resume_step(ckpt, cfg.resume), last=last_field) as stream:
        t0 = time.perf_counter()
        validate = patch_validator(
            stream.make_many([(10**6 + i,) for i in range(cfg.val_fields)]), patch, list(cfg.targets),
            seed=cfg.seed + 7919, n_patches=cfg.val_patches, batch_size=cfg.batch_size,
            foreground_fraction=cfg.foreground_fraction, uncertainty=False, device=device, dtype=dtype,
        )  # fmt: skip
        assert validate is not None
        say(
            f"pretraining {net_cfg.preset} ({sum(p.numel() for p in model.network.parameters()) / 1e6:.2f} M "
            f"parameters, {'2D' if cfg.two_d else '3D'}) on synthetic fields of {cfg.field_um} µm at "
            f"{model_vs.as_tuple()} µm; targets {cfg.targets}; validation fields made in {time.perf_counter() - t0:.0f} s"
        )
        history = fit(
            model.network, optimizer, sample_batch=stream.batch, loss_fn=_loss(False, len(cfg.targets)),
            iterations=iterations, rng=rng, device=device, autocast=dtype, checkpoint_dir=ckpt,
            checkpoint_every=cfg.checkpoint_every, resume=cfg.resume, validate=validate,
            validate_every=cfg.validate_every, on_step=on_step, ctx=ctx, stop_after=stop_after,
            lr_at=lr_schedule(cfg.lr, cfg.iterations, cfg.lr_schedule), run_key=run_key(cfg),
            max_seconds=cfg.max_minutes * 60 if cfg.max_minutes else None, average_from=cfg.average_from,
            prefetch=cfg.prefetch,
        )  # fmt: skip
    steps = history.train[-1]["step"] if history.train else 0
    summary: dict[str, Any] = {
        "data": "synthetic (subcell.synth, domain-randomized; no data license applies)",
        "generator_version": __version__,
        "steps": steps,
        "seconds": history.train[-1]["seconds"] if history.train else 0.0,
        "fields_generated": stream.generated,
        "fields_from_workers": stream.from_workers,  # training and validation fields made by field_workers
        "final_loss": float(np.mean([h["loss"] for h in history.train[-20:]])) if history.train else None,
        "validation": history.validation[-1] if history.validation else None,
        # the weights are the mean of this many steps' (from step "from" on); None: the last step's weights
        "averaged": history.averaged,
        "device": str(device),
        "precision": str(dtype or "fp32"),
        # a target's normalisation on a real image is unknown; 0/1 masks are thresholded at 0.5 of this scale
        "target_mean": [0.0] * len(cfg.targets),
        "target_std": [1.0] * len(cfg.targets),
    }
    model.training = summary
    model.config = {"pretrain": cfg.model_copy(update={"network": net_cfg}).model_dump(mode="json")}
    folder = None
    if ctx.is_main and not history.interrupted:
        from subcell.labelfree.figures import training_curve_png

        folder = model.save(out, overwrite=cfg.overwrite, extra_files={
            "metrics.csv": history.to_csv().encode(), "training_curve.png": training_curve_png(history)})  # fmt: skip
    ctx.barrier()
    ctx.close()
    return TrainResult(model, folder, history, summary)
