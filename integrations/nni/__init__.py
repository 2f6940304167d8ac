"""NNI integration: condensed proxy datasets for NNI hyper-parameter trials and architecture searches.

Install with ``pip install 'atom-plugin[nni]'`` (NNI 3.0; its NAS modules also need ``pytorch-lightning``).
See ``docs/nni.md``.

Needs no NNI (importable anywhere, e.g. on a GPU machine with only torch); ``space``, ``train`` and ``stats`` are
the shared proxy toolkit's (:mod:`atom_plugin.integrations.proxy`, also used by the Optuna adapter), re-exported:
    space   -- the 720-variant ConvNet space as plain Python: :data:`DIMENSIONS`, :func:`sample_architectures`,
               :func:`check_architecture`, :func:`build_network` (the core ConvNet factory)
    data    -- dataset references that travel with a trial: :func:`encode_dataset`, :func:`resolve_dataset`,
               :func:`save_split`, :func:`check_compatible`
    train   -- :func:`train_and_validate`: the core protocol on a proxy, validated on a real split
    stats   -- :func:`spearman`, :func:`spearman_top`, :func:`bootstrap_ci`
    trial   -- :func:`hpo_search_space`, :func:`sample_configurations` (and, with NNI, :func:`get_parameters`,
               :func:`run_trial`)
    :func:`require_nni` -- the ``nni`` module, or :class:`NNIMissingError` with the install command

Needs NNI (imported on first use; a missing NNI raises :class:`NNIMissingError` with the install command):
    nas     -- :class:`ConvNetSpace` (an NNI ``ModelSpace``), :func:`proxy_evaluator` / :class:`ProxyEvaluator`
               (a ``FunctionalEvaluator``), :func:`evaluate_on_proxy`, :func:`run_search` (in-process sequential)
"""
from __future__ import annotations

from .data import (check_compatible, check_network_shape, decode_dataset, encode_dataset, prepare, resolve_dataset,
                   save_split)
from ._nni import require_nni
from .errors import InvalidArchitectureError, NNIMissingError, ProxyMismatchError
from atom_plugin.integrations.proxy.space import (DEFAULT_ARCHITECTURE, DIMENSIONS, SPACE_SIZE, all_architectures,
                                                  arch_key, build_network, check_architecture, is_valid,
                                                  max_pooled_depth, parse_arch_key, sample_architectures)
from atom_plugin.integrations.proxy.stats import bootstrap_ci, spearman, spearman_top
from atom_plugin.integrations.proxy.train import DEFAULT_HPARAMS, TrainResult, train_and_validate
from .trial import get_parameters, hpo_search_space, run_trial, sample_configurations

_NAS_NAMES = ("ConvNetSpace", "ProxyEvaluator", "SearchResult", "evaluate_on_proxy", "make_strategy",
              "proxy_evaluator", "run_search")


def __getattr__(name: str):
    if name in _NAS_NAMES:
        from . import nas  # imports NNI; raises NNIMissingError when it is absent

        return getattr(nas, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_ARCHITECTURE", "DEFAULT_HPARAMS", "DIMENSIONS", "InvalidArchitectureError", "NNIMissingError",
    "ProxyMismatchError", "SPACE_SIZE", "TrainResult", "all_architectures", "arch_key", "bootstrap_ci",
    "build_network", "check_architecture", "check_compatible", "check_network_shape", "decode_dataset",
    "encode_dataset", "get_parameters", "hpo_search_space", "is_valid", "max_pooled_depth", "parse_arch_key",
    "prepare", "require_nni", "resolve_dataset", "run_trial", "sample_architectures", "sample_configurations", "save_split",
    "spearman", "spearman_top", "train_and_validate", *_NAS_NAMES,
]
