"""Continual learning with condensed memories: six methods on SplitFMNIST-5 at memory 100, 200 and 500 images.

Methods, recipe and metrics: ``atom_plugin.integrations.avalanche.comparison`` and ``docs/avalanche.md``
(one training recipe for all six; "memory" = total stored images; 3 seeds = 3 class orders and model inits).
Each (method, memory, seed) run appends one flat record to the JSON file (skipped when already there, so an
interrupted run resumes). ``python benchmarks/report.py`` renders the records: a table per budget and memory variant
(mean ± std over seeds) and a plot (accuracy on the classes seen after each experience, one line per method, one
panel per memory) in docs/avalanche.md.

Full budget (GPU; memory 100 first):  python benchmarks/avalanche_replay.py --device cuda
Reduced CPU budget (CPU_RECIPE):      python benchmarks/avalanche_replay.py --budget cpu
CPU smoke test:                       python benchmarks/avalanche_replay.py --quick --memories 10 --seeds 0
Tables and plot:                      python benchmarks/report.py

The strategies x memories grid (issue 22; ``--strategies`` and/or ``--memory-kinds`` select its cells, GRID in
``integrations/avalanche/methods.py``; the six first methods are its cells replay/gdumb x random/herding/atom under
their old names; ``python benchmarks/report.py`` renders it in the ``avalanche_grid`` and ``avalanche_recommended``
slots of docs/avalanche.md):

    OMP_NUM_THREADS=1 python benchmarks/avalanche_replay.py --budget cpu --memories 100 \
        --strategies replay er_ace er_ace+ft replay+ft gdumb der --memory-kinds random herding atom \
        --cache-dir runs/avalanche-memories --plan            # prints the runs left and their CPU-hours; drop --plan
    OMP_NUM_THREADS=1 python benchmarks/avalanche_replay.py --budget cpu --choose-finetune   # E and lr, validation

The grid's ATOM memories use the pinned condensation settings :data:`GRID_CONDENSE` (today's
``CPU_RECIPE.condense_config()`` with the preset's loss fields written out; recorded with each run as
``condense_config`` with the per-IPC table ``per_ipc_table``, and their hash ``condense_pin`` in the resume key).
Condensation uses random networks, not the learner, so with ``--cache-dir`` the same (seed, memory, experience)
memory is condensed once and reused by every strategy (a record's ``condense_seconds`` keeps the original time and
``cached_updates`` counts the reused updates). Strategies that replay only when the memory holds ``batch_size_mem``
samples (ER-ACE, DER) are refused (exit 2) when ``batch_size_mem`` exceeds the memory.

Memory variants (recorded, part of the resume key, one table each): ``--memory-factor`` (``table``, the default:
the ATOM memories' multi-formation factor per the core's per-IPC table at each class's share; or a fixed factor,
e.g. 1 for plain images) and ``--memory-dsa`` (DSA on memory samples, for every method with a memory). Records
written before these options existed count as factor 1 without memory DSA. ``--memory-iterations N``,
``--memory-batch-real N`` and ``--memory-width N`` (CPU budget) condense the ATOM memories with N iterations, N real
images per class per iteration or matching networks N channels wide instead of the pinned 200, 32 and 32: a
memory-quality variant, recorded in ``condense_config`` and ``condense_pin`` (so in the resume key and the memory
cache's key), kept out of the grid's tables and compared with the pinned memory, paired by seed, in the
``avalanche_memory_quality`` slot.

Records (``benchmarks/results/avalanche_splitfmnist.json``; ``--budget cpu`` and ``--quick`` runs go to
``..._cpu.json`` and ``..._quick.json`` and carry ``budget: "cpu"`` / ``"quick"``): benchmark ("SplitFMNIST-5"),
method, memory (images), seed, budget, final_avg_accuracy (%), avg_forgetting (%), acc_curve (% after each
experience), condense_seconds, train_seconds, memory_used (stored images), memory_decoded (ATOM methods: training
samples), memory_factor, memory_dsa, class_order, recipe, and device, torch, python,
atom_plugin, date, command. Naive uses no memory: its run for a seed is measured once and copied to the other
memories (``reused_from_memory``).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys

from _common import RESULTS, ResultsFile, add_common_args, add_out_arg, log, set_threads, stamp

from atom_plugin.runner import run_script
from atom_plugin import device_name, resolve_device
from atom_plugin.integrations.avalanche import METHODS  # (importing it needs no Avalanche)
from atom_plugin.integrations.avalanche.methods import (ALL_METHODS, DROP_LAST, FINETUNED, GRID, MEMORY_KINDS,
                                                        STRATEGIES, cell_method, cell_of)


BENCHMARK = "SplitFMNIST-5"
KEY = ("benchmark", "method", "memory", "seed", "budget", "device", "memory_factor", "memory_dsa", "strategy",
       "memory_kind", "batch_size_mem", "finetune_epochs", "finetune_lr", "condense_pin")
LEGACY_VARIANT = dict(memory_factor="1", memory_dsa=False)  # records from before the variants were recorded

#: The grid's condensation settings, pinned (issue 22): today's ``CPU_RECIPE.condense_config()`` with the ``atom``
#: preset's loss fields written out; factor, networks and lr_images follow the per-IPC table at each class's share
#: (:data:`GRID_PER_IPC`, the core's ``ATOM_BY_IPC`` when pinned). ``--memory-factor`` replaces the factor.
GRID_CONDENSE = dict(preset="atom", iterations=200, batch_real=32, width=32, depth=3, norm="instancenorm",
                     w_spatial=10.0, w_channel=10.0, w_embed=1.0, power=4.0, layers=[1, 2], factor=None)
#: The per-IPC table ``(largest IPC, factor, networks, lr_images)`` the pinned grid runs with.
GRID_PER_IPC = [[1, 2, "random", 0.3], [10, 2, "random", 1.0], [None, 1, "random", 1.0]]

#: The grid's targets (issue 22), final average accuracy points, paired by seed: the primary strategy's ATOM memory
#: minus its counterpart (the better of its random and herding memories) per memory, and the best ATOM method minus
#: the best real-sample method of the whole grid.
GRID_TARGETS = dict(primary={100: 3.0, 500: -0.5}, best={100: 3.0})
SEEDS = (0, 1, 2)  #: the seeds of every cell (class orders and model inits); a target on fewer is provisional

#: Candidates of ``--choose-finetune``: epochs on the memory after each experience and the fine-tune's SGD rate.
#: (120 epochs and lr 0.001 were added on 2026-12-07: the first grid's choice, 60 epochs at 0.002, sat at its corner.)
FINETUNE_CANDIDATES = dict(epochs=(10, 30, 60, 120), lr=(0.001, 0.002, 0.005, 0.01))
FINETUNE_CHOICE = RESULTS / "avalanche_finetune_choice_cpu.json"  #: where ``--choose-finetune`` writes its choice
VALIDATION_FRACTION = 0.1  #: of each training experience, held out by ``--choose-finetune`` (seed 0's split)

#: CPU seconds of one run on the 2-core machine, from the records (issue 22): (memory 100, memory 500) per strategy
#: family's training and evaluation, per memory kind's selection or condensation (ATOM: the first strategy of a
#: (seed, memory); cached afterwards; the grid's condensation records: 159 +- 7 s at memory 100, 485 +- 34 s at 500),
#: and per balanced fine-tune.
EST_SECONDS = dict(replay=(180, 290), er_ace=(160, 230), der=(200, 280), gdumb=(120, 400), naive=(120, 120),
                   herding=(600, 750), atom=(160, 500), atom_cached=(15, 40), finetune=(60, 300))


def legacy(r: dict) -> dict:
    """Fields of the resume key that older records lack: the memory variant, the grid cell of their method, no
    memory minibatch or fine-tune of the new strategies, the pin of the CPU recipe's condensation then."""
    strategy, kind = cell_of(r)
    return dict(LEGACY_VARIANT, strategy=strategy, memory_kind=kind, batch_size_mem=None, finetune_epochs=None,
                finetune_lr=None, condense_pin=legacy_pin(r))


