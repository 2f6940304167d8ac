"""``atom evaluate``: a saved set, trained on and tested again (or on a rebuilt validation split)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .._device import resolve_device
from ..data import VAL_SEED, validation_split
from ..errors import DataError
from ._common import (RESULT_FILE, UsageError, _accuracy_line, _accuracy_record, _append, _check_counts,
                      _check_model, _check_result_file, _evaluate, _load, _load_condensed, _shape_text)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``atom evaluate``: evaluate a saved condensed set on the test split or its validation split."""
    _check_model(args.model)
    _check_counts(num_models=args.num_models, epochs=args.epochs, batch_size=args.batch_size)
    dev = resolve_device(args.device)
    condensed, path = _load_condensed(args.path)
    out = Path(args.out) if args.out else path.parent / RESULT_FILE
    _check_result_file(out)
    prov = condensed.provenance
    root = args.data_root
    if root is None and prov.get("data_root") and Path(prov["data_root"]).is_dir():
        root = prov["data_root"]  # where the set was made from, unless told otherwise
    dataset = prov.get("dataset") or condensed.name
    size = tuple(condensed.image_shape[1:])
    if args.split == "test":
        eval_set = _load(dataset, root, "test", size, args.download)
    else:
        eval_set = _rebuild_validation(condensed, path, dataset, root, size, args.download)
    result = _evaluate(condensed, eval_set, args.model, args.num_models, args.epochs, args.batch_size, dev,
                       args.seed, args.compile, args.quiet)
    _append(out, [_accuracy_record(result, condensed, args.split, path, args.seed, dev, args.argv)])
    print(f"{dataset} {condensed.method} ({_shape_text(condensed)}) {_accuracy_line(result, args.split)}")
    print(f"record appended to {out}")
    return 0


def _rebuild_validation(condensed, path: Path, dataset: str, root, size, download: bool):
    """The held-out images of a ``--val-split`` run: the same stratified split of the same training data."""
    prov = condensed.provenance
    n_val = prov.get("val_split")
    if not n_val:
        raise UsageError(f"{str(path)!r} was made from the whole training set (no --val-split), so it has no "
                         "validation split; use --split test")
    train_all = _load(dataset, root, "train", size, download)
    train, val = validation_split(train_all, int(n_val), seed=int(prov.get("val_seed", VAL_SEED)))
    # With ZCA the stored fingerprint is of the whitened images; otherwise it identifies the training part.
    expected = prov.get("source_fingerprint")
    if condensed.zca is None and expected and train.fingerprint() != expected:
        raise DataError(f"the {dataset} training data found now differs from the data {str(path)!r} was made "
                        "from, so its validation split cannot be rebuilt; pass the same --data-root")
    return val
