"""Proxy datasets for architecture and hyper-parameter search, shared by the NNI and Optuna adapters.

Needs neither NNI nor Optuna (torch, and SciPy for the statistics):
    space   -- the 720-variant ConvNet space as plain Python: :data:`DIMENSIONS`, :func:`sample_architectures`,
               :func:`sample_stratified`, :func:`check_architecture`, :func:`build_network` (the core factory)
    train   -- :func:`train_and_validate`: the core protocol on a proxy (or full data), validated on a real split,
               with a constant-lr option and intermediate validations (legitimate early stops)
    stats   -- the proxy-validity statistics: Spearman rho, Kendall tau, bootstrap and Fisher-z intervals, rho
               over the top 20 % and above chance, top-k overlap, regret, a paired bootstrap, the noise ceiling
    plan    -- cost in sample passes, the aligned cost points and a CPU-hour estimate of a study
    errors  -- :class:`InvalidArchitectureError`

See ``docs/nni.md``.
"""
from __future__ import annotations

from .errors import InvalidArchitectureError
from .space import (DEFAULT_ARCHITECTURE, DIMENSIONS, SPACE_SIZE, all_architectures, arch_key, build_network,
                    check_architecture, is_valid, max_pooled_depth, parse_arch_key, sample_architectures,
                    sample_stratified)
from .train import DEFAULT_HPARAMS, TrainResult, train_and_validate

__all__ = [
    "DEFAULT_ARCHITECTURE", "DEFAULT_HPARAMS", "DIMENSIONS", "InvalidArchitectureError", "SPACE_SIZE", "TrainResult",
    "all_architectures", "arch_key", "build_network", "check_architecture", "is_valid", "max_pooled_depth",
    "parse_arch_key", "sample_architectures", "sample_stratified", "train_and_validate",
]