def legacy_pin(r: dict) -> str | None:
    """``condense_pin`` of a CPU record written before it was recorded: the pinned settings with its factor (the CPU
    recipe's ATOM memories used them; the table's IPC-1 row, changed on 2026-12-01, is never reached at memory >= 20
    on 10 classes). Other budgets and real-sample memories are not pinned (None)."""
    if r.get("budget") != "cpu" or cell_of(r)[1] != "atom":
        return None
    mf = str(r.get("memory_factor") or LEGACY_VARIANT["memory_factor"])
    return condense_pin(dict(GRID_CONDENSE, factor=None if mf == "table" else int(mf)), GRID_PER_IPC)


#: The condensation settings a memory-quality variant may change from :data:`GRID_CONDENSE`, with their flags.
QUALITY_FLAGS = {"iterations": "--memory-iterations", "batch_real": "--memory-batch-real", "width": "--memory-width"}


def memory_condense(r: dict) -> tuple[tuple[str, int], ...] | None:
    """What a record's ATOM memory changed from the pinned :data:`GRID_CONDENSE` among :data:`QUALITY_FLAGS`' fields,
    as ``(field, value)`` pairs in that order: ``()`` for the grid's own memory (CPU records written before
    ``condense_config`` was recorded included); None for a real-sample memory or another budget's record."""
    if r.get("budget") != "cpu" or cell_of(r)[1] != "atom":
        return None
    cfg = r.get("condense_config") or GRID_CONDENSE
    return tuple((f, int(cfg[f])) for f in QUALITY_FLAGS if cfg.get(f, GRID_CONDENSE[f]) != GRID_CONDENSE[f])


