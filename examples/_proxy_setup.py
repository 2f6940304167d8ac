"""Set-up shared by the NNI examples: the Fashion-MNIST splits and the condensed proxy.

Not an example itself (the leading underscore keeps it out of the examples' test); the scripts import it from
their own folder, which Python puts first on ``sys.path`` when a script runs as ``python examples/X.py``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from atom_plugin import ATOMConfig, CondensedDataset, condense, load_dataset, validation_split
from atom_plugin.data import VAL_SIZE, ImageTensorDataset as Dataset


def add_data_and_proxy_args(ap: argparse.ArgumentParser) -> None:
    """The options both NNI examples share: data, proxy, validation split, seed, device."""
    ap.add_argument("--data-root", default=None, help="folder holding Fashion-MNIST (e.g. ROOT/FashionMNIST/raw/)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--proxy", default=None, help="a condensed .safetensors file to use instead of condensing")
    ap.add_argument("--ipc", type=int, default=None, help="proxy images per class (default 10; quick 2)")
    ap.add_argument("--iterations", type=int, default=None, help="condensation iterations (default 2000; quick 3)")
    ap.add_argument("--full-epochs", type=int, default=None, help="epochs of the final full-data training "
                    "(default 50; quick 2)")
    ap.add_argument("--val-size", type=int, default=None, help=f"held-out validation images (default {VAL_SIZE}; "
                    f"quick: a fifth of the training set, at most {VAL_SIZE})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--download", action="store_true", help="let torchvision download Fashion-MNIST if missing")


def load_splits(args: argparse.Namespace) -> tuple[Dataset, Dataset, Dataset, int]:
    """(train, val, test, val_size): Fashion-MNIST with a stratified REAL validation split held out (seed 0).

    ``args`` needs data_root, download, quick and val_size (None = 5,000; quick: a fifth of the training set).
    Raises DatasetNotFoundError (one line: where it looked, how to get the files) when the data is missing.
    """
    full = load_dataset("fashion-mnist", args.data_root, download=args.download)
    test = load_dataset("fashion-mnist", args.data_root, split="test", download=args.download)
    train, val = validation_split(full, args.val_size or None, quick=args.quick)
    print(f"data: {len(train)} training / {len(val)} validation (held out) / {len(test)} test images")
    return train, val, test, len(val)


def get_proxy(args: argparse.Namespace, train: Dataset, val: Dataset, save_to: Path | None = None) -> CondensedDataset:
    """The proxy: ``args.proxy`` loaded (and checked against ``val``), else condensed from ``train`` with the
    default preset (ipc, iterations, device, seed from ``args``; --quick uses a width-16 matching net).
    A condensed proxy is saved to ``save_to`` when given.

    Raises CondensedFileError (unreadable --proxy) or ProxyMismatchError (other image shape, classes or
    normalisation than the validation split); both are ATOMErrors, shown as one line by ``run_script``.
    """
    from atom_plugin.integrations.nni import check_compatible

    if args.proxy:
        proxy = CondensedDataset.load(args.proxy)
        check_compatible(proxy, val)
        print(f"proxy: {args.proxy} ({len(proxy)} images, method {proxy.method})")
        return proxy
    # plain images (factor 1): a proxy exists to make trials cheap, and a factorised one trains on 4x the samples;
    # from random real images at every IPC (the default's herding start above IPC 10 trains a network first)
    cfg = ATOMConfig(ipc=args.ipc, iterations=args.iterations, factor=1, networks="random", init="real",
                     **({"width": 16} if args.quick else {}))
    t0 = time.perf_counter()
    proxy = condense(train, cfg, device=args.device, seed=args.seed)
    where = f" -> {proxy.save(save_to)}" if save_to is not None else ""
    print(f"proxy: condensed {len(proxy)} images (ipc {args.ipc}, {args.iterations} iterations) from the "
          f"{len(train)} training images in {time.perf_counter() - t0:.1f} s{where}")
    return proxy
