"""Resuming a continual-learning run at an experience boundary, without pickle.

Avalanche's own ``save_checkpoint`` pickles the whole strategy (and, with its own ``ReplayPlugin``, fails with
``PicklingError: Can't pickle sentinel``). A run is instead the state a strategy needs to go on after experience e:

    save_run("run/", strategy, next_experience=e + 1)   # after strategy.train(experience e)
    ...                                               # later, in a new process: build the strategy as before
    start = load_run("run/", strategy)
    for exp in benchmark.train_stream[start:]:
        strategy.train(exp)

Files in the folder: ``model.safetensors`` (the model's ``state_dict``), ``optimizer.safetensors`` (its tensors),
``buffer.safetensors`` (:meth:`ATOMBuffer.state_dict`'s tensors, when a buffer is given) and ``run.json`` (the
optimiser's ``param_groups`` and scalar state, the buffer's bookkeeping, the next experience's index, the torch
CPU random state as numbers, any ``extra``). The memory is the strategy's ``storage_policy`` (``ER_ACE``, ``DER``)
or the first plugin's (``ATOMReplayPlugin``, ``CondensedGDumbPlugin``) when it is an ATOM buffer. Avalanche resets
an optimiser's state the first time a strategy trains; :func:`load_run` makes that first set-up itself before
restoring the state, so the momentum survives. The evaluator's history (forgetting) is not saved. On CPU a resumed
run equals an uninterrupted one (same memory, same final accuracy; tests/integrations/test_avalanche_strategies.py).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from atom_plugin.errors import ConfigError

RUN_FORMAT = "atom-avalanche-run"  #: the ``format`` field of ``run.json``


def _save(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def find_memory(strategy):
    """The ATOM memory of ``strategy``: its ``storage_policy`` or the first plugin's that has ``state_dict``; None
    when it has none."""
    for holder in (strategy, *getattr(strategy, "plugins", ())):
        policy = getattr(holder, "storage_policy", None)
        if policy is not None and hasattr(policy, "state_dict"):
            return policy
    return None


def save_run(path: str | os.PathLike, strategy, *, next_experience: int,
             extra: dict[str, Any] | None = None) -> Path:
    """Write a run's state at an experience boundary into the folder ``path`` (created; files replaced).

    Args:
        path: the folder.
        strategy: the Avalanche strategy (its ``model``, ``optimizer`` and ATOM memory, :func:`find_memory`).
        next_experience: the index of the first experience not trained yet.
        extra: JSON-able facts to keep with the run (e.g. the seed, the class order).

    Returns:
        The folder.

    Raises:
        ConfigError: ``next_experience`` < 0.
    """
    if not isinstance(next_experience, int) or next_experience < 0:
        raise ConfigError(f"next_experience must be a whole number >= 0, got {next_experience!r}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    _save(folder / "model.safetensors", strategy.model.state_dict())
    opt = strategy.optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in opt["state"].items():
        for name, v in state.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{name}"] = v
            else:
                scalars[f"{pid}.{name}"] = v
    _save(folder / "optimizer.safetensors", tensors)
    meta: dict[str, Any] = dict(format=RUN_FORMAT, version=1, next_experience=next_experience,
                                param_groups=opt["param_groups"], optimizer_scalars=scalars,
                                rng_state=torch.get_rng_state().tolist(), extra=extra or {}, buffer=None)
    buffer = find_memory(strategy)
    if buffer is not None:
        state = buffer.state_dict()
        _save(folder / "buffer.safetensors", state["tensors"])
        meta["buffer"] = state["meta"]
    tmp = folder / ".run.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, folder / "run.json")
    return folder


def load_run(path: str | os.PathLike, strategy, *, restore_rng: bool = True) -> int:
    """Restore :func:`save_run`'s state into a freshly built strategy; returns the next experience's index.

    Args:
        path: the folder :func:`save_run` wrote.
        strategy: the strategy, built as before (same model architecture, optimiser, memory arguments and plugins).
        restore_rng: also restore the torch CPU random state (what makes a resumed CPU run equal an uninterrupted
            one: shuffling, replay draws).

    Raises:
        ConfigError: not a run folder, or the run saved an ATOM memory and the strategy has none (or the reverse).
    """
    folder = Path(path)
    if not (folder / "run.json").is_file():
        raise ConfigError(f"{str(folder)!r} holds no run.json: pass a folder written by save_run")
    meta = json.loads((folder / "run.json").read_text())
    if meta.get("format") != RUN_FORMAT:
        raise ConfigError(f"{str(folder / 'run.json')!r} is not a saved run (format {meta.get('format')!r})")
    buffer = find_memory(strategy)
    if (meta["buffer"] is None) != (buffer is None):
        raise ConfigError("the saved run " + ("has no ATOM memory but the strategy has one" if meta["buffer"] is None
                                              else "holds an ATOM memory: build the strategy with its ATOMBuffer"))
    strategy.model.load_state_dict(load_file(str(folder / "model.safetensors")))
    if hasattr(strategy, "make_optimizer") and getattr(strategy, "optimized_param_id", 0) is None:
        strategy.model.to(strategy.device)
        strategy.make_optimizer()  # Avalanche's first set-up resets the optimiser: do it now, then restore
    flat = load_file(str(folder / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for key, v in [*flat.items(), *meta["optimizer_scalars"].items()]:
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    strategy.optimizer.load_state_dict(dict(state=state, param_groups=meta["param_groups"]))
    if buffer is not None:
        buffer.load_state_dict(dict(tensors=load_file(str(folder / "buffer.safetensors")), meta=meta["buffer"]),
                               strategy)
    if restore_rng:
        torch.set_rng_state(torch.tensor(meta["rng_state"], dtype=torch.uint8))
    return int(meta["next_experience"])


__all__ = ["RUN_FORMAT", "find_memory", "load_run", "save_run"]