def condense_label(changes: tuple[tuple[str, int], ...]) -> str:
    """``"iterations 1000, width 64"`` (``"pinned"`` for ``()``)."""
    return ", ".join(f"{f} {v}" for f, v in changes) or "pinned"


def condense_cost_ratio(changes: tuple[tuple[str, int], ...]) -> float:
    """The condensation's cost over the pinned one's, for ``--plan``: linear in the iterations; with a larger real
    batch or a wider network an upper bound -- x batch_real ratio (the real images' share grows with it, the
    synthetic one does not) and x width ratio squared (a ConvNet's conv FLOPs grow with width² past its first
    layer); below the pinned values a lower bound (what does not shrink with them stays)."""
    c = dict(changes)
    return (c.get("iterations", GRID_CONDENSE["iterations"]) / GRID_CONDENSE["iterations"]
            * c.get("batch_real", GRID_CONDENSE["batch_real"]) / GRID_CONDENSE["batch_real"]
            * (c.get("width", GRID_CONDENSE["width"]) / GRID_CONDENSE["width"]) ** 2)


def condense_pin(config: dict, table: list) -> str:
    """A short hash of the condensation settings and the per-IPC table (a resume-key field)."""
    return hashlib.sha256(json.dumps([config, table], sort_keys=True).encode()).hexdigest()[:8]


def estimate_seconds(method: str, memory: int, first_atom: bool, changes: tuple = ()) -> float:
    """:data:`EST_SECONDS` of one run (linear in the memory between 100 and 500; an ATOM memory's condensation,
    measured with the pinned settings, times :func:`condense_cost_ratio` of the variant's ``changes``)."""
    strategy, kind = cell_of(dict(method=method))

    def at(pair):
        lo, hi = pair
        return lo + (hi - lo) * (memory - 100) / 400

    total = at(EST_SECONDS[strategy.replace("+ft", "")])
    if kind == "herding":
        total += at(EST_SECONDS["herding"])
    if kind == "atom":
        total += at(EST_SECONDS["atom" if first_atom else "atom_cached"]) * (
            condense_cost_ratio(changes) if first_atom else 1)
    if strategy in FINETUNED:
        total += at(EST_SECONDS["finetune"])
    return max(total, 1.0)


