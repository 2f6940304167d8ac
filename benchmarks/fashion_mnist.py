"""The full evaluation protocol on Fashion-MNIST: presets atom / datadam / dm and random / tiled-random / herding.

Each condensed set uses its preset's per-IPC multi-formation factor and matching networks unless --factor /
--networks say otherwise (``--methods atom --factor 1 --networks random`` is the plain atom loss); records carry
both. IPC counts stored images; epochs are the protocol's unit, so a factor-2 set (4x the training samples) gets
4x the SGD steps of a factor-1 set in the same epochs.

Condenses from the 60,000 training images, trains ``--num-models`` fresh networks per set for
``--eval-epochs`` epochs with DSA, and tests once on the 10,000 test images (no checkpoint picking).
Records go to benchmarks/results/fashion_mnist.json (appended; a rerun skips what is already measured with
the same budget); condensed sets are cached under --cache-dir so more models can be evaluated later
(cross-architecture: --models convnet alexnet vgg11 resnet18). README tables come from benchmarks/report.py.

Full budget (GPU):  python benchmarks/fashion_mnist.py --device cuda --ipc 1 10 50 --iterations 8000 --eval-epochs 1000 --num-models 5
Reduced CPU budget: python benchmarks/fashion_mnist.py --ipc 10 --iterations 200 --eval-epochs 300 --num-models 3 --compile
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from _common import (ResultsFile, add_budget_args, add_out_arg, cached_set, fashion_mnist, log, resumable, resume_key,
                     set_threads)

from atom_plugin import ATOMConfig, CondensedDataset, condense, evaluate, herding_subset, random_subset
from atom_plugin.config import INITS, LEGACY_CONFIG, NETWORKS, PUBLISHED_DEFAULTS, REAL_BATCHES, preset_defaults
from atom_plugin.runner import run_script
from atom_plugin import device_name, resolve_device

METHODS = ("atom", "dm", "random", "tiled-random", "datadam", "herding")
PROTOCOL = dict(iterations=8000, eval_epochs=1000, num_models=5)  # the published budget: DataDAM's table, DM's eval
CONDENSED = ("atom", "dm", "datadam")
KEY = ("method", "ipc", "factor", "networks", "pool_steps", "pool_batch", "lr_images", "real_batch", "init", "model",
       "iterations", "batch_real", "eval_epochs", "num_models", "seed", "device")
#: The real batch and start of the condensed records written before they were recorded (uniform batches from random
#: real images), and the cache names' baseline: a name adds only the levers that differ from it.
LEVER_DEFAULTS = {f: LEGACY_CONFIG[f] for f in ("real_batch", "init")}
_POOL_DEFAULTS = {f: ATOMConfig.__dataclass_fields__[f].default for f in ("pool_steps", "pool_batch")}


def parametrisation(method: str, ipc: int, args) -> tuple[int, str | None]:
    """(factor, networks) of a set: --factor/--networks, else the preset's per-IPC choice (tiled random: 2)."""
    if method in CONDENSED:
        preset = preset_defaults(method, ipc)
        return (args.factor or preset.factor), (args.networks or preset.networks)
    if method == "tiled-random":
        return (args.factor if args.factor and args.factor > 1 else 2), None
    return 1, None


def pool_fields(networks: str | None, args) -> dict:
    """``pool_steps`` / ``pool_batch`` of a pool set (--pool-steps / --pool-batch, else ATOMConfig's); {} otherwise."""
    if networks != "pool":
        return {}
    return dict(pool_steps=args.pool_steps or _POOL_DEFAULTS["pool_steps"],
                pool_batch=args.pool_batch or _POOL_DEFAULTS["pool_batch"])


def lever_fields(method: str, ipc: int, args) -> dict:
    """``real_batch`` / ``init`` of a condensed set (--real-batch / --init, else ATOMConfig's uniform batches and the
    preset's per-IPC start); {} for a selection."""
    if method not in CONDENSED:
        return {}
    return dict(real_batch=args.real_batch or LEVER_DEFAULTS["real_batch"],
                init=args.init or preset_defaults(method, ipc).init)


def lever_tag(levers: dict) -> str:
    """The cache-name part of non-default levers (``-representative``, ``-herding``): "" for the defaults, so older
    caches stay valid."""
    return "".join(f"-{levers[f]}" for f in ("real_batch", "init")
                   if levers.get(f, LEVER_DEFAULTS[f]) != LEVER_DEFAULTS[f])


def lr_of(method: str, ipc: int, args) -> float | None:
    """The images' learning rate of a condensed set (--lr-images, else the preset's per-IPC choice); None for a
    selection."""
    return (args.lr_images or preset_defaults(method, ipc).lr_images) if method in CONDENSED else None


def legacy(r: dict) -> dict:
    """The fields older records lack: records written before factors existed are factor 1 with random networks,
    pool records written before the pool settings were recorded used ATOMConfig's defaults, and condensed records
    written before the images' learning rate was recorded used DM's lr 1, and before the real batch and start were
    recorded uniform batches from random real images."""
    condensed = r.get("method") in CONDENSED
    return dict(factor=1, networks="random" if condensed else None,
                lr_images=PUBLISHED_DEFAULTS.lr_images if condensed else None,
                **(_POOL_DEFAULTS if r.get("networks") == "pool" else {}), **(LEVER_DEFAULTS if condensed else {}))


def key_of(r: dict) -> tuple:
    """A record's identity (its resume key; older records read with :func:`legacy`'s fields)."""
    return resume_key(r, KEY, legacy)


