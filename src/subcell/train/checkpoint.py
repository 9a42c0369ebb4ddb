"""Checkpoints that resume exactly: the model, the optimizer, the step, the history, further kept weights and every
random state the loop consumes (one random-state file per rank), written so that a save that fails or is killed at
any point leaves the previous checkpoint whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from subcell.errors import InputFileError
from subcell.io._atomic import atomic_output
from subcell.train.distributed import DistributedContext
from subcell.train.history import History

__all__ = ["load_checkpoint", "save_checkpoint"]


def _write_atomic(path: Path, data: bytes) -> None:
    """``path`` replaced by ``data`` in one rename (the package's atomic writer)."""
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_bytes(data)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in state["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optimizer.{idx}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optimizer."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for key, v in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    folder: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    history: History,
    rng: np.random.Generator,
    ctx: DistributedContext,
    run_key: str | None = None,
    kept: dict[str, dict[str, torch.Tensor]] | None = None,
    rng_state: dict[str, Any] | None = None,
) -> None:
    """Write ``folder/checkpoint-STEP.safetensors`` + ``checkpoint.json`` (rank 0) and ``rng-rank{r}-STEP.json``
    (each rank).

    Every file but ``checkpoint.json`` is named by its step, and ``checkpoint.json`` (which names the step) is
    written last, once every rank's files are in place: a save that fails or is killed at any point leaves the
    previous checkpoint whole and still the one a resume loads. The previous step's files go only after that.

    ``kept``: further weights the run holds, by name (``best``: those ``keep_best`` keeps; ``average``: the running
    average of ``average_from``), stored beside the model's under ``NAME.``, so a resumed run keeps them."""
    from subcell.train.artifact import save_tensors

    folder.mkdir(parents=True, exist_ok=True)
    rng_state = {
        "numpy": rng_state if rng_state is not None else rng.bit_generator.state,
        "torch": torch.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "step": step,
    }
    weights, rng_file = _step_files(folder, step, ctx.rank)
    fresh = [p for p in (weights, rng_file) if not p.exists()]  # what a failed save must not leave behind

    def write_step_files() -> dict[str, Any] | None:
        _write_atomic(rng_file, json.dumps(rng_state).encode())
        if ctx.is_main:
            tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
            opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
            tensors.update(opt_tensors)
            for name, state in (kept or {}).items():
                tensors.update({f"{name}.{k}": v.contiguous() for k, v in state.items()})
            meta = {"step": step, "optimizer": opt_meta, "history": history.to_json(), "world_size": ctx.world_size,
                    "run_key": run_key}  # fmt: skip
            with atomic_output(weights, overwrite=True) as tmp:
                save_tensors(tensors, tmp)
            return meta
        return None

    # Each phase ends with every rank learning whether every rank succeeded (a collective), so a rank whose write
    # failed does not leave the others waiting at a barrier for it: all of them remove this step's files and raise.
    for phase in ("step files", "pointer"):
        error: BaseException | None = None
        try:
            if phase == "step files":
                meta = write_step_files()
            elif ctx.is_main:  # every rank's files of this step exist before the pointer names it
                _write_atomic(folder / "checkpoint.json", json.dumps(meta).encode())
        except BaseException as exc:  # re-raised below, once the other ranks know
            error = exc
        if not ctx.all_true(error is None):
            for p in fresh:
                p.unlink(missing_ok=True)
            if error is not None:
                raise error
            raise OSError(f"checkpoint of step {step} not saved: another rank failed writing its {phase} in {folder}")
    # the previous checkpoint's files (and those of the unnamed layout before step-named files), each rank its own
    keep = {weights.name, rng_file.name}
    mine = [*folder.glob(f"rng-rank{ctx.rank}-*.json"), folder / f"rng-rank{ctx.rank}.json"]
    if ctx.is_main:
        mine += [*folder.glob("checkpoint-*.safetensors"), folder / "checkpoint.safetensors"]
    for old_file in mine:
        if old_file.name not in keep:
            old_file.unlink(missing_ok=True)


def _step_files(folder: Path, step: int, rank: int) -> tuple[Path, Path]:
    """The weights and the rank's random state of the checkpoint of ``step``."""
    return folder / f"checkpoint-{step}.safetensors", folder / f"rng-rank{rank}-{step}.json"


def load_checkpoint(
    folder: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    ctx: DistributedContext,
    run_key: str | None = None,
    kept: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[int, History]:
    """Restore model, optimizer and random states; returns (step, history). A checkpoint written by a run with
    another ``run_key`` (another configuration) is refused. Each dict of ``kept`` receives the weights stored under
    its name (see :func:`save_checkpoint`) if the checkpoint holds any."""
    from safetensors.torch import load_file

    meta_path = folder / "checkpoint.json"
    try:
        meta = json.loads(meta_path.read_text())
        weights, rng_file = _step_files(folder, int(meta["step"]), ctx.rank)
        if not weights.exists() and (folder / "checkpoint.safetensors").exists():  # subcell before step-named files
            weights, rng_file = folder / "checkpoint.safetensors", folder / f"rng-rank{ctx.rank}.json"
        tensors = load_file(str(weights))
        rng_state = json.loads(rng_file.read_text())
    except FileNotFoundError as exc:
        raise InputFileError(f"incomplete checkpoint: {Path(exc.filename).name} is missing", path=folder) from None
    except Exception as exc:
        raise InputFileError(f"corrupted checkpoint ({exc.__class__.__name__}: {exc})", path=folder) from None
    if meta.get("world_size", 1) != ctx.world_size:
        raise InputFileError(
            f"checkpoint was written by {meta.get('world_size')} processes, this run has {ctx.world_size}",
            path=meta_path,
            field="world_size",
        )
    if run_key is not None and meta.get("run_key") not in (None, run_key):
        raise InputFileError(
            "checkpoint was written by a run with another configuration; resume: false (resume=false) starts "
            "over, or delete the checkpoint folder", path=folder, field="resume",
        )  # fmt: skip
    if rng_state.get("step") != meta["step"]:
        raise InputFileError("checkpoint files are from different steps (interrupted save)", path=folder)
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state)
    except RuntimeError as exc:
        raise InputFileError(f"checkpoint does not fit this model ({str(exc).splitlines()[0]})", path=folder) from None
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    for name, state in (kept or {}).items():
        state.update({k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(f"{name}.")})
    rng.bit_generator.state = rng_state["numpy"]
    torch.set_rng_state(torch.tensor(rng_state["torch"], dtype=torch.uint8))
    if rng_state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in rng_state["cuda"]])
    return int(meta["step"]), History.from_json(meta["history"])
