"""Avalanche integration: ATOM-condensed replay memories for continual learning.

Install with ``pip install 'atom-plugin[avalanche]'`` (avalanche-lib 0.6.0). See ``docs/avalanche.md``.

    from avalanche.training import Naive
    from atom_plugin.integrations.avalanche import ATOMReplayPlugin, CondensedGDumbPlugin

    Naive(model=model, optimizer=optimizer, plugins=[ATOMReplayPlugin(mem_size=200)])       # replay
    Naive(model=model, optimizer=optimizer, plugins=[CondensedGDumbPlugin(mem_size=200)])   # GDumb
    use_atom_memory(ER_ACE(model=model, optimizer=optimizer, mem_size=200, batch_size_mem=64), ATOMBuffer(200))

Modules (one plugin per file; the core ``atom_plugin`` never imports Avalanche):
    buffer      -- :class:`ATOMBuffer`, the storage policy (policies ``"budget"`` and ``"per_class"``)
    groups      -- :class:`CondensedGroup` (one per (task, class)) and the condense / re-condense loops
    shares      -- the share rules: images per class after an update, capacity checks (needs no Avalanche)
    experience  -- reading an experience (tensors, shape checks, normalisation)
    replay      -- :class:`ATOMReplayPlugin` (condenses *after* training on an experience)
    gdumb       -- :class:`CondensedGDumbPlugin` (condenses *before* training; trains on the memory only)
    memory_dsa  -- :class:`MemoryDSAPlugin`: DSA on memory samples, the same way for every method
    strategies  -- :func:`use_atom_memory` (an ATOM memory in ``ER_ACE``/``DER``), :class:`ATOMLogitsBuffer` and
                   :class:`HerdingLogitsBuffer` (DER's memories)
    finetune    -- :class:`BalancedFineTunePlugin`: EEIL's balanced fine-tune on the memory after each experience
    resume      -- :func:`save_run` / :func:`load_run`: resuming a run at an experience boundary (no pickle)
    comparison  -- the strategies x memories comparison and its single training :class:`Recipe`
    methods     -- :data:`METHODS`, :data:`GRID`, the comparison's lists, and :data:`MEMORY_NOTE` (needs no Avalanche)
    data        -- :func:`fashion_mnist_root` (needs no Avalanche): a ``dataset_root`` for ``SplitFMNIST``
    _compat     -- the guarded import and the only uses of Avalanche internals

Everything but ``data``, ``methods`` and :class:`AvalancheMissingError` is imported on first use; without Avalanche
that raises :class:`AvalancheMissingError` (an ``ImportError``) naming ``pip install 'atom-plugin[avalanche]'``.
"""
from __future__ import annotations

import importlib

from .data import default_cache_dir, fashion_mnist_root
from .methods import GRID, MEMORY_NOTE, METHODS, PRIMARY_STRATEGY

_LAZY = {
    "AvalancheMissingError": "_compat", "INSTALL_HINT": "_compat", "require_avalanche": "_compat",
    "ATOMBuffer": "buffer", "POLICIES": "shares", "DEFAULT_ITERATIONS": "groups", "default_config": "groups",
    "CondensedGroup": "groups", "group_factor": "groups", "MemoryDSA": "memory_dsa", "MemoryDSAPlugin": "memory_dsa",
    "ATOMReplayPlugin": "replay",
    "ATOMLogitsBuffer": "strategies", "HerdingLogitsBuffer": "strategies", "use_atom_memory": "strategies",
    "BalancedFineTunePlugin": "finetune", "save_run": "resume", "load_run": "resume",
    "CondensedGDumbPlugin": "gdumb",
    "QUICK_RECIPE": "comparison", "CPU_RECIPE": "comparison", "RECIPES": "comparison",
    "Recipe": "comparison", "build_strategy": "comparison",
    "herding_policy": "comparison", "results_table": "comparison", "run_method": "comparison",
    "check_replay_on": "comparison",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")  # raises AvalancheMissingError if absent
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GRID", "MEMORY_NOTE", "METHODS", "PRIMARY_STRATEGY", "default_cache_dir", "fashion_mnist_root", *_LAZY]
