"""``ATOMReplayPlugin``: Avalanche's experience replay with an ATOM-condensed memory (:class:`ATOMBuffer`).

    from avalanche.training import Naive
    from atom_plugin.integrations.avalanche import ATOMBuffer, ATOMReplayPlugin

    plugin = ATOMReplayPlugin(mem_size=200)                                  # buffer arguments, or
    plugin = ATOMReplayPlugin(storage_policy=ATOMBuffer(200, policy="per_class", images_per_class=20))
    strategy = Naive(model=model, optimizer=optimizer, plugins=[plugin], device="cuda")

Training on experience e mixes each minibatch of e's data with a minibatch of the memory (Avalanche's
``ReplayDataLoader``; the memory is empty during the first experience). *After* training on e, e's classes are
condensed into the memory on the strategy's device (and, under the budget policy, old classes are re-condensed
into their smaller shares). Condensation runs in this process only (no distributed support is declared).
"""
from __future__ import annotations

from typing import Any

from ._compat import require_avalanche

require_avalanche()
from avalanche.training.plugins import ReplayPlugin  # noqa: E402

from atom_plugin.errors import ConfigError  # noqa: E402

from .buffer import ATOMBuffer  # noqa: E402


def buffer_for(mem_size: int | None, storage_policy: ATOMBuffer | None, buffer_kwargs: dict[str, Any]) -> ATOMBuffer:
    """The plugins' storage policy: ``storage_policy`` as given, else ``ATOMBuffer(mem_size, **buffer_kwargs)``
    (``mem_size`` default 200), as Avalanche's ``ReplayPlugin(mem_size, storage_policy=...)``.

    Raises:
        ConfigError: ``storage_policy`` together with buffer arguments, not an :class:`ATOMBuffer`, or whose
            ``max_size`` differs from ``mem_size``. TypeError: an unknown buffer argument.
    """
    if storage_policy is None:
        return ATOMBuffer(200 if mem_size is None else mem_size, **buffer_kwargs)
    if buffer_kwargs:
        raise ConfigError(f"give either storage_policy= or buffer arguments ({', '.join(sorted(buffer_kwargs))}), "
                          "not both: pass them to the ATOMBuffer")
    if not isinstance(storage_policy, ATOMBuffer):
        raise ConfigError(f"storage_policy must be an ATOMBuffer, got {type(storage_policy).__name__} "
                          "(use Avalanche's own plugins for other storage policies)")
    if mem_size is not None and mem_size != storage_policy.max_size:
        raise ConfigError(f"mem_size={mem_size} differs from storage_policy.max_size={storage_policy.max_size}; "
                          "give one of them")
    return storage_policy


class ATOMReplayPlugin(ReplayPlugin):
    """A :class:`avalanche.training.plugins.ReplayPlugin` whose storage policy is an :class:`ATOMBuffer`.

    Args:
        mem_size: total stored images in memory (default: ``storage_policy.max_size``, else 200).
        batch_size: as in ReplayPlugin: the current data's minibatch size (default: the strategy's
            ``train_mb_size``).
        batch_size_mem: as in ReplayPlugin: the memory's minibatch size (default: the strategy's
            ``train_mb_size``).
        task_balanced_dataloader: as in ReplayPlugin: memory minibatches balanced over tasks.
        storage_policy: an :class:`ATOMBuffer`; or leave it out and give its arguments here (``**buffer_kwargs``:
            ``config``, ``policy``, ``images_per_class``, ``seed``, ``device``, ``progress``, ``small_class``, ...).

    Attributes:
        storage_policy: the :class:`ATOMBuffer` (``.history``, ``.condense_seconds``, ``.condensed``).

    Raises:
        ConfigError: bad arguments (see :func:`buffer_for`); at the start of an experience, a memory that cannot
            hold the classes seen (checked before training, so no training time is lost); DataError: an image
            shape that differs from the memory's.
    """

    def __init__(self, mem_size: int | None = None, *, batch_size: int | None = None,
                 batch_size_mem: int | None = None, task_balanced_dataloader: bool = False,
                 storage_policy: ATOMBuffer | None = None, **buffer_kwargs: Any):
        buffer = buffer_for(mem_size, storage_policy, buffer_kwargs)
        super().__init__(mem_size=buffer.max_size, batch_size=batch_size, batch_size_mem=batch_size_mem,
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


__all__ = ["ATOMReplayPlugin", "buffer_for"]
