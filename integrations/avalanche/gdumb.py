"""``CondensedGDumbPlugin``: GDumb's protocol (Prabhu et al., ECCV 2020) with an ATOM-condensed memory.

Each experience: the model is reset to a copy of its initial weights, the new experience is condensed into the
memory (*before* training, so the memory already holds the new classes), and the model is trained on the memory
only (the strategy's adapted dataset is replaced by the memory). This follows the hook structure of Avalanche
0.6's ``GDumbPlugin`` (model reset in ``before_train_dataset_adaptation``, memory update and dataset swap in
``after_train_dataset_adaptation``), with :class:`ATOMBuffer` instead of a class-balanced reservoir.

    strategy = Naive(model=model, optimizer=optimizer, train_epochs=200, device="cuda",
                     plugins=[CondensedGDumbPlugin(mem_size=200)])

The memory holds no augmentation (condensed in the eval-transformed space); condensation runs in this process.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from ._compat import require_avalanche

require_avalanche()
from avalanche.training.plugins import SupervisedPlugin  # noqa: E402

from .buffer import ATOMBuffer  # noqa: E402
from .replay import buffer_for  # noqa: E402


class CondensedGDumbPlugin(SupervisedPlugin):
    """GDumb with a condensed memory: fresh (initial) model each experience, trained on the memory only.

    Args:
        mem_size: total stored images in memory (default: ``storage_policy.max_size``, else 200).
        storage_policy: an :class:`ATOMBuffer`; or leave it out and give its arguments here (``**buffer_kwargs``:
            ``config``, ``policy``, ``images_per_class``, ``seed``, ``device``, ``progress``, ``small_class``, ...).

    Attributes:
        storage_policy: the :class:`ATOMBuffer`. init_model: the copy of the initial model (set at the first
            experience).

    Raises:
        ConfigError: bad arguments (see :func:`.replay.buffer_for`). ConfigError, DataError: as
            :meth:`ATOMBuffer.post_adapt`, before any training on the experience.
    """

    def __init__(self, mem_size: int | None = None, *, storage_policy: ATOMBuffer | None = None, **buffer_kwargs: Any):
        super().__init__()
        self.storage_policy = buffer_for(mem_size, storage_policy, buffer_kwargs)
        self.mem_size = self.storage_policy.max_size
        self.init_model: torch.nn.Module | None = None

    @property
    def condense_seconds(self) -> float:
        """Total condensation wall time so far (s)."""
        return self.storage_policy.condense_seconds

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        """Keep a copy of the model at the first experience; start every later experience from that copy."""
        if self.init_model is None:
            self.init_model = copy.deepcopy(strategy.model)
        else:
            strategy.model = copy.deepcopy(self.init_model)
        strategy.model_adaptation(self.init_model)  # dynamic heads of the kept copy follow the new classes

    def before_eval_dataset_adaptation(self, strategy, **kwargs):
        if self.init_model is not None:
            strategy.model_adaptation(self.init_model)

    def after_train_dataset_adaptation(self, strategy, **kwargs):
        """Condense the new experience into the memory, then train on the memory only."""
        self.storage_policy.post_adapt(strategy, strategy.experience)
        strategy.adapted_dataset = self.storage_policy.buffer


__all__ = ["CondensedGDumbPlugin"]
