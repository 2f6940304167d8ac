"""The six-method comparison on a class-incremental Avalanche benchmark, with one training recipe for all.

Used unchanged by ``examples/avalanche_replay.py`` and ``benchmarks/avalanche_replay.py``; the recipe is
tabulated in ``docs/avalanche.md`` (``Recipe().markdown()`` prints it).

Methods (all at the same memory M = total *stored* images, equal storage for every method; the ATOM methods'
stored images may be factorised and train on their decoded samples; the list itself: :mod:`.methods`):

===============  ==========================================================================================
``naive``        fine-tuning, no memory (lower bound; M unused)
``replay``       Avalanche's ``ReplayPlugin(M)`` default: reservoir sampling, balanced over experiences
``herding``      ``ReplayPlugin`` with ``ParametricBuffer(M, groupby="class", HerdingSelectionStrategy)``
                 (features: the flattened output of the last ConvNet block, i.e. the embedding)
``gdumb``        Avalanche's ``GDumbPlugin(M)``: class-balanced real memory, model reset, trained on memory only
``atom-replay``  :class:`ATOMReplayPlugin` (budget policy): condensed memory mixed into every minibatch
``atom-gdumb``   :class:`CondensedGDumbPlugin` (budget policy): GDumb on the condensed memory
===============  ==========================================================================================

Metrics (Avalanche's ``accuracy_metrics``/``forgetting_metrics``; the model is evaluated on the whole test stream
after every experience): ``final_avg_accuracy`` = ``Top1_Acc_Stream/eval_phase/test_stream`` after the last
experience (%), ``avg_forgetting`` = ``StreamForgetting/eval_phase/test_stream`` then (%), ``acc_curve`` =
after each experience e, the mean accuracy over the test experiences 0..e (%).
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ._compat import require_avalanche

require_avalanche()
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics  # noqa: E402
from avalanche.training import Naive  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin, GDumbPlugin, ReplayPlugin  # noqa: E402
from avalanche.training.storage_policy import HerdingSelectionStrategy, ParametricBuffer  # noqa: E402

from atom_plugin import ATOMConfig, build_model  # noqa: E402
from atom_plugin.errors import check_choice  # noqa: E402
from atom_plugin.results import markdown_table  # noqa: E402

from .gdumb import CondensedGDumbPlugin  # noqa: E402
from .memory_dsa import MemoryDSAPlugin  # noqa: E402
from .methods import CONDENSING, GDUMB_LIKE, MEMORY_NOTE, METHODS  # noqa: E402,F401  (METHODS: re-exported)
from .replay import ATOMReplayPlugin  # noqa: E402


@dataclass(frozen=True)
class Recipe:
    """One training recipe for every method (see ``docs/avalanche.md``)."""

    model: str = "convnet"            # ConvNet-3, instancenorm (atom_plugin.build_model)
    width: int = 128
    depth: int = 3
    norm: str = "instancenorm"
    lr: float = 0.01                  # SGD
    momentum: float = 0.9
    weight_decay: float = 5e-4
    train_epochs: int = 5             # epochs per experience (naive, replay, herding, atom-replay)
    train_mb_size: int = 128          # current-data minibatch (and GDumb's memory minibatch)
    mem_mb_size: int = 128            # memory minibatch added to each current minibatch (replay methods)
    eval_mb_size: int = 512
    gdumb_epochs: int = 500           # epochs on the memory per experience (gdumb, atom-gdumb)
    memory_dsa: bool = False          # DSA on memory samples, for every method with a memory (MemoryDSAPlugin)
    condense_preset: str = "atom"
    condense_factor: int | None = None  # multi-formation factor of the ATOM memories; None = the preset's per-IPC
                                        # table at each class's stored-image share (the buffer's default)
    condense_iterations: int = 1000   # per experience (new classes), and per re-condensation of old classes
    condense_batch_real: int = 64     # real images per class per iteration
    condense_width: int = 128         # width of the condensation ConvNet

    def condense_config(self) -> ATOMConfig:
        """The :class:`atom_plugin.ATOMConfig` the ATOM methods use (its ipc is set by the memory policy)."""
        return ATOMConfig(preset=self.condense_preset, iterations=self.condense_iterations,
                          batch_real=self.condense_batch_real, width=self.condense_width, depth=self.depth,
                          norm=self.norm, factor=self.condense_factor)  # networks: the preset's per-IPC choice

    def factor_label(self) -> str:
        """How the ATOM memories are factorised, in words."""
        if self.condense_factor is None:
            return "factor per the preset's per-IPC table at each class's share"
        return f"factor {self.condense_factor}" + (" (plain images)" if self.condense_factor == 1 else "")

    def markdown(self) -> str:
        """The recipe as a Markdown table."""
        rows = [
            ("model", f"ConvNet-{self.depth} ({self.model}, width {self.width}, {self.norm}), "
                      "`atom_plugin.build_model`, same initial weights for every method of a seed"),
            ("optimiser", f"SGD, lr {self.lr}, momentum {self.momentum}, weight decay {self.weight_decay}"),
            ("epochs per experience", f"{self.train_epochs} (naive, replay, herding, atom-replay)"),
            ("current-data minibatch", str(self.train_mb_size)),
            ("memory minibatch (replay methods)", f"{self.mem_mb_size}, added to each current minibatch"),
            ("GDumb epochs on the memory", f"{self.gdumb_epochs} per experience, minibatch {self.train_mb_size} "
                                           "(gdumb, atom-gdumb; model reset before each experience)"),
            ("augmentation of memory batches", "DSA (the core's ops, one drawn per memory sample), for every method "
             "with a memory" if self.memory_dsa else
             "none, for every method (SplitFMNIST's train transform is deterministic too)"),
            ("condensation", f"preset `{self.condense_preset}`, {self.condense_iterations} iterations per experience "
                             f"and per re-condensation, {self.condense_batch_real} real images/class/iteration, "
                             f"ConvNet width {self.condense_width}, {self.factor_label()}"),
            ("evaluation", f"whole test stream after every experience, minibatch {self.eval_mb_size}"),
        ]
        return markdown_table(["setting", "value"], rows)


#: A tiny budget that checks the pipeline end to end (the example's ``--quick``).
QUICK_RECIPE = Recipe(width=16, train_epochs=1, train_mb_size=32, mem_mb_size=32, eval_mb_size=256,
                      gdumb_epochs=2, condense_iterations=2, condense_batch_real=4, condense_width=16)

#: A reduced budget that a 2-core CPU runs in minutes per method (sizes only; the rules of the recipe are unchanged):
#: narrower networks, one epoch per experience, fewer GDumb epochs and condensation iterations.
CPU_RECIPE = Recipe(width=32, train_epochs=1, train_mb_size=128, mem_mb_size=128, eval_mb_size=1000,
                    gdumb_epochs=100, condense_iterations=200, condense_batch_real=32, condense_width=32)

#: The recipes by budget name.
RECIPES = {"quick": QUICK_RECIPE, "cpu": CPU_RECIPE, "full": Recipe()}


def herding_policy(mem_size: int, model: torch.nn.Module, layer_name: str) -> ParametricBuffer:
    """``ParametricBuffer(mem_size, groupby="class", selection_strategy=HerdingSelectionStrategy(model,
    layer_name))``; with ``layer_name="flatten"`` the features are the ConvNet's embedding (2-D, as herding needs)."""
    selection = HerdingSelectionStrategy(model, layer_name)
    return ParametricBuffer(mem_size, groupby="class", selection_strategy=selection)


