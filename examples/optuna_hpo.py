"""Hyper-parameter (or architecture) search with Optuna where every trial trains on a condensed proxy and a pruner
stops the weak ones early; the best trials are then re-trained on full data.

What it does:
  1. loads Fashion-MNIST, holds out a stratified REAL validation split (5,000 images; seed 0) and condenses the
     proxy from the rest (or loads one with --proxy);
  2. runs an Optuna study (TPE sampler, median pruner): each trial draws a configuration
     (``suggest_configuration``: lr, weight decay, batch size with --search hpo; the ConvNet's depth, width,
     activation, norm and pooling with --search nas; both with --search both), trains it on the proxy with a
     constant learning rate and reports its validation accuracy every --report-every epochs to the pruner;
  3. re-trains the --survivors best completed trials on the full training split (validation accuracy only);
  4. trains the best survivor's configuration once more and tests it ONCE on the test set.

  python examples/optuna_hpo.py --data-root ~/data --out runs/optuna                 # 30 trials, GPU-sized
  python examples/optuna_hpo.py --quick --data-root ROOT --out DIR                   # seconds, on CPU

Needs ``pip install 'atom-plugin[optuna]'``. Nothing is written outside --out (an in-memory study).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from atom_plugin import evaluate
from atom_plugin.integrations.optuna import SEARCHES, proxy_objective, require_optuna, retrain_survivors
from atom_plugin.runner import run_script

from _proxy_setup import add_data_and_proxy_args, get_proxy, load_splits


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/optuna_hpo", help="output folder (optuna_hpo.json)")
    ap.add_argument("--quick", action="store_true", help="tiny CPU run: ipc 2, 3 condensation iterations, "
                    "width-16 condensation net, 4 trials of 4 epochs, 2 survivors")
    ap.add_argument("--search", choices=SEARCHES, default="hpo", help="what the trials vary (default hpo)")
    ap.add_argument("--trials", type=int, default=None, help="number of trials (default 30; quick 4)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs per trial (default 300; quick 4)")
    ap.add_argument("--report-every", type=int, default=None, help="epochs between pruner reports (default 25; "
                    "quick 1)")
    ap.add_argument("--survivors", type=int, default=None, help="best trials re-trained on full data (default 3; "
                    "quick 2)")
    add_data_and_proxy_args(ap)
    args = ap.parse_args(argv)
    for name, normal, quick in (("trials", 30, 4), ("ipc", 10, 2), ("iterations", 2000, 3), ("epochs", 300, 4),
                                ("full_epochs", 50, 2), ("report_every", 25, 1), ("survivors", 3, 2)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    for name in ("trials", "epochs", "survivors"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    train, val, test, _ = load_splits(args)
    proxy = get_proxy(args, train, val)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    objective = proxy_objective(proxy, val, search=args.search, epochs=args.epochs, report_every=args.report_every,
                                seed=args.seed, device=args.device)
    study.optimize(objective, n_trials=args.trials)
    states = [t.state.name for t in study.trials]
    print(f"{len(states)} trials: {states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned; best proxy "
          f"validation accuracy {100 * study.best_value:.2f} % with {study.best_params}")

    survivors = retrain_survivors(study, train, val, top_k=args.survivors, epochs=args.full_epochs, seed=args.seed,
                                  device=args.device)
    for s in survivors:
        print(f"  trial {s.number}: proxy {100 * s.proxy_accuracy:.2f} % -> full data {100 * s.full_accuracy:.2f} % "
              f"validation ({s.seconds:.1f} s)")
    best = survivors[0].config
    arch = {k: best[k] for k in ("depth", "width", "act", "norm", "pool")}
    final = evaluate(train, test, model="convnet", model_kwargs=arch, num_models=1, epochs=args.full_epochs,
                     device=args.device, seed=args.seed, lr=best["lr"], weight_decay=best["weight_decay"],
                     batch_size=best["batch_size"])
    print(f"best survivor {best} trained on the full training split ({len(train)} images, {args.full_epochs} "
          f"epochs): test accuracy {final.mean:.2f} %")
    summary = dict(search=args.search, trials=len(states), complete=states.count("COMPLETE"),
                   pruned=states.count("PRUNED"), best_configuration=best, full_data_test_accuracy=final.mean,
                   survivors=[vars(s) for s in survivors], proxy_epochs=args.epochs, full_epochs=args.full_epochs,
                   proxy_size=len(proxy), total_seconds=round(time.perf_counter() - t_start, 2))
    (out / "optuna_hpo.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    run_script(main)
