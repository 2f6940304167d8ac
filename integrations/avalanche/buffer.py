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

import math
import time
import warnings
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from ._compat import require_avalanche

require_avalanche()
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset  # noqa: E402
from avalanche.evaluation.metric_results import MetricValue  # noqa: E402
from avalanche.training.storage_policy import ExemplarsBuffer  # noqa: E402

from atom_plugin import (ATOMConfig, CondenseCallback, CondensedDataset, ImageTensorDataset,  # noqa: E402
                         ProgressBar, condense, merge_condensed, recondense)
from atom_plugin.data import DATASET_STATS, DEFAULT_DSA_STRATEGY, DIGIT_DSA_STRATEGY  # noqa: E402
from atom_plugin.errors import ConfigError, DataError  # noqa: E402

POLICIES = ("budget", "per_class")
SMALL_CLASS_RULES = ("cap", "error")
#: Condensation iterations per experience when no config is given (about 10 s per experience on an H100 at
#: IPC 10; 8000 as in DataDAM's table is the core default for one-off condensation).
DEFAULT_ITERATIONS = 1000

# The core's normalisation statistics per torchvision dataset class (as in atom_plugin/data/_idx.py, _cifar.py,
# _svhn.py): (core dataset name, mean, std).
# Avalanche's dataset class names -> the core's dataset names (statistics come from the core's table).
_AVALANCHE_NAMES = {"FashionMNIST": "fashion-mnist", "MNIST": "mnist", "CIFAR10": "cifar10", "CIFAR100": "cifar100",
                    "SVHN": "svhn"}
CORE_STATS: dict[str, tuple[str, tuple[float, ...], tuple[float, ...]]] = {
    leaf: (name, DATASET_STATS[name].mean, DATASET_STATS[name].std) for leaf, name in _AVALANCHE_NAMES.items()
}
_DIGIT_SETS = ("MNIST", "SVHN")  # DSA drops "flip" for digits (a mirrored 2 is not a 2)

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
        """The experience's samples through its eval transforms: ``(x (N, C, H, W) float32, y (N,) int64,
        task (N,) int64)``; records the image shape and dtype on the first call.

        Raises:
            DataError: empty experience, samples that are not ``(C, H, W)`` tensors, or another image shape.
        """
        exp_id = getattr(exp, "current_experience", "?")
        ds = exp.dataset.eval()  # Avalanche 0.6: the 'eval' transform group (deterministic)
        if len(ds) == 0:
            raise DataError(f"experience {exp_id} has no samples; nothing to condense")
        loader = DataLoader(ds, batch_size=self.loader_batch_size, shuffle=False, num_workers=0,
                            collate_fn=getattr(ds, "collate_fn", None))
        xs, ys, ts = [], [], []
        for batch in loader:
            xb = batch[0]
            if not isinstance(xb, torch.Tensor) or xb.dim() != 4 or not xb.is_floating_point():
                raise DataError(f"experience {exp_id}: samples must be float image tensors (C, H, W) after the eval "
                                f"transforms (got {type(xb).__name__} {tuple(getattr(xb, 'shape', ()))}); add "
                                "ToTensor() and Normalize(...) to the benchmark's eval transform")
            xs.append(xb)
            ys.append(torch.as_tensor(batch[1]).long())
            ts.append(torch.as_tensor(batch[-1]).long() if len(batch) >= 3 else torch.zeros(len(xb), dtype=torch.long))
        x, y, t = torch.cat(xs), torch.cat(ys), torch.cat(ts)
        shape = tuple(x.shape[1:])
        if self.image_shape is None:
            self.image_shape, self.item_dtype = shape, x.dtype
        elif shape != self.image_shape:
            raise DataError(self._shape_message(exp, shape))
        return x.float(), y, t

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
        leaf, found = _find_normalize(dataset)
        self.dataset_name = CORE_STATS[leaf][0] if leaf in CORE_STATS else (leaf or "avalanche")
        self.dsa_strategy = DIGIT_DSA_STRATEGY if leaf in _DIGIT_SETS else DEFAULT_DSA_STRATEGY
        if self.user_mean is not None:
            mean, std, source = self.user_mean, self.user_std, "argument"
        elif len(found) == 1:
            (mean, std), source = found[0], "Normalize transform"
        else:
            if len(found) > 1:
                warnings.warn(f"the benchmark's eval transforms hold several Normalize transforms {found}; the "
                              "normalisation is recorded as unknown (pass mean= and std= to record it)", stacklevel=3)
            mean, std, source = (0.0,) * channels, (1.0,) * channels, "unknown"
        if len(mean) == 1 and channels > 1:
            mean, std = mean * channels, std * channels
        if len(mean) != channels or len(std) != channels:
            raise DataError(f"normalisation statistics of length {len(mean)}/{len(std)} for {channels}-channel images; "
                            "give one mean and one std per channel")
        info: dict[str, Any] = dict(mean=tuple(mean), std=tuple(std), source=source, dataset=leaf,
                                    core_dataset=None, core_mean=None, core_std=None, matches_core=None)
        if leaf in CORE_STATS and source != "unknown":
            name, cmean, cstd = CORE_STATS[leaf]
            diff = max(abs(a - b) for a, b in zip(mean + std, cmean + cstd)) if len(cmean) == channels else math.inf
            info.update(core_dataset=name, core_mean=cmean, core_std=cstd, matches_core=diff <= self.norm_tolerance)
            if not info["matches_core"]:
                warnings.warn(f"the benchmark normalises {leaf} with mean {mean}, std {std}; the core uses {cmean}, "
                              f"{cstd} (difference > {self.norm_tolerance}); condensation runs in the benchmark's "
                              "space, so condensation settings tuned on the core's data may behave differently",
                              stacklevel=3)
        self.normalization = info

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


