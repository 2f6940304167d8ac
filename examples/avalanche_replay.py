"""Continual learning on SplitFMNIST (5 class-incremental experiences) with ATOM-condensed memories.

    python examples/avalanche_replay.py --quick                   # CPU check: 1 epoch, 2 condensation iterations
    python examples/avalanche_replay.py --memory 100 --device cuda --out runs/avalanche

Runs six methods at the same memory (total stored images) with one training recipe (``docs/avalanche.md``):
Naive, Replay (reservoir), Replay with herding, GDumb, ATOM replay and condensed GDumb; prints a table of final
average accuracy, average forgetting and condensation seconds (the time is recorded per experience by each ATOM
plugin's buffer, ``plugin.storage_policy.history``, and also published to Avalanche's loggers as the
``CondenseTime_*`` metrics, written to ``OUT/avalanche_log.txt``). The two ATOM lines in your own code:

    from atom_plugin.integrations.avalanche import ATOMReplayPlugin
    strategy = Naive(model=model, optimizer=optimizer, plugins=[ATOMReplayPlugin(mem_size=100)], device="cuda")

Data: Fashion-MNIST idx files from ``--data-root``, ``$ATOM_DATA`` or ``/usr/share/datasets/fashion-mnist``
(Debian's ``.gz`` files are decompressed once into ``~/.cache/atom-plugin/avalanche``); nothing is downloaded.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

from atom_plugin.runner import run_script
from atom_plugin.integrations.avalanche import fashion_mnist_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="folder with the Fashion-MNIST idx files (plain or .gz, flat or in "
                        "FashionMNIST/raw/); default: $ATOM_DATA, then /usr/share/datasets/fashion-mnist")
    parser.add_argument("--memory", type=int, help="memory size in stored images, the same for every method "
                        "(default 100; 10 with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="class order and model initialisation (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default="runs/avalanche-replay", help="output folder (results.json, log)")
    parser.add_argument("--methods", default=None, help="comma-separated subset of the six methods")
    parser.add_argument("--quick", action="store_true", help="tiny budget (1 epoch, 2 condensation iterations, "
                        "width 16) to check on a CPU that everything runs")
    args = parser.parse_args()

    # Avalanche is imported here, after argument parsing (importing it takes ~15 s).
    from avalanche.benchmarks.classic import SplitFMNIST
    from avalanche.logging import TextLogger

    from atom_plugin.integrations.avalanche import METHODS, QUICK_RECIPE, Recipe, results_table, run_method

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    recipe = QUICK_RECIPE if args.quick else Recipe()
    memory = args.memory or (10 if args.quick else 100)
    methods = args.methods.split(",") if args.methods else list(METHODS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    root = fashion_mnist_root(args.data_root)
    benchmark = SplitFMNIST(5, seed=args.seed, dataset_root=str(root))
    print(f"SplitFMNIST-5 from {root}, class order {benchmark.classes_order}, memory {memory} images, "
          f"device {device}{' (quick)' if args.quick else ''}", flush=True)

    rows = []
    with open(out / "avalanche_log.txt", "w") as log_file:
        for method in methods:
            print(f"{method} ...", flush=True)
            log_file.write(f"==== {method}\n")
            rows.append(run_method(method, benchmark, memory=memory, recipe=recipe, device=device, seed=args.seed,
                                   loggers=[TextLogger(log_file)], progress=not args.quick,
                                   log=lambda m: print(m, file=sys.stderr, flush=True)))
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    print()
    print(results_table(rows))
    print(f"\nfiles: {out / 'results.json'}, {out / 'avalanche_log.txt'}")


if __name__ == "__main__":
    run_script(main)
