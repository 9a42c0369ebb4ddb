"""Batch-norm statistics recomputed for final weights (``subcell.train.norm``)."""

from __future__ import annotations

import pytest
import torch

from subcell.train.norm import recompute_norm_statistics

CPU = torch.device("cpu")


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.BatchNorm3d(3), torch.nn.Conv3d(3, 2, 1), torch.nn.BatchNorm3d(2, momentum=0.3))
    net.train()
    for _ in range(3):  # statistics of other data, to be replaced
        net(torch.randn(2, 3, 4, 5, 6) * 5 + 2)
    return net.eval()


def test_statistics_are_the_average_of_the_batches_statistics() -> None:
    net = _net()
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "tracked" not in k}
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(3, 3, 4, 5, 6, generator=g) * (i + 1) - i for i in range(4)]
    assert recompute_norm_statistics(net, iter(batches), device=CPU) == 4
    bn = net[0]
    means = torch.stack([b.mean(dim=(0, 2, 3, 4)) for b in batches])
    variances = torch.stack([b.var(dim=(0, 2, 3, 4), unbiased=True) for b in batches])
    torch.testing.assert_close(bn.running_mean, means.mean(0))  # every batch weighs the same
    torch.testing.assert_close(bn.running_var, variances.mean(0))
    assert int(bn.num_batches_tracked) == 4
    assert bn.momentum == 0.1 and net[2].momentum == 0.3  # momenta restored
    assert not net.training  # mode restored
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights.items())  # weights untouched
    # the second layer's statistics are those of the first layer's output with the new statistics in train mode
    # (as the forward passes saw it), averaged over the batches alike
    outs = []
    with torch.no_grad():
        for b in batches:
            x = torch.nn.functional.batch_norm(b, None, None, bn.weight, bn.bias, training=True)
            outs.append(net[1](x))
    torch.testing.assert_close(net[2].running_mean, torch.stack([o.mean(dim=(0, 2, 3, 4)) for o in outs]).mean(0))


def test_no_batch_or_a_failing_pass_keeps_the_statistics() -> None:
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert recompute_norm_statistics(net, [], device=CPU) == 0
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())

    def batches():  # one good batch, then one the network cannot take
        yield torch.randn(2, 3, 4, 5, 6)
        yield torch.randn(2, 5, 4, 5, 6)

    with pytest.raises(RuntimeError):
        recompute_norm_statistics(net, batches(), device=CPU)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    assert net[0].momentum == 0.1 and not net.training
    assert recompute_norm_statistics(torch.nn.Conv3d(1, 1, 1), [torch.ones(1, 1, 2, 2, 2)], device=CPU) == 0
