"""Optuna integration: a condensed proxy as the cheap fidelity of an Optuna objective.

Install with ``pip install 'atom-plugin[optuna]'`` (Optuna >= 4). NNI's repository was archived in Sept 2024 (last
release 3.0); Optuna is the maintained searcher, and this adapter serves its users with the same proxy code as the
NNI adapter (:mod:`atom_plugin.integrations.proxy`). See ``docs/nni.md``.

    objective -- :func:`suggest_configuration` (a trial's hyper-parameters and/or ConvNet architecture),
                 :func:`train_on_proxy` (train on the proxy, report validation accuracy to the pruner, raise
                 ``optuna.TrialPruned``), :func:`proxy_objective` (both, as an objective for ``study.optimize``),
                 :func:`retrain_survivors` (the best trials re-trained on full data), :func:`require_optuna`
"""
from __future__ import annotations

from .objective import (SEARCHES, OptunaMissingError, Survivor, proxy_objective, require_optuna, retrain_survivors,
                        split_configuration, suggest_configuration, train_on_proxy)

__all__ = ["OptunaMissingError", "SEARCHES", "Survivor", "proxy_objective", "require_optuna", "retrain_survivors",
           "split_configuration", "suggest_configuration", "train_on_proxy"]