def variant(r: dict) -> tuple[str, bool]:
    """``(memory_factor, memory_dsa)`` of a record (legacy records: factor 1, no memory DSA)."""
    return str(r.get("memory_factor", LEGACY_VARIANT["memory_factor"])), bool(r.get("memory_dsa", False))


# Targets, final average accuracy points over the real-sample counterpart, paired by seed: {memory: (atom-replay
# - herding, atom-gdumb - gdumb)}. The full recipe's (docs/avalanche.md) and the CPU recipe's (issue 13); report.py
# checks the records against them.
TARGETS = {"full": {100: (5.0, 5.0)}, "cpu": {100: (3.0, 5.0), 500: (0.0, 0.0)}}
PAIRS = (("atom-replay", "herding"), ("atom-gdumb", "gdumb"))


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, seed=False, compile=False)
    ap.add_argument("--memories", type=int, nargs="+", default=None, help="memory sizes in images "
                    "(default 100 200 500, in that order; 10 with --quick)")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="class orders / model inits")
    ap.add_argument("--methods", nargs="+", default=None, choices=ALL_METHODS,
                    help="methods by name (default: the six first ones, unless --strategies/--memory-kinds)")
    ap.add_argument("--strategies", nargs="+", default=None, choices=STRATEGIES,
                    help="the grid's strategies (with --memory-kinds: the cells of both; default all of them)")
    ap.add_argument("--memory-kinds", nargs="+", default=None, choices=MEMORY_KINDS,
                    help="the grid's memory kinds (default all of them)")
    ap.add_argument("--budget", choices=("full", "cpu", "quick"), default="full",
                    help="recipe: full (Recipe(), for a GPU), cpu (CPU_RECIPE, a reduced recipe for 2 CPU cores) or "
                    "quick (QUICK_RECIPE, a smoke test); non-full results are labelled and go to their own file")
    ap.add_argument("--quick", action="store_true", help="same as --budget quick")
    add_out_arg(ap, None, "default benchmarks/results/avalanche_splitfmnist.json, or "
                "avalanche_splitfmnist_<budget>.json for cpu/quick")
    ap.add_argument("--memory-factor", default="table", help="multi-formation factor of the ATOM memories: 'table' "
                    "(the core's per-IPC table at each class's share; default) or a whole number (1 = plain images)")
    ap.add_argument("--memory-dsa", action="store_true", help="DSA on memory samples, for every method with a "
                    "memory (default off)")
    for field, flag in QUALITY_FLAGS.items():
        ap.add_argument(flag, type=int, default=None, help=f"{field} of the ATOM memories' condensation (--budget "
                        f"cpu; default the pinned {GRID_CONDENSE[field]}): a memory-quality variant, recorded and "
                        "kept apart from the grid")
    ap.add_argument("--cache-dir", default=None, help="folder of condensed memories reused across strategies "
                    "(same seed, memory and experience; default: none)")
    ap.add_argument("--plan", action="store_true", help="print the runs left and their CPU-hour estimate; run nothing")
    ap.add_argument("--choose-finetune", action="store_true", help="choose the balanced fine-tune's epochs and lr on "
                    f"a validation split of seed 0's training experiences (never the test stream); writes "
                    f"benchmarks/results/{FINETUNE_CHOICE.name}")
    return ap.parse_args(argv)


def selected_methods(args) -> list[str]:
    """The methods to run: ``--methods``, else the grid cells of ``--strategies`` x ``--memory-kinds``, else the six."""
    if args.methods:
        return list(args.methods)
    if args.strategies or args.memory_kinds:
        strategies, kinds = args.strategies or STRATEGIES, args.memory_kinds or MEMORY_KINDS
        return [cell_method(st, k) for st, k in GRID if st in strategies and k in kinds]
    return list(METHODS)


def run_fields(recipe, method: str, pin: str) -> dict:
    """The resume-key fields a run of ``method`` will record (as :func:`run_method` records them; ``pin``: the
    condensation settings' hash, None outside the CPU budget; real-sample memories record None)."""
    strategy, kind = cell_of(dict(method=method))
    return dict(strategy=strategy, memory_kind=kind,
                batch_size_mem=recipe.batch_size_mem if strategy in DROP_LAST else None,
                finetune_epochs=recipe.finetune_epochs if strategy in FINETUNED else None,
                finetune_lr=recipe.finetune_lr if strategy in FINETUNED else None,
                condense_pin=pin if kind == "atom" else None)


