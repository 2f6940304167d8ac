"""The full evaluation protocol on Fashion-MNIST: presets atom / datadam / dm and random / herding baselines.

Condenses from the 60,000 training images, trains ``--num-models`` fresh networks per set for
``--eval-epochs`` epochs with DSA, and tests once on the 10,000 test images (no checkpoint picking).
Records go to benchmarks/results/fashion_mnist.json (appended; a rerun skips what is already measured with
the same budget); condensed sets are cached under --cache-dir so more models can be evaluated later
(cross-architecture: --models convnet alexnet vgg11 resnet18). README tables come from benchmarks/report.py.

Full budget (GPU):  python benchmarks/fashion_mnist.py --ipc 1 10 50 --iterations 8000 --eval-epochs 1000 --num-models 5
Reduced CPU budget: python benchmarks/fashion_mnist.py --ipc 10 --iterations 200 --eval-epochs 300 --num-models 3 --compile
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import RESULTS, Timer, add_budget_args, done_keys, fashion_mnist, log, record, set_threads

from atom_plugin import ATOMConfig, CondensedDataset, condense, evaluate, herding_subset, random_subset
from atom_plugin.cli import run_script
from atom_plugin._device import device_name, resolve_device

METHODS = ("atom", "dm", "random", "datadam", "herding")
KEY = ("method", "ipc", "model", "iterations", "batch_real", "eval_epochs", "num_models", "seed", "device")


def make_set(method: str, ipc: int, train, args, dev, cache: Path) -> tuple[CondensedDataset, float]:
    """Condense or select one set (cached on disk); returns it and the seconds it took (0 when cached)."""
    condensed = method in ("atom", "dm", "datadam")
    tag = (f"{method}-ipc{ipc}-it{args.iterations if condensed else 0}-br{args.batch_real if condensed else 0}"
           f"-s{args.seed}")
    path = cache / f"{tag}.safetensors"
    if path.exists():
        s = CondensedDataset.load(path)
        return s, float(s.provenance.get("seconds", 0.0))
    with Timer() as t:
        if method == "random":
            s = random_subset(train, ipc, seed=args.seed)
        elif method == "herding":
            s = herding_subset(train, ipc, seed=args.seed, feature_epochs=args.herding_epochs, device=dev)
        else:
            cfg = ATOMConfig(preset=method, ipc=ipc, iterations=args.iterations, batch_real=args.batch_real)
            s = condense(train, cfg, device=dev, seed=args.seed, compile=args.compile)
    s.provenance["seconds"] = round(t.seconds, 2)
    s.save(path)
    return s, t.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--models", nargs="+", default=["convnet"])
    ap.add_argument("--herding-epochs", type=int, default=1)
    add_budget_args(ap, iterations=8000, eval_epochs=1000, num_models=5)
    ap.add_argument("--cache-dir", default="runs/bench-fmnist")
    ap.add_argument("--out", default=str(RESULTS / "fashion_mnist.json"))
    args = ap.parse_args()
    set_threads()
    dev = resolve_device(args.device)
    out, cache = Path(args.out), Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    train, test = fashion_mnist(args.data_root, validation=False)
    done = done_keys(out, KEY)
    for ipc in args.ipc:
        for method in args.methods:
            condensed = method in ("atom", "dm", "datadam")
            for model in args.models:
                key = tuple(str(v) for v in (method, ipc, model, args.iterations if condensed else 0,
                                             args.batch_real if condensed else 0, args.eval_epochs,
                                             args.num_models, args.seed, device_name(dev)))
                if key in done:
                    log(f"skip {method} ipc {ipc} {model}: already measured")
                    continue
                syn, seconds = make_set(method, ipc, train, args, dev, cache)
                res = evaluate(syn, test, model=model, num_models=args.num_models, epochs=args.eval_epochs,
                               device=dev, seed=args.seed, compile=args.compile)
                extra = dict(config=syn.config) if syn.config else dict(selection=syn.provenance.get("feature_network"))
                rec = record(out, dict(benchmark="protocol", dataset="fashion-mnist", split="test", method=method,
                                       ipc=ipc, seed=args.seed, iterations=args.iterations if condensed else 0,
                                       batch_real=args.batch_real if condensed else 0,
                                       condense_seconds=round(seconds, 1), **res.to_record(), **extra), dev)
                log(f"{method:>8} ipc {ipc:>2} {model:>8}: {rec['accuracy_mean']:.2f} ± {rec['accuracy_std']:.2f} %")


if __name__ == "__main__":
    run_script(main)
