"""An Optuna objective on a condensed proxy, with pruning on intermediate validation accuracy.

Optuna's API (``optuna.create_study(direction="maximize", pruner=...)``, ``trial.suggest_*``,
``trial.report(value, step)``, ``trial.should_prune()``, ``optuna.TrialPruned``; Akiba et al., KDD 2019) is used as
documented; Optuna is imported only when a function needs it. Training and validation are the proxy toolkit's
(:func:`atom_plugin.integrations.proxy.train_and_validate`): the core protocol on the proxy, accuracy on a real
validation split (never the test set), a fraction in [0, 1].
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from atom_plugin.data import ImageTensorDataset
from atom_plugin.errors import ATOMError, ConfigError
from atom_plugin.integrations.proxy.space import DEFAULT_ARCHITECTURE, DIMENSIONS, arch_key, check_in_space
from atom_plugin.integrations.proxy.train import (DEFAULT_HPARAMS, HPO_RANGES, batch_size_choices,
                                                  train_and_validate)

#: The command that installs the adapter's dependencies.
INSTALL_HINT = "pip install 'atom-plugin[optuna]'"
#: What a search varies: ``"hpo"`` the training hyper-parameters (ConvNet-3 fixed), ``"nas"`` the ConvNet
#: architecture (the protocol's hyper-parameters fixed), ``"both"`` all of them.
SEARCHES = ("hpo", "nas", "both")


class OptunaMissingError(ATOMError, ImportError):
    """Optuna is not installed."""


def require_optuna() -> ModuleType:
    """The ``optuna`` module.

    Raises:
        OptunaMissingError: Optuna is not installed (the message gives the install command).
    """
    try:
        return importlib.import_module("optuna")
    except ImportError as exc:
        raise OptunaMissingError(f"this needs Optuna, which is not installed ({exc}); install it with: "
                                 f"{INSTALL_HINT}") from exc


def suggest_configuration(trial, *, search: str = "hpo", proxy_size: int = 256) -> dict:
    """A trial's configuration, drawn with ``trial.suggest_*``: ``lr`` and ``weight_decay`` log-uniform in
    ``HPO_RANGES``, ``batch_size`` among ``batch_size_choices(proxy_size)`` (``"hpo"``/``"both"``), and the
    ConvNet dimensions ``depth``, ``width``, ``act``, ``norm``, ``pool`` as categorical choices of
    ``DIMENSIONS`` (``"nas"``/``"both"``); what is not searched takes the protocol's value.

    Args:
        trial: an ``optuna.Trial``.
        search: one of :data:`SEARCHES`.
        proxy_size: training samples of the proxy (bounds the batch sizes).

    Returns:
        ``{"lr", "weight_decay", "batch_size", "depth", "width", "act", "norm", "pool"}``.

    Raises:
        ConfigError: an unknown ``search`` or ``proxy_size`` < 1.
    """
    if search not in SEARCHES:
        raise ConfigError(f"search={search!r} is not one of {list(SEARCHES)}")
    config = dict(DEFAULT_HPARAMS, **DEFAULT_ARCHITECTURE)
    if search in ("hpo", "both"):
        for name, (lo, hi) in HPO_RANGES.items():
            config[name] = trial.suggest_float(name, lo, hi, log=True)
        config["batch_size"] = trial.suggest_categorical("batch_size", batch_size_choices(proxy_size))
    if search in ("nas", "both"):
        for name, values in DIMENSIONS.items():
            config[name] = trial.suggest_categorical(name, list(values))
    return config


def split_configuration(config: dict) -> tuple[dict, dict]:
    """``(architecture, hyper-parameters)`` of a configuration (missing keys take the protocol's values).

    Args:
        config: keys of ``DEFAULT_HPARAMS`` and ``DIMENSIONS``.

    Raises:
        ConfigError: an unknown key. InvalidArchitectureError: a value outside the ConvNet space.
    """
    unknown = set(config) - set(DEFAULT_HPARAMS) - set(DIMENSIONS)
    if unknown:
        raise ConfigError(f"unknown configuration key(s) {sorted(unknown)}; known: "
                          f"{sorted(DEFAULT_HPARAMS) + list(DIMENSIONS)}")
    arch = check_in_space({k: config.get(k, v) for k, v in DEFAULT_ARCHITECTURE.items()})
    hp = {k: type(v)(config.get(k, v)) for k, v in DEFAULT_HPARAMS.items()}
    return arch, hp


def train_on_proxy(trial, config: dict, proxy: ImageTensorDataset, val: ImageTensorDataset, *, epochs: int = 300,
                   report_every: int = 10, seed: int = 0, device: str = "auto", lr_schedule: str = "constant") -> float:
    """Train ``config`` on ``proxy`` and return its validation accuracy; every ``report_every`` epochs report the
    validation accuracy to Optuna (``trial.report(accuracy, step=epoch)``) and stop with ``optuna.TrialPruned``
    when the study's pruner says so (``trial.should_prune()``).

    Args:
        trial: an ``optuna.Trial``.
        config: the trial's configuration (:func:`suggest_configuration`).
        proxy: the training set (a condensed proxy; images ``(N, C, H, W)`` float32, labels ``(N,)`` int64).
        val: the real validation split in the proxy's space.
        epochs: training epochs.
        report_every: epochs between reports (0: report only the final accuracy, never prune).
        seed: weights, shuffling and DSA seed.
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``.
        lr_schedule: ``"constant"`` (default: every report is a legitimate early stop, so the pruner compares like
            with like) or ``"step"`` (the protocol's decay at half the epochs).

    Returns:
        validation accuracy, a fraction in [0, 1].

    Raises:
        optuna.TrialPruned: the pruner stopped the trial. OptunaMissingError: Optuna is not installed.
        ConfigError / InvalidArchitectureError: a bad configuration.
    """
    optuna = require_optuna()
    arch, hp = split_configuration(config)

    def on_report(epoch: int, acc: float) -> None:
        trial.report(acc, step=int(epoch))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} (validation accuracy {acc:.4f})")

    res = train_and_validate(arch, proxy, val, epochs=epochs, seed=seed, device=device, report_every=report_every,
                             on_report=on_report if report_every else None, lr_schedule=lr_schedule, **hp)
    trial.set_user_attr("architecture", arch_key(arch))
    trial.set_user_attr("seconds", round(res.seconds, 3))
    return res.accuracy


def proxy_objective(proxy: ImageTensorDataset, val: ImageTensorDataset, *, search: str = "hpo", epochs: int = 300,
                    report_every: int = 10, seed: int = 0, device: str = "auto",
                    lr_schedule: str = "constant") -> Callable:
    """An objective for ``study.optimize``: :func:`suggest_configuration` then :func:`train_on_proxy`.

    Args:
        proxy: the training set of every trial.
        val: the real validation split.
        search: one of :data:`SEARCHES`.
        epochs: training epochs per trial.
        report_every: epochs between pruner reports.
        seed: training seed of every trial (trials differ by configuration only).
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``.
        lr_schedule: see :func:`train_on_proxy`.

    Returns:
        ``objective(trial) -> validation accuracy in [0, 1]`` (maximise it).

    Raises:
        ConfigError: an unknown ``search``.
    """
    if search not in SEARCHES:
        raise ConfigError(f"search={search!r} is not one of {list(SEARCHES)}")

    def objective(trial) -> float:
        config = suggest_configuration(trial, search=search, proxy_size=len(proxy))
        return train_on_proxy(trial, config, proxy, val, epochs=epochs, report_every=report_every, seed=seed,
                              device=device, lr_schedule=lr_schedule)

    return objective


@dataclass
class Survivor:
    """A completed trial re-trained on full data: its number, configuration, proxy and full-data validation
    accuracy (fractions in [0, 1]) and the re-training's wall-clock seconds."""

    number: int
    config: dict
    proxy_accuracy: float
    full_accuracy: float
    seconds: float


def retrain_survivors(study, train: ImageTensorDataset, val: ImageTensorDataset, *, top_k: int = 3,
                      epochs: int = 50, seed: int = 0, device: str = "auto") -> list[Survivor]:
    """Re-train the ``top_k`` best completed (not pruned) trials of ``study`` on ``train`` (the full training
    split) and validate them on ``val``; best full-data accuracy first.

    Args:
        study: an ``optuna.Study`` whose trials ran :func:`proxy_objective` (their params are configurations).
        train: the full training split (or any real training set).
        val: the real validation split.
        top_k: how many of the best completed trials to re-train.
        epochs: full-data epochs (the protocol's step schedule).
        seed: training seed.
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``.

    Raises:
        ConfigError: ``top_k`` < 1 or no completed trial.
    """
    optuna = require_optuna()
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    if not done:
        raise ConfigError("the study has no completed trial to re-train (all pruned or failed?)")
    out = []
    for t in sorted(done, key=lambda t: -t.value)[:top_k]:
        arch, hp = split_configuration(t.params)
        res = train_and_validate(arch, train, val, epochs=epochs, seed=seed, device=device, **hp)
        out.append(Survivor(t.number, dict(arch, **hp), float(t.value), res.accuracy, res.seconds))
    return sorted(out, key=lambda s: -s.full_accuracy)