def is_done(results, method: str, fields: dict) -> bool:
    """Whether a run with these resume-key ``fields`` is recorded; a real-sample method's memory has no factor, so its
    run under another ``memory_factor`` (or none: early records hold null variant fields) counts as well."""
    if results.done(fields):
        return True
    dsa = (fields["memory_dsa"], None) if not fields["memory_dsa"] else (True,)
    return cell_of(dict(method=method))[1] != "atom" and any(
        results.done(dict(fields, memory_factor=f, memory_dsa=d)) for f in (None, "1", "table", "2") for d in dsa)


def fail(msg: str) -> None:
    """A bad flag: one line naming it, exit 2 (nothing run)."""
    print(f"avalanche_replay.py: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def main(argv=None) -> None:
    args = parse_args(argv)
    budget = "quick" if args.quick else args.budget
    methods = selected_methods(args)
    results = ResultsFile(args.out or RESULTS / ("avalanche_splitfmnist.json" if budget == "full"
                                                 else f"avalanche_splitfmnist_{budget}.json"), KEY, legacy)
    memories = args.memories or ([10] if budget == "quick" else [100, 200, 500])

    from atom_plugin.integrations.avalanche.comparison import RECIPES, recipe_dict

    factor = None if args.memory_factor == "table" else int(args.memory_factor)
    recipe = dataclasses.replace(RECIPES[budget], condense_factor=factor, memory_dsa=args.memory_dsa)
    for method in methods:  # refuse, before any work, a run in which replay would be off
        for memory in memories:
            if cell_of(dict(method=method))[0] in DROP_LAST and recipe.batch_size_mem > memory:
                fail(f"--memories {memory}: {method} replays only when the memory holds batch_size_mem="
                     f"{recipe.batch_size_mem} samples and a real memory of {memory} holds fewer; use --memories >= "
                     f"{recipe.batch_size_mem}")
    if args.memory_dsa and any(cell_of(dict(method=m))[0] in DROP_LAST for m in methods):
        fail("--memory-dsa augments the memory of the replay and GDumb plugins only; run ER-ACE and DER without it")
    chosen = json.loads(FINETUNE_CHOICE.read_text()).get("choice") if FINETUNE_CHOICE.exists() else None
    if (budget == "cpu" and chosen and any(cell_of(dict(method=m))[0] in FINETUNED for m in methods)
            and (chosen["epochs"], chosen["lr"]) != (recipe.finetune_epochs, recipe.finetune_lr)):
        fail(f"{FINETUNE_CHOICE.name} chose finetune_epochs={chosen['epochs']}, finetune_lr={chosen['lr']} but "
             f"CPU_RECIPE has {recipe.finetune_epochs}, {recipe.finetune_lr}: set them in CPU_RECIPE first")
    changes = {}
    for field, flag in QUALITY_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None and (budget != "cpu" or value < 1):
            fail(f"{flag} {value}: give a whole number >= 1 with --budget cpu (the other budgets condense with "
                 "their recipe's settings)")
        if value is not None and value != GRID_CONDENSE[field]:
            changes[field] = value
    cfg_dict = dict(GRID_CONDENSE, factor=factor, **changes) if budget == "cpu" else None
    table = GRID_PER_IPC if budget == "cpu" else None
    pin = condense_pin(cfg_dict, table) if budget == "cpu" else None
    var = dict(memory_factor=args.memory_factor, memory_dsa=args.memory_dsa)
    dname = device_name(resolve_device(args.device))
    if args.choose_finetune and changes:
        fail(f"{QUALITY_FLAGS[next(iter(changes))]}: --choose-finetune chooses on the pinned memories; run it "
             "without the memory-quality flags")
    if args.choose_finetune:
        return choose_finetune(args, budget, recipe, cfg_dict)
    if args.plan:
        return plan(results, methods, memories, args.seeds, budget, dname, var, recipe, pin, tuple(changes.items()))
    set_threads()
    dev = resolve_device(args.device)

    from avalanche.benchmarks.classic import SplitFMNIST

    from atom_plugin import ATOMConfig
    from atom_plugin.integrations.avalanche import fashion_mnist_root, run_method

    condense_config = ATOMConfig.from_dict(cfg_dict) if cfg_dict is not None else None
    run_recipe = dataclasses.replace(recipe, **{f"condense_{f}": v for f, v in changes.items()})  # as recorded
    root = fashion_mnist_root(args.data_root)
    for memory in memories:
        for seed in args.seeds:
            bench = None
            for method in methods:
                fields = run_fields(recipe, method, pin)
                if is_done(results, method, dict(benchmark=BENCHMARK, method=method, memory=memory, seed=seed,
                                                 budget=budget, device=dname, **var, **fields)):
                    log(f"skip {method} memory {memory} seed {seed}: already measured")
                    continue
                if method == "naive":  # no memory: reuse this seed's run at another memory when there is one
                    prior = [r for r in results.records(benchmark=BENCHMARK, method="naive", seed=seed,
                                                        budget=budget, device=dname)
                             if variant(r)[1] == args.memory_dsa]  # naive has no memory: any factor
                    if prior:
                        now = {k: v for k, v in stamp(dev).items() if k in ("date", "command")}
                        results.append(dict(prior[0], memory=memory, reused_from_memory=prior[0]["memory"], **var,
                                            **now))
                        log(f"naive memory {memory} seed {seed}: copied from memory {prior[0]['memory']}")
                        continue
                if bench is None:
                    bench = SplitFMNIST(5, seed=seed, dataset_root=str(root))
                log(f"{method} memory {memory} seed {seed} ({budget}) on {dname}, class order {bench.classes_order}")
                res = run_method(method, bench, memory=memory, recipe=recipe, device=dev, seed=seed,
                                 progress=sys.stderr.isatty(), log=log, cache_dir=args.cache_dir,
                                 condense_config=condense_config)
                extra = dict(condense_config=cfg_dict, per_ipc_table=table) if cfg_dict is not None else {}
                rec = results.append(dict(benchmark=BENCHMARK, budget=budget, class_order=list(bench.classes_order),
                                          recipe=recipe_dict(run_recipe), condense_pin=fields["condense_pin"], **extra,
                                          **{**res, **var}), dev)
                log(f"  -> final avg accuracy {rec['final_avg_accuracy']:.2f} %, forgetting "
                    f"{rec['avg_forgetting']:.2f} %, condensation {rec['condense_seconds']:.1f} s")


def plan(results, methods, memories, seeds, budget, dname, var, recipe, pin, changes) -> None:
    """Print the runs not measured yet and their CPU-hour estimate (:func:`estimate_seconds`)."""
    total, n, first = 0.0, 0, set()
    for memory in memories:
        for seed in seeds:
            for method in methods:
                if is_done(results, method, dict(benchmark=BENCHMARK, method=method, memory=memory, seed=seed,
                                                 budget=budget, device=dname, **var,
                                                 **run_fields(recipe, method, pin))):
                    continue
                is_first = cell_of(dict(method=method))[1] == "atom" and (seed, memory) not in first
                if is_first:
                    first.add((seed, memory))
                sec = estimate_seconds(method, memory, is_first, changes)
                total, n = total + sec, n + 1
                print(f"{method:18s} memory {memory:4d} seed {seed}  ~{sec / 60:5.1f} min")
    print(f"{n} runs left, about {total / 3600:.1f} CPU-hours (one thread each; ATOM memories cached across "
          "strategies with --cache-dir, else each ATOM run condenses anew)")


def validation_benchmark(root, seed: int = 0):
    """SplitFMNIST-5 (``seed``'s class order) with :data:`VALIDATION_FRACTION` of each training experience held out as
    its test stream (a fixed random split; the test stream of Fashion-MNIST is never read)."""
    import types

    import torch
    from avalanche.benchmarks.classic import SplitFMNIST
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets

    bench = SplitFMNIST(5, seed=seed, dataset_root=str(root))
    train, val = [], []
    for e in bench.train_stream:
        n = len(e.dataset)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(1000 + e.current_experience)).tolist()
        k = max(1, int(n * VALIDATION_FRACTION))
        val.append(e.dataset.subset(perm[:k]).eval())
        train.append(e.dataset.subset(perm[k:]))
    split = benchmark_from_datasets(train=train, test=val)
    return types.SimpleNamespace(train_stream=split.train_stream, test_stream=split.test_stream,
                                 n_classes=bench.n_classes, classes_order=bench.classes_order)


