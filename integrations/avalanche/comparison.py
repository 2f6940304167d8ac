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
from avalanche.training import DER, ER_ACE, Naive  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin, GDumbPlugin, ReplayPlugin  # noqa: E402
from avalanche.training.storage_policy import HerdingSelectionStrategy, ParametricBuffer  # noqa: E402

from atom_plugin import ATOMConfig, build_model  # noqa: E402
from atom_plugin.errors import ConfigError, check_choice  # noqa: E402
from atom_plugin.results import markdown_table  # noqa: E402

from .buffer import ATOMBuffer  # noqa: E402
from .finetune import BalancedFineTunePlugin  # noqa: E402
from .gdumb import CondensedGDumbPlugin  # noqa: E402
from .memory_dsa import MemoryDSAPlugin  # noqa: E402
from .methods import ALL_METHODS, DROP_LAST, FINETUNED, MEMORY_NOTE, METHODS  # noqa: E402,F401  (re-exported)
from .methods import cell_of, memory_policy  # noqa: E402
from .replay import ATOMReplayPlugin  # noqa: E402
from .strategies import ATOMLogitsBuffer, HerdingLogitsBuffer, use_atom_memory  # noqa: E402


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
    # -- the strategies x memories grid (issue 22); the six first methods do not read these --
    batch_size_mem: int = 64          # memory minibatch of ER_ACE and DER (<= the smallest memory's sample count)
    finetune_epochs: int = 30         # balanced fine-tune (+ft): epochs on the memory after each experience
    finetune_lr: float = 0.005        # its SGD learning rate (momentum, weight decay: the recipe's)
    finetune_mb_size: int = 64        # its minibatch
    finetune_dsa: bool = True         # DSA on its minibatches
    der_alpha: float = 0.1            # DER: weight of the logits' MSE on memory samples (Avalanche's default)
    der_beta: float = 0.5             # DER: weight of the cross-entropy on memory samples (DER++; Avalanche's default)

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
            ("ER-ACE and DER memory minibatch", f"{self.batch_size_mem} (DER alpha {self.der_alpha}, beta "
                                                f"{self.der_beta})"),
            ("balanced fine-tune (+ft)", f"{self.finetune_epochs} epochs on the memory after each experience, SGD lr "
                                         f"{self.finetune_lr}, minibatch {self.finetune_mb_size}, "
                                         + ("DSA" if self.finetune_dsa else "no augmentation")),
        ]
        return markdown_table(["setting", "value"], rows)


#: A tiny budget that checks the pipeline end to end (the example's ``--quick``).
QUICK_RECIPE = Recipe(width=16, train_epochs=1, train_mb_size=32, mem_mb_size=32, eval_mb_size=256,
                      gdumb_epochs=2, condense_iterations=2, condense_batch_real=4, condense_width=16,
                      batch_size_mem=8, finetune_epochs=2, finetune_mb_size=8)

#: A reduced budget that a 2-core CPU runs in minutes per method (sizes only; the rules of the recipe are unchanged):
#: narrower networks, one epoch per experience, fewer GDumb epochs and condensation iterations. The balanced
#: fine-tune's epochs and lr were chosen on a validation split (``avalanche_replay.py --choose-finetune``:
#: benchmarks/results/avalanche_finetune_choice_cpu.json).
CPU_RECIPE = Recipe(width=32, train_epochs=1, train_mb_size=128, mem_mb_size=128, eval_mb_size=1000,
                    gdumb_epochs=100, condense_iterations=200, condense_batch_real=32, condense_width=32,
                    finetune_epochs=60, finetune_lr=0.002)

#: The recipes by budget name.
RECIPES = {"quick": QUICK_RECIPE, "cpu": CPU_RECIPE, "full": Recipe()}


def herding_policy(mem_size: int, model: torch.nn.Module, layer_name: str) -> ParametricBuffer:
    """``ParametricBuffer(mem_size, groupby="class", selection_strategy=HerdingSelectionStrategy(model,
    layer_name))``; with ``layer_name="flatten"`` the features are the ConvNet's embedding (2-D, as herding needs)."""
    selection = HerdingSelectionStrategy(model, layer_name)
    return ParametricBuffer(mem_size, groupby="class", selection_strategy=selection)


