"""``subcell labelfree train``: manifest → cached volumes → patches → a trained :class:`LabelFreeModel`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from subcell.errors import ValueRangeError
from subcell.image import VoxelSize
from subcell.labelfree.config import TrainConfig
from subcell.labelfree.data import PatchSampler, Volume, load_volumes, pad_to_patch, split_rows
from subcell.labelfree.model import PROBABILITY, LabelFreeModel
from subcell.labelfree.network import NetworkConfig
from subcell.train import autocast_dtype, fit
from subcell.train.history import History, StepInfo
from subcell.train.norm import recompute_norm_statistics
from subcell.train.run import checkpoint_dir, isolated_torch_state, run_key, start_run

__all__ = ["TrainResult", "checkpoint_dir", "lr_schedule", "resolve_network", "train_labelfree", "training_sampler"]


class TrainResult:
    """What training produced: the model, its folder, the history and a summary."""

    def __init__(self, model: LabelFreeModel, folder: Path | None, history: History, summary: dict[str, Any]) -> None:
        self.model = model
        self.folder = folder
        self.history = history
        self.summary = summary


def resolve_network(net: NetworkConfig, voxel_size: VoxelSize, *, two_d: bool) -> NetworkConfig:
    """Fix ``z_levels`` from the voxel anisotropy: the first levels stay in-plane until voxels are ~isotropic."""
    if two_d:
        return net.model_copy(update={"z_levels": 0})
    if net.z_levels is not None:
        return net
    if net.preset == "fnet":  # the paper's network is isotropic at every level
        return net.model_copy(update={"z_levels": net.depth})
    ratio = voxel_size.z / min(voxel_size.y, voxel_size.x)
    in_plane = max(0, round(math.log2(ratio))) if ratio > 1.4 else 0
    return net.model_copy(update={"z_levels": max(0, net.depth - in_plane)})


def lr_schedule(lr: float, iterations: int, schedule: str) -> Callable[[int, float], float]:
    """Constant, or a linear warm-up (5 % of the run, at most 100 steps) then cosine decay to 2 % of ``lr``.

    The run is over at ``iterations`` steps or when its time budget is spent, whichever comes first: the decay
    follows the larger of the two fractions (``budget_used``, from :func:`~subcell.train.fit`), so a run that
    ``max_minutes`` ends early still ends at the low rate instead of stopping at a nearly undecayed one. Without a
    time budget the rate depends on the step alone (the same numbers as before time budgets were followed).
    """

    def lr_at(step: int, budget_used: float = 0.0) -> float:
        if schedule == "constant":
            return lr
        warm = min(100, iterations // 20)
        if step <= warm and budget_used < 0.05:
            return lr * max(step / max(1, warm), budget_used / 0.05)
        t = max((step - warm) / max(1, iterations - warm), budget_used)
        return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    return lr_at


def _loss(
    uncertainty: bool, n_targets: int, kind: str = "mse"
) -> Callable[[torch.Tensor, tuple[torch.Tensor, ...]], torch.Tensor]:
    """The training loss over the voxels of weight ``w`` (the loss mask): squared error, Gaussian NLL with a
    predicted log-variance, or (``bce_dice``, mask targets in [0, 1], ``out`` logits) binary cross-entropy plus a
    soft Dice over the whole batch per target (nnU-Net's pairing: the cross-entropy's voxel-wise gradient and the
    Dice's balance of small foregrounds; summed over the batch, a patch without foreground adds no 0/0)."""

    def loss_fn(out: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        _, y, w = batch
        denom = (w.sum() * n_targets).clamp_min(1.0)
        if kind == "bce_dice":
            out = out.float()
            bce = torch.nn.functional.binary_cross_entropy_with_logits(out, y, reduction="none")
            p = torch.sigmoid(out) * w
            axes = [a for a in range(out.ndim) if a != 1]
            overlap = (p * y).sum(axes)
            soft_dice = (2 * overlap + 1) / (p.sum(axes) + (y * w).sum(axes) + 1)
            return (bce * w).sum() / denom + (1 - soft_dice).mean()
        if not uncertainty:
            return ((out - y) ** 2 * w).sum() / denom
        mean, logvar = out[:, :n_targets], out[:, n_targets:].clamp(-10, 10)
        nll = 0.5 * (logvar + (mean - y) ** 2 * torch.exp(-logvar))
        return (nll * w).sum() / denom

    return loss_fn


def patch_validator(
    volumes: list[Volume],
    patch: tuple[int, int, int],
    targets: list[str],
    *,
    seed: int,
    n_patches: int,
    batch_size: int,
    foreground_fraction: float,
    uncertainty: bool,
    device: torch.device,
    dtype: torch.dtype | None,
    loss: str = "mse",
) -> Callable[[torch.nn.Module], dict[str, float]] | None:
    """Fixed validation patches (drawn once from ``seed``, no augmentation): loss and Pearson r per target."""
    if not volumes:
        return None
    sampler = PatchSampler(volumes, patch, foreground_fraction=foreground_fraction, augment=None)
    x, y, w = sampler.batch(np.random.default_rng(seed), n_patches)
    loss_fn = _loss(uncertainty, len(targets), loss)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        model.eval()
        outs = []
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            for i in range(0, len(x), max(1, batch_size)):
                outs.append(model(torch.from_numpy(x[i : i + batch_size]).to(device)).float().cpu())
        out = torch.cat(outs)
        metrics = {"val_loss": float(loss_fn(out, (torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(w))))}
        from subcell.metrics.intensity import pearson

        for j, name in enumerate(targets):
            metrics[f"val_r_{name}"] = pearson(out[:, j].numpy(), y[:, j], mask=w[:, 0] > 0)
        return metrics

    return validate


def _initial_model(config: TrainConfig, say: Callable[[str], None]) -> LabelFreeModel | None:
    """The model fine-tuning starts from (``init``), after checking it agrees with the config."""
    if config.init is None:
        return None
    from subcell.labelfree.pretrained import load_model

    init = load_model(config.init)
    if config.voxel_size is not None and not VoxelSize(*config.voxel_size).isclose(init.voxel_size):
        raise ValueRangeError(
            f"voxel_size {tuple(config.voxel_size)} contradicts the initial model {config.init!r} "
            f"({init.voxel_size.as_tuple()} µm); leave voxel_size unset and the training images are resampled to it",
            field="voxel_size",
        )
    if init.uncertainty != config.uncertainty:
        raise ValueRangeError(
            f"uncertainty={config.uncertainty} but the initial model {config.init!r} has uncertainty={init.uncertainty}",
            field="uncertainty",
        )
    if init.cell_conditioned != (config.cells is not None):
        raise ValueRangeError(
            f"the initial model {config.init!r} "
            + ("takes the cell outlines as a second input; name the manifest's cell-label column with cells "
               "(e.g. cells: mask_cell)" if init.cell_conditioned else
               "takes no cell outlines; cells applies to a model conditioned on them (from scratch or from one)"),
            field="cells",
        )  # fmt: skip
    if config.norm_statistics == "frozen" and init.network_config.norm != "batch":
        raise ValueRangeError(
            f"norm_statistics: frozen, but the initial model {config.init!r} has {init.network_config.norm!r} "
            "normalization, no batch-norm statistics to keep",
            field="norm_statistics",
        )
    say(
        f"fine-tuning from {config.init} ({init.network_config.preset}, targets {init.targets}); training images are "
        f"resampled to its voxel size {init.voxel_size.as_tuple()} µm"
    )
    return init


def _transfer(init: LabelFreeModel, model: LabelFreeModel, say: Callable[[str], None]) -> list[int]:
    """Copy every weight of ``init`` into ``model``; output channels are matched by target name (a target the
    initial model lacks starts from a fresh output channel). Returns the head's fresh output rows."""
    state = init.network.state_dict()
    own = model.network.state_dict()
    head = {k for k in own if k.startswith("head.")}
    own.update({k: v for k, v in state.items() if k not in head})
    reused = [t for t in model.targets if t in init.targets]
    n, n_init = len(model.targets), len(init.targets)
    # a head row per target, and with uncertainty a second block of rows (the log-variances) in the same order
    blocks = (0, 1) if model.uncertainty else (0,)
    fresh = [b * n + j for b in blocks for j, t in enumerate(model.targets) if t not in init.targets]
    for key in head:
        for b in blocks:
            for j, t in enumerate(model.targets):
                if t in init.targets:
                    own[key][b * n + j] = state[key][b * n_init + init.targets.index(t)]
    model.network.load_state_dict(own)
    new = [t for t in model.targets if t not in init.targets]
    say(f"reused the output channel(s) {reused or 'none'}" + (f"; new output channel(s) {new}" if new else ""))
    return fresh


def interpolate_weights(
    start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], a: float, *, fresh_head_rows: Sequence[int] = ()
) -> dict[str, torch.Tensor]:
    """``(1 - a) * start + a * end`` for every floating-point tensor of a state dict (weights and batch-norm
    statistics; counters keep ``end``'s): the weight-space ensemble of a fine-tune with its initial model
    (WiSE-FT, Wortsman et al. 2022). Output rows of the head that the initial model did not have keep ``end``'s."""
    out = {}
    for k, v in end.items():
        if not v.is_floating_point():
            out[k] = v
            continue
        mixed = (1 - a) * start[k].to(v) + a * v
        if k.startswith("head.") and fresh_head_rows:
            mixed[list(fresh_head_rows)] = v[list(fresh_head_rows)]
        out[k] = mixed
    return out


def _param_groups(network: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Encoder (contracting path and bottleneck) and decoder parameters, for freezing and layer-wise rates."""
    enc_names = ("encoders.", "downs.", "bottleneck.")
    enc = [p for n, p in network.named_parameters() if n.startswith(enc_names)]
    dec = [p for n, p in network.named_parameters() if not n.startswith(enc_names)]
    if cfg.freeze_encoder:
        for p in enc:
            p.requires_grad_(False)
        return [{"params": dec, "lr_scale": 1.0}]
    return [{"params": enc, "lr_scale": cfg.encoder_lr_scale}, {"params": dec, "lr_scale": 1.0}]


def training_sampler(volumes: Sequence[Volume], cfg: TrainConfig, voxel_size: VoxelSize) -> PatchSampler:
    """The training patches of ``cfg`` from ``volumes`` (padded to the patch, on the model's grid ``voxel_size``):
    its patch size, foreground fraction and augmentation; 90° turns only where y and x have the same voxel size."""
    yx_iso = math.isclose(voxel_size.y, voxel_size.x, rel_tol=1e-3)
    return PatchSampler(volumes, cfg.patch_size, foreground_fraction=cfg.foreground_fraction,
                        augment=cfg.augment, yx_isotropic=yx_iso)  # fmt: skip


@isolated_torch_state
def train_labelfree(
    config: TrainConfig,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train a label-free model as ``config`` says and save it to ``config.output`` (rank 0).

    ``stop_after`` interrupts the run after that many steps as if it were killed (to test exact resume).
    """
    from subcell.io import read_manifest

    out = Path(config.output)
    setup = start_run(out, overwrite=config.overwrite, threads=config.threads, device=config.device,
                      seed=config.seed, on_message=on_message)  # fmt: skip
    device, ctx, rng, say = setup.device, setup.ctx, setup.rng, setup.say

    manifest = read_manifest(config.manifest)
    train_rows, val_rows = split_rows(
        list(manifest), val_fraction=config.val_fraction, rng=np.random.default_rng(config.seed)
    )
    if not train_rows:
        raise ValueRangeError("the manifest has no training rows (split 'train' or empty)", field="split")
    if config.keep == "best" and not val_rows:
        raise ValueRangeError(
            "keep: best needs validation images (rows with split 'val', or val_fraction > 0 with at least two "
            "images); none were found",
            path=config.manifest,
            field="keep",
        )
    t0 = time.perf_counter()
    vs = VoxelSize(*config.voxel_size) if config.voxel_size else None
    init = _initial_model(config, say)
    if init is not None:
        vs = init.voxel_size
    probability = config.loss == "bce_dice"  # mask targets kept in [0, 1]; the model predicts probabilities
    volumes, model_vs, targets, in_name = load_volumes(
        train_rows, input_channel=config.input_channel, targets=config.targets, voxel_size=vs,
        mask_column=config.loss_mask, binarize_targets=config.binarize_targets,
        probability_targets=probability, cells_column=config.cells,
    )  # fmt: skip
    two_d = all(v.shape[0] == 1 for v in volumes)
    if init is not None and init.is_2d != two_d:
        raise ValueRangeError(
            f"the initial model {config.init} is {'2D' if init.is_2d else '3D'} but the training images are "
            f"{'2D' if two_d else '3D'}; pick a {'2D' if two_d else '3D'} model",
            field="init",
        )
    patch = (1, *config.patch_size[1:]) if two_d else config.patch_size
    cfg = config.model_copy(update={"patch_size": patch})
    val_volumes: list[Volume] = []
    if val_rows:
        val_volumes, _, _, _ = load_volumes(
            val_rows, input_channel=in_name, targets=targets, voxel_size=model_vs, mask_column=config.loss_mask,
            binarize_targets=config.binarize_targets, probability_targets=probability, cells_column=config.cells,
        )  # fmt: skip
    small = [v.name for v in [*volumes, *val_volumes] if any(s < p for s, p in zip(v.shape, patch, strict=True))]
    if small:
        say(f"padded {len(small)} image(s) smaller than the patch {patch} (no loss in the padding): {', '.join(small)}")
    volumes = [pad_to_patch(v, patch) for v in volumes]
    val_volumes = [pad_to_patch(v, patch) for v in val_volumes]
    load_s = time.perf_counter() - t0
    say(
        f"loaded {len(volumes)} training and {len(val_volumes)} validation images at {model_vs.as_tuple()} µm "
        f"in {load_s:.1f} s ({sum(v.input.nbytes + v.target.nbytes for v in volumes) / 1e6:.0f} MB cached)"
    )
    net_cfg = init.network_config if init is not None else resolve_network(cfg.network, model_vs, two_d=two_d)
    div = net_cfg.divisor()
    if any(p % d for p, d in zip(patch, div, strict=True)):
        raise ValueRangeError(
            f"patch_size {patch} must be a multiple of {div} for a depth-{net_cfg.depth} network "
            f"({net_cfg.z_levels} levels downsample z)",
            field="patch_size",
        )
    if cfg.recompute_norm_statistics and net_cfg.norm != "batch":
        raise ValueRangeError(
            f"recompute_norm_statistics: the network has {net_cfg.norm!r} normalization, no batch-norm statistics "
            "to recompute",
            field="recompute_norm_statistics",
        )
    model = LabelFreeModel.create(
        net_cfg, input_channel=in_name, targets=targets, voxel_size=model_vs, uncertainty=cfg.uncertainty,
        patch_size=patch, cell_conditioned=config.cells is not None,
    )  # fmt: skip
    if probability:  # the network's outputs are logits; prediction writes their sigmoid
        model.normalization["target"] = PROBABILITY
    start: dict[str, torch.Tensor] | None = None
    fresh: list[int] = []
    if init is not None:
        fresh = _transfer(init, model, say)
        if cfg.interpolate_init is not None:
            start = {k: v.detach().clone() for k, v in model.network.state_dict().items()}
    model.network.to(device)
    sampler = training_sampler(volumes, cfg, model_vs)
    dtype = autocast_dtype(device, cfg.precision)
    optimizer = torch.optim.Adam(
        _param_groups(model.network, cfg), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )

    lr_at = lr_schedule(cfg.lr, cfg.iterations, cfg.lr_schedule)

    def sample_batch(r: np.random.Generator) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(a) for a in sampler.batch(r, cfg.batch_size))

    n_params = sum(p.numel() for p in model.network.parameters())
    say(
        f"network {net_cfg.preset}: depth {net_cfg.depth}, {net_cfg.base_channels} base channels, "
        f"{net_cfg.block} blocks, {net_cfg.norm} norm, z_levels {net_cfg.z_levels}, {n_params / 1e6:.2f} M parameters; "
        f"device {device}, precision {dtype or 'fp32'}, {ctx.world_size} process(es)"
    )
    validate = patch_validator(
        val_volumes,
        patch,
        targets,
        seed=cfg.seed + 7919,
        n_patches=cfg.val_patches,
        batch_size=cfg.batch_size,
        foreground_fraction=cfg.foreground_fraction,
        uncertainty=cfg.uncertainty,
        device=device,
        dtype=dtype,
        loss=cfg.loss,
    )
    history = fit(
        model.network,
        optimizer,
        sample_batch=sample_batch,
        loss_fn=_loss(cfg.uncertainty, len(targets), cfg.loss),
        iterations=cfg.iterations,
        rng=rng,
        device=device,
        autocast=dtype,
        checkpoint_dir=checkpoint_dir(out),
        checkpoint_every=cfg.checkpoint_every,
        resume=cfg.resume,
        run_key=run_key(cfg),
        validate=validate,
        validate_every=cfg.validate_every,
        on_step=on_step,
        ctx=ctx,
        stop_after=stop_after,
        lr_at=lr_at,
        max_seconds=cfg.max_minutes * 60 if cfg.max_minutes else None,
        keep_best="val_loss" if cfg.keep == "best" else None,
        average_from=cfg.average_from,
        freeze_norm_statistics=cfg.norm_statistics == "frozen",
        prefetch=cfg.prefetch,
    )
    final: dict[str, Any] = {}  # what changed the weights after the last step, validated again below
    if start is not None and cfg.interpolate_init is not None and not history.interrupted:
        a = cfg.interpolate_init
        model.network.load_state_dict(interpolate_weights(start, model.network.state_dict(), a, fresh_head_rows=fresh))
        say(f"ended with the weights {1 - a:g} × initial + {a:g} × fine-tuned (interpolate_init)")
        final["blended"] = a
    if cfg.recompute_norm_statistics and not history.interrupted and history.train:
        # the same batches on every rank (own seed), so the ranks' statistics stay equal
        r_norm = np.random.default_rng(cfg.seed + 104_729)
        batches = (sample_batch(r_norm)[0] for _ in range(cfg.recompute_norm_statistics))
        n = recompute_norm_statistics(model.network, batches, device=device, autocast=dtype)
        say(f"recomputed the batch-norm statistics of the final weights from {n} training batches")
        final["norm_statistics_recomputed"] = n
    if final and validate is not None and ctx.is_main and history.train:  # the model card's numbers: final weights
        history.validation.append({"step": history.train[-1]["step"], **validate(model.network), **final})
    steps = history.train[-1]["step"] if history.train else 0
    seconds = history.train[-1]["seconds"] if history.train else 0.0
    summary: dict[str, Any] = {
        "steps": steps,
        "seconds": seconds,
        "final_loss": float(np.mean([h["loss"] for h in history.train[-20:]])) if history.train else None,
        "validation": history.validation[-1] if history.validation else None,
        "kept": history.best if cfg.keep == "best" else "last",
        "averaged": history.averaged,  # with average_from: the steps whose weights the model is the mean of
        "interpolated_init": cfg.interpolate_init,  # the fine-tune's share of the final weights (None: all of them)
        "norm_statistics_recomputed": final.get("norm_statistics_recomputed"),  # training batches, None: not done
        "device": str(device),
        "precision": str(dtype or "fp32"),
        "world_size": ctx.world_size,
        "ranks_in_sync": history.in_sync,
        "load_seconds": load_s,
        "train_images": [v.name for v in volumes],
        "val_images": [v.name for v in val_volumes],
        "target_mean": np.mean([v.target_mean for v in volumes], axis=0).tolist(),
        "target_std": np.mean([v.target_std for v in volumes], axis=0).tolist(),
    }
    model.training = summary
    model.config = cfg.model_copy(update={"network": net_cfg}).model_dump(mode="json")
    folder = None
    if ctx.is_main and not history.interrupted:
        from subcell.labelfree.figures import training_curve_png

        csv = history.to_csv().encode()
        folder = model.save(
            out,
            overwrite=cfg.overwrite,
            extra_files={"metrics.csv": csv, "training_curve.png": training_curve_png(history)},
        )
    ctx.barrier()
    ctx.close()
    return TrainResult(model, folder, history, summary)
