"""``ATOMReplayPlugin``: Avalanche's experience replay with an ATOM-condensed memory (:class:`ATOMBuffer`).

    from avalanche.training import Naive
    from atom_plugin.integrations.avalanche import ATOMReplayPlugin

    strategy = Naive(model=model, optimizer=optimizer, plugins=[ATOMReplayPlugin(mem_size=200)], device="cuda")

Training on experience e mixes each minibatch of e's data with a minibatch of the memory (Avalanche's
``ReplayDataLoader``; the memory is empty during the first experience). *After* training on e, e's classes are
condensed into the memory on the strategy's device (and, under the budget policy, old classes are re-condensed
into their smaller shares). Condensation runs in this process only (no distributed support is declared).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ._compat import require_avalanche

require_avalanche()
from avalanche.training.plugins import ReplayPlugin  # noqa: E402

from atom_plugin import ATOMConfig, CondenseCallback  # noqa: E402

from .buffer import ATOMBuffer  # noqa: E402


class ATOMReplayPlugin(ReplayPlugin):
    """A :class:`avalanche.training.plugins.ReplayPlugin` whose storage policy is an :class:`ATOMBuffer`.

    Args:
        mem_size: total images in memory (``ATOMBuffer.max_size``; ReplayPlugin checks they are equal).
        config: condensation settings (default: ``atom`` preset, 1000 iterations per experience).
        policy: ``"budget"`` (fixed total, shares shrink by re-condensation) or ``"per_class"`` (fixed IPC).
        images_per_class: IPC of the per-class policy (default ``config.ipc``).
        batch_size, batch_size_mem, task_balanced_dataloader: as in ReplayPlugin (current-data and memory
            minibatch sizes; default: the strategy's ``train_mb_size``).
        seed: base seed of the condensation. device: where to condense (default: the strategy's device).
        progress: tqdm bar per condensation. small_class, recondense_iterations, mean, std, callbacks: see
            :class:`ATOMBuffer`.

    Attributes:
        storage_policy: the :class:`ATOMBuffer` (``.history``, ``.condense_seconds``, ``.condensed``).

    Raises:
        ConfigError: bad arguments; at the start of an experience, a memory that cannot hold the classes seen
            (checked before training, so no training time is lost); DataError: an image shape that differs
            from the memory's.
    """

    def __init__(self, mem_size: int = 200, *, config: ATOMConfig | None = None, policy: str = "budget",
                 images_per_class: int | None = None, batch_size: int | None = None,
                 batch_size_mem: int | None = None, task_balanced_dataloader: bool = False, seed: int = 0,
                 device: str | torch.device | None = None, progress: bool = True, small_class: str = "cap",
                 recondense_iterations: int | None = None, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, callbacks: Sequence[CondenseCallback] = ()):
        buffer = ATOMBuffer(mem_size, config=config, policy=policy, images_per_class=images_per_class, seed=seed,
                            device=device, progress=progress, small_class=small_class,
                            recondense_iterations=recondense_iterations, mean=mean, std=std, callbacks=callbacks)
        super().__init__(mem_size=mem_size, batch_size=batch_size, batch_size_mem=batch_size_mem,
                         task_balanced_dataloader=task_balanced_dataloader, storage_policy=buffer)

    @property
    def condense_seconds(self) -> float:
        """Total condensation wall time so far (s)."""
        return self.storage_policy.condense_seconds

    def before_training_exp(self, strategy, num_workers: int = 0, shuffle: bool = True, drop_last: bool = False,
                            **kwargs):
        """Check the experience against the memory (shape, capacity), then build the replay loader."""
        self.storage_policy.check_experience(strategy.experience)
        super().before_training_exp(strategy, num_workers=num_workers, shuffle=shuffle, drop_last=drop_last,
                                    **kwargs)

    def after_training_exp(self, strategy, **kwargs):
        """Condense the experience just trained on into the memory."""
        self.storage_policy.post_adapt(strategy, strategy.experience)


__all__ = ["ATOMReplayPlugin"]