def build_strategy(method: str, *, memory: int, recipe: Recipe, num_classes: int, image_shape: Sequence[int],
                   device: str | torch.device, seed: int, loggers: Sequence[Any] = (), progress: bool = False,
                   cache_dir: str | None = None, condense_config: ATOMConfig | None = None):
    """``(strategy, holder)`` for one method (:data:`.methods.ALL_METHODS`: the six first ones or a grid cell
    ``"STRATEGY-KIND"``): ``holder.storage_policy`` is the memory (the replay/GDumb plugin, or the strategy itself for
    ``ER_ACE``/``DER``; None for naive). The model is built after ``torch.manual_seed(seed)``.

    Args:
        method: the method name.
        memory: stored images in memory (M).
        recipe: the training recipe.
        num_classes: classes of the benchmark.
        image_shape: ``(C, H, W)``.
        device: where to train (and condense).
        seed: model initialisation, memory seeds.
        loggers: Avalanche loggers of the evaluator.
        progress: condensation progress bars.
        cache_dir: the ATOM memories' cache folder (:class:`ATOMBuffer` ``cache_dir``), or None.
        condense_config: the ATOM memories' settings (default ``recipe.condense_config()``).

    Raises:
        ConfigError: unknown method.
    """
    check_choice(method, "method", ALL_METHODS)
    strategy_name, kind = cell_of(dict(method=method))
    family = strategy_name.replace("+ft", "")
    c, h, w = image_shape
    torch.manual_seed(seed)
    model = build_model(recipe.model, channels=c, num_classes=num_classes, image_size=(h, w), width=recipe.width,
                        depth=recipe.depth, norm=recipe.norm)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    cfg = condense_config if condense_config is not None else recipe.condense_config()
    atom = dict(config=cfg, seed=seed, progress=progress, cache_dir=cache_dir)
    plugin = None
    if family == "replay" and kind == "random":
        plugin = ReplayPlugin(mem_size=memory, batch_size_mem=recipe.mem_mb_size)
    elif family == "replay" and kind == "herding":
        plugin = ReplayPlugin(mem_size=memory, batch_size_mem=recipe.mem_mb_size,
                              storage_policy=herding_policy(memory, model, "flatten"))
    elif family == "gdumb" and kind == "random":
        plugin = GDumbPlugin(mem_size=memory)
    elif family == "replay" and kind == "atom":
        plugin = ATOMReplayPlugin(memory, batch_size_mem=recipe.mem_mb_size, **atom)
    elif family == "gdumb" and kind == "atom":
        plugin = CondensedGDumbPlugin(memory, **atom)
    plugins = [plugin] if plugin is not None else []
    if plugin is not None and recipe.memory_dsa:  # after the method's plugin: it augments that plugin's memory
        plugins.append(MemoryDSAPlugin(memory_only=family == "gdumb", seed=seed))
    if strategy_name in FINETUNED:  # after the replay plugin: the fine-tune follows the memory update
        plugins.append(BalancedFineTunePlugin(recipe.finetune_epochs, recipe.finetune_lr,
                                              batch_size=recipe.finetune_mb_size, dsa=recipe.finetune_dsa, seed=seed))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                     forgetting_metrics(experience=True, stream=True), loggers=list(loggers))
    epochs = recipe.gdumb_epochs if family == "gdumb" else recipe.train_epochs
    common = dict(model=model, optimizer=optimizer, train_mb_size=recipe.train_mb_size, train_epochs=epochs,
                  eval_mb_size=recipe.eval_mb_size, device=device, evaluator=evaluator, plugins=plugins or None)
    if family == "er_ace":
        strategy = ER_ACE(mem_size=memory, batch_size_mem=recipe.batch_size_mem, **common)
        if kind == "herding":
            strategy.storage_policy = herding_policy(memory, model, "flatten")
        elif kind == "atom":
            use_atom_memory(strategy, ATOMBuffer(memory, **atom))
        return strategy, strategy
    if family == "der":
        strategy = DER(mem_size=memory, batch_size_mem=recipe.batch_size_mem, alpha=recipe.der_alpha,
                       beta=recipe.der_beta, **common)
        if kind == "herding":
            strategy.storage_policy = HerdingLogitsBuffer(memory, model, "flatten")
        elif kind == "atom":
            use_atom_memory(strategy, ATOMLogitsBuffer(memory, **atom))
        return strategy, strategy
    return Naive(**common), plugin


def _metric(metrics: dict, prefix: str, suffix: str = "") -> float | None:
    hits = [v for k, v in metrics.items() if k.startswith(prefix) and k.endswith(suffix)]
    return float(hits[-1]) if hits else None


def check_replay_on(method: str, memory: int, recipe: Recipe) -> None:
    """Refuse a run in which replay would be off or unfair: ``ER_ACE`` and ``DER`` replay only when the memory holds
    ``batch_size_mem`` samples, and a real memory of M stored images holds at most M, so the memory minibatch must
    not exceed the smallest memory's sample count, M (an ATOM memory's decoded count is larger: it would replay
    where the real ones do not).

    Args:
        method: the method name.
        memory: stored images (M).
        recipe: its ``batch_size_mem``.

    Raises:
        ConfigError: ``recipe.batch_size_mem`` > ``memory`` for such a strategy.
    """
    if cell_of(dict(method=method))[0] in DROP_LAST and recipe.batch_size_mem > memory:
        raise ConfigError(f"batch_size_mem={recipe.batch_size_mem} exceeds memory {memory}: {method} would not replay "
                          f"with a real-sample memory; use a recipe with batch_size_mem <= {memory}")


