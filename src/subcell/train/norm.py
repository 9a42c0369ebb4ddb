"""Batch-norm running statistics recomputed for a network's final weights.

Weights that no single training step produced (an average of steps, a blend of a fine-tune with its initial model)
come with running statistics that are a mix of other weights' statistics. Izmailov et al. (2018, stochastic weight
averaging) recompute them with one pass over training data; ``torch.optim.swa_utils.update_bn`` does that pass, but
it runs the forward passes with gradients and without autocast (the activations of a 3D network's whole batch kept
for a backward pass that never comes, and statistics of fp32 activations where training saw bf16 ones), hence this
small loop with the same rule: reset the statistics, cumulative average (``momentum=None``), restore the momenta.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["batch_norm_layers", "recompute_norm_statistics"]


def batch_norm_layers(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers of ``model`` that keep running statistics."""
    return [
        m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def recompute_norm_statistics(
    model: torch.nn.Module,
    inputs: Iterable[torch.Tensor],
    *,
    device: torch.device,
    autocast: torch.dtype | None = None,
) -> int:
    """Replace every batch-norm layer's running mean and variance by their average over ``inputs``.

    Each element of ``inputs`` is one batch of network input; every batch counts equally (the cumulative average
    of the per-batch statistics, as in ``update_bn``). The model's weights are not touched, its train/eval mode is
    restored. Returns the number of batches used; with no batch-norm layer or no batch nothing changes and 0 is
    returned; a forward pass that raises leaves the statistics as they were.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    >>> recompute_norm_statistics(net, [torch.ones(2, 1, 8, 8) * 3], device=torch.device("cpu"))
    1
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    saved = [(m.momentum, {k: v.clone() for k, v in m.state_dict().items()}) for m in layers]
    was_training = model.training
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: each batch weighs the same
    model.train()
    n, done = 0, False
    try:
        with torch.no_grad():
            for x in inputs:
                with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                    model(x.to(device, non_blocking=True))
                n += 1
        done = n > 0
    finally:
        for m, (momentum, state) in zip(layers, saved, strict=True):
            m.momentum = momentum
            if not done:  # no batch, or a pass that failed: the statistics the model came with
                m.load_state_dict(state)
        model.train(was_training)
    return n
