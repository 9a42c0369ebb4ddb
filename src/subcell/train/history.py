"""What a training run records: the per-step losses and validation metrics (:class:`History`, stored in every
checkpoint) and what the progress hook receives after each step (:class:`StepInfo`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["History", "StepInfo"]


@dataclass
class StepInfo:
    """What the progress hook receives after each step."""

    step: int
    total: int
    loss: float
    elapsed_s: float
    validation: dict[str, float] | None = None


@dataclass
class History:
    """Per-step training loss and periodic validation metrics."""

    train: list[dict[str, float]] = field(default_factory=list)
    validation: list[dict[str, float]] = field(default_factory=list)
    in_sync: bool = True
    interrupted: bool = False  # stopped by ``stop_after`` (as if killed): no final checkpoint, not finished
    best: dict[str, float] | None = None  # with ``keep_best``: the validation row whose weights the model ends with
    # with ``average_from``: {"from": first step averaged, "steps": how many steps' weights the model ends with the
    # mean of (0 when the run ended before that step: the model has the last step's weights)}
    averaged: dict[str, int] | None = None
    average_start: int | None = None  # with a fractional ``average_from``: the step averaging began at, once fixed

    def to_json(self) -> dict[str, Any]:
        return {"train": self.train, "validation": self.validation, "best": self.best, "averaged": self.averaged,
                "average_start": self.average_start}  # fmt: skip

    def to_csv(self) -> str:
        """One line per step: loss, seconds, learning rate (of the schedule, before layer-wise scales) and the
        validation metrics where they were computed."""
        val = {v["step"]: v for v in self.validation}
        keys = sorted({k for v in self.validation for k in v if k != "step"})
        lines = [",".join(["step", "loss", "seconds", "lr", *keys])]
        if 0 in val:  # the starting weights, validated before the first step (keep_best)
            lines.append(",".join(["0", "", "0.000", "", *(f"{val[0][k]:.6g}" if k in val[0] else "" for k in keys)]))
        for h in self.train:
            v = val.get(h["step"], {})
            cells = [
                str(int(h["step"])),
                f"{h['loss']:.6g}",
                f"{h['seconds']:.3f}",
                f"{h['lr']:.6g}" if "lr" in h else "",
            ]
            lines.append(",".join([*cells, *(f"{v[k]:.6g}" if k in v else "" for k in keys)]))
        return "\n".join(lines) + "\n"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> History:
        return cls(
            train=list(d.get("train", [])),
            validation=list(d.get("validation", [])),
            best=d.get("best"),
            averaged=d.get("averaged"),
            average_start=d.get("average_start"),
        )