def choose_finetune(args, budget: str, recipe, cfg_dict) -> None:
    """Run :data:`.methods.PRIMARY_STRATEGY` for every candidate of :data:`FINETUNE_CANDIDATES` on seed 0's validation
    split, per memory kind (``--memory-kinds``, default random and atom: one candidate serves every memory alike),
    and write the candidate with the best mean validation accuracy over the kinds to :data:`FINETUNE_CHOICE`."""
    from atom_plugin import ATOMConfig
    from atom_plugin.integrations.avalanche import PRIMARY_STRATEGY, fashion_mnist_root, run_method

    set_threads()
    dev = resolve_device(args.device)
    bench = validation_benchmark(fashion_mnist_root(args.data_root))
    kinds = args.memory_kinds or ["random", "atom"]
    memory = (args.memories or [100])[0]
    cfg = ATOMConfig.from_dict(cfg_dict) if cfg_dict is not None else None
    out = FINETUNE_CHOICE if budget == "cpu" else RESULTS / f"avalanche_finetune_choice_{budget}.json"
    done = json.loads(out.read_text()) if out.exists() else dict(candidates=[])
    for epochs in FINETUNE_CANDIDATES["epochs"]:
        for lr in FINETUNE_CANDIDATES["lr"]:
            for kind in kinds:
                if any(c["epochs"] == epochs and c["lr"] == lr and c["memory_kind"] == kind for c in done["candidates"]):
                    continue
                r = dataclasses.replace(recipe, finetune_epochs=epochs, finetune_lr=lr)
                res = run_method(cell_method(PRIMARY_STRATEGY, kind), bench, memory=memory, recipe=r, device=dev,
                                 seed=0, cache_dir=args.cache_dir, condense_config=cfg, log=log)
                done["candidates"].append(dict(epochs=epochs, lr=lr, memory_kind=kind, memory=memory,
                                               val_accuracy=res["final_avg_accuracy"],
                                               train_seconds=res["train_seconds"]))
                best = choose(done["candidates"], kinds)
                done.update(choice=best, rule=f"best mean validation accuracy over memory kinds {kinds} "
                            f"({PRIMARY_STRATEGY}, seed 0, {int(VALIDATION_FRACTION * 100)} % of each training "
                            "experience held out; never the test stream)", **stamp(dev))
                out.write_text(json.dumps(done, indent=1))
                log(f"  E={epochs} lr={lr} {kind}: validation {res['final_avg_accuracy']:.2f} %")
    log(f"choice: {done.get('choice')} -> set CPU_RECIPE's finetune_epochs and finetune_lr to it")


def choose(candidates: list[dict], kinds) -> dict | None:
    """The (epochs, lr) with the best mean validation accuracy over ``kinds`` among those measured for all of them."""
    by = {}
    for c in candidates:
        by.setdefault((c["epochs"], c["lr"]), {})[c["memory_kind"]] = c["val_accuracy"]
    full = {k: v for k, v in by.items() if all(kind in v for kind in kinds)}
    if not full:
        return None
    (epochs, lr), accs = max(full.items(), key=lambda kv: sum(kv[1].values()) / len(kv[1]))
    return dict(epochs=epochs, lr=lr, mean_val_accuracy=round(sum(accs.values()) / len(accs), 3))


if __name__ == "__main__":
    run_script(main)