def build_strategy(method: str, *, memory: int, recipe: Recipe, num_classes: int, image_shape: Sequence[int],
                   device: str | torch.device, seed: int, loggers: Sequence[Any] = (), progress: bool = False):
    """``(strategy, plugin or None)`` for one method; the model is built after ``torch.manual_seed(seed)``.

    Raises:
        ConfigError: unknown method.
    """
    check_choice(method, "method", METHODS)
    c, h, w = image_shape
    torch.manual_seed(seed)
    model = build_model(recipe.model, channels=c, num_classes=num_classes, image_size=(h, w), width=recipe.width,
                        depth=recipe.depth, norm=recipe.norm)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    plugin = None
    if method == "replay":
        plugin = ReplayPlugin(mem_size=memory, batch_size_mem=recipe.mem_mb_size)
    elif method == "herding":
        plugin = ReplayPlugin(mem_size=memory, batch_size_mem=recipe.mem_mb_size,
                              storage_policy=herding_policy(memory, model, "flatten"))
    elif method == "gdumb":
        plugin = GDumbPlugin(mem_size=memory)
    elif method == "atom-replay":
        plugin = ATOMReplayPlugin(memory, config=recipe.condense_config(), batch_size_mem=recipe.mem_mb_size,
                                  seed=seed, progress=progress)
    elif method == "atom-gdumb":
        plugin = CondensedGDumbPlugin(memory, config=recipe.condense_config(), seed=seed, progress=progress)
    plugins = [plugin] if plugin is not None else []
    if plugin is not None and recipe.memory_dsa:  # after the method's plugin: it augments that plugin's memory
        plugins.append(MemoryDSAPlugin(memory_only=method in GDUMB_LIKE, seed=seed))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                     forgetting_metrics(experience=True, stream=True), loggers=list(loggers))
    epochs = recipe.gdumb_epochs if method in GDUMB_LIKE else recipe.train_epochs
    strategy = Naive(model=model, optimizer=optimizer, train_mb_size=recipe.train_mb_size, train_epochs=epochs,
                     eval_mb_size=recipe.eval_mb_size, device=device, evaluator=evaluator,
                     plugins=plugins or None)
    return strategy, plugin


