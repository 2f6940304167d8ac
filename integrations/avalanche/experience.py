"""Reading an Avalanche experience for condensation: its samples as tensors, and the normalisation they carry."""
from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader

from atom_plugin.data import DATASET_STATS, DEFAULT_DSA_STRATEGY, DIGIT_DSA_STRATEGY
from atom_plugin.errors import DataError

from ._compat import find_normalize

# The core's normalisation statistics per torchvision dataset class (as in atom_plugin/data/_idx.py, _cifar.py,
# _svhn.py): (core dataset name, mean, std).
# Avalanche's dataset class names -> the core's dataset names (statistics come from the core's table).
_AVALANCHE_NAMES = {"FashionMNIST": "fashion-mnist", "MNIST": "mnist", "CIFAR10": "cifar10", "CIFAR100": "cifar100",
                    "SVHN": "svhn"}
#: Avalanche dataset class name -> (core dataset name, per-channel mean, per-channel std).
CORE_STATS: dict[str, tuple[str, tuple[float, ...], tuple[float, ...]]] = {
    leaf: (name, DATASET_STATS[name].mean, DATASET_STATS[name].std) for leaf, name in _AVALANCHE_NAMES.items()
}
_DIGIT_SETS = ("MNIST", "SVHN")  # DSA drops "flip" for digits (a mirrored 2 is not a 2)


def read_experience(exp, batch_size: int = 1024, *, shape: tuple[int, ...] | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.dtype]:
    """The experience's samples through its eval transforms: ``(x (N, C, H, W) float32, y (N,) int64,
    task (N,) int64, the samples' own dtype)``.

    Raises:
        DataError: empty experience, samples that are not ``(C, H, W)`` float tensors, or images of another
            shape than ``shape`` (the memory's, when it holds images).
    """
    exp_id = getattr(exp, "current_experience", "?")
    ds = exp.dataset.eval()  # Avalanche 0.6: the 'eval' transform group (deterministic)
    if len(ds) == 0:
        raise DataError(f"experience {exp_id} has no samples; nothing to condense")
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0,
                        collate_fn=getattr(ds, "collate_fn", None))
    xs, ys, ts = [], [], []
    for batch in loader:
        xb = batch[0]
        if not isinstance(xb, torch.Tensor) or xb.dim() != 4 or not xb.is_floating_point():
            raise DataError(f"experience {exp_id}: samples must be float image tensors (C, H, W) after the eval "
                            f"transforms (got {type(xb).__name__} {tuple(getattr(xb, 'shape', ()))}); add "
                            "ToTensor() and Normalize(...) to the benchmark's eval transform")
        xs.append(xb)
        ys.append(torch.as_tensor(batch[1]).long())
        ts.append(torch.as_tensor(batch[-1]).long() if len(batch) >= 3 else torch.zeros(len(xb), dtype=torch.long))
    x, y, t = torch.cat(xs), torch.cat(ys), torch.cat(ts)
    check_shape(exp, tuple(x.shape[1:]), shape)
    return x.float(), y, t, x.dtype


def peek_experience(exp, shape: tuple[int, ...] | None = None) -> list[tuple[int, int]] | None:
    """Cheap look at an experience through its eval transforms: its sorted ``(task, class)`` keys from the
    dataset's targets (None when it has none); the first image's shape is checked against ``shape``.

    Raises:
        DataError: the experience has no samples, or a first image of another shape than ``shape``.
    """
    ds = exp.dataset.eval()
    if len(ds) == 0:
        raise DataError(f"experience {getattr(exp, 'current_experience', '?')} has no samples; nothing to condense")
    first = ds[0][0]
    if isinstance(first, torch.Tensor):
        check_shape(exp, tuple(first.shape), shape)
    tasks, targets = getattr(ds, "targets_task_labels", None), getattr(ds, "targets", None)
    keys = None
    if targets is not None:
        tl = list(tasks) if tasks is not None else [0] * len(ds)
        keys = sorted({(int(a), int(b)) for a, b in zip(tl, targets)})
    return keys


def check_shape(exp, shape: tuple[int, ...], held: tuple[int, ...] | None) -> None:
    """Raises DataError when the experience's image ``shape`` differs from the memory's (``held``; None: empty)."""
    if held is not None and tuple(shape) != held:
        raise DataError(f"experience {getattr(exp, 'current_experience', '?')} has images of shape {tuple(shape)} "
                        f"but the memory holds {held}; one ATOMBuffer serves one image format (use the same "
                        "transforms for every experience)")


def dsa_strategy_of(leaf: str | None) -> str:
    """The core's DSA strategy for a benchmark whose leaf dataset class is ``leaf`` (digits drop "flip")."""
    return DIGIT_DSA_STRATEGY if leaf in _DIGIT_SETS else DEFAULT_DSA_STRATEGY


def resolve_normalization(dataset, channels: int, *, mean: Sequence[float] | None = None,
                          std: Sequence[float] | None = None, tolerance: float = 1e-3) -> tuple[str, str, dict]:
    """``(core dataset name, DSA strategy, normalisation record)`` of a benchmark dataset: ``mean``/``std`` when
    given, else the one ``Normalize`` of its eval transforms, else unknown (0/1, with a warning when there are
    several); the record says whether it matches the core's statistics for that dataset (within ``tolerance``).

    Raises:
        DataError: statistics whose length fits neither 1 nor ``channels``.
    Warns:
        UserWarning: several Normalize transforms, or statistics that differ from the core's.
    """
    leaf, found = find_normalize(dataset)
    dataset_name = CORE_STATS[leaf][0] if leaf in CORE_STATS else (leaf or "avalanche")
    dsa_strategy = dsa_strategy_of(leaf)
    if mean is not None:
        mean, std, source = tuple(mean), tuple(std), "argument"
    elif len(found) == 1:
        (mean, std), source = found[0], "Normalize transform"
    else:
        if len(found) > 1:
            warnings.warn(f"the benchmark's eval transforms hold several Normalize transforms {found}; the "
                          "normalisation is recorded as unknown (pass mean= and std= to record it)", stacklevel=4)
        mean, std, source = (0.0,) * channels, (1.0,) * channels, "unknown"
    if len(mean) == 1 and channels > 1:
        mean, std = mean * channels, std * channels
    if len(mean) != channels or len(std) != channels:
        raise DataError(f"normalisation statistics of length {len(mean)}/{len(std)} for {channels}-channel images; "
                        "give one mean and one std per channel")
    info: dict[str, Any] = dict(mean=tuple(mean), std=tuple(std), source=source, dataset=leaf,
                                core_dataset=None, core_mean=None, core_std=None, matches_core=None)
    if leaf in CORE_STATS and source != "unknown":
        name, cmean, cstd = CORE_STATS[leaf]
        diff = max(abs(a - b) for a, b in zip(mean + std, cmean + cstd)) if len(cmean) == channels else math.inf
        info.update(core_dataset=name, core_mean=cmean, core_std=cstd, matches_core=diff <= tolerance)
        if not info["matches_core"]:
            warnings.warn(f"the benchmark normalises {leaf} with mean {mean}, std {std}; the core uses {cmean}, "
                          f"{cstd} (difference > {tolerance}); condensation runs in the benchmark's "
                          "space, so condensation settings tuned on the core's data may behave differently",
                          stacklevel=4)
    return dataset_name, dsa_strategy, info
