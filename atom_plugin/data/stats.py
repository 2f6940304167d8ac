"""Normalisation statistics and DSA strategy of each named dataset: one table, used by the loaders and adapters.

Means/stds are per channel in [0, 1] pixel units, as used by the DC/DSA/DM code (Fashion-MNIST 0.2861/0.3530).
Digit datasets use a DSA strategy without ``flip`` (a mirrored 2 is not a 2).
"""
from __future__ import annotations

from dataclasses import dataclass

from ._base import DEFAULT_DSA_STRATEGY, DIGIT_DSA_STRATEGY


@dataclass(frozen=True)
class DatasetStats:
    """``mean``/``std``: per-channel tuples of floats; ``dsa_strategy``: the default DSA strategy."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    dsa_strategy: str


#: Normalisation statistics and DSA strategy by dataset name.
DATASET_STATS: dict[str, DatasetStats] = {
    "fashion-mnist": DatasetStats((0.2861,), (0.3530,), DEFAULT_DSA_STRATEGY),
    "mnist": DatasetStats((0.1307,), (0.3081,), DIGIT_DSA_STRATEGY),
    "cifar10": DatasetStats((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), DEFAULT_DSA_STRATEGY),
    "cifar100": DatasetStats((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762), DEFAULT_DSA_STRATEGY),
    "svhn": DatasetStats((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), DIGIT_DSA_STRATEGY),
    "tinyimagenet": DatasetStats((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), DEFAULT_DSA_STRATEGY),
}
