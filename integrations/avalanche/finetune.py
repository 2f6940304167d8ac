"""``BalancedFineTunePlugin``: EEIL's balanced fine-tuning on the memory (Castro et al., ECCV 2018, Sec. 3.3).

After each experience *and after the memory update*, the model trains ``epochs`` epochs on the memory alone (a
class-balanced set: every memory kind here is balanced over classes or experiences) at a lower learning rate, with
optional DSA on each minibatch (the core's :func:`atom_plugin.dsa.augment_batch`, Zhao & Bilen ICML 2021). It
removes the bias toward the current classes that training on an experience leaves, so that what the memory holds
shows in the accuracy.

    from avalanche.training import ER_ACE
    from atom_plugin.integrations.avalanche import ATOMBuffer, BalancedFineTunePlugin, use_atom_memory

    strategy = ER_ACE(model=model, optimizer=optimizer, mem_size=100, batch_size_mem=64,
                      plugins=[BalancedFineTunePlugin(epochs=30, lr=0.005)])
    use_atom_memory(strategy, ATOMBuffer(100))

Where the memory is updated decides when the memory is complete: ``ER_ACE`` updates before training (the memory
already holds the experience's classes after it), ``DER`` in its own ``_after_training_exp`` before the plugins,
``ReplayPlugin``/``ATOMReplayPlugin`` in their ``after_training_exp`` -- list this plugin *after* them in
``plugins=[...]`` (it checks, and says so in one line otherwise). It works with every storage policy: the memory
is the strategy's ``storage_policy`` or the first plugin's that has one, or the one given.
"""
from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader

from ._compat import find_normalize, require_avalanche

require_avalanche()
from avalanche.training.plugins import SupervisedPlugin  # noqa: E402

from atom_plugin.dsa import augment_batch, parse_strategy  # noqa: E402
from atom_plugin.errors import ConfigError  # noqa: E402

from .experience import dsa_strategy_of  # noqa: E402


class BalancedFineTunePlugin(SupervisedPlugin):
    """E epochs on the memory alone after each experience (EEIL's balanced fine-tune; see the module doc).

    Args:
        epochs: epochs on the memory per experience (E; 0 disables the fine-tune).
        lr: SGD learning rate of the fine-tune (EEIL: a tenth of the training rate); momentum and weight decay are
            the strategy optimiser's first parameter group's (0 when it has none).
        batch_size: memory minibatch size (a last partial minibatch is kept).
        dsa: DSA on every minibatch (one op per minibatch, parameters per image).
        dsa_strategy: the ops (default: the core's for the benchmark's dataset: digits drop ``flip``).
        storage_policy: the memory to fine-tune on (default: the strategy's ``storage_policy``, else the first
            plugin's that has one).
        seed: seeds the shuffling and the DSA draws; experience e uses ``seed * 1000 + e``, so a run resumed at an
            experience boundary fine-tunes as an uninterrupted one.

    Attributes:
        history: one dict per experience: ``experience``, ``samples`` (memory items), ``steps``, ``seconds``.

    Raises:
        ConfigError: bad arguments; at the first experience, no memory found, or this plugin listed before a
            replay plugin that updates the memory in ``after_training_exp``.
    """

    def __init__(self, epochs: int = 30, lr: float = 0.005, *, batch_size: int = 64, dsa: bool = True,
                 dsa_strategy: str | None = None, storage_policy=None, seed: int = 0):
        super().__init__()
        if not isinstance(epochs, int) or epochs < 0:
            raise ConfigError(f"epochs must be a whole number >= 0, got {epochs!r}")
        if not lr > 0:
            raise ConfigError(f"lr must be > 0, got {lr!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        self.epochs, self.lr, self.batch_size, self.dsa = epochs, float(lr), batch_size, bool(dsa)
        self.dsa_ops = parse_strategy(dsa_strategy) if dsa_strategy is not None else None
        self.storage_policy, self.seed = storage_policy, int(seed)
        self.history: list[dict] = []

    def _memory(self, strategy):
        if self.storage_policy is not None:
            return self.storage_policy
        own = getattr(strategy, "storage_policy", None)
        if own is not None:
            return own
        mine = strategy.plugins.index(self) if self in strategy.plugins else len(strategy.plugins)
        for i, p in enumerate(strategy.plugins):
            policy = getattr(p, "storage_policy", None)
            if policy is not None:
                if i > mine:
                    raise ConfigError(f"list BalancedFineTunePlugin after {type(p).__name__} in plugins=[...]: "
                                      "the fine-tune must follow the memory update")
                return policy
        raise ConfigError("BalancedFineTunePlugin found no memory: the strategy has no storage_policy and no plugin "
                          "has one; pass storage_policy=")

    def before_training(self, strategy, **kwargs):
        """Find the memory once, before any training (so a misplaced plugin costs no training time)."""
        self._memory(strategy)

    def after_training_exp(self, strategy, **kwargs):
        """Fine-tune on the memory (already updated: see the module doc)."""
        exp = int(strategy.experience.current_experience)
        memory = self._memory(strategy).buffer
        if self.epochs == 0 or len(memory) == 0:
            return
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(self.seed * 1000 + exp)
        if self.dsa and self.dsa_ops is None:
            self.dsa_ops = parse_strategy(dsa_strategy_of(find_normalize(strategy.experience.dataset)[0]))
        model, device = strategy.model, strategy.device
        group = strategy.optimizer.param_groups[0] if strategy.optimizer.param_groups else {}
        opt = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=group.get("momentum", 0.0),
                              weight_decay=group.get("weight_decay", 0.0))
        loader = DataLoader(memory.train(), batch_size=self.batch_size, shuffle=True, generator=gen)
        was_training, steps = model.training, 0
        model.train()
        for _ in range(self.epochs):
            for batch in loader:
                x, y = batch[0], batch[1].to(device)
                x = (augment_batch(x, self.dsa_ops, gen) if self.dsa else x).to(device)  # DSA drawn on the CPU
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                steps += 1
        model.train(was_training)
        self.history.append(dict(experience=exp, samples=len(memory), steps=steps,
                                 seconds=round(time.perf_counter() - t0, 3)))


__all__ = ["BalancedFineTunePlugin"]