def make_set(method: str, ipc: int, train, args, dev, cache: Path) -> tuple[CondensedDataset, float]:
    """Condense or select one set (cached on disk; an interrupted condensation continues from its checkpoint);
    returns it and the seconds it took (as recorded when it was made, for a cached one)."""
    condensed = method in CONDENSED
    factor, networks = parametrisation(method, ipc, args)
    pool = pool_fields(networks, args) if condensed else {}
    lr = lr_of(method, ipc, args)
    levers = lever_fields(method, ipc, args)
    extra = ("" if pool in ({}, _POOL_DEFAULTS) else f"-ps{pool['pool_steps']}-pb{pool['pool_batch']}") + \
        ("" if lr in (None, PUBLISHED_DEFAULTS.lr_images) else f"-lr{lr:g}") + lever_tag(levers)  # non-defaults only
    tag = (f"{method}-ipc{ipc}-f{factor}-{networks or 'real'}{extra}-it{args.iterations if condensed else 0}"
           f"-br{args.batch_real if condensed else 0}-s{args.seed}")
    device = "" if torch.device(dev).type == "cpu" else f"-{torch.device(dev).type}"  # CPU caches keep their names
    path = cache / f"{tag}{device}.safetensors"

    def make() -> CondensedDataset:
        if method in ("random", "tiled-random"):
            return random_subset(train, ipc, seed=args.seed, factor=factor)
        if method == "herding":
            return herding_subset(train, ipc, seed=args.seed, feature_epochs=args.herding_epochs, device=dev)
        cfg = ATOMConfig(preset=method, ipc=ipc, iterations=args.iterations, batch_real=args.batch_real,
                         factor=factor, networks=networks, lr_images=lr, **pool, **levers)
        return condense(train, cfg, device=dev, seed=args.seed, compile=args.compile, **resumable(path))

    return cached_set(path, make, dev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--models", nargs="+", default=["convnet"])
    ap.add_argument("--herding-epochs", type=int, default=1)
    ap.add_argument("--factor", type=int, default=None, help="multi-formation factor (default: the preset's per IPC)")
    ap.add_argument("--networks", choices=NETWORKS, default=None, help="matching networks (default: the preset's)")
    add_budget_args(ap, **PROTOCOL)
    ap.add_argument("--pool-steps", type=int, default=None, help="with pool networks: SGD steps per iteration "
                    "(default: ATOMConfig's)")
    ap.add_argument("--pool-batch", type=int, default=None, help="with pool networks: real images per pool step "
                    "(default: ATOMConfig's)")
    ap.add_argument("--lr-images", type=float, default=None, help="learning rate of the condensed images' SGD "
                    "(default: the preset's per IPC)")
    ap.add_argument("--real-batch", choices=REAL_BATCHES, default=None, help="condensed sets' real batch "
                    "(default: ATOMConfig's, uniform)")
    ap.add_argument("--init", choices=INITS, default=None, help="condensed sets' start (default: the preset's per IPC; atom: "
                    "herding above IPC 10, else real)")
    ap.add_argument("--cache-dir", default="runs/bench-fmnist")
    add_out_arg(ap, "fashion_mnist.json")
    args = ap.parse_args()
    if (args.pool_steps or args.pool_batch) and args.networks != "pool":
        ap.error("--pool-steps/--pool-batch set the pool's training: add --networks pool")
    set_threads()
    dev = resolve_device(args.device)
    results, cache = ResultsFile(args.out, KEY, legacy), Path(args.cache_dir)
    train, test = fashion_mnist(args.data_root, validation=False)
    for ipc in args.ipc:
        for method in args.methods:
            condensed = method in CONDENSED
            factor, networks = parametrisation(method, ipc, args)
            pool = pool_fields(networks, args) if condensed else {}
            levers = lever_fields(method, ipc, args)
            for model in args.models:
                lr = {"lr_images": lr_of(method, ipc, args)} if condensed else {}
                rec = dict(method=method, ipc=ipc, factor=factor, networks=networks, **pool, **lr, **levers, model=model,
                           iterations=args.iterations if condensed else 0,
                           batch_real=args.batch_real if condensed else 0, eval_epochs=args.eval_epochs,
                           num_models=args.num_models, seed=args.seed, device=device_name(dev))
                if results.done(rec):
                    log(f"skip {method} ipc {ipc} f{factor} {networks} {model}: already measured")
                    continue
                syn, seconds = make_set(method, ipc, train, args, dev, cache)
                res = evaluate(syn, test, model=model, num_models=args.num_models, epochs=args.eval_epochs,
                               device=dev, seed=args.seed, compile=args.compile)
                extra = dict(config=syn.config) if syn.config else dict(selection=syn.provenance.get("feature_network"))
                rec = results.append(dict(benchmark="protocol", dataset="fashion-mnist", split="test",
                                          method=method, ipc=ipc, factor=factor, networks=networks, **pool, **lr,
                                          **levers,
                                          decoded_per_class=syn.decoded_per_class, seed=args.seed,
                                          iterations=rec["iterations"], batch_real=rec["batch_real"],
                                          condense_seconds=round(seconds, 1), **res.to_record(), **extra), dev)
                log(f"{method:>12} ipc {ipc:>2} f{factor} {networks or '-':>6} {model:>8}: "
                    f"{rec['accuracy_mean']:.2f} ± {rec['accuracy_std']:.2f} %")


if __name__ == "__main__":
    run_script(main)
