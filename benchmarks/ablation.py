"""Ablation that chooses the ATOM preset: loss settings -> validation accuracy on Fashion-MNIST.

Never touches the test set: condenses from 55,000 training images and evaluates on the 5,000 held-out
validation images (stratified, seed 0). Each setting is one point of the loss (w_spatial, w_channel, w_embed,
power, layers), and from round 4 on also a multi-formation factor and the matching networks (random or a
trained pool); everything else is fixed. Results are appended to benchmarks/results/ablation_fmnist.json
(a rerun skips settings already measured with the same budget); docs/ablation.md is generated from them by
benchmarks/report.py. Condensed sets are cached under --cache-dir, named by the setting and a digest of the
resolved config, and a killed condensation continues from its checkpoint there (every 25 iterations).

    python benchmarks/ablation.py --data-root /usr/share/datasets/fashion-mnist --round 1 \
        --iterations 200 --eval-epochs 300 --num-models 3 --compile
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from _common import (ResultsFile, Timer, add_budget_args, add_out_arg, cached_set, fashion_mnist, log, resumable,
                     set_threads)

from atom_plugin import ATOMConfig, condense, evaluate, herding_subset, random_subset
from atom_plugin import device_name, resolve_device
from atom_plugin.config import LEGACY_CONFIG, PUBLISHED_DEFAULTS
from atom_plugin.data import VAL_SIZE
from atom_plugin.runner import run_script

# name: loss fields (+ the matching network's norm). Round 1: the power/weights with the default instancenorm
# network. Round 2: the matching network's normalisation -- with instancenorm every channel is normalised per
# image, so channel attention at p = 1 is nearly constant (Sum_hw ReLU(z) ~ the same for every channel);
# batch/layer/group normalisation keep per-channel energy differences. dm-/datadam- controls on the same
# network separate the network's effect from the channel term's.
IN = "instancenorm"
DM = dict(w_spatial=0, w_channel=0, w_embed=1, power=1, layers=(), norm=IN)
ATOM = dict(w_spatial=10, w_channel=10, w_embed=1, power=4, layers=(1, 2), norm=IN)
ROUNDS = {
    1: {
        "dm": dict(w_spatial=0, w_channel=0, w_embed=1, power=1, layers=(), norm=IN),
        "dm-e10": dict(w_spatial=0, w_channel=0, w_embed=10, power=1, layers=(), norm=IN),
        "datadam": dict(w_spatial=100, w_channel=0, w_embed=1, power=1, layers=(1, 2), norm=IN),
        "s100c100-p4": dict(w_spatial=100, w_channel=100, w_embed=1, power=4, layers=(1, 2), norm=IN),
        "s10c10-p4": dict(w_spatial=10, w_channel=10, w_embed=1, power=4, layers=(1, 2), norm=IN),
        "s100c100-p2": dict(w_spatial=100, w_channel=100, w_embed=1, power=2, layers=(1, 2), norm=IN),
    },
    2: {
        "ln:dm": dict(w_spatial=0, w_channel=0, w_embed=1, power=1, layers=(), norm="layernorm"),
        "ln:datadam": dict(w_spatial=100, w_channel=0, w_embed=1, power=1, layers=(1, 2), norm="layernorm"),
        "ln:s100c100-p1": dict(w_spatial=100, w_channel=100, w_embed=1, power=1, layers=(1, 2), norm="layernorm"),
        "bn:s100c100-p1": dict(w_spatial=100, w_channel=100, w_embed=1, power=1, layers=(1, 2), norm="batchnorm"),
        "gn:s100c100-p1": dict(w_spatial=100, w_channel=100, w_embed=1, power=1, layers=(1, 2), norm="groupnorm"),
        "ln:s100c1000-p1": dict(w_spatial=100, w_channel=1000, w_embed=1, power=1, layers=(1, 2), norm="layernorm"),
        "ln:s10c10-p4": dict(w_spatial=10, w_channel=10, w_embed=1, power=4, layers=(1, 2), norm="layernorm"),
    },
    # Round 3: around round 1's winner. The gradient-balance diagnostic (benchmarks/gradient_balance.py) found the
    # attention terms carry ~20 % of the step at w = 10, p = 4: try a larger share, block 3's maps too, and the
    # spatial term alone (isolates what the channel term adds), then a heavier channel term and p = 2.
    3: {
        "s30c30-p4": dict(w_spatial=30, w_channel=30, w_embed=1, power=4, layers=(1, 2), norm=IN),
        "s10c10-p4-l123": dict(w_spatial=10, w_channel=10, w_embed=1, power=4, layers=(1, 2, 3), norm=IN),
        "s10c0-p4": dict(w_spatial=10, w_channel=0, w_embed=1, power=4, layers=(1, 2), norm=IN),
        "s10c100-p4": dict(w_spatial=10, w_channel=100, w_embed=1, power=4, layers=(1, 2), norm=IN),
        "s10c10-p2": dict(w_spatial=10, w_channel=10, w_embed=1, power=2, layers=(1, 2), norm=IN),
    },
    # Round 4 (quality issue, stage i): the parametrisation and the matching networks, with the DM loss --
    # factor {1, 2} x networks {random, pool}; run at IPC 1 and 10. Baselines: random and tiled random (f = 2).
    4: {
        "dm": dict(DM, factor=1, networks="random"),
        "dm-f2": dict(DM, factor=2, networks="random"),
        "dm-pool": dict(DM, factor=1, networks="pool"),
        "dm-f2-pool": dict(DM, factor=2, networks="pool"),
        "dm-f4": dict(DM, factor=4, networks="random"),  # 7 x 7 tiles: for IPC 1, where storage is scarcest
        "dm-f4-pool": dict(DM, factor=4, networks="pool"),
    },
    # Round 5 (stage ii): the atom loss at round 4's parametrisations.
    5: {
        "s10c10-p4-f2": dict(ATOM, factor=2, networks="random"),
        "s10c10-p4-f2-pool": dict(ATOM, factor=2, networks="pool"),
        "s10c10-p4-pool": dict(ATOM, factor=1, networks="pool"),
    },
    # Round 6 (IPC 1, the target the default missed): the images' learning rate at the default's parametrisation --
    # the same cost per iteration; 200 iterations may leave a 1-image-per-class set short of converged.
    6: {
        "s10c10-p4-f2-lr3": dict(ATOM, factor=2, networks="random", lr_images=3.0),
        "s10c10-p4-f2-lr10": dict(ATOM, factor=2, networks="random", lr_images=10.0),
    },
    # Round 7 (IPC 1): a pool whose networks are trained further, as IDM's are (Zhao et al., CVPR 2023, Sec. 3.3):
    # 5 SGD steps of 64 real images per iteration instead of 1 of 256, so within 200 iterations the networks reach
    # the 100-step cap and are re-drawn (the pool spans 0-100 steps; round 4-5's pool networks took ~25 each).
    7: {
        "s10c10-p4-f2-pool5": dict(ATOM, factor=2, networks="pool", pool_steps=5, pool_batch=64),
    },
    # Round 8 (IPC 1): the other side of round 6 -- smaller steps on the pixels, and heavier momentum (DM/DataDAM's
    # 0.5 vs the 0.9 usual for network SGD); the same cost per iteration as the default's setting.
    8: {
        "s10c10-p4-f2-lr0.3": dict(ATOM, factor=2, networks="random", lr_images=0.3),
        "s10c10-p4-f2-lr0.1": dict(ATOM, factor=2, networks="random", lr_images=0.1),
        "s10c10-p4-f2-m0.9": dict(ATOM, factor=2, networks="random", momentum=0.9),
    },
    # Round 9 (quality issue 25): what limits a short run rather than the loss -- representative real batches (DREAM,
    # Liu et al. ICCV 2023: the samples nearest the k-means centres of 256 real images' features, re-clustered every
    # 10 iterations) at IPC 1 (with its default lr 0.3) and IPC 10 (lr 1, and lr 0.3); at IPC 50 the default
    # (factor 1), dm, the herding start (the herding baseline's own images at factor 1) and lr 0.3. The herding
    # baseline is a selection entry of this round (--herding-epochs). Then the herding start at factor 2 (the coreset's
    # IPC x 4 images tiled into the factor-2 images, against the default's tiled random real images) at IPC 1 and 10.
    9: {
        "s10c10-p4-f2-rep": dict(ATOM, factor=2, networks="random", real_batch="representative"),
        "s10c10-p4-f2-lr0.3-rep": dict(ATOM, factor=2, networks="random", lr_images=0.3, real_batch="representative"),
        "s10c10-p4-f1": dict(ATOM, factor=1, networks="random"),
        "dm": dict(DM, factor=1, networks="random"),
        "s10c10-p4-f1-herd": dict(ATOM, factor=1, networks="random", init="herding"),
        "s10c10-p4-f1-lr0.3": dict(ATOM, factor=1, networks="random", lr_images=0.3),
        "s10c10-p4-f1-herd-lr0.3": dict(ATOM, factor=1, networks="random", init="herding", lr_images=0.3),
        "s10c10-p4-f2-herd": dict(ATOM, factor=2, networks="random", init="herding"),
    },
}
#: The rounds whose baselines include the tiled random set (factor 2) and the herding coreset.
TILED_FROM, HERDING_FROM = 4, 9
KEY = ("setting", "ipc", "real_batch", "init", "iterations", "batch_real", "eval_epochs", "num_models", "seed",
       "device")
#: What a condensed record written before the levers were recorded used, and a setting's levers unless it names
#: them: uniform batches from random real images at every IPC (a setting is a parametrisation, not the per-IPC
#: default; ``LEGACY_CONFIG``).
LEVER_DEFAULTS = {f: LEGACY_CONFIG[f] for f in ("real_batch", "init")}


def legacy(r: dict) -> dict:
    """The fields older records lack: a condensed record (iterations > 0) used uniform batches from real images."""
    return dict(LEVER_DEFAULTS) if r.get("iterations") else {}


def cache_path(cache: Path, name: str, cfg: ATOMConfig, seed: int, val_size: int, device: str = "cpu") -> Path:
    """Where setting ``name``'s condensed set is cached: the name, IPC and iterations for the eye, and a digest of
    everything that makes the set (the config as given, the seed, the validation split's size, and a device type
    other than the CPU's, whose names stay as first written: a record's ``condense_seconds`` are its device's) for
    safety."""
    made_by = dict(config=cfg.to_dict(), seed=seed, val_size=val_size)
    made_by = json.dumps(made_by if device == "cpu" else dict(made_by, device=device), sort_keys=True)
    digest = hashlib.sha1(made_by.encode()).hexdigest()[:12]
    return cache / f"{name}-ipc{cfg.ipc}-it{cfg.iterations}-{digest}.safetensors"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--round", type=int, default=1, choices=sorted(ROUNDS))
    ap.add_argument("--only", nargs="*", help="run only these setting names")
    ap.add_argument("--ipc", type=int, default=10)
    add_budget_args(ap, iterations=8000, eval_epochs=300, num_models=3)
    ap.add_argument("--herding-epochs", type=int, default=1, help="epochs of the herding baseline's feature "
                    "network (round 9 on; 1 = the herding start's)")
    ap.add_argument("--val-size", type=int, default=VAL_SIZE, help=f"validation images held out ({VAL_SIZE}; smaller "
                    "only for smoke runs on tiny data)")
    ap.add_argument("--cache-dir", default="runs/ablation-fmnist", help="condensed sets and their checkpoints")
    add_out_arg(ap, "ablation_fmnist.json")
    args = ap.parse_args()
    set_threads()
    dev = resolve_device(args.device)
    results = ResultsFile(args.out, KEY, legacy)
    train, val = fashion_mnist(args.data_root, validation=True, val_size=args.val_size)
    settings = dict(ROUNDS[args.round])
    settings["random"] = None
    if args.round >= TILED_FROM:
        settings["tiled-random"] = None
    if args.round >= HERDING_FROM:
        settings["herding"] = None
    for name, loss in settings.items():
        if args.only and name not in args.only:
            continue
        levers = {k: v for k, v in dict(LEVER_DEFAULTS, **(loss or {})).items() if k in LEVER_DEFAULTS and loss}
        if results.done(dict(setting=name, ipc=args.ipc, **levers, iterations=args.iterations if loss else 0,
                             batch_real=args.batch_real if loss else 0, eval_epochs=args.eval_epochs,
                             num_models=args.num_models, seed=args.seed, device=device_name(dev))):
            log(f"skip {name}: already measured")
            continue
        if loss is None:  # the selection baselines: seconds
            with Timer() as tc:
                if name == "herding":  # the herding coreset (ConvNet-3 trained --herding-epochs epochs)
                    syn = herding_subset(train, args.ipc, seed=args.seed, feature_epochs=args.herding_epochs,
                                         device=dev)
                    fields = dict(method="herding", iterations=0, batch_real=0, factor=1, networks=None,
                                  herding_epochs=args.herding_epochs)
                else:  # the random-subset baselines (plain, or tiled at factor 2)
                    factor = 2 if name == "tiled-random" else 1
                    syn = random_subset(train, args.ipc, seed=args.seed, factor=factor)
                    fields = dict(method=syn.method, iterations=0, batch_real=0, factor=factor, networks=None)
            seconds = tc.seconds
        else:
            loss = dict(PUBLISHED_DEFAULTS._asdict(), **loss)  # a setting names what it changes from DM's
            cfg = ATOMConfig(preset="atom", ipc=args.ipc, iterations=args.iterations, batch_real=args.batch_real,
                             **loss)
            path = cache_path(Path(args.cache_dir), name, cfg, args.seed, len(val), dev.type)
            syn, seconds = cached_set(path, lambda: condense(train, cfg, device=dev, seed=args.seed,
                                                             compile=args.compile, **resumable(path)), dev)
            kind = "dm" if loss["w_spatial"] == loss["w_channel"] == 0 else \
                "datadam" if loss["w_channel"] == 0 else "atom"
            fields = dict(method=kind, iterations=args.iterations, batch_real=args.batch_real,
                          **dict(levers, **{k: (list(v) if k == "layers" else v) for k, v in loss.items()}),
                          final_loss=syn.provenance["final_loss"],
                          **({"init_seconds": syn.provenance["init"]["seconds"]} if "init" in syn.provenance
                             else {}))
        res = evaluate(syn, val, num_models=args.num_models, epochs=args.eval_epochs, device=dev, seed=args.seed,
                       compile=args.compile)
        rec = results.append(dict(benchmark="ablation", dataset="fashion-mnist", split="validation", setting=name,
                                  round=args.round, ipc=args.ipc, val_size=len(val), seed=args.seed,
                                  condense_seconds=round(seconds, 1), **fields, **res.to_record()), dev)
        log(f"{name:>20}: {rec['accuracy_mean']:.2f} ± {rec['accuracy_std']:.2f} % "
            f"(condense {seconds:.0f} s, eval {res.seconds:.0f} s)")


if __name__ == "__main__":
    run_script(main)
