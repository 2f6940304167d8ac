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

Memory variants (recorded, part of the resume key, one table each): ``--memory-factor`` (``table``, the default:
the ATOM memories' multi-formation factor per the core's per-IPC table at each class's share; or a fixed factor,
e.g. 1 for plain images) and ``--memory-dsa`` (DSA on memory samples, for every method with a memory). Records
written before these options existed count as factor 1 without memory DSA.

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
import sys

from _common import RESULTS, ResultsFile, add_common_args, add_out_arg, log, set_threads, stamp

from atom_plugin.runner import run_script
from atom_plugin import device_name, resolve_device
from atom_plugin.integrations.avalanche import METHODS  # (importing it needs no Avalanche)


BENCHMARK = "SplitFMNIST-5"
KEY = ("benchmark", "method", "memory", "seed", "budget", "device", "memory_factor", "memory_dsa")
LEGACY_VARIANT = dict(memory_factor="1", memory_dsa=False)  # records from before the variants were recorded


def variant(r: dict) -> tuple[str, bool]:
    """``(memory_factor, memory_dsa)`` of a record (legacy records: factor 1, no memory DSA)."""
    return str(r.get("memory_factor", LEGACY_VARIANT["memory_factor"])), bool(r.get("memory_dsa", False))


# Targets, final average accuracy points over the real-sample counterpart, paired by seed: {memory: (atom-replay
# - herding, atom-gdumb - gdumb)}. The full recipe's (docs/avalanche.md) and the CPU recipe's (issue 13); report.py
# checks the records against them.
TARGETS = {"full": {100: (5.0, 5.0)}, "cpu": {100: (3.0, 5.0), 500: (0.0, 0.0)}}
PAIRS = (("atom-replay", "herding"), ("atom-gdumb", "gdumb"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, seed=False, compile=False)
    ap.add_argument("--memories", type=int, nargs="+", default=None, help="memory sizes in images "
                    "(default 100 200 500, in that order; 10 with --quick)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="class orders / model inits")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
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
    args = ap.parse_args()
    budget = "quick" if args.quick else args.budget
    results = ResultsFile(args.out or RESULTS / ("avalanche_splitfmnist.json" if budget == "full"
                                                 else f"avalanche_splitfmnist_{budget}.json"), KEY, LEGACY_VARIANT)
    set_threads()
    dev = resolve_device(args.device)
    dname = device_name(dev)
    memories = args.memories or ([10] if budget == "quick" else [100, 200, 500])

    from avalanche.benchmarks.classic import SplitFMNIST

    from atom_plugin.integrations.avalanche import RECIPES, fashion_mnist_root, run_method
    from atom_plugin.integrations.avalanche.comparison import recipe_dict

    factor = None if args.memory_factor == "table" else int(args.memory_factor)
    recipe = dataclasses.replace(RECIPES[budget], condense_factor=factor, memory_dsa=args.memory_dsa)
    var = dict(memory_factor=args.memory_factor, memory_dsa=args.memory_dsa)
    root = fashion_mnist_root(args.data_root)
    for memory in memories:
        for seed in args.seeds:
            bench = None
            for method in args.methods:
                if results.done(dict(benchmark=BENCHMARK, method=method, memory=memory, seed=seed, budget=budget,
                                     device=dname, **var)):
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
                                 progress=sys.stderr.isatty(), log=log)
                rec = results.append(dict(benchmark=BENCHMARK, budget=budget, class_order=list(bench.classes_order),
                                          recipe=recipe_dict(recipe), **{**res, **var}), dev)
                log(f"  -> final avg accuracy {rec['final_avg_accuracy']:.2f} %, forgetting "
                    f"{rec['avg_forgetting']:.2f} %, condensation {rec['condense_seconds']:.1f} s")


if __name__ == "__main__":
    run_script(main)
