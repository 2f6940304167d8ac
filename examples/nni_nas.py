"""Architecture search over the DC/DM ConvNet family (720 variants) with NNI 3.0, every candidate trained on a
condensed proxy instead of the full training set.

What it does:
  1. loads Fashion-MNIST, holds out a stratified REAL validation split (5,000 images; seed 0) and condenses the
     proxy from the rest (or loads one with --proxy);
  2. searches NNI's ConvNet space (depth, width, activation, normalisation, pooling) with Random search or
     Regularized Evolution; each candidate is trained on the proxy (core protocol) and ranked by validation
     accuracy -- the test set is not touched during the search;
  3. trains the best architecture on the full training split and tests it ONCE on the test set.

Execution is NNI's in-process sequential engine (``NasExperimentConfig('sequential', 'raw')``): no NNI manager,
no web portal, no extra process. NNI still writes its logs/checkpoint under --out and lists the experiment in
``~/nni-experiments/.experiment``.

  python examples/nni_nas.py --data-root ~/data --out runs/nas                       # 50 candidates, GPU-sized
  python examples/nni_nas.py --quick --data-root ROOT --out DIR                        # seconds, on CPU

Needs ``pip install 'atom-plugin[nni]'``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from atom_plugin import evaluate
from atom_plugin.runner import run_script

from _proxy_setup import add_data_and_proxy_args, get_proxy, load_splits


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/nni_nas", help="output folder (proxy, NNI logs, nni_nas.json)")
    ap.add_argument("--quick", action="store_true", help="tiny CPU run: ipc 2, 3 condensation iterations, "
                    "width-16 condensation net, 3 candidates, 2 epochs each")
    ap.add_argument("--strategy", choices=["random", "evolution"], default="random")
    ap.add_argument("--trials", type=int, default=None, help="candidates to train (default 50; quick 3)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs per candidate (default 300; quick 2)")
    add_data_and_proxy_args(ap)
    args = ap.parse_args(argv)
    q = args.quick
    for name, normal, quick in (("trials", 50, 3), ("ipc", 10, 2), ("iterations", 2000, 3), ("epochs", 300, 2),
                                ("full_epochs", 50, 2)):
        if getattr(args, name) is None:
            setattr(args, name, quick if q else normal)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    from atom_plugin.integrations.nni import arch_key
    from atom_plugin.integrations.nni.nas import ConvNetSpace, proxy_evaluator, run_search

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    train, val, test, _ = load_splits(args)
    proxy = get_proxy(args, train, val, save_to=out / "proxy.safetensors")

    space = ConvNetSpace.for_dataset(train)
    evaluator = proxy_evaluator(proxy, val, space=space, epochs=args.epochs, seed=args.seed, device=args.device)
    result = run_search(space, evaluator, strategy=args.strategy, max_trials=args.trials, seed=args.seed,
                        working_dir=out / "nni-experiments")
    best, best_val = result.best
    print(f"search: {len(result.trials)} candidates ({result.strategy}) in {result.seconds:.1f} s")
    for arch, acc in sorted(result.trials, key=lambda t: -t[1])[:5]:
        print(f"  {arch_key(arch):40s} proxy-trained validation accuracy {100 * acc:.2f} %")
    print(f"best architecture: {best}")

    final = evaluate(train, test, model="convnet", model_kwargs=best, num_models=1, epochs=args.full_epochs,
                     device=args.device, seed=args.seed)
    print(f"best architecture trained on the full training split ({len(train)} images, {args.full_epochs} epochs): "
          f"test accuracy {final.mean:.2f} %")
    summary = dict(best_architecture=best, best_proxy_val_accuracy=best_val, full_data_test_accuracy=final.mean,
                   full_epochs=args.full_epochs, proxy_epochs=args.epochs, proxy_size=len(proxy),
                   strategy=result.strategy, trials=[dict(arch=a, val_accuracy=v) for a, v in result.trials],
                   search_seconds=round(result.seconds, 2), total_seconds=round(time.perf_counter() - t_start, 2))
    (out / "nni_nas.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    run_script(main)
