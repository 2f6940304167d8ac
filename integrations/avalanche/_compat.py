"""The adapter's contact with Avalanche itself: the guarded import (every module of this adapter imports Avalanche
through here), the one reader of Avalanche 0.6's private dataset tree (the benchmark's ``Normalize``) and the only
uses of private Avalanche helpers (:func:`tensor_dataset`, :func:`with_train_transform`)."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Iterator

import torch

from atom_plugin.errors import ATOMError

#: The command that installs the adapter's dependencies.
INSTALL_HINT = "pip install 'atom-plugin[avalanche]'"
SUPPORTED = "0.6.0"


class AvalancheMissingError(ATOMError, ImportError):
    """Avalanche (``avalanche-lib``) is not installed; the message gives the install command."""


def require_avalanche() -> ModuleType:
    """The ``avalanche`` module.

    Raises:
        AvalancheMissingError: avalanche-lib is not importable (message: ``pip install 'atom-plugin[avalanche]'``).
    """
    try:
        return importlib.import_module("avalanche")
    except ImportError as exc:
        raise AvalancheMissingError(
            f"the Avalanche integration needs avalanche-lib {SUPPORTED}, which is not importable ({exc}); "
            f"install it with: {INSTALL_HINT}") from exc


def tensor_dataset(x: torch.Tensor, y: torch.Tensor, task_labels: list[int]):
    """An Avalanche classification dataset of ``(x[i] (C, H, W), int y[i], int task_labels[i])`` items, the form
    of a benchmark's samples (the public ``make_tensor_classification_dataset`` is gone since Avalanche 0.5)."""
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset

    return _make_taskaware_tensor_classification_dataset(x, y, task_labels=task_labels)


# -- reading the benchmark's normalisation (Avalanche 0.6 dataset internals; best effort) ----------------------------

def find_normalize(dataset) -> tuple[str | None, list[tuple[tuple[float, ...], tuple[float, ...]]]]:
    """``(leaf dataset class name, distinct (mean, std) of the Normalize transforms on the eval path)`` of an
    Avalanche dataset: walks its ``_datasets``/``_flat_data`` tree and transform groups (0.6 internals)."""
    found: list[tuple[tuple[float, ...], tuple[float, ...]]] = []
    leaf: str | None = None
    for node in _nodes(dataset):
        for attr in ("_transform_groups", "_frozen_transform_groups"):
            groups = getattr(node, attr, None)
            if groups is None:
                continue
            try:
                eval_group = groups["eval"]
            except (KeyError, TypeError, AttributeError):
                eval_group = None
            for t in _transforms(eval_group):
                stats = (_floats(t.mean), _floats(t.std))
                if stats not in found:
                    found.append(stats)
        if not hasattr(node, "_datasets") and not hasattr(node, "_flat_data"):
            leaf = leaf or type(node).__name__
            for t in _transforms(getattr(node, "transform", None)):
                stats = (_floats(t.mean), _floats(t.std))
                if stats not in found:
                    found.append(stats)
    return leaf, found


def _nodes(obj, depth: int = 0) -> Iterator[Any]:
    if obj is None or depth > 64:
        return
    yield obj
    flat = getattr(obj, "_flat_data", None)
    if flat is not None and flat is not obj:
        yield from _nodes(flat, depth + 1)
    for sub in getattr(obj, "_datasets", None) or ():
        yield from _nodes(sub, depth + 1)
    for attr in ("dataset",):  # torch Subset
        sub = getattr(obj, attr, None)
        if sub is not None and not hasattr(obj, "_datasets"):
            yield from _nodes(sub, depth + 1)


def _transforms(obj, depth: int = 0) -> Iterator[Any]:
    if obj is None or depth > 16:
        return
    if type(obj).__name__ == "Normalize" and hasattr(obj, "mean") and hasattr(obj, "std"):
        yield obj
        return
    inner = obj if isinstance(obj, (list, tuple)) else getattr(obj, "transforms", None)
    if isinstance(inner, (list, tuple)):
        for t in inner:
            yield from _transforms(t, depth + 1)


def _floats(v) -> tuple[float, ...]:
    if isinstance(v, torch.Tensor):
        v = v.flatten().tolist()
    if isinstance(v, (int, float)):
        v = [v]
    return tuple(round(float(a), 6) for a in v)


def with_train_transform(dataset, transform):
    """``dataset`` (an Avalanche classification dataset) with ``transform`` applied to each item's ``x`` on top of
    its own transforms, in the ``"train"`` group (the group made current; ``"eval"`` unchanged): Avalanche 0.6's
    private ``_taskaware_classification_subset`` (task labels, targets and collate function kept)."""
    from avalanche.benchmarks.utils import _taskaware_classification_subset

    groups = {"train": (transform, None), "eval": (None, None)}
    return _taskaware_classification_subset(dataset, transform_groups=groups, initial_transform_group="train")
