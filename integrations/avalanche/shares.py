"""The memory's share rules as plain functions (no Avalanche): which (task, class) groups the memory will hold, and
how many images each gets after an update. :class:`ATOMBuffer` supplies the raw shares
(``ATOMBuffer.get_group_lengths``); these functions apply the capacity check and the caps."""
from __future__ import annotations

import warnings
from typing import Callable, Hashable

import torch

from atom_plugin.errors import ConfigError, DataError

Key = tuple[int, int]  #: (task label, class index)
#: The storage policies of :class:`ATOMBuffer` (``policy=``).
POLICIES = ("budget", "per_class")
SMALL_CLASS_RULES = ("cap", "error")  #: the choices of ``small_class``


def class_counts(y: torch.Tensor, t: torch.Tensor) -> dict[Key, int]:
    """Samples per ``(task, class)`` of labels ``y`` and task labels ``t`` (``(N,)`` int64), sorted by key (the
    arrival rank of an experience's classes)."""
    keys, n = torch.unique(torch.stack([t, y], 1), dim=0, return_counts=True)
    return dict(sorted(((int(k[0]), int(k[1])), int(c)) for k, c in zip(keys, n)))


def check_capacity(policy: str, order: list[Key], held: dict[Key, int], max_size: int, ipc: int | None,
                   exp_id) -> None:
    """Whether ``max_size`` images can hold the groups ``order`` (``held``: images of the groups in memory).

    Raises:
        ConfigError: budget: more groups than images; per_class: ``ipc`` per group (fewer for a group held with
            fewer) exceeds ``max_size``. The message names the numbers and the experience.
    """
    k = len(order)
    if policy == "budget" and k > max_size:
        raise ConfigError(f"a memory of {max_size} images cannot hold the {k} classes seen by experience "
                          f"{exp_id} (at least one image per class); raise mem_size to >= {k}")
    if policy == "per_class":
        total = sum(min(held.get(key, ipc), ipc) for key in order)
        if total > max_size:
            raise ConfigError(f"policy='per_class' with {ipc} images per class needs {total} images for the {k} "
                              f"classes seen by experience {exp_id}, more than max_size={max_size}; raise mem_size "
                              "or lower images_per_class")


def plan_sizes(order: list[Key], shares: list[int], counts: dict[Key, int], held: dict[Key, int], small_class: str,
               exp_id) -> dict[Key, int]:
    """Images per group after an update, in the order ``order``: ``shares`` (one per group, same order) capped by
    the real samples of the experience's groups (``counts``) and, for the other groups, by the images ``held``
    (a share never grows: their real data is gone).

    Raises:
        DataError: a group of ``counts`` with fewer samples than its share when ``small_class="error"``.
    Warns:
        UserWarning: such a group under ``small_class="cap"``; a group of ``counts`` already ``held``.
    """
    returning = [key for key in counts if key in held]
    if returning:
        warnings.warn(f"experience {exp_id} brings classes {returning} that are already in memory; they are "
                      "condensed anew from the new real data (their old synthetic images are dropped)", stacklevel=4)
    sizes: dict[Key, int] = {}
    for key, share in zip(order, shares):
        if key not in counts:
            sizes[key] = min(share, held[key])
            continue
        if counts[key] < share:
            msg = (f"class {key[1]} (task {key[0]}) of experience {exp_id} has only {counts[key]} real samples, "
                   f"fewer than its memory share of {share} images")
            if small_class == "error":
                raise DataError(msg + "; pass small_class='cap' to store it with fewer images")
            warnings.warn(msg + f"; it is stored with {counts[key]} condensed images (small_class='cap')", stacklevel=4)
        sizes[key] = min(share, counts[key])
    return sizes


def policy_ipc(policy: str, images_per_class, config_ipc, max_size: int) -> int | None:
    """The fixed images per class of ``policy="per_class"`` (``images_per_class``, else ``config_ipc``); None for
    ``"budget"``.

    Raises:
        ConfigError: ``images_per_class`` with the budget policy, or an IPC that is not a whole number in
            ``[1, max_size]``.
    """
    if policy == "budget":
        if images_per_class is not None:
            raise ConfigError("images_per_class applies only to policy='per_class'; the budget policy "
                              "shares max_size among the classes seen")
        return None
    ipc = config_ipc if images_per_class is None else images_per_class
    if not isinstance(ipc, int) or isinstance(ipc, bool) or ipc < 1:
        raise ConfigError(f"images_per_class must be a whole number >= 1, got {ipc!r}")
    if ipc > max_size:
        raise ConfigError(f"images_per_class={ipc} exceeds max_size={max_size}: not even one class fits")
    return ipc


def by_task_size_factor(sizes: dict[Key, int], factors: Callable[[Key, int], Hashable]) -> dict[tuple, list[Key]]:
    """``{(task, size, factors(key, size)): keys}`` in first-seen order: the classes condensed together, in one
    call (same task, same stored size, same multi-formation factor(s))."""
    out: dict[tuple, list[Key]] = {}
    for key, n in sizes.items():
        out.setdefault((key[0], n, factors(key, n)), []).append(key)
    return out
