"""NNI 3.0 NAS over the DC/DM ConvNet family, with a condensed proxy as the training set of every candidate.

* :class:`ConvNetSpace` -- an ``nni.nas.nn.pytorch.ModelSpace`` with the 720-variant space of
  :mod:`~atom_plugin.integrations.nni.space`: ``depth``, ``width``, ``norm``, ``pool`` are ``nni.choice``
  categoricals and ``act`` is a ``LayerChoice`` over the three activation modules. A sampled point is built by the
  core factory (``atom_plugin.build_model("convnet", ...)``), so the frozen model IS the core ConvNet (same modules,
  same parameters as ``build_model`` with those options).
* :func:`proxy_evaluator` -- a ``FunctionalEvaluator`` that trains each candidate on the proxy with the core
  protocol and validates it on a held-out REAL split (never the test set), reporting the accuracy (a fraction in
  [0, 1]) with ``nni.report_final_result`` exactly once.
* :func:`run_search` -- NNI's in-process sequential execution (``NasExperimentConfig('sequential', 'raw')``; a
  training service is not needed -- naming ``'local'`` only makes NNI warn that it is ignored): no NNI manager, no
  web portal, no extra process.

Invalid points (pooling too deep for small images; none at 28x28 or 32x32): the space adds an
``ExpressionConstraint`` so NNI strategies never propose them; if one reaches the evaluator anyway (e.g. a
hand-made sample), it is skipped: a warning names the choice and image size and the evaluator reports accuracy
0.0, so a search ranks it last instead of failing.

Importing this module imports NNI (and pytorch-lightning, which ``nni.nas`` needs).
"""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from atom_plugin.errors import ConfigError
from atom_plugin.models import image_hw, make_activation

from ._nni import require_nas
from .data import DatasetRef, check_network_shape, prepare
from .errors import InvalidArchitectureError
from atom_plugin.integrations.proxy.space import DIMENSIONS, arch_key, build_network, check_architecture, max_pooled_depth
from atom_plugin.integrations.proxy.train import train_and_validate

nni, _nas_nn, _nas_eval = require_nas()
from nni.mutable import ExpressionConstraint, ensure_frozen  # noqa: E402  (after the guarded import)

ModelSpace = _nas_nn.ModelSpace  #: NNI's class (``nni.nas.nn.pytorch``), from the guarded import
LayerChoice = _nas_nn.LayerChoice  #: NNI's class (``nni.nas.nn.pytorch``), from the guarded import
FunctionalEvaluator = _nas_eval.FunctionalEvaluator  #: NNI's class (``nni.nas.evaluator``), from the guarded import

_logger = logging.getLogger(__name__)


def _space_args(channels: int = 1, num_classes: int = 10, image_size=(28, 28)) -> tuple[int, int, tuple[int, int]]:
    return int(channels), int(num_classes), image_hw(image_size)


def _arch_from_sample(sample: dict) -> dict:
    missing = [k for k in DIMENSIONS if k not in sample]
    if missing:
        raise InvalidArchitectureError(f"the sample {sample} lacks the ConvNet dimension(s) {missing}")
    return {k: sample[k] for k in DIMENSIONS}


