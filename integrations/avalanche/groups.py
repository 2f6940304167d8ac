"""The groups of an :class:`ATOMBuffer` -- one :class:`CondensedGroup` per ``(task label, class)``, each its own
condensed set (possibly factorised: multi-formation, IDC, Kim et al. ICML 2022) -- and the two ways to fill them:
:func:`condense_classes` (from an experience's real data) and :func:`recondense_groups` (into fewer stored images,
from their own decoded samples). A group's factor is :func:`group_factor`: the config's ``factor``, or, when it is
None, the core's per-IPC table applied to the group's stored-image share. Classes that share a task, a size and a
factor are condensed together, in one call (:func:`.shares.by_task_size_factor`)."""
from __future__ import annotations

from typing import Callable

import torch

from ._compat import require_avalanche, tensor_dataset

require_avalanche()
from avalanche.training.storage_policy import ExemplarsBuffer  # noqa: E402

from atom_plugin import (ATOMConfig, CondenseCallback, CondensedDataset, ImageTensorDataset,  # noqa: E402
                         condense, merge_condensed, recondense)

from .shares import Key, by_task_size_factor  # noqa: E402

#: Condensation iterations per experience when no config is given (about 10 s per experience on an H100 at IPC 10).
DEFAULT_ITERATIONS = 1000
#: The start of a memory's new classes when its config leaves ``init`` unset: random real images of the class, at
#: every share. The core's per-IPC table starts above IPC 10 from the herding coreset, chosen on static
#: Fashion-MNIST; in a memory that start would train a feature network at every update, and it is not measured in
#: continual learning (docs/avalanche.md's memories all start from real images). Set ``config.init`` to choose.
MEMORY_INIT = "real"


def default_config() -> ATOMConfig:
    """The buffer's default condensation settings: the core's default preset (``atom``) with
    :data:`DEFAULT_ITERATIONS`; ``factor`` and ``networks`` left to the preset's per-IPC table, applied to each
    group's stored-image share (:func:`group_factor`); the start :data:`MEMORY_INIT`."""
    return ATOMConfig(preset="atom", iterations=DEFAULT_ITERATIONS, init=MEMORY_INIT)


def group_factor(config: ATOMConfig, stored: int) -> int:
    """The multi-formation factor of a group of ``stored`` images: ``config.factor`` when set, else the preset's
    per-IPC choice at ``ipc = stored`` (:meth:`atom_plugin.ATOMConfig.resolved`, the core's one rule).

    Raises:
        ConfigError: an invalid config.
    """
    return config.replace(ipc=stored).resolved().factor


Seeds = Callable[[int], int]  #: call index within an update -> seed
Callbacks = Callable[[str], "list[CondenseCallback]"]  #: progress description -> callbacks of one call


class CondensedGroup(ExemplarsBuffer):
    """One group of an :class:`ATOMBuffer`: the condensed images of one ``(task, class)``.

    Attributes:
        owner: the :class:`ATOMBuffer` (its item dtype; its :meth:`ATOMBuffer.shrink` re-condenses and records).
        key: ``(task label, class)``. condensed: its :class:`atom_plugin.CondensedDataset` (``n`` stored images
            ``(n, C, H, W)`` float32 of factor f, decoded to ``n * f²`` samples).
        buffer: the ``n * f²`` decoded samples as Avalanche items ``(x (C, H, W) in the owner's item dtype, y int,
            task int)`` -- what the replay loader and GDumb train on.
        max_size: ``n``, the *stored* images held (the memory's accounting unit). factor: f.
    """

    def __init__(self, owner, key: Key, condensed: CondensedDataset):
        super().__init__(len(condensed.stored_images))
        self.owner, self.key = owner, key
        self.set(condensed)

    def set(self, condensed: CondensedDataset) -> None:
        """Hold ``condensed`` (this group's class only) from now on."""
        self.condensed, self.max_size, self.factor = condensed, len(condensed.stored_images), condensed.factor
        self.buffer = tensor_dataset(condensed.images.to(self.owner.item_dtype or torch.float32), condensed.labels,
                                     [self.key[0]] * len(condensed))

    def resize(self, strategy, new_size: int) -> None:
        """Re-condense the group into ``new_size`` stored images (and that share's factor) when it holds more (a
        group never grows: its real data is gone); recorded in the owner's history (:meth:`ATOMBuffer.shrink`)."""
        self.owner.shrink(strategy, {self.key: new_size})


def recondense_groups(groups: dict[Key, CondensedGroup], sizes: dict[Key, int], config: ATOMConfig, *, device,
                      seed: Seeds, callbacks: Callbacks, label: str) -> list[list[Key]]:
    """The one re-condensation loop: every group holding more than ``sizes[key]`` stored images is re-condensed
    into that many, at :func:`group_factor` of the new size (:func:`atom_plugin.recondense`: its decoded samples
    play the real data), one call per (task, size, new factor, old factor), call j seeded ``seed(j)``.

    Returns:
        the batches of keys re-condensed, one per call.
    """
    shrink = {k: n for k, n in sizes.items() if n < groups[k].max_size}
    batches = by_task_size_factor(shrink, lambda k, n: (group_factor(config, n), groups[k].factor))
    for call, ((_, ipc, (f, _)), keys) in enumerate(batches.items()):
        out = recondense(merge_condensed([groups[k].condensed for k in keys]), ipc, config, device=device,
                         seed=seed(call), callbacks=callbacks(f"{label}: re-condense {len(keys)} classes to {ipc}"
                                                              + (f" (factor {f})" if f > 1 else "")),
                         compile=False)  # shapes change every call: compiling would only add compile time
        for key in keys:
            groups[key].set(out.subset([key[1]]))
    return list(batches.values())


def condense_classes(real: Callable[[int], ImageTensorDataset], sizes: dict[Key, int], config: ATOMConfig, *,
                     device, seed: Seeds, callbacks: Callbacks, label: str) -> dict[Key, CondensedDataset]:
    """Condense each class of ``sizes`` into ``sizes[key]`` stored images at :func:`group_factor` of that size from
    ``real(task)`` (the experience's real data of that task) with :func:`atom_plugin.condense`, one call per
    (task, size, factor), call j seeded ``seed(j)``.

    Returns:
        ``{key: one-class CondensedDataset}`` in the calls' order.
    """
    out: dict[Key, CondensedDataset] = {}
    for call, ((task, ipc, f), keys) in enumerate(by_task_size_factor(sizes, lambda k, n: group_factor(config, n))
                                                  .items()):
        cd = condense(real(task), config.replace(ipc=ipc), device=device, seed=seed(call), classes=[k for _, k in keys],
                      callbacks=callbacks(f"{label}: condense {len(keys)} classes x {ipc}"
                                          + (f" (factor {f})" if f > 1 else "")), compile=False)
        out.update({key: cd.subset([key[1]]) for key in keys})
    return out


def widen(cd: CondensedDataset, classes: list[str]) -> CondensedDataset:
    """``cd`` with the class list ``classes`` (more slots; images and labels unchanged)."""
    return CondensedDataset(cd.stored_images, cd.stored_labels, classes, cd.mean, cd.std, name=cd.name,
                            factor=cd.factor, dsa_strategy=cd.dsa_strategy, zca=cd.zca, method=cd.method,
                            config=cd.config, provenance=cd.provenance, check_finite=False)
