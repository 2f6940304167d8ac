"""Helpers shared by the benchmark scripts (not part of the library)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from atom_plugin import load_dataset, validation_split
from atom_plugin.results import append_records, environment, read_records

RESULTS = Path(__file__).resolve().parent / "results"


def fashion_mnist(data_root: str | None, *, validation: bool, val_size: int | None = None):
    """(train, eval) splits: with ``validation`` the project's validation recipe
    (:func:`atom_plugin.validation_split`: ``val_size`` images held out, default 5,000), else the full 60,000 training images and the 10,000 test images."""
    train = load_dataset("fashion-mnist", data_root, split="train")
    if validation:
        return validation_split(train, val_size)
    return train, load_dataset("fashion-mnist", data_root, split="test")


def done_keys(path: Path, fields: tuple[str, ...]) -> set[tuple]:
    """Keys of records already in ``path`` (so an interrupted benchmark resumes where it stopped)."""
    return {tuple(str(r.get(f)) for f in fields) for r in read_records(path)}


def record(path: Path, rec: dict, device) -> dict:
    """Add environment fields and append one record to ``path``; returns the full record."""
    full = dict(rec, **environment(device))
    append_records(path, [full])
    return full


def add_budget_args(ap, *, iterations: int, eval_epochs: int, num_models: int) -> None:
    """The options every accuracy benchmark shares: data, condensation and evaluation budget, seed, device."""
    ap.add_argument("--data-root", default=None, help="folder with the Fashion-MNIST idx files")
    ap.add_argument("--iterations", type=int, default=iterations, help=f"condensation iterations ({iterations})")
    ap.add_argument("--batch-real", type=int, default=64, help="real images per class per iteration (64)")
    ap.add_argument("--eval-epochs", type=int, default=eval_epochs, help=f"epochs per evaluation ({eval_epochs})")
    ap.add_argument("--num-models", type=int, default=num_models, help=f"networks per evaluation ({num_models})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--compile", action="store_true", help="condense through torch.compile")


def set_threads() -> None:
    """Use every core for intra-op work but do not oversubscribe (honours OMP_NUM_THREADS)."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
