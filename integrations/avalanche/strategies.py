"""An :class:`ATOMBuffer` inside Avalanche's strategies that own their memory: ``ER_ACE`` and ``DER``.

The one documented way: build the strategy, then hand it the memory with :func:`use_atom_memory` (it assigns the
strategy's ``storage_policy`` after checking the strategy kind, the memory size and the memory minibatch)::

    from avalanche.training import ER_ACE
    from atom_plugin.integrations.avalanche import ATOMBuffer, use_atom_memory

    strategy = ER_ACE(model=model, optimizer=optimizer, mem_size=100, batch_size_mem=64, device="cuda")
    use_atom_memory(strategy, ATOMBuffer(100, seed=0))

``ER_ACE`` (Caccia et al., ICLR 2022) updates its memory *before* training on an experience (so the memory already
holds the new classes) and mixes a memory minibatch of ``batch_size_mem`` decoded samples into each step. ``DER``
(Buzzega et al., NeurIPS 2020) updates it *after* the experience and unpacks ``(x, y, t, logits)``: it needs
:class:`ATOMLogitsBuffer` (and :class:`HerdingLogitsBuffer` is the herding counterpart; Avalanche's own
``ClassBalancedBufferWithLogits`` is the random one). Both strategies replay only when ``len(buffer) >=
batch_size_mem``; :meth:`ATOMBuffer.check_replay` says so after every update.
"""
from __future__ import annotations

import types
from typing import Any

import torch

from ._compat import require_avalanche

require_avalanche()
from avalanche.benchmarks.utils import make_avalanche_dataset  # noqa: E402
from avalanche.benchmarks.utils.data_attribute import TensorDataAttribute  # noqa: E402
from avalanche.benchmarks.utils.flat_data import FlatData  # noqa: E402
from avalanche.training.storage_policy import HerdingSelectionStrategy, ParametricBuffer  # noqa: E402
from avalanche.training.supervised.der import DER, compute_dataset_logits  # noqa: E402
from avalanche.training.supervised.er_ace import ER_ACE  # noqa: E402

from atom_plugin.errors import ConfigError  # noqa: E402

from .buffer import ATOMBuffer  # noqa: E402
from .shares import Key  # noqa: E402

def with_logits(dataset, logits: torch.Tensor):
    """``dataset`` (an Avalanche dataset of ``(x, y, t)`` items) with a ``logits`` data attribute, so its items
    read ``(x, y, t, logits)`` -- the form of DER's memory (as Avalanche's ``ClassBalancedBufferWithLogits``).

    Args:
        dataset: an Avalanche classification dataset of N items.
        logits: ``(N, num_classes)`` float32, row i the logits of item i.
    """
    attr = TensorDataAttribute(FlatData([list(logits)], discard_elements_not_in_indices=True), name="logits",
                               use_in_getitem=True)
    return make_avalanche_dataset(dataset, data_attributes=[attr])


def _logits(strategy, dataset) -> torch.Tensor:
    model = getattr(strategy, "model", None)
    if model is None:
        raise ConfigError("a logits memory needs the strategy's model (DER) to compute the stored samples' logits; "
                          "pass the strategy to post_adapt")
    rows = compute_dataset_logits(dataset, model, int(getattr(strategy, "train_mb_size", 256) or 256),
                                  strategy.device)
    return torch.stack(rows) if rows else torch.zeros(0)