# -- reading the benchmark's normalisation (Avalanche 0.6 dataset internals; best effort) ----------------------------

def _find_normalize(dataset) -> tuple[str | None, list[tuple[tuple[float, ...], tuple[float, ...]]]]:
    """``(leaf dataset class name, distinct (mean, std) of the Normalize transforms on the eval path)``."""
    found: list[tuple[tuple[float, ...], tuple[float, ...]]] = []
    leaf: str | None = None
    for node in _nodes(dataset):
        for attr in ("_transform_groups", "_frozen_transform_groups"):
            groups = getattr(node, attr, None)
            if groups is None:
                continue
            try:
                eval_group = groups["eval"]
            except (KeyError, TypeError, AttributeError):
                eval_group = None
            for t in _transforms(eval_group):
                stats = (_floats(t.mean), _floats(t.std))
                if stats not in found:
                    found.append(stats)
        if not hasattr(node, "_datasets") and not hasattr(node, "_flat_data"):
            leaf = leaf or type(node).__name__
            for t in _transforms(getattr(node, "transform", None)):
                stats = (_floats(t.mean), _floats(t.std))
                if stats not in found:
                    found.append(stats)
    return leaf, found


def _nodes(obj, depth: int = 0) -> Iterator[Any]:
    if obj is None or depth > 64:
        return
    yield obj
    flat = getattr(obj, "_flat_data", None)
    if flat is not None and flat is not obj:
        yield from _nodes(flat, depth + 1)
    for sub in getattr(obj, "_datasets", None) or ():
        yield from _nodes(sub, depth + 1)
    for attr in ("dataset",):  # torch Subset
        sub = getattr(obj, attr, None)
        if sub is not None and not hasattr(obj, "_datasets"):
            yield from _nodes(sub, depth + 1)


def _transforms(obj, depth: int = 0) -> Iterator[Any]:
    if obj is None or depth > 16:
        return
    if type(obj).__name__ == "Normalize" and hasattr(obj, "mean") and hasattr(obj, "std"):
        yield obj
        return
    inner = obj if isinstance(obj, (list, tuple)) else getattr(obj, "transforms", None)
    if isinstance(inner, (list, tuple)):
        for t in inner:
            yield from _transforms(t, depth + 1)


def _floats(v) -> tuple[float, ...]:
    if isinstance(v, torch.Tensor):
        v = v.flatten().tolist()
    if isinstance(v, (int, float)):
        v = [v]
    return tuple(round(float(a), 6) for a in v)