class ConvNetSpace(ModelSpace):
    """The ConvNet family as an NNI model space (labels ``depth``, ``width``, ``act``, ``norm``, ``pool``).

    Args:
        channels: input channels of the search's data.
        num_classes: its number of classes.
        image_size: its ``(H, W)`` or an int. Networks take ``(B, channels, H, W)`` float32 and return
            ``(B, num_classes)`` logits.

    A frozen sample ``{"depth": 3, "width": 128, "act": "relu", "norm": "instancenorm", "pool": "avgpool"}``
    (``model_space.freeze(sample)``, or any NNI execution engine) gives the core
    :class:`atom_plugin.models.ConvNet`. The unfrozen space itself behaves as its default network (depth 1,
    width 32, sigmoid, no norm, no pooling) for NNI's dry runs.

    Raises (when a sample is frozen): InvalidArchitectureError for an invalid point.
    """

    def __init__(self, channels: int = 1, num_classes: int = 10, image_size=(28, 28)):
        super().__init__()
        channels, num_classes, hw = _space_args(channels, num_classes, image_size)
        self.depth = self.add_mutable(nni.choice("depth", list(DIMENSIONS["depth"])))
        self.width = self.add_mutable(nni.choice("width", list(DIMENSIONS["width"])))
        self.norm = self.add_mutable(nni.choice("norm", list(DIMENSIONS["norm"])))
        self.pool = self.add_mutable(nni.choice("pool", list(DIMENSIONS["pool"])))
        self.act = LayerChoice({name: make_activation(name) for name in DIMENSIONS["act"]}, label="act")
        limit = max_pooled_depth(hw)
        if limit < max(DIMENSIONS["depth"]):
            fits = self.pool == "none"
            if limit > 0:
                fits = fits | (self.depth <= limit)
            self.add_mutable(ExpressionConstraint(fits, label=f"pooling_fits_{hw[0]}x{hw[1]}"))
        arch = {"depth": ensure_frozen(self.depth), "width": ensure_frozen(self.width),
                "act": ensure_frozen(self.act.choice), "norm": ensure_frozen(self.norm), "pool": ensure_frozen(self.pool)}
        self.network = build_network(arch, channels=channels, num_classes=num_classes, image_size=hw)
        self.search_shape = (channels, num_classes, hw)

    @classmethod
    def create_fixed_module(cls, sample: dict, *args, **kwargs) -> nn.Module:
        """Under an NNI model context (a frozen sample), building the space gives the core ConvNet directly."""
        channels, num_classes, hw = _space_args(*args, **kwargs)
        return build_network(_arch_from_sample(sample), channels=channels, num_classes=num_classes, image_size=hw)

    def freeze(self, sample: dict) -> nn.Module:
        """The core ConvNet of ``sample``. Raises InvalidArchitectureError for an invalid point."""
        arch = _arch_from_sample(sample)
        check_architecture(arch, self.search_shape[2])  # the clear message first; NNI's validation after
        self.validate(sample)
        return self.create_fixed_module(sample, *self.trace_args, **self.trace_kwargs)

    def forward(self, x):
        return self.network(x)

    @classmethod
    def for_dataset(cls, data) -> "ConvNetSpace":
        """The space for a dataset's images and classes (an ImageTensorDataset / CondensedDataset)."""
        c, h, w = data.image_shape
        return cls(channels=c, num_classes=data.num_classes, image_size=(h, w))


def evaluate_on_proxy(model: nn.Module, *, proxy: DatasetRef, val: DatasetRef, epochs: int = 300,
                      lr: float = 0.01, weight_decay: float = 5e-4, batch_size: int = 256, seed: int = 0,
                      device: str = "auto", report_every: int = 0, allow_absolute: bool = False) -> float:
    """Train ``model`` (a frozen candidate) on the proxy, validate on ``val``, report and return the accuracy.

    Returns the validation accuracy as a float in [0, 1], after sending it once with
    ``nni.report_final_result`` (and, with ``report_every`` > 0, intermediate values with
    ``nni.report_intermediate_result``). See :func:`proxy_evaluator` for the arguments.

    Raises:
        ProxyMismatchError: the proxy and the validation split (or the network's input) do not match.
    """
    p, v = prepare(proxy, val, allow_absolute=allow_absolute)
    on_report = (lambda epoch, acc: nni.report_intermediate_result(acc)) if report_every else None
    result = train_and_validate(model, p, v, epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
                                seed=seed, device=device, report_every=report_every, on_report=on_report)
    nni.report_final_result(result.accuracy)
    return result.accuracy


class ProxyEvaluator(FunctionalEvaluator):
    """A ``FunctionalEvaluator`` that also skips invalid architectures: building one raises
    InvalidArchitectureError, which is logged and reported as accuracy 0.0 (exactly one final report)."""

    def _execute(self, model: Any) -> Any:
        try:
            executable = model.executable_model()
        except InvalidArchitectureError as exc:
            _logger.warning("skipping architecture %s: %s; reporting accuracy 0.0", getattr(model, "sample", None), exc)
            nni.report_final_result(0.0)
            return 0.0
        return self.evaluate(executable)


def proxy_evaluator(proxy: DatasetRef, val: DatasetRef, *, space: ConvNetSpace | None = None, epochs: int = 300,
                    lr: float = 0.01, weight_decay: float = 5e-4, batch_size: int = 256, seed: int = 0,
                    device: str = "auto", report_every: int = 0, allow_absolute: bool = False) -> ProxyEvaluator:
    """The NAS evaluator: train each candidate on ``proxy`` for ``epochs`` epochs with the core protocol (SGD
    momentum 0.9, ``lr``, ``weight_decay``, ``batch_size``, lr x0.1 at half, DSA), validate on ``val``.

    Args:
        proxy: the condensed set (a dataset, ``"base64:..."``, bytes, or a path relative to the experiment's
            working directory -- the trial code directory of NNI's training services).
        val: the held-out REAL validation split in the same form (never the test set).
        space: when given, the proxy must fit the space's networks (channels, classes, image size).
        epochs: training epochs of each candidate.
        lr: SGD learning rate.
        weight_decay: SGD weight decay.
        batch_size: images per SGD step.
        seed: weight init, shuffling and DSA seed (the same for every candidate, so they differ only by design).
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``.
        report_every: validate and report every k epochs (``nni.report_intermediate_result``); 0: only the final
            result.
        allow_absolute: accept absolute paths for ``proxy`` and ``val`` (local debugging only: not portable).

    The proxy and the split are resolved and cross-checked now, so a mismatch fails before the search starts.

    Raises:
        ProxyMismatchError: the proxy's image shape, classes or normalisation differ from the split's or from the
            space's. ConfigError: an absolute path (not portable), or bad training settings.
    """
    p, v = prepare(proxy, val, allow_absolute=allow_absolute)
    if space is not None:
        channels, num_classes, hw = space.search_shape
        check_network_shape(p, channels=channels, num_classes=num_classes, image_size=hw)
    if epochs < 1 or batch_size < 1 or not lr > 0 or weight_decay < 0:
        raise ConfigError(f"need epochs >= 1, batch_size >= 1, lr > 0, weight_decay >= 0; got {epochs}, {batch_size}, "
                          f"{lr}, {weight_decay}")
    return ProxyEvaluator(evaluate_on_proxy, proxy=proxy, val=val, epochs=int(epochs), lr=float(lr),
                          weight_decay=float(weight_decay), batch_size=int(batch_size), seed=int(seed),
                          device=str(device), report_every=int(report_every), allow_absolute=allow_absolute)


