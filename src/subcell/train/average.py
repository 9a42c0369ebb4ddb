"""The running average of a model's weights over the last part of a run (``fit(average_from=)``)."""

from __future__ import annotations

import warnings

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """Uniform running average of a model's floating-point state from step ``start`` on (``fit(average_from=)``).

    ``start`` is a step (int >= 1) or a fraction of the run (float in (0, 1)): averaging then begins at the first
    step at which the run is that far along, by its steps or by its time budget, whichever ends it first (as the
    cosine schedule follows it): a time-budgeted run makes a machine-dependent number of steps, so a fixed step
    averages most of the run on a fast machine and none of it on a slow one. The step it began at is recorded
    (``History.average_start``), so a resumed run averages the same steps.

    A dict of tensors rather than ``torch.optim.swa_utils.AveragedModel``: that one deep-copies the module and keeps
    its count in a buffer, while the checkpoint already stores named dicts of tensors (as for ``keep_best``) and the
    count follows from the step, so resuming needs nothing else. Integer buffers (batch counts) keep the last value.
    """

    def __init__(self, start: int | float | None, iterations: int = 0) -> None:
        fraction = isinstance(start, float)
        if start is not None and not (0 < start < 1 if fraction else start >= 1):
            raise ValueError(f"average_from must be a step >= 1 or a fraction of the run in (0, 1), got {start}")
        self.requested = start  # as given: a step, a fraction, or None (no averaging)
        self.fraction = start if isinstance(start, float) else None
        self.start = None if isinstance(start, float) else start
        self.iterations = iterations
        self.state: dict[str, torch.Tensor] = {}

    @property
    def pending(self) -> bool:
        """A fractional start not fixed yet (:meth:`begin` is asked after each step until it is)."""
        return self.fraction is not None and self.start is None

    def begin(self, step: int, budget_used: float) -> None:
        """Fix a pending fractional start at ``step`` once the run is that far along (``budget_used``: the fraction
        of a time budget spent, the same on every rank)."""
        assert self.fraction is not None
        if max(step / max(1, self.iterations), budget_used) >= self.fraction:
            self.start = step

    def add(self, model: torch.nn.Module, step: int) -> None:
        if self.start is None or step < self.start:
            return
        n = step - self.start + 1  # weights averaged so far, this step's included
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if n == 1 or k not in self.state or not v.is_floating_point():
                    self.state[k] = v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype,
                                                  copy=True)  # fmt: skip
                else:
                    self.state[k] += (v.detach().to("cpu", torch.float32) - self.state[k]) / n

    def load_into(self, model: torch.nn.Module, step: int) -> dict[str, int] | None:
        """Put the average of the steps up to ``step`` into ``model``; returns ``{"from", "steps"}`` (what
        ``History.averaged`` records), ``None`` without averaging. A run that ended before ``start`` keeps its last
        weights, with a warning: a time budget can end a run early, and the weights must not change meaning silently.
        """
        if self.requested is None:
            return None
        if not self.state:
            warnings.warn(f"the run ended at step {step}, before average_from={self.requested}: the model has the "
                          "last step's weights, not an average", stacklevel=3)  # fmt: skip
            return {"from": self.start or 0, "steps": 0}
        assert self.start is not None
        model.load_state_dict(self.state)
        return {"from": self.start, "steps": step - self.start + 1}
