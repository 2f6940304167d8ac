"""The groups of an :class:`ATOMBuffer` -- one :class:`CondensedGroup` per ``(task label, class)`` -- and the two
ways to fill them: :func:`condense_classes` (from an experience's real data) and :func:`recondense_groups` (into
fewer images, from their own synthetic images). Classes that share a task and a size are condensed together, in
one call (:func:`.shares.by_task_and_size`)."""
from __future__ import annotations

from typing import Callable

import torch

from ._compat import require_avalanche, tensor_dataset

require_avalanche()
from avalanche.training.storage_policy import ExemplarsBuffer  # noqa: E402

from atom_plugin import (ATOMConfig, CondenseCallback, CondensedDataset, ImageTensorDataset,  # noqa: E402
                         condense, merge_condensed, recondense)

from .shares import Key, by_task_and_size  # noqa: E402

#: Condensation iterations per experience when no config is given (about 10 s per experience on an H100 at IPC 10).
DEFAULT_ITERATIONS = 1000


def default_config() -> ATOMConfig:
    """The buffer's default condensation settings: the ``atom`` loss with :data:`DEFAULT_ITERATIONS`, plain images
    (factor 1) and random matching networks -- the memory counts stored images, one training sample each."""
    return ATOMConfig(preset="atom", iterations=DEFAULT_ITERATIONS, factor=1, networks="random")


Seeds = Callable[[int], int]  # call index within an update -> seed
Callbacks = Callable[[str], "list[CondenseCallback]"]  # progress description -> callbacks of one call


class CondensedGroup(ExemplarsBuffer):
    """One group of an :class:`ATOMBuffer`: the condensed images of one ``(task, class)``.

    Attributes:
        owner: the :class:`ATOMBuffer` (its item dtype; its :meth:`ATOMBuffer.shrink` re-condenses and records).
        key: ``(task label, class)``. condensed: its :class:`atom_plugin.CondensedDataset` (images ``(n, C, H, W)``
            float32). buffer: ``n`` Avalanche items ``(x (C, H, W) in the owner's item dtype, y int, task int)``.
        max_size: ``n``, the images held.
    """

    def __init__(self, owner, key: Key, condensed: CondensedDataset):
        super().__init__(len(condensed))
        self.owner, self.key = owner, key
        self.set(condensed)

    def set(self, condensed: CondensedDataset) -> None:
        """Hold ``condensed`` (this group's class only) from now on."""
        self.condensed, self.max_size = condensed, len(condensed)
        self.buffer = tensor_dataset(condensed.images.to(self.owner.item_dtype or torch.float32), condensed.labels,
                                     [self.key[0]] * len(condensed))

    def resize(self, strategy, new_size: int) -> None:
        """Re-condense the group into ``new_size`` images when it holds more (a group never grows: its real data
        is gone); recorded in the owner's history (:meth:`ATOMBuffer.shrink`)."""
        self.owner.shrink(strategy, {self.key: new_size})


def recondense_groups(groups: dict[Key, CondensedGroup], sizes: dict[Key, int], config: ATOMConfig, *, device,
                      seed: Seeds, callbacks: Callbacks, label: str) -> list[list[Key]]:
    """The one re-condensation loop: every group held above its ``sizes[key]`` is re-condensed into that many
    images (:func:`atom_plugin.recondense`), one call per (task, size), call j seeded ``seed(j)``.

    Returns:
        the batches of keys re-condensed, one per call.
    """
    batches = by_task_and_size({k: n for k, n in sizes.items() if n < len(groups[k].condensed)})
    for call, ((_, ipc), keys) in enumerate(batches.items()):
        out = recondense(merge_condensed([groups[k].condensed for k in keys]), ipc, config, device=device,
                         seed=seed(call), callbacks=callbacks(f"{label}: re-condense {len(keys)} classes to {ipc}"),
                         compile=False)  # shapes change every call: compiling would only add compile time
        for key in keys:
            groups[key].set(out.subset([key[1]]))
    return list(batches.values())


def condense_classes(real: Callable[[int], ImageTensorDataset], sizes: dict[Key, int], config: ATOMConfig, *,
                     device, seed: Seeds, callbacks: Callbacks, label: str) -> dict[Key, CondensedDataset]:
    """Condense each class of ``sizes`` into ``sizes[key]`` images from ``real(task)`` (the experience's real data
    of that task) with :func:`atom_plugin.condense`, one call per (task, size), call j seeded ``seed(j)``.

    Returns:
        ``{key: one-class CondensedDataset}`` in the calls' order.
    """
    out: dict[Key, CondensedDataset] = {}
    for call, ((task, ipc), keys) in enumerate(by_task_and_size(sizes).items()):
        cd = condense(real(task), config.replace(ipc=ipc), device=device, seed=seed(call), classes=[k for _, k in keys],
                      callbacks=callbacks(f"{label}: condense {len(keys)} classes x {ipc}"), compile=False)
        out.update({key: cd.subset([key[1]]) for key in keys})
    return out


def widen(cd: CondensedDataset, classes: list[str]) -> CondensedDataset:
    """``cd`` with the class list ``classes`` (more slots; images and labels unchanged)."""
    return CondensedDataset(cd.stored_images, cd.stored_labels, classes, cd.mean, cd.std, name=cd.name,
                            factor=cd.factor, dsa_strategy=cd.dsa_strategy, zca=cd.zca, method=cd.method,
                            config=cd.config, provenance=cd.provenance, check_finite=False)