def run_method(method: str, benchmark, *, memory: int, recipe: Recipe, device: str | torch.device, seed: int,
               loggers: Sequence[Any] = (), progress: bool = False, log=None, cache_dir: str | None = None,
               condense_config: ATOMConfig | None = None) -> dict[str, Any]:
    """Train ``method`` on ``benchmark.train_stream`` (evaluating on the whole test stream after each experience).

    Args:
        method: a name of :data:`.methods.ALL_METHODS`.
        benchmark: a class-incremental Avalanche benchmark (``train_stream``, ``test_stream``, ``n_classes``).
        memory: stored images in memory.
        recipe: the training recipe.
        device: where to train and condense.
        seed: model initialisation and memory seeds.
        loggers: Avalanche loggers.
        progress: condensation progress bars.
        log: a function of one line, called after each experience (or None).
        cache_dir: the ATOM memories' cache folder, or None.
        condense_config: the ATOM memories' settings (default ``recipe.condense_config()``).

    Returns a flat dict: ``method``, ``strategy``, ``memory_kind``, ``memory_policy`` (the buffer class),
    ``memory`` (images), ``seed``, ``final_avg_accuracy`` (%), ``avg_forgetting`` (%), ``acc_curve`` (list, %),
    ``condense_seconds`` (0.0 for methods that do not condense; a cached update counts its original time),
    ``train_seconds`` (wall time of the whole run, condensation and evaluation included),
    ``train_seconds_without_condensation`` (``train_seconds - condense_seconds_spent``), ``finetune_seconds``,
    ``memory_used`` (stored images in memory at the end), ``memory_dsa``, ``batch_size_mem`` (ER-ACE/DER, else
    None), ``finetune_epochs``/``finetune_lr`` (+ft, else None), and for ATOM methods ``memory_decoded`` (training
    samples), ``cached_updates``, ``condense_seconds_spent`` (condensation done in this run: the updates not read
    from ``cache_dir``), ``images_per_class``, ``decoded_per_class`` and ``factor_per_class`` (final).

    Raises:
        ConfigError: unknown method, or replay would be off (:func:`check_replay_on`).
    """
    check_choice(method, "method", ALL_METHODS)
    check_replay_on(method, memory, recipe)
    first = benchmark.train_stream[0].dataset.eval()[0][0]
    strategy, plugin = build_strategy(method, memory=memory, recipe=recipe, num_classes=benchmark.n_classes,
                                      image_shape=tuple(first.shape), device=device, seed=seed, loggers=loggers,
                                      progress=progress, cache_dir=cache_dir, condense_config=condense_config)
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
    name, kind = cell_of(dict(method=method))
    ft = [p for p in strategy.plugins if isinstance(p, BalancedFineTunePlugin)]
    out.update(strategy=name, memory_kind=kind, memory_policy=memory_policy(name, kind),
               batch_size_mem=recipe.batch_size_mem if name in DROP_LAST else None,
               finetune_epochs=recipe.finetune_epochs if name in FINETUNED else None,
               finetune_lr=recipe.finetune_lr if name in FINETUNED else None,
               finetune_seconds=round(sum(h["seconds"] for p in ft for h in p.history), 3))
    if kind == "atom":
        buf = plugin.storage_policy
        out.update(condense_seconds=round(buf.condense_seconds, 3), policy=buf.policy, memory_used=buf.stored_size,
                   memory_decoded=buf.decoded_size, cached_updates=sum(bool(h.get("cached")) for h in buf.history),
                   condense_seconds_spent=round(sum(h["seconds"] for h in buf.history if not h.get("cached")), 3),
                   images_per_class={str(k): v for k, v in buf.images_per_class().items()},
                   decoded_per_class={str(k): v for k, v in buf.images_per_class(decoded=True).items()},
                   factor_per_class={f"{t}/{k}": f for (t, k), f in buf.factors().items()},
                   normalization_source=buf.normalization["source"] if buf.normalization else None)
    out["train_seconds_without_condensation"] = round(seconds - out.get("condense_seconds_spent", 0.0), 3)
    return out


def results_table(rows: Sequence[dict]) -> str:
    """A Markdown table of :func:`run_method` results (one row per record), with its note on what memory means."""
    cells = []
    for r in rows:
        acc = "" if r.get("final_avg_accuracy") is None else f"{r['final_avg_accuracy']:.2f}"
        fgt = "" if r.get("avg_forgetting") is None else f"{r['avg_forgetting']:.2f}"
        cs = f"{r['condense_seconds']:.1f}" if cell_of(r)[1] == "atom" else "-"
        cells.append([r["method"], r["memory"], r["seed"], acc, fgt, cs])
    return MEMORY_NOTE + "\n\n" + markdown_table(["method", "memory (stored images)", "seed", "final avg accuracy (%)",
                                                 "avg forgetting (%)", "condensation (s)"], cells)


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as a flat dict (stored with result records)."""
    return dataclasses.asdict(recipe)
