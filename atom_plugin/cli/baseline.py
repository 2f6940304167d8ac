"""``atom baseline``: a random, tiled random or herding subset of real images, saved like a condensed set."""
from __future__ import annotations

import argparse
import time

from .._device import resolve_device
from ..baselines import herding_subset, random_subset
from ..errors import ConfigError
from ._common import (CONDENSED_FILE, GRID_FILE, RESULT_FILE, UsageError, _accuracy_line, _accuracy_record, _append,
                      _check_eval_args, _evaluate, _load_splits, _shape_text, _split_provenance, _with_env,
                      _writable_out_dir)


def cmd_baseline(args: argparse.Namespace) -> int:
    """``atom baseline``: a random or herding subset of real images, saved like a condensed set."""
    if args.ipc < 1:
        raise ConfigError(f"ipc must be a whole number >= 1, got {args.ipc}")
    if args.herding_epochs < 0:
        raise UsageError(f"--herding-epochs must be >= 0, got {args.herding_epochs}")
    if args.factor != 1 and args.method != "random":
        raise UsageError(f"--factor {args.factor} goes with --method random only (tiled random baseline)")
    _check_eval_args(args)
    dev = resolve_device(args.device)
    out = _writable_out_dir(args.out)
    train, eval_set, split = _load_splits(args, need_eval=args.evaluate)
    t0 = time.perf_counter()
    if args.method == "random":
        subset = random_subset(train, args.ipc, seed=args.seed, classes=args.classes, factor=args.factor)
    else:
        subset = herding_subset(train, args.ipc, seed=args.seed, classes=args.classes,
                                feature_epochs=args.herding_epochs, device=dev)
    wall = time.perf_counter() - t0
    subset.provenance.update(_split_provenance(args, train), iterations=0)
    path = subset.save(out / CONDENSED_FILE)
    subset.to_png_grid(out / GRID_FILE)
    record = dict(record="baseline", dataset=subset.name, method=subset.method, ipc=args.ipc, factor=subset.factor,
                  iterations=0,
                  seconds=round(wall, 2), classes=subset.present_classes(), seed=args.seed, val_split=args.val_split,
                  train_size=len(train), herding_epochs=args.herding_epochs if args.method == "herding" else None,
                  condensed=str(path))
    records = [_with_env(record, dev, args.argv)]
    print(f"selected {subset.name}: {_shape_text(subset)} ({args.method} real images) -> {path}")
    if args.evaluate:
        result = _evaluate(subset, eval_set, args.eval_model, args.eval_models, args.eval_epochs, 256, dev,
                           args.seed, args.eval_compile, args.quiet)
        records.append(_accuracy_record(result, subset, split, path, args.seed, dev, args.argv))
        print(_accuracy_line(result, split))
    _append(out / RESULT_FILE, records)
    return 0
