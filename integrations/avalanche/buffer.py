"""``ATOMBuffer``: an Avalanche storage policy whose memory holds ATOM-condensed images instead of real samples.

After an experience, :meth:`ATOMBuffer.post_adapt` reads the experience's dataset through its *eval* transforms
(deterministic: no random augmentation) into an :class:`atom_plugin.ImageTensorDataset`, condenses its classes
with :func:`atom_plugin.condense` on the strategy's device, and stores the synthetic images as ``(x, y, task_label)``
items with the benchmark's own shape, dtype and normalisation (the replay loader collates memory items with the
current experience's collate function, so they must look like the benchmark's samples).

Memory policies ("memory" always means the total number of stored images):

``policy="budget"`` (default)
    A fixed total of ``max_size`` images. With K classes seen so far, the class of arrival rank r (0-based; classes
    of one experience are ranked by (task label, class index)) owns ``max_size // K + (1 if r < max_size % K else
    0)`` images: floor plus one extra image for the first-seen classes. This share never grows as K grows, so when
    new classes arrive every old class whose share shrank is *re-condensed* into fewer images with the same loss
    (:func:`atom_plugin.recondense`: its current synthetic images play the real data, since the real data is gone)
    -- never truncated. The memory is full (``max_size`` images) after every experience, unless a class had fewer
    real samples than its share (see below).
``policy="per_class"``
    A fixed number of images per class (``images_per_class``, default ``config.ipc``); the memory grows with the
    classes, as in DM's continual-learning protocol; ``max_size`` is a hard cap (an error names the numbers when
    the classes seen no longer fit).

Source of truth: :attr:`ATOMBuffer.condensed`, one :class:`atom_plugin.CondensedDataset` per ``(task label,
class)``, in arrival order; ``buffer`` (the Avalanche dataset) is rebuilt from it after every change.

Bad input (one-line errors from :mod:`atom_plugin.errors`, or documented fallbacks; never a silent empty buffer):

* more classes than ``max_size`` images (budget), or classes that no longer fit (per_class): ``ConfigError``;
* a class with fewer real samples than its share: ``small_class="cap"`` (default) stores it with as many
  condensed images as it has real samples and warns (the unused slots stay empty: total < max_size);
  ``small_class="error"`` raises ``DataError``;
* an experience whose images have another shape than those in memory, non-tensor samples, or an empty
  experience: ``DataError``;
* no device (the strategy has no ``.device`` and none was given): ``ConfigError``;
* a class seen again in a later experience (not the case in class-incremental benchmarks): its memory is
  condensed anew from the new real data (keeping its arrival rank), with a warning.

Normalisation: read from the benchmark's ``Normalize`` transform (searched through Avalanche 0.6's transform
groups of the dataset tree) or given as ``mean``/``std``; compared with the core's statistics for that dataset
(e.g. Avalanche normalises Fashion-MNIST with 0.2860, the core with 0.2861) within ``norm_tolerance``; all of
it is recorded in :attr:`ATOMBuffer.normalization`. The condensation itself happens in whatever space the eval
transforms produce; the statistics are metadata (denormalising, provenance).

Condensation runs in one process (no Avalanche distributed support is declared); its wall time per experience
is recorded in :attr:`ATOMBuffer.history` and published to the strategy's evaluator as the metrics
``CondenseTime_Exp/train_phase/train_stream/Exp<NNN>`` (seconds), ``CondenseTime_Total/train_phase/train_stream``
and ``MemorySize/train_phase/train_stream`` (images), which Avalanche's loggers print.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Sequence

import torch

from ._compat import require_avalanche

require_avalanche()
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset  # noqa: E402
from avalanche.evaluation.metric_results import MetricValue  # noqa: E402
from avalanche.training.storage_policy import ExemplarsBuffer  # noqa: E402

from atom_plugin import (ATOMConfig, CondenseCallback, CondensedDataset, ImageTensorDataset,  # noqa: E402
                         ProgressBar, condense, merge_condensed, recondense)
from atom_plugin.data import DEFAULT_DSA_STRATEGY  # noqa: E402
from atom_plugin.errors import ConfigError, DataError  # noqa: E402

from .experience import read_experience, resolve_normalization  # noqa: E402

POLICIES = ("budget", "per_class")
SMALL_CLASS_RULES = ("cap", "error")
#: Condensation iterations per experience when no config is given (about 10 s per experience on an H100 at
#: IPC 10; 8000 as in DataDAM's table is the core default for one-off condensation).
DEFAULT_ITERATIONS = 1000

Key = tuple[int, int]  # (task label, class index)


def default_config() -> ATOMConfig:
    """The buffer's default condensation settings: the ``atom`` loss with :data:`DEFAULT_ITERATIONS`, plain images
    (factor 1) and random matching networks -- the memory counts stored images, one training sample each."""
    return ATOMConfig(preset="atom", iterations=DEFAULT_ITERATIONS, factor=1, networks="random")


class ATOMBuffer(ExemplarsBuffer):
    """Storage policy holding ATOM-condensed images (see the module doc for the policies and the bad-input rules).

    Args:
        max_size: total images the memory may hold (the ``mem_size`` of the plugins).
        config: condensation settings (:class:`atom_plugin.ATOMConfig`; default :func:`default_config`). Its
            ``ipc`` is ignored by ``policy="budget"`` (shares come from ``max_size``) and is the default
            ``images_per_class`` of ``policy="per_class"``.
        policy: ``"budget"`` or ``"per_class"``.
        images_per_class: the fixed IPC of ``policy="per_class"`` (must be None for ``"budget"``).
        seed: base seed; the condensation of experience e, call j uses seed ``seed * 1_000_003 + 1000 * e + j``.
        device: where to condense (``"cpu"``, ``"cuda"``, ...); default: the strategy's ``.device``.
        progress: show a tqdm bar (stderr) per condensation call.
        small_class: ``"cap"`` or ``"error"`` for a class with fewer real samples than its share.
        recondense_iterations: iterations when shrinking old classes (default: ``config.iterations``).
        mean, std: the benchmark's normalisation, when it cannot be read from a ``Normalize`` transform.
        norm_tolerance: largest accepted difference from the core's statistics before a warning.
        callbacks: extra :class:`atom_plugin.CondenseCallback` objects passed to every condensation call.
        loader_batch_size: minibatch size used to read an experience through its eval transforms.

    Attributes:
        ipc: the fixed images per class of ``policy="per_class"`` (None under ``"budget"``).
        condensed: ``{(task, class): CondensedDataset}`` in arrival order (images ``(n, C, H, W)`` float32).
        buffer: the Avalanche dataset of ``(x (C, H, W) benchmark dtype, y int, task_label int)`` items.
        history: one dict per update: experience, new classes, images per class, re-condensed classes,
            ``seconds`` (condensation wall time, s), ``read_seconds`` (reading the experience, s), memory size.
        normalization: ``mean``, ``std``, ``source`` ("Normalize transform", "argument" or "unknown"),
            ``dataset`` (torchvision class), ``core_dataset``, ``core_mean``, ``core_std``, ``matches_core``.

    Raises:
        ConfigError: bad arguments (message names the argument).
    """

    def __init__(self, max_size: int = 200, *, config: ATOMConfig | None = None, policy: str = "budget",
                 images_per_class: int | None = None, seed: int = 0, device: str | torch.device | None = None,
                 progress: bool = True, small_class: str = "cap", recondense_iterations: int | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 norm_tolerance: float = 1e-3, callbacks: Sequence[CondenseCallback] = (),
                 loader_batch_size: int = 1024):
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1:
            raise ConfigError(f"max_size (mem_size) must be a whole number of images >= 1, got {max_size!r}")
        if policy not in POLICIES:
            raise ConfigError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        if small_class not in SMALL_CLASS_RULES:
            raise ConfigError(f"small_class must be one of {', '.join(SMALL_CLASS_RULES)}, got {small_class!r}")
        if (mean is None) != (std is None):
            raise ConfigError("give both mean and std (the benchmark's normalisation), or neither")
        super().__init__(max_size)
        cfg = config if config is not None else default_config()
        if cfg.factor not in (None, 1):
            raise ConfigError(f"config.factor={cfg.factor}: the ATOM buffer stores plain images (factor 1) for now; "
                              "use factor=1 (factorised memories are planned)")
        cfg = cfg.replace(factor=1)  # the memory counts stored images, one training sample each
        cfg.resolved()  # validate now, not after the first experience's training
        self.config = cfg
        self.policy = policy
        if policy == "budget":
            if images_per_class is not None:
                raise ConfigError("images_per_class applies only to policy='per_class'; the budget policy "
                                  "shares max_size among the classes seen")
            self.ipc = None
        else:
            ipc = cfg.ipc if images_per_class is None else images_per_class
            if not isinstance(ipc, int) or isinstance(ipc, bool) or ipc < 1:
                raise ConfigError(f"images_per_class must be a whole number >= 1, got {ipc!r}")
            if ipc > max_size:
                raise ConfigError(f"images_per_class={ipc} exceeds max_size={max_size}: not even one class fits")
            self.ipc = ipc
        if recondense_iterations is not None and recondense_iterations < 0:
            raise ConfigError(f"recondense_iterations must be >= 0, got {recondense_iterations}")
        self.recondense_iterations = recondense_iterations
        self.seed = int(seed)
        self.device = device
        self.progress = progress
        self.small_class = small_class
        self.user_mean = tuple(float(m) for m in mean) if mean is not None else None
        self.user_std = tuple(float(s) for s in std) if std is not None else None
        self.norm_tolerance = float(norm_tolerance)
        self.callbacks = list(callbacks)
        self.loader_batch_size = int(loader_batch_size)

        self.condensed: dict[Key, CondensedDataset] = {}
        self.history: list[dict[str, Any]] = []
        self.normalization: dict[str, Any] | None = None
        self.image_shape: tuple[int, ...] | None = None
        self.item_dtype: torch.dtype | None = None
        self.num_classes = 0
        self.dsa_strategy: str | None = None
        self.dataset_name = "avalanche"

    # -- facts -------------------------------------------------------------------------------------------------
    def images_per_key(self) -> dict[Key, int]:
        """``{(task, class): images held}`` in arrival order."""
        return {k: len(cd) for k, cd in self.condensed.items()}

    def images_per_class(self) -> dict[int, int]:
        """``{class: images held}`` summed over task labels."""
        out: dict[int, int] = {}
        for (_, k), n in self.images_per_key().items():
            out[k] = out.get(k, 0) + n
        return out

    @property
    def condense_seconds(self) -> float:
        """Total condensation wall time so far (s), re-condensation included, reading the data excluded."""
        return float(sum(h["seconds"] for h in self.history))

    def as_condensed(self) -> CondensedDataset:
        """The whole memory as one :class:`atom_plugin.CondensedDataset` (e.g. to ``save`` it).

        Raises:
            ConfigError: the memory is empty, or one class is stored under two task labels.
        """
        if not self.condensed:
            raise ConfigError("the memory is empty: no experience has been condensed yet")
        return merge_condensed(list(self.condensed.values()))

    # -- Avalanche storage-policy API ----------------------------------------------------------------------------
    def post_adapt(self, agent_state, exp) -> None:
        """Condense the experience's classes into the memory (re-condensing old classes under the budget policy).

        Args:
            agent_state: the strategy (``.device`` unless ``device`` was given; its ``evaluator`` receives the
                condensation-time metrics when present).
            exp: the experience whose ``dataset`` (read with its eval transforms) is condensed.

        Raises:
            ConfigError, DataError: see the module doc.
        """
        device = self._device(agent_state)
        exp_id = int(getattr(exp, "current_experience", len(self.history)))
        t_read = time.perf_counter()
        x, y, t = self.read_experience(exp)
        read_seconds = time.perf_counter() - t_read
        if self.normalization is None:
            self._set_normalization(exp.dataset, x.shape[1])
        counts: dict[Key, int] = {}
        for key, n in zip(*torch.unique(torch.stack([t, y], 1), dim=0, return_counts=True)):
            counts[(int(key[0]), int(key[1]))] = int(n)
        counts = dict(sorted(counts.items()))
        self._grow_classes(int(y.max()) + 1)
        targets = self._plan(counts, exp_id)

        t0 = time.perf_counter()
        call = 0
        recondensed: list[Key] = []
        # 1. shrink old classes whose share went down: condense their synthetic images into fewer.
        groups: dict[tuple[int, int], list[Key]] = {}
        for key, cd in self.condensed.items():
            if key not in counts and targets[key] < len(cd):
                groups.setdefault((key[0], targets[key]), []).append(key)
        for (_, ipc), keys in groups.items():
            cfg = self.config if self.recondense_iterations is None else \
                self.config.replace(iterations=self.recondense_iterations)
            merged = merge_condensed([self.condensed[k] for k in keys])
            out = recondense(merged, ipc, cfg, device=device, seed=self._seed(exp_id, call),
                             callbacks=self._callbacks(f"exp {exp_id}: re-condense {len(keys)} classes to {ipc}"))
            call += 1
            for key in keys:
                self.condensed[key] = out.subset([key[1]])
            recondensed += keys
        # 2. condense the new classes from the experience's real data, one call per (task, IPC).
        new_groups: dict[tuple[int, int], list[Key]] = {}
        for key in counts:
            new_groups.setdefault((key[0], targets[key]), []).append(key)
        for (task, ipc), keys in new_groups.items():
            mask = t == task
            data = ImageTensorDataset(x[mask], y[mask], self._class_names(), self.normalization["mean"],
                                      self.normalization["std"], name=self.dataset_name,
                                      dsa_strategy=self.dsa_strategy or DEFAULT_DSA_STRATEGY)
            out = condense(data, self.config.replace(ipc=ipc), device=device, seed=self._seed(exp_id, call),
                           classes=[k for _, k in keys],
                           callbacks=self._callbacks(f"exp {exp_id}: condense {len(keys)} classes x {ipc}"))
            call += 1
            for key in keys:
                self.condensed.pop(key, None)  # a returning class is replaced; _reorder restores its rank
                self.condensed[key] = out.subset([key[1]])
        self._reorder(targets)
        seconds = time.perf_counter() - t0
        self._rebuild()
        rec = dict(experience=exp_id, new_classes=[list(k) for k in counts],
                   images_per_class={f"{tk}/{k}": len(cd) for (tk, k), cd in self.condensed.items()},
                   recondensed=[list(k) for k in recondensed], seconds=seconds, read_seconds=read_seconds,
                   memory_size=len(self.buffer), device=str(device))
        self.history.append(rec)
        self._publish(agent_state, exp_id, rec)

    def resize(self, strategy, new_size: int) -> None:
        """Change ``max_size``. Budget: every class's share is recomputed and classes above it are re-condensed
        (shares never grow back: old classes' real data is gone). Per-class: if the memory no longer fits, every
        class is re-condensed to ``new_size // K`` images (that becomes :attr:`ipc`).

        Raises:
            ConfigError: ``new_size`` < 1 or smaller than the number of classes held.
        """
        if not isinstance(new_size, int) or new_size < 1:
            raise ConfigError(f"new_size must be a whole number of images >= 1, got {new_size!r}")
        if self.condensed and new_size < len(self.condensed):
            raise ConfigError(f"a memory of {new_size} images cannot hold the {len(self.condensed)} classes seen "
                              f"(at least one image per class); resize to >= {len(self.condensed)}")
        self.max_size = new_size
        if not self.condensed:
            return
        if self.policy == "per_class":
            if sum(len(cd) for cd in self.condensed.values()) <= new_size:
                return
            self.ipc = new_size // len(self.condensed)
        targets = self._plan({}, len(self.history))
        device = self._device(strategy)
        groups: dict[tuple[int, int], list[Key]] = {}
        for key, cd in self.condensed.items():
            if targets[key] < len(cd):
                groups.setdefault((key[0], targets[key]), []).append(key)
        t0 = time.perf_counter()
        for call, ((_, ipc), keys) in enumerate(groups.items()):
            cfg = self.config if self.recondense_iterations is None else \
                self.config.replace(iterations=self.recondense_iterations)
            out = recondense(merge_condensed([self.condensed[k] for k in keys]), ipc, cfg, device=device,
                             seed=self._seed(10_000 + len(self.history), call),
                             callbacks=self._callbacks(f"resize: re-condense {len(keys)} classes to {ipc}"))
            for key in keys:
                self.condensed[key] = out.subset([key[1]])
        self._rebuild()
        self.history.append(dict(experience=None, resize=new_size, new_classes=[],
                                 images_per_class={f"{tk}/{k}": len(cd) for (tk, k), cd in self.condensed.items()},
                                 recondensed=[list(k) for ks in groups.values() for k in ks],
                                 seconds=time.perf_counter() - t0, read_seconds=0.0,
                                 memory_size=len(self.buffer), device=str(device)))

    # -- checks usable before training (the plugins call them so errors come before a long training) ----------------
    def check_experience(self, exp) -> None:
        """Cheap checks of an upcoming experience: image shape (first sample) and memory capacity.

        Raises:
            DataError: the experience is empty or its images have another shape than the memory's.
            ConfigError: the memory cannot hold the classes seen so far plus the experience's classes.
        """
        ds = exp.dataset.eval()
        if len(ds) == 0:
            raise DataError(f"experience {getattr(exp, 'current_experience', '?')} has no samples; nothing to condense")
        first = ds[0][0]
        if isinstance(first, torch.Tensor) and self.image_shape is not None and tuple(first.shape) != self.image_shape:
            raise DataError(self._shape_message(exp, tuple(first.shape)))
        tasks = getattr(ds, "targets_task_labels", None)
        targets = getattr(ds, "targets", None)
        if targets is None:
            return
        tl = list(tasks) if tasks is not None else [0] * len(ds)
        keys = sorted({(int(a), int(b)) for a, b in zip(tl, targets)})
        self._capacity_check(self._order_with(keys), getattr(exp, "current_experience", "?"))

    # -- internals ------------------------------------------------------------------------------------------------
    def read_experience(self, exp) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The experience's samples through its eval transforms (:func:`read_experience`); records the image shape
        and dtype on the first call.

        Raises:
            DataError: empty experience, samples that are not ``(C, H, W)`` tensors, or another image shape.
        """
        x, y, t, dtype = read_experience(exp, self.loader_batch_size)
        shape = tuple(x.shape[1:])
        if self.image_shape is None:
            self.image_shape, self.item_dtype = shape, dtype
        elif shape != self.image_shape:
            raise DataError(self._shape_message(exp, shape))
        return x, y, t

    def _shape_message(self, exp, shape) -> str:
        return (f"experience {getattr(exp, 'current_experience', '?')} has images of shape {shape} but the memory "
                f"holds {self.image_shape}; one ATOMBuffer serves one image format (use the same transforms for "
                "every experience)")

    def _device(self, agent_state):
        dev = self.device if self.device is not None else getattr(agent_state, "device", None)
        if dev is None:
            raise ConfigError("cannot tell where to condense: the strategy has no .device and no device= was given "
                              "to the ATOM buffer/plugin; pass device='cpu' or 'cuda'")
        return dev

    def _seed(self, exp_id: int, call: int) -> int:
        return (self.seed * 1_000_003 + 1000 * int(exp_id) + call) % 2**31

    def _callbacks(self, desc: str) -> list[CondenseCallback]:
        cbs = list(self.callbacks)
        if self.progress:
            cbs.insert(0, ProgressBar(desc=f"ATOM {desc}", leave=False))
        return cbs

    def _class_names(self) -> list[str]:
        return [str(i) for i in range(self.num_classes)]

    def _grow_classes(self, n: int) -> None:
        """Make every stored set use ``max(n, current)`` class slots (merge_condensed needs one class list)."""
        if n <= self.num_classes:
            return
        self.num_classes = n
        names = self._class_names()
        for key, cd in self.condensed.items():
            self.condensed[key] = CondensedDataset(
                cd.stored_images, cd.stored_labels, names, cd.mean, cd.std, name=cd.name, factor=cd.factor,
                dsa_strategy=cd.dsa_strategy, zca=cd.zca, method=cd.method, config=cd.config,
                provenance=cd.provenance, check_finite=False)

    def _order_with(self, new_keys) -> list[Key]:
        return list(self.condensed) + [k for k in new_keys if k not in self.condensed]

    def _capacity_check(self, order: list[Key], exp_id) -> None:
        k = len(order)
        if self.policy == "budget" and k > self.max_size:
            raise ConfigError(f"a memory of {self.max_size} images cannot hold the {k} classes seen by experience "
                              f"{exp_id} (at least one image per class); raise mem_size to >= {k}")
        if self.policy == "per_class":
            held = {key: len(cd) for key, cd in self.condensed.items()}
            total = sum(min(held.get(key, self.ipc), self.ipc) for key in order)
            if total > self.max_size:
                raise ConfigError(f"policy='per_class' with {self.ipc} images per class needs {total} "
                                  f"images for the {k} classes seen by experience {exp_id}, more than "
                                  f"max_size={self.max_size}; raise mem_size or lower images_per_class")

    def _plan(self, counts: dict[Key, int], exp_id) -> dict[Key, int]:
        """Images per (task, class) after this update; ``counts`` = real samples of the experience's classes."""
        order = self._order_with(counts)
        self._capacity_check(order, exp_id)
        returning = [key for key in counts if key in self.condensed]
        if returning:
            warnings.warn(f"experience {exp_id} brings classes {returning} that are already in memory; they are "
                          "condensed anew from the new real data (their old synthetic images are dropped)",
                          stacklevel=3)
        targets: dict[Key, int] = {}
        for rank, key in enumerate(order):
            if self.policy == "budget":
                share = self.max_size // len(order) + (1 if rank < self.max_size % len(order) else 0)
            else:
                share = self.ipc
            if key in counts:
                n = counts[key]
                if n < share:
                    msg = (f"class {key[1]} (task {key[0]}) of experience {exp_id} has only {n} real samples, "
                           f"fewer than its memory share of {share} images")
                    if self.small_class == "error":
                        raise DataError(msg + "; pass small_class='cap' to store it with fewer images")
                    warnings.warn(msg + f"; it is stored with {n} condensed images (small_class='cap')", stacklevel=3)
                targets[key] = min(share, n)
            else:
                targets[key] = min(share, len(self.condensed[key]))  # shares never grow: real data is gone
        return targets

    def _reorder(self, targets: dict[Key, int]) -> None:
        """Keep ``condensed`` in arrival order (a returning class keeps its rank)."""
        self.condensed = {key: self.condensed[key] for key in targets}

    def _rebuild(self) -> None:
        """Rebuild ``self.buffer`` (an Avalanche dataset of ``(x, y, task)`` items) from ``self.condensed``."""
        if not self.condensed:
            raise DataError("internal: the ATOM memory would be empty after an update")
        xs, ys, ts = [], [], []
        for (task, _), cd in self.condensed.items():
            xs.append(cd.images.to(self.item_dtype or torch.float32))
            ys.append(cd.labels)
            ts += [task] * len(cd)
        self.buffer = _make_taskaware_tensor_classification_dataset(torch.cat(xs), torch.cat(ys), task_labels=ts)

    def _set_normalization(self, dataset, channels: int) -> None:
        self.dataset_name, self.dsa_strategy, self.normalization = resolve_normalization(
            dataset, channels, mean=self.user_mean, std=self.user_std, tolerance=self.norm_tolerance)

    def _publish(self, strategy, exp_id: int, rec: dict) -> None:
        evaluator = getattr(strategy, "evaluator", None)
        if evaluator is None or not hasattr(evaluator, "publish_metric_value"):
            return
        x = int(getattr(getattr(strategy, "clock", None), "train_iterations", 0) or 0)
        for name, value in ((f"CondenseTime_Exp/train_phase/train_stream/Exp{exp_id:03d}", rec["seconds"]),
                            ("CondenseTime_Total/train_phase/train_stream", self.condense_seconds),
                            ("MemorySize/train_phase/train_stream", rec["memory_size"])):
            evaluator.publish_metric_value(MetricValue(self, name, value, x))

    def __repr__(self) -> str:
        return (f"ATOMBuffer(max_size={self.max_size}, policy={self.policy!r}, classes={len(self.condensed)}, "
                f"images={sum(len(cd) for cd in self.condensed.values())})")
