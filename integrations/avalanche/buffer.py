"""``ATOMBuffer``: an Avalanche storage policy whose memory holds ATOM-condensed images instead of real samples.

Built on Avalanche's ``BalancedExemplarsBuffer``: one :class:`.groups.CondensedGroup` per ``(task label, class)``, in
arrival order. After an experience, :meth:`ATOMBuffer.post_adapt` reads it through its *eval* transforms, condenses
its classes with :func:`atom_plugin.condense` on the strategy's device and stores ``(x, y, task_label)`` items with
the benchmark's shape, dtype and normalisation (the replay loader collates them with the experience's collate_fn).
Memories may be factorised (multi-formation, IDC, Kim et al. ICML 2022): each group is its own condensed set whose
factor f follows the core's per-IPC table at the group's share unless ``config.factor`` fixes it
(:func:`.groups.group_factor`); a stored image decodes to f² training samples, which the replay loader and GDumb
train on. Policies ("memory" = total *stored* images, equal storage for every method): ``"budget"`` (default)
shares ``max_size`` among the classes seen (Avalanche's ``get_group_lengths``); a share never grows, and old classes
whose share shrank are *re-condensed* (:func:`atom_plugin.recondense`) into it and its factor, never truncated.
``"per_class"``: ``images_per_class`` per class, ``max_size`` a hard cap. The share rules and the bad-input rules (one-line ``ConfigError``/``DataError``, or documented warnings)
are in :mod:`.shares` and docs/avalanche.md; condensation wall time goes to :attr:`ATOMBuffer.history` and the
strategy's evaluator. Normalisation: :func:`.experience.resolve_normalization` (metadata only). Strategies that own
their memory (``ER_ACE``, ``DER``): :mod:`.strategies`; what the memory holds and the replay guard
:meth:`ATOMBuffer.check_replay`: :mod:`._buffer_facts`; the state without pickle :meth:`ATOMBuffer.state_dict`
(resuming: :mod:`.resume`) and reusing condensed updates (``cache_dir``): :mod:`._buffer_state`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ._compat import require_avalanche

require_avalanche()
from avalanche.benchmarks.utils import concat_datasets  # noqa: E402
from avalanche.evaluation.metric_results import MetricValue  # noqa: E402
from avalanche.training.storage_policy import BalancedExemplarsBuffer  # noqa: E402

from atom_plugin import ATOMConfig, CondenseCallback, ImageTensorDataset  # noqa: E402
from atom_plugin import ProgressBar  # noqa: E402
from atom_plugin.data import DEFAULT_DSA_STRATEGY  # noqa: E402
from atom_plugin.errors import ConfigError, check_choice  # noqa: E402

from ._buffer_facts import BufferFacts  # noqa: E402
from ._buffer_state import BufferState  # noqa: E402
from .experience import peek_experience, read_experience, resolve_normalization  # noqa: E402
from .groups import MEMORY_INIT, CondensedGroup, condense_classes, default_config, recondense_groups, widen  # noqa: E402
from .shares import POLICIES, SMALL_CLASS_RULES, Key, check_capacity, class_counts, plan_sizes, policy_ipc  # noqa: E402


class ATOMBuffer(BufferFacts, BufferState, BalancedExemplarsBuffer[CondensedGroup]):
    """Storage policy holding ATOM-condensed images (see the module doc for the policies and the bad-input rules).

    Args:
        max_size: total *stored* images the memory may hold (the ``mem_size`` of the plugins).
        config: condensation settings (default :func:`default_config`); its ``ipc`` is the default
            ``images_per_class`` of ``policy="per_class"`` and is ignored by ``"budget"``; its ``factor`` (and
            ``networks``) None = the preset's per-IPC table at each group's share, an int = that factor for all;
            its ``init`` None = :data:`.groups.MEMORY_INIT` (random real images) at every share.
        policy: ``"budget"`` or ``"per_class"``.
        images_per_class: the IPC of ``"per_class"`` (None for budget).
        seed: base seed (experience e, call j: ``seed * 1_000_003 + 1000 * e + j``).
        progress: a tqdm bar per call.
        device: where to condense (``"cpu"``, ``"cuda"``, ...); default: the strategy's ``.device``.
        small_class: ``"cap"`` or ``"error"`` for a class with fewer real samples than its share.
        recondense_iterations: iterations when shrinking old classes (default: ``config.iterations``).
        mean: the benchmark's normalisation means, when they cannot be read from a ``Normalize`` transform.
        std: the benchmark's normalisation standard deviations, likewise.
        norm_tolerance: largest accepted difference from the core's statistics before a warning.
        callbacks: extra :class:`atom_plugin.CondenseCallback` objects passed to every condensation call.
        loader_batch_size: minibatch size used to read an experience through its eval transforms.
        cache_dir: a folder of condensed memories to reuse (None: no cache). Condensation uses random networks, not
            the learner, so the memory after an update depends only on the data, the memory before it and the
            settings: an update whose key (:meth:`cache_key`) is there is loaded instead of condensed (its history
            entry keeps the original ``seconds`` and says ``cached: True``); a new one is saved there.

    Attributes:
        buffer_groups: ``{(task, class): CondensedGroup}`` in arrival order; ``condensed``: the same as
            ``{(task, class): CondensedDataset}``; ``buffer``: all groups' decoded samples as one Avalanche dataset.
        stored_size, decoded_size: stored images held (<= ``max_size``), decoded training samples (``len(buffer)``).
        ipc: the images per class of ``policy="per_class"`` (None under ``"budget"``).
        history: one dict per update: experience, new classes, stored images, decoded samples and factor per
            class, re-condensed classes, ``seconds`` (condensation wall time), ``read_seconds`` (reading the
            experience), ``memory_size`` (stored images), ``memory_decoded`` (decoded samples).
        normalization: ``mean``, ``std``, ``source`` ("Normalize transform", "argument" or "unknown"),
            ``dataset`` (torchvision class), ``core_dataset``, ``core_mean``, ``core_std``, ``matches_core``.
        strict_replay: after each update :meth:`check_replay` raises (True) or warns (False, the default) when the
            strategy's memory minibatch exceeds what the memory serves (:func:`.strategies.use_atom_memory` sets it).

    Raises:
        ConfigError: bad arguments (message names the argument).
    """

    def __init__(self, max_size: int = 200, *, config: ATOMConfig | None = None, policy: str = "budget",
                 images_per_class: int | None = None, seed: int = 0, device: str | torch.device | None = None,
                 progress: bool = True, small_class: str = "cap", recondense_iterations: int | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 norm_tolerance: float = 1e-3, callbacks: Sequence[CondenseCallback] = (),
                 loader_batch_size: int = 1024, cache_dir: str | Path | None = None):
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1:
            raise ConfigError(f"max_size (mem_size) must be a whole number of images >= 1, got {max_size!r}")
        self.policy = check_choice(policy, "policy", POLICIES)
        self.small_class = check_choice(small_class, "small_class", SMALL_CLASS_RULES)
        if (mean is None) != (std is None):
            raise ConfigError("give both mean and std (the benchmark's normalisation), or neither")
        super().__init__(max_size, adaptive_size=True)
        cfg = config if config is not None else default_config()
        self.config = cfg = cfg if cfg.init is not None else cfg.replace(init=MEMORY_INIT)
        cfg.resolved()  # validate now, not after the first experience's training
        self.ipc = policy_ipc(policy, images_per_class, cfg.ipc, max_size)
        if recondense_iterations is not None and recondense_iterations < 0:
            raise ConfigError(f"recondense_iterations must be >= 0, got {recondense_iterations}")
        self.recondense_iterations, self.seed = recondense_iterations, int(seed)
        self.device, self.progress = device, progress
        mean, std = (tuple(map(float, mean)), tuple(map(float, std))) if mean is not None else (None, None)
        self.user_mean, self.user_std, self.norm_tolerance = mean, std, float(norm_tolerance)
        self.callbacks, self.loader_batch_size = list(callbacks), int(loader_batch_size)
        self.history: list[dict[str, Any]] = []
        self.normalization: dict[str, Any] | None = None
        self.image_shape: tuple[int, ...] | None = None
        self.item_dtype: torch.dtype | None = None
        self.num_classes, self.dsa_strategy, self.dataset_name = 0, None, "avalanche"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.strict_replay = False  # check_replay after an update: warn (True: raise; see use_atom_memory)

    # -- facts -------------------------------------------------------------------------------------------------
    @property
    def buffer(self):
        """All groups' items as one Avalanche dataset, rebuilt after every change (Avalanche's property concatenates
        the groups on every read; the plugins read it several times per experience and GDumb trains on it)."""
        return self._buffer

    def get_group_lengths(self, num_groups: int) -> list[int]:
        """Stored images per group for ``num_groups`` groups in arrival order, before the caps of :func:`.plan_sizes`.
        Budget: Avalanche's adaptive rule (``max_size // K``, one more for the first ``max_size % K`` groups).
        Per-class: ``ipc`` each -- overridden because Avalanche's fixed rule is ``max_size // total_num_groups``
        with a group count known up front, whereas ours fixes the images per class whatever ``max_size`` is."""
        return [self.ipc] * num_groups if self.policy == "per_class" else super().get_group_lengths(num_groups)

    # -- Avalanche storage-policy API ----------------------------------------------------------------------------
    def post_adapt(self, agent_state, exp) -> None:
        """Condense the experience's classes into the memory (re-condensing old classes under the budget policy).

        Args:
            agent_state: the strategy (its ``.device`` unless ``device`` was given; its ``evaluator``, when present,
                receives the condensation-time metrics).
            exp: the experience (its ``dataset`` is read in eval mode).

        Raises:
            ConfigError, DataError: see the module doc (the memory is unchanged when they are raised).
        """
        device = self._device(agent_state)
        exp_id = int(getattr(exp, "current_experience", len(self.history)))
        t_read = time.perf_counter()
        x, y, t = self.read_experience(exp)
        read_seconds = time.perf_counter() - t_read
        counts = class_counts(y, t)
        self._grow_classes(int(y.max()) + 1)
        sizes = self._plan(counts, exp_id)
        key = self.cache_key(x, y, t, exp_id, device) if self.cache_dir is not None else None
        if key is not None and (self.cache_dir / f"{key}.safetensors").is_file():
            self._load_cached(agent_state, exp_id, key, read_seconds, device)
            self.check_replay(agent_state, strict=self.strict_replay)
            return
        t0 = time.perf_counter()
        old = recondense_groups(self.buffer_groups, {k: n for k, n in sizes.items() if k not in counts},
                                self._recondense_config(), device=device, seed=lambda j: self._seed(exp_id, j),
                                callbacks=self._callbacks, label=f"exp {exp_id}")
        new = condense_classes(lambda task: self._real_data(x[t == task], y[t == task]),
                               {k: sizes[k] for k in counts}, self.config, device=device,
                               seed=lambda j: self._seed(exp_id, len(old) + j), callbacks=self._callbacks,
                               label=f"exp {exp_id}")
        groups = {**self.buffer_groups, **{key: CondensedGroup(self, key, cd) for key, cd in new.items()}}
        self.buffer_groups = {k: groups[k] for k in sizes}  # arrival order (a returning class keeps its rank)
        self._record(agent_state, exp_id, list(counts), [k for batch in old for k in batch], t0, read_seconds, device)
        if key is not None:
            self._save_cached(key)
        self.check_replay(agent_state, strict=self.strict_replay)

    # -- size changes ---------------------------------------------------------------------------------------------
    def resize(self, strategy, new_size: int) -> None:
        """Change ``max_size`` (stored images). Budget: shares are recomputed and classes above theirs re-condensed
        into them and their factors (shares never grow back). Per-class: if the memory no longer fits, every class
        is re-condensed to ``new_size // K`` images (the new :attr:`ipc`). Unlike ``BalancedExemplarsBuffer.resize``
        (one call per group), classes that share a task, a new size and a factor are re-condensed in one call.

        Raises:
            ConfigError: ``new_size`` < 1 or smaller than the number of classes held.
        """
        k = len(self.buffer_groups)
        if not isinstance(new_size, int) or new_size < 1:
            raise ConfigError(f"new_size must be a whole number of images >= 1, got {new_size!r}")
        if k and new_size < k:
            raise ConfigError(f"a memory of {new_size} images cannot hold the {k} classes seen "
                              f"(at least one image per class); resize to >= {k}")
        self.max_size = new_size
        if not k or (self.policy == "per_class" and self.stored_size <= new_size):
            return
        if self.policy == "per_class":
            self.ipc = new_size // k
        self.shrink(strategy, self._plan({}, len(self.history)))

    def shrink(self, strategy, sizes: dict[Key, int]) -> None:
        """Re-condense each group that ``sizes`` names into that many images when it holds more, and record it in
        :attr:`history` (``experience=None``, ``resize=max_size``)."""
        device, t0, base = self._device(strategy), time.perf_counter(), 10_000 + len(self.history)
        batches = recondense_groups(self.buffer_groups, sizes, self._recondense_config(), device=device,
                                    seed=lambda j: self._seed(base, j), callbacks=self._callbacks, label="resize")
        self._record(strategy, None, [], [k for batch in batches for k in batch], t0, 0.0, device,
                     resize=self.max_size)

    def check_experience(self, exp) -> None:
        """Cheap checks of an upcoming experience before training: image shape (first sample), memory capacity.

        Raises:
            DataError: the experience is empty or its images have another shape than the memory's.
            ConfigError: the memory cannot hold the classes seen so far plus the experience's classes.
        """
        keys = peek_experience(exp, self.image_shape)
        if keys is not None:
            check_capacity(self.policy, self._order_with(keys), self.images_per_key(), self.max_size, self.ipc,
                           getattr(exp, "current_experience", "?"))

    def read_experience(self, exp) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The experience's samples through its eval transforms (:func:`read_experience`): ``x (N, C, H, W)``
        float32, ``y`` and ``task`` ``(N,)`` int64; records the image shape, dtype and normalisation on the first call.

        Raises:
            DataError: empty experience, samples that are not ``(C, H, W)`` tensors, or another image shape.
        """
        x, y, t, dtype = read_experience(exp, self.loader_batch_size, shape=self.image_shape)
        if self.image_shape is None:
            self.image_shape, self.item_dtype = tuple(x.shape[1:]), dtype
        if self.normalization is None:
            self.dataset_name, self.dsa_strategy, self.normalization = resolve_normalization(
                exp.dataset, x.shape[1], mean=self.user_mean, std=self.user_std, tolerance=self.norm_tolerance)
        return x, y, t

    # -- the steps of an update ---------------------------------------------------------------------------------
    def _plan(self, counts: dict[Key, int], exp_id) -> dict[Key, int]:
        """Stored images per group after this update (arrival order); ``counts``: real samples of the new groups."""
        order, held = self._order_with(counts), self.images_per_key()
        check_capacity(self.policy, order, held, self.max_size, self.ipc, exp_id)
        return plan_sizes(order, self.get_group_lengths(len(order)), counts, held, self.small_class, exp_id)

    def _record(self, strategy, exp_id, new: list[Key], recondensed: list[Key], t0: float, read_seconds: float,
                device, **extra) -> None:
        """After every change: rebuild :attr:`buffer`, append to :attr:`history`, publish the metrics (experiences).
        ``extra`` may give ``seconds`` (a cached update: the original condensation time)."""
        seconds = extra.pop("seconds", time.perf_counter() - t0)
        self._rebuild(strategy, list(new) + list(recondensed))
        per = {name: {f"{tk}/{k}": n for (tk, k), n in fn().items()} for name, fn in (
            ("images_per_class", self.images_per_key), ("decoded_per_class", self.decoded_per_key),
            ("factor_per_class", self.factors))}
        self.history.append(dict(
            experience=exp_id, **extra, new_classes=[list(k) for k in new], **per,
            recondensed=[list(k) for k in recondensed], seconds=seconds, read_seconds=read_seconds,
            memory_size=self.stored_size, memory_decoded=self.decoded_size, device=str(device)))
        evaluator = getattr(strategy, "evaluator", None)
        if exp_id is None or not hasattr(evaluator, "publish_metric_value"):
            return
        x = int(getattr(getattr(strategy, "clock", None), "train_iterations", 0) or 0)
        for name, value in ((f"CondenseTime_Exp/train_phase/train_stream/Exp{exp_id:03d}", seconds),
                            ("CondenseTime_Total/train_phase/train_stream", self.condense_seconds),
                            ("MemorySize/train_phase/train_stream", self.stored_size),
                            ("MemoryDecoded/train_phase/train_stream", self.decoded_size)):
            evaluator.publish_metric_value(MetricValue(self, name, value, x))

    def _rebuild(self, strategy, changed: list[Key]) -> None:
        """Rebuild :attr:`buffer` from the groups (``changed``: the groups condensed or re-condensed just now)."""
        self._buffer = concat_datasets([g.buffer for g in self.buffer_groups.values()])

    # -- small helpers ----------------------------------------------------------------------------------------------
    def _device(self, agent_state):
        dev = self.device if self.device is not None else getattr(agent_state, "device", None)
        if dev is None:
            raise ConfigError("cannot tell where to condense: the strategy has no .device and no device= was given "
                              "to the ATOM buffer/plugin; pass device='cpu' or 'cuda'")
        return dev

    def _seed(self, exp_id: int, call: int) -> int:
        return (self.seed * 1_000_003 + 1000 * int(exp_id) + call) % 2**31

    def _callbacks(self, desc: str) -> list[CondenseCallback]:
        return ([ProgressBar(desc=f"ATOM {desc}", leave=False)] if self.progress else []) + list(self.callbacks)

    def _class_names(self) -> list[str]:
        return [str(i) for i in range(self.num_classes)]

    def _grow_classes(self, n: int) -> None:
        """Make every group use ``max(n, current)`` class slots (merge_condensed needs one class list)."""
        if n > self.num_classes:
            self.num_classes = n
            for g in self.buffer_groups.values():
                g.set(widen(g.condensed, self._class_names()))

    def _real_data(self, x: torch.Tensor, y: torch.Tensor) -> ImageTensorDataset:
        return ImageTensorDataset(x, y, self._class_names(), self.normalization["mean"], self.normalization["std"],
                                  name=self.dataset_name, dsa_strategy=self.dsa_strategy or DEFAULT_DSA_STRATEGY)

    def _recondense_config(self) -> ATOMConfig:
        its = self.recondense_iterations
        return self.config if its is None else self.config.replace(iterations=its)

    def _order_with(self, new_keys) -> list[Key]:
        return list(self.buffer_groups) + [k for k in new_keys if k not in self.buffer_groups]

    def __repr__(self) -> str:
        return (f"ATOMBuffer(max_size={self.max_size}, policy={self.policy!r}, classes={len(self.buffer_groups)}, "
                f"stored={self.stored_size}, decoded={self.decoded_size})")