def _metric(metrics: dict, prefix: str, suffix: str = "") -> float | None:
    hits = [v for k, v in metrics.items() if k.startswith(prefix) and k.endswith(suffix)]
    return float(hits[-1]) if hits else None


def run_method(method: str, benchmark, *, memory: int, recipe: Recipe, device: str | torch.device, seed: int,
               loggers: Sequence[Any] = (), progress: bool = False, log=None) -> dict[str, Any]:
    """Train ``method`` on ``benchmark.train_stream`` (evaluating on the whole test stream after each experience).

    Returns a flat dict: ``method``, ``memory`` (images), ``seed``, ``final_avg_accuracy`` (%),
    ``avg_forgetting`` (%), ``acc_curve`` (list, %), ``condense_seconds`` (0.0 for methods that do not condense),
    ``train_seconds`` (wall time of the whole run, condensation and evaluation included),
    ``train_seconds_without_condensation`` (``train_seconds - condense_seconds``), ``memory_used``
    (stored images in memory at the end), ``memory_dsa``, and for ATOM methods ``memory_decoded`` (training
    samples), ``images_per_class``, ``decoded_per_class`` and ``factor_per_class`` (final, by class).
    """
    first = benchmark.train_stream[0].dataset.eval()[0][0]
    strategy, plugin = build_strategy(method, memory=memory, recipe=recipe, num_classes=benchmark.n_classes,
                                      image_shape=tuple(first.shape), device=device, seed=seed, loggers=loggers,
                                      progress=progress)
    n_exp = len(benchmark.train_stream)
    curve = []
    metrics: dict = {}
    t0 = time.perf_counter()
    for e, exp in enumerate(benchmark.train_stream):
        with warnings.catch_warnings():  # Avalanche 0.6's own Replay/GDumb plugins call a deprecated update()
            warnings.filterwarnings("ignore", message="Call to deprecated function update", category=DeprecationWarning)
            strategy.train(exp, eval_streams=[])
        metrics = strategy.eval(benchmark.test_stream)
        accs = [_metric(metrics, "Top1_Acc_Exp/eval_phase/test_stream/", f"Exp{k:03d}") for k in range(e + 1)]
        curve.append(round(100.0 * sum(a or 0.0 for a in accs) / (e + 1), 3))
        if log is not None:
            log(f"  {method} M={memory} seed={seed}: experience {e + 1}/{n_exp}, accuracy on seen classes "
                f"{curve[-1]:.2f} %")
    seconds = time.perf_counter() - t0
    acc = _metric(metrics, "Top1_Acc_Stream/eval_phase/test_stream")
    fgt = _metric(metrics, "StreamForgetting/eval_phase/test_stream")
    out: dict[str, Any] = dict(
        method=method, memory=int(memory), seed=int(seed),
        final_avg_accuracy=round(100.0 * acc, 3) if acc is not None else None,
        avg_forgetting=round(100.0 * fgt, 3) if fgt is not None else None,
        acc_curve=curve, condense_seconds=0.0, train_seconds=round(seconds, 3),
        memory_used=len(plugin.storage_policy.buffer) if plugin is not None else 0, memory_dsa=recipe.memory_dsa,
    )
    if method in CONDENSING:
        buf = plugin.storage_policy
        out.update(condense_seconds=round(buf.condense_seconds, 3), policy=buf.policy, memory_used=buf.stored_size,
                   memory_decoded=buf.decoded_size,
                   images_per_class={str(k): v for k, v in buf.images_per_class().items()},
                   decoded_per_class={str(k): v for k, v in buf.images_per_class(decoded=True).items()},
                   factor_per_class={f"{t}/{k}": f for (t, k), f in buf.factors().items()},
                   normalization_source=buf.normalization["source"] if buf.normalization else None)
    out["train_seconds_without_condensation"] = round(seconds - out["condense_seconds"], 3)
    return out


def results_table(rows: Sequence[dict]) -> str:
    """A Markdown table of :func:`run_method` results (one row per record), with its note on what memory means."""
    cells = []
    for r in rows:
        acc = "" if r.get("final_avg_accuracy") is None else f"{r['final_avg_accuracy']:.2f}"
        fgt = "" if r.get("avg_forgetting") is None else f"{r['avg_forgetting']:.2f}"
        cs = f"{r['condense_seconds']:.1f}" if r.get("method") in CONDENSING else "-"
        cells.append([r["method"], r["memory"], r["seed"], acc, fgt, cs])
    return MEMORY_NOTE + "\n\n" + markdown_table(["method", "memory (stored images)", "seed", "final avg accuracy (%)",
                                                 "avg forgetting (%)", "condensation (s)"], cells)


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as a flat dict (stored with result records)."""
    return dataclasses.asdict(recipe)
