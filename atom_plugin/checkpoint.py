"""Checkpoints of a condensation run: one safetensors file (images, optimiser and pool state) + run metadata.

A checkpoint holds no generator state: the random streams are functions of (seed, iteration) (``_rng``), so the
iteration number and the tensors are enough to resume bit-exactly. Version 2 adds the multi-formation factor and
the network pool; a version-1 checkpoint is a factor-1, random-network run (``LEGACY_CONFIG``).
"""
from __future__ import annotations

from pathlib import Path

from ._safeio import write_tensors
from .callbacks import CondenseState
from .config import LEGACY_CONFIG
from .errors import CondensedFileError

#: The ``format`` entry of a checkpoint's metadata.
CHECKPOINT_FORMAT = "atom-plugin/checkpoint"
#: The checkpoint format version this library writes.
CHECKPOINT_VERSION = 2


def save_checkpoint(path: Path, matcher, run_meta: dict, state: CondenseState) -> None:
    """Write ``matcher.state_tensors()`` and the run metadata (with the iteration, the loss history and ``seconds``,
    the run's loop seconds so far across every process that worked on it; None once a process resumed a checkpoint
    that did not record them) atomically."""
    before = state.elapsed_before
    meta = dict(run_meta, iteration=state.iteration, history=state.history,
                seconds=None if before is None else round(before + state.elapsed, 3))
    write_tensors(path, matcher.state_tensors(), meta, kind=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)


def check_same_run(path: Path, meta: dict, run_meta: dict) -> None:
    """Raise CondensedFileError unless the checkpoint ``meta`` belongs to the run ``run_meta`` describes."""
    diffs = [k for k in ("seed", "run_classes", "local_classes", "source_fingerprint") if meta.get(k) != run_meta[k]]
    cfg_old, cfg_new = dict(LEGACY_CONFIG, **(meta.get("config") or {})), run_meta["config"]
    diffs += [f"config.{k}" for k in sorted(set(cfg_old) | set(cfg_new))
              if k != "iterations" and cfg_old.get(k) != cfg_new.get(k)]
    if diffs:
        hint = ""
        if "factor" not in (meta.get("config") or {}) and "config.factor" in diffs:
            hint = " -- it was written before multi-formation existed: continue it with `factor=1` `networks='random'`"
        elif diffs == ["config.init"]:  # e.g. an IPC > 10 run started before the atom default's herding start
            hint = (f" -- it started from `init={cfg_old['init']!r}`: continue it with that `init` (CLI: "
                    f"`--init {cfg_old['init']}`)")
        raise CondensedFileError(f"the checkpoint {str(path)!r} belongs to a different run (differs in: "
                                 f"{', '.join(diffs)}); remove it or use another `checkpoint`{hint}")
    if int(meta.get("iteration", -1)) > int(cfg_new["iterations"]):
        raise CondensedFileError(f"the checkpoint {str(path)!r} is at iteration {meta['iteration']}, beyond the requested "
                                 f"{cfg_new['iterations']} iterations; raise `iterations` to continue it")
