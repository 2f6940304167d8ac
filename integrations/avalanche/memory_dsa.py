"""``MemoryDSAPlugin``: DSA on the memory's samples only, the same way for every replay or GDumb method.

The augmentation is the core's evaluation-time DSA (:func:`atom_plugin.dsa.augment_batch`; Zhao & Bilen, ICML
2021) applied to each memory sample as it is loaded (one op and its parameters drawn per sample, from the plugin's
own seeded generator, so the order of the data is untouched). Where the memory is:

* replay methods (Avalanche's ``ReplayPlugin``, herding, :class:`ATOMReplayPlugin`): the memory datasets of the
  ``ReplayDataLoader`` the replay plugin built in ``before_training_exp`` (the current experience's data is not
  augmented);
* GDumb methods (``memory_only=True``: Avalanche's ``GDumbPlugin``, :class:`CondensedGDumbPlugin`): the strategy's
  adapted dataset, which those plugins replace by the memory in ``after_train_dataset_adaptation``.

Put it *after* the method's plugin in ``plugins=[...]`` (Avalanche calls plugins in that order).
"""
from __future__ import annotations

import torch

from ._compat import find_normalize, require_avalanche, with_train_transform

require_avalanche()
from avalanche.benchmarks.utils.data_loader import ReplayDataLoader  # noqa: E402
from avalanche.training.plugins import SupervisedPlugin  # noqa: E402

from atom_plugin.dsa import augment_batch, parse_strategy  # noqa: E402
from atom_plugin.errors import ConfigError  # noqa: E402

from .experience import dsa_strategy_of  # noqa: E402


class MemoryDSA:
    """A per-sample transform: ``x (C, H, W)`` float -> the same shape, DSA-augmented (one op drawn per call).

    Args:
        dsa_strategy: e.g. ``"color_crop_cutout_flip_scale_rotate"`` (:func:`atom_plugin.dsa.parse_strategy`).
        seed: seed of the CPU generator that draws the ops and their parameters.

    Raises:
        ConfigError: an unknown DSA op.
    """

    def __init__(self, dsa_strategy: str, seed: int = 0):
        self.ops = parse_strategy(dsa_strategy)
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return augment_batch(x[None], self.ops, self.generator)[0]


class MemoryDSAPlugin(SupervisedPlugin):
    """DSA on memory samples (see the module doc).

    Args:
        memory_only: True for GDumb methods (the adapted dataset *is* the memory); False for replay methods.
        dsa_strategy: the ops (default: the core's strategy for the benchmark's dataset, read from the first
            experience: digits drop "flip").
        seed: seed of the augmentation's generator.

    Attributes:
        transform: the :class:`MemoryDSA` (None until the first experience when ``dsa_strategy`` is None).
        augmented: experiences whose memory was augmented.

    Raises:
        ConfigError: (replay) a replay loader whose current data is split by task (per-task minibatch sizes):
            its memory part cannot be told apart.
    """

    def __init__(self, *, memory_only: bool, dsa_strategy: str | None = None, seed: int = 0):
        super().__init__()
        self.memory_only, self.seed = bool(memory_only), int(seed)
        self.transform = MemoryDSA(dsa_strategy, seed) if dsa_strategy is not None else None
        self.augmented: list[int] = []

    def _transform(self, strategy) -> MemoryDSA:
        if self.transform is None:
            self.transform = MemoryDSA(dsa_strategy_of(find_normalize(strategy.experience.dataset)[0]), self.seed)
        return self.transform

    def after_train_dataset_adaptation(self, strategy, **kwargs):
        """GDumb methods: augment the memory, which is the whole training set."""
        if self.memory_only:
            strategy.adapted_dataset = with_train_transform(strategy.adapted_dataset, self._transform(strategy))
            self.augmented.append(strategy.experience.current_experience)

    def before_training_exp(self, strategy, **kwargs):
        """Replay methods: augment the memory datasets of the replay loader (none during the first experience)."""
        loader = strategy.dataloader
        if self.memory_only or not isinstance(loader, ReplayDataLoader):
            return
        if loader.datasets[0] is not strategy.adapted_dataset:
            raise ConfigError("MemoryDSAPlugin needs a replay loader with one current-data part (an int batch_size "
                              "in the replay plugin); per-task minibatch sizes are not supported")
        loader.datasets = loader.datasets[:1] + [with_train_transform(d, self._transform(strategy))
                                                 for d in loader.datasets[1:]]
        self.augmented.append(strategy.experience.current_experience)


__all__ = ["MemoryDSA", "MemoryDSAPlugin"]