class ATOMLogitsBuffer(ATOMBuffer):
    """An :class:`ATOMBuffer` whose items carry DER's logits: ``(x, y, t, logits)``.

    The logits of a stored sample are the model's (eval mode, on the decoded sample) *when it enters the memory*: at
    the update after the experience that brought its class. A class that is re-condensed (its share shrank) enters
    anew: its new decoded samples get the current model's logits at re-condensation (DER keeps a real sample's first
    logits; a re-condensed sample is a new sample). Same arguments as :class:`ATOMBuffer`.

    Attributes:
        logits: ``{(task, class): (n·f², num_classes) float32}`` per group, in arrival order.

    Raises:
        ConfigError: as :class:`ATOMBuffer`; at an update, a strategy without ``model``.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.logits: dict[Key, torch.Tensor] = {}

    def _rebuild(self, strategy, changed: list[Key]) -> None:
        for key, g in self.buffer_groups.items():
            g.set(g.condensed)  # the plain (x, y, t) items again
            if key in changed or key not in self.logits:
                self.logits[key] = _logits(strategy, g.buffer.eval())
            g.buffer = with_logits(g.buffer, self.logits[key])
        self.logits = {k: self.logits[k] for k in self.buffer_groups}
        super()._rebuild(strategy, changed)

    def state_dict(self) -> dict[str, Any]:
        """:meth:`ATOMBuffer.state_dict` plus the logits (tensors ``logits.i``, ``(n·f², K)`` float32)."""
        state = super().state_dict()
        for i, key in enumerate(self.buffer_groups):
            state["tensors"][f"logits.{i}"] = self.logits[key]
        return state

    def load_state_dict(self, state: dict[str, Any], strategy=None) -> None:
        """:meth:`ATOMBuffer.load_state_dict`, the logits read from ``state`` (none recomputed).

        Args:
            state: :meth:`state_dict`'s output.
            strategy: unused (the logits are in ``state``).
        """
        self.logits = {tuple(g["key"]): state["tensors"][f"logits.{i}"]
                       for i, g in enumerate(state["meta"]["groups"])}
        super().load_state_dict(state, strategy)


class HerdingLogitsBuffer(ParametricBuffer):
    """DER's herding counterpart: Avalanche's ``ParametricBuffer(max_size, groupby="class",
    HerdingSelectionStrategy(model, layer_name))`` whose items carry the logits of the model when the experience
    ends (computed on the eval-transformed samples, as ``ClassBalancedBufferWithLogits`` does).

    Args:
        max_size: real samples in memory.
        model: the learner (herding's features are its ``layer_name`` output).
        layer_name: e.g. ``"flatten"`` (the ConvNet's embedding).
    """

    def __init__(self, max_size: int, model: torch.nn.Module, layer_name: str):
        super().__init__(max_size, groupby="class", selection_strategy=HerdingSelectionStrategy(model, layer_name))

    def post_adapt(self, agent, exp):
        """Attach the model's logits to the experience's samples, then select by herding per class."""
        data = with_logits(exp.dataset, _logits(agent, exp.dataset.eval()))
        super().post_adapt(agent, types.SimpleNamespace(dataset=data, current_experience=exp.current_experience))


def use_atom_memory(strategy, buffer: ATOMBuffer, *, strict: bool = False):
    """Put ``buffer`` in ``strategy`` as its memory (``strategy.storage_policy = buffer``); returns the strategy.

    Args:
        strategy: an Avalanche ``ER_ACE`` or ``DER`` (strategies that own their memory; for ``Naive`` + replay use
            :class:`ATOMReplayPlugin`, for GDumb :class:`CondensedGDumbPlugin`).
        buffer: an :class:`ATOMBuffer` (for ``DER``: an :class:`ATOMLogitsBuffer`); its ``max_size`` must equal the
            strategy's ``mem_size``.
        strict: raise (instead of warning) when the strategy's ``batch_size_mem`` exceeds what the memory serves
            (:meth:`ATOMBuffer.check_replay`, checked after every update).

    Raises:
        ConfigError: another strategy kind, a buffer of the wrong kind, or a size mismatch.
    """
    if isinstance(strategy, DER):
        need = ATOMLogitsBuffer
    elif isinstance(strategy, ER_ACE):
        need = ATOMBuffer
    else:
        raise ConfigError(f"use_atom_memory takes an ER_ACE or DER strategy, got {type(strategy).__name__}; use "
                          "ATOMReplayPlugin (replay) or CondensedGDumbPlugin (GDumb) in plugins=[...] instead")
    if not isinstance(buffer, need):
        raise ConfigError(f"{type(strategy).__name__} needs a {need.__name__} (got {type(buffer).__name__})"
                          + ("; DER reads (x, y, t, logits) items" if need is ATOMLogitsBuffer else ""))
    mem = getattr(strategy, "mem_size", buffer.max_size)
    if mem != buffer.max_size:
        raise ConfigError(f"the strategy's mem_size={mem} differs from the buffer's max_size={buffer.max_size}; "
                          "build both with the same memory size")
    buffer.strict_replay = bool(strict)
    strategy.storage_policy = buffer
    return strategy


__all__ = ["ATOMLogitsBuffer", "HerdingLogitsBuffer", "use_atom_memory", "with_logits"]
