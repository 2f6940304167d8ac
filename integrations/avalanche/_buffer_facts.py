"""What an :class:`.buffer.ATOMBuffer` holds -- stored images and decoded samples per group, factors, condensation
time, the whole memory as one set -- and the replay guard built on those counts (:meth:`BufferFacts.check_replay`).

:class:`BufferFacts` is a mixin of ``ATOMBuffer`` (read-only views of its ``buffer_groups``, ``history`` and
``_buffer``); the storage policy itself (updates, shares, re-condensation) stays in :mod:`.buffer`.
"""
from __future__ import annotations

import warnings

from atom_plugin import CondensedDataset, merge_condensed
from atom_plugin.errors import ConfigError

from .shares import Key


class BufferFacts:
    """Mixin of :class:`.buffer.ATOMBuffer`: the memory's accounting and the replay guard (module docstring)."""

    @property
    def condensed(self) -> dict[Key, CondensedDataset]:
        """``{(task, class): CondensedDataset}`` in arrival order (a view of the groups)."""
        return {k: g.condensed for k, g in self.buffer_groups.items()}

    def images_per_key(self) -> dict[Key, int]:
        """``{(task, class): stored images held}`` in arrival order (the memory's accounting unit)."""
        return {k: g.max_size for k, g in self.buffer_groups.items()}

    def decoded_per_key(self) -> dict[Key, int]:
        """``{(task, class): decoded training samples}`` (stored images x factor²) in arrival order."""
        return {k: len(g.buffer) for k, g in self.buffer_groups.items()}

    def factors(self) -> dict[Key, int]:
        """``{(task, class): multi-formation factor}`` in arrival order."""
        return {k: g.factor for k, g in self.buffer_groups.items()}

    def images_per_class(self, decoded: bool = False) -> dict[int, int]:
        """``{class: stored images held}`` (``decoded=True``: decoded samples) summed over task labels."""
        out: dict[int, int] = {}
        for (_, k), n in (self.decoded_per_key() if decoded else self.images_per_key()).items():
            out[k] = out.get(k, 0) + n
        return out

    @property
    def stored_size(self) -> int:
        """Stored images held (what ``max_size`` bounds)."""
        return sum(self.images_per_key().values())

    @property
    def decoded_size(self) -> int:
        """Decoded training samples held (``len(buffer)``)."""
        return len(self._buffer)

    @property
    def condense_seconds(self) -> float:
        """Total condensation wall time so far (s), re-condensation included, reading the data excluded."""
        return float(sum(h["seconds"] for h in self.history))

    def as_condensed(self) -> CondensedDataset:
        """The whole memory as one :class:`atom_plugin.CondensedDataset` (e.g. to ``save`` it).

        Raises:
            ConfigError: the memory is empty, one class is stored under two task labels, or the groups have
                different factors (then save ``buffer.condensed``'s sets one by one).
        """
        if not self.buffer_groups:
            raise ConfigError("the memory is empty: no experience has been condensed yet")
        return merge_condensed(list(self.condensed.values()))

    def check_replay(self, strategy, *, strict: bool = False) -> None:
        """Say, in one line, when the strategy's memory minibatch (``strategy.batch_size_mem``: ``ER_ACE``, ``DER``)
        exceeds what this memory can serve: those strategies replay only when ``len(buffer) >= batch_size_mem``
        (their loader drops the last partial minibatch), so replay would be off without a word. ``len(buffer)``
        counts *decoded* samples (a factor-2 memory of 100 stored images has 400), so a memory minibatch between
        the stored and the decoded count replays here but not with a real-sample memory of the same storage: an
        unfair comparison, also reported. Called after every update; strategies without ``batch_size_mem``
        (``ReplayPlugin`` users, GDumb) are not checked.

        Args:
            strategy: the strategy (its ``batch_size_mem``, if any, is read).
            strict: raise instead of warning.

        Raises:
            ConfigError: ``strict`` and the memory minibatch exceeds the decoded or the stored sample count.
        """
        bsm = getattr(strategy, "batch_size_mem", None)
        if not isinstance(bsm, int) or not self.buffer_groups:
            return
        msg = None
        if bsm > self.decoded_size:
            msg = (f"batch_size_mem={bsm} exceeds the memory's {self.decoded_size} decoded samples: the strategy will "
                   f"not replay; use batch_size_mem <= {self.decoded_size}")
        elif bsm > self.stored_size:
            msg = (f"batch_size_mem={bsm} exceeds the memory's {self.stored_size} stored images: a real-sample memory "
                   f"of the same storage would not replay (unfair comparison); use batch_size_mem <= "
                   f"{self.stored_size}")
        if msg is not None and strict:
            raise ConfigError(msg)
        if msg is not None:
            warnings.warn(msg, stacklevel=2)