@dataclass
class SearchResult:
    """What a search tried: ``trials`` = [(architecture dict, validation accuracy in [0, 1])] in trial order."""

    trials: list = field(default_factory=list)
    seconds: float = 0.0
    strategy: str = ""

    @property
    def best(self) -> tuple[dict, float]:
        """The architecture with the highest validation accuracy and that accuracy."""
        if not self.trials:
            raise ConfigError("the search finished no trial")
        return max(self.trials, key=lambda t: t[1])


def make_strategy(name: str, *, max_trials: int, seed: int = 0):
    """An NNI strategy: ``"random"`` (``Random``) or ``"evolution"`` (``RegularizedEvolution`` with a population of
    ``min(20, max(2, max_trials // 2))`` and a tournament of a quarter of it). Raises ConfigError otherwise."""
    from nni.nas import strategy as S

    if name == "random":
        return S.Random(seed=seed)
    if name in ("evolution", "regularized-evolution"):
        population = min(20, max(2, max_trials // 2))
        return S.RegularizedEvolution(population_size=population, sample_size=max(1, population // 4), seed=seed)
    raise ConfigError(f"unknown strategy {name!r}; choose random or evolution")


def run_search(space: ConvNetSpace, evaluator, *, strategy: str | Any = "random", max_trials: int = 20, seed: int = 0,
               working_dir: str | Path | None = None) -> SearchResult:
    """Run a NAS experiment in this process with NNI's sequential execution engine (no NNI manager, no web
    portal): ``NasExperiment(space, evaluator, strategy, NasExperimentConfig('sequential', 'raw'))``.

    Args:
        space: the model space searched (a :class:`ConvNetSpace`).
        evaluator: trains and validates each sampled architecture (e.g. :func:`proxy_evaluator`'s).
        strategy: ``"random"``, ``"evolution"`` or an ``nni.nas.strategy`` object.
        max_trials: number of architectures trained.
        seed: the strategy's seed (when ``strategy`` is a name).
        working_dir: NNI's experiment directory (logs, checkpoint); default a temporary directory, removed after.
            NNI also records the experiment in ``~/nni-experiments/.experiment`` (its experiment list).

    Returns:
        :class:`SearchResult` with every trial's architecture and validation accuracy (a failed trial raises).
    """
    from nni.nas.experiment import NasExperiment, NasExperimentConfig

    if max_trials < 1:
        raise ConfigError(f"max_trials must be >= 1, got {max_trials}")
    strat = make_strategy(strategy, max_trials=max_trials, seed=seed) if isinstance(strategy, str) else strategy
    tmp = tempfile.TemporaryDirectory(prefix="atom-nas-") if working_dir is None else None
    config = NasExperimentConfig("sequential", "raw")  # no training service: the sequential engine needs none
    config.max_trial_number = int(max_trials)
    config.experiment_working_directory = str(Path(tmp.name if tmp else working_dir).resolve())
    exp = NasExperiment(space, evaluator, strat, config)
    t0 = time.perf_counter()
    try:
        exp.run()
        models = list(exp.strategy.list_models(sort=False))
    finally:
        exp.stop()
        if tmp is not None:
            tmp.cleanup()
    trials = []
    for m in models:
        arch = {k: m.sample[k] for k in DIMENSIONS}
        metric = m.metric
        if isinstance(metric, dict):
            metric = metric.get("default")
        trials.append((arch, float(metric) if metric is not None else float("nan")))
        _logger.info("trial %s: %s", arch_key(arch), metric)
    return SearchResult(trials, time.perf_counter() - t0, type(strat).__name__)
