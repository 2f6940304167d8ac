"""Seeded, class-stratified train/validation split of an :class:`ImageTensorDataset`, and the project's one
validation recipe (:func:`validation_split`) that the CLI, the benchmarks and the examples share."""
from __future__ import annotations

import torch

from ..errors import ConfigError
from ._base import ImageTensorDataset

VAL_SIZE = 5000  #: held-out training images (Fashion-MNIST's 55,000 / 5,000 split of the benchmarks and examples)
VAL_SEED = 0  #: every validation split uses this seed, so `atom evaluate` can rebuild a --val-split run's split


def stratified_split(dataset: ImageTensorDataset, val_size: int | float = 5000, *,
                     seed: int = 0) -> tuple[ImageTensorDataset, ImageTensorDataset]:
    """Split ``dataset`` into ``(train, val)`` keeping the class proportions in the validation part.

    Args:
        dataset: the set to split (images ``(N, C, H, W)`` float32, labels ``(N,)`` int64).
        val_size: number of validation images (int, ``0 < val_size < N``) or a fraction of ``N``
            (float in ``(0, 1)``, rounded to the nearest count).
        seed: seeds a ``torch.Generator``; the same dataset and seed always give the same split.

    Each class gets ``val_size * n_class / N`` validation images, rounded by largest remainder (ties to the
    lower class index) so the counts add up to ``val_size`` exactly. The images of each part keep the source
    order; both parts keep classes, statistics, name, DSA strategy and ZCA of ``dataset``.

    Returns:
        ``(train, val)``: two :class:`ImageTensorDataset` with ``N - val_size`` and ``val_size`` images.

    Raises:
        ConfigError: ``val_size`` not in range (``<= 0``, ``>= N``, or a fraction outside ``(0, 1)``), or a
            class that would be left without any training image.
    """
    n = len(dataset)
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)):
        raise ConfigError(f"val_size must be an int count or a float fraction, got {val_size!r}")
    if isinstance(val_size, float):
        if not 0.0 < val_size < 1.0:
            raise ConfigError(f"a fractional val_size must lie in (0, 1), got {val_size}")
        count = round(val_size * n)
    else:
        count = int(val_size)
    if not 0 < count < n:
        raise ConfigError(f"val_size must leave both parts non-empty: got {val_size} for a dataset of {n} images; "
                          f"use 1..{n - 1}" if n > 1 else f"cannot split a dataset of {n} image(s)")
    counts = dataset.class_counts()
    quota = counts.double() * count / n
    take = quota.floor().long()
    order = sorted(range(len(counts)), key=lambda k: (-(quota[k] - take[k]).item(), k))
    for k in order[: count - int(take.sum())]:
        take[k] += 1
    starved = [dataset.classes[k] for k in range(len(counts)) if counts[k] > 0 and take[k] >= counts[k]]
    if starved:
        raise ConfigError(f"val_size {val_size} would leave class(es) {starved[:5]} without training images; "
                          "use a smaller val_size")
    g = torch.Generator().manual_seed(int(seed))
    val_idx = []
    for k in range(len(counts)):
        members = torch.nonzero(dataset.labels == k).flatten()
        if take[k] > 0:
            val_idx.append(members[torch.randperm(len(members), generator=g)[: int(take[k])]])
    val = torch.cat(val_idx).sort().values
    is_val = torch.zeros(n, dtype=torch.bool)
    is_val[val] = True
    return dataset.select(torch.nonzero(~is_val).flatten()), dataset.select(val)


def validation_split(train: ImageTensorDataset, val_size: int | None = None, *, quick: bool = False,
                     seed: int = VAL_SEED) -> tuple[ImageTensorDataset, ImageTensorDataset]:
    """The project's validation recipe: hold ``val_size`` training images out, stratified, with seed ``VAL_SEED``.

    Args:
        train: the training split (images ``(N, C, H, W)`` float32, labels ``(N,)`` int64).
        val_size: held-out images; ``None`` means ``VAL_SIZE`` (5,000), or with ``quick`` a fifth of ``N`` capped
            at ``VAL_SIZE`` (small CPU checks).
        quick: the small-data default for ``val_size`` (ignored when ``val_size`` is given).
        seed: the split's seed (default ``VAL_SEED``, 0; a stored run records it to rebuild the split).

    Returns:
        ``(train, val)`` as :func:`stratified_split` returns them.

    Raises:
        ConfigError: as :func:`stratified_split` (``val_size`` out of range, a class left without training images).
    """
    if val_size is None:
        val_size = min(VAL_SIZE, len(train) // 5) if quick else VAL_SIZE
    return stratified_split(train, val_size, seed=seed)
