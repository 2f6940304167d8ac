"""The condensation run: checks, checkpoints and resume around :class:`atom_plugin.matcher.Matcher`'s iterations.

One iteration is documented in :mod:`atom_plugin.matcher`; callbacks in :mod:`atom_plugin.callbacks`; the
checkpoint file in :mod:`atom_plugin.checkpoint`.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path
from typing import Sequence

import torch

from ._device import device_name, resolve_device
from ._safeio import ensure_writable_dir, read_tensors
from .callbacks import CondenseCallback, CondenseState
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, check_same_run, save_checkpoint
from .condensed import CondensedDataset
from .config import ATOMConfig
from .data._base import ImageTensorDataset, as_image_dataset
from .dsa import check_deterministic, parse_strategy
from .errors import ConfigError, DataError, NonFiniteImagesError, NonFiniteLossError, OutputPathError
from .results import library_versions  # provenance's versions (one home: results.py)
from .matcher import matcher_class
from .multiformation import check_factor


# ---------------------------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------------------------
def condense(
    train_set,
    config: ATOMConfig | None = None,
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    classes: Sequence[int] | None = None,
    callbacks: Sequence[CondenseCallback] = (),
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    resume: bool = False,
    log_every: int | None = None,
    init_images: torch.Tensor | None = None,
    compile: bool | None = None,
    device_memory_budget_mb: float | None = None,
    mode: str = "fast",
    _local_classes: Sequence[int] | None = None,
) -> CondensedDataset:
    """Condense ``train_set`` into ``config.ipc`` synthetic images per class with the ATOM-style loss.

    Args:
        train_set: an :class:`~atom_plugin.data.ImageTensorDataset` (e.g. from ``load_dataset``) or any map-style
            dataset of ``(image (C, H, W) float tensor, label)`` items in the space to condense in.
        config: an :class:`ATOMConfig` (default: the ``atom`` preset, IPC 10, 8000 iterations).
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``.
        seed: the run's seed (all randomness derives from it).
        classes: class indices to condense (default: every class present). Labels keep their original values.
        callbacks: :class:`CondenseCallback` objects (e.g. :class:`ProgressBar`).
        checkpoint: a ``.safetensors`` path; written atomically every ``checkpoint_every`` iterations and at the end.
        checkpoint_every: iterations between checkpoint writes.
        resume: continue from ``checkpoint`` if it exists (images, momentum and iteration; the random streams are
            re-derived), giving the images an uninterrupted run gives (bit-exact on CPU; up to float noise on
            CUDA, where some kernels accumulate in a nondeterministic order).
        log_every: iterations between host reads of the loss (callbacks' ``on_log``); default 1 on CPU, 50 on GPU.
        init_images: ``(len(classes) * ipc, C, H, W)`` float32 class-major starting images (overrides ``init``;
            ``init="herding"`` computes them here, :func:`_start_images`, its cost in ``provenance["init"]``).
        compile: run the network and loss through ``torch.compile`` (faster for long runs; a one-time
            compilation of tens of seconds; results equal eager ones up to float rounding). None (default) =
            automatic, True/False = always/never: the rule (and that a failed compilation raises) is
            :func:`atom_plugin._device.resolve_compile`. ``provenance["compiled"]`` records the choice made.
        device_memory_budget_mb: device memory the real pool may take, and (separately) the activations of one
            forward of real images. Default: on CUDA, half the free memory; elsewhere unlimited. A pool that
            does not fit stays in pinned host memory and each iteration's real batch is gathered there and
            copied over (same random draws, same result, one sync per iteration). A real batch whose forward
            does not fit goes through the network a few classes at a time (the same statistics: every norm but
            BatchNorm is per sample; with BatchNorm it stays one forward). Set it small to force (or test) both.
        mode: ``"fast"`` (default) or ``"reference"``: the per-iteration structure of the official loops
            (network rebuilt each iteration, per-class Python loops, loss on the CPU; see
            :mod:`atom_plugin._reference`). Same random numbers, same result up to rounding, much slower.

    Returns:
        A :class:`CondensedDataset` of ``(len(classes) * ipc, C, H, W)`` float32 stored images (class-major) and
        int64 labels -- with ``config.factor`` f > 1, ``.images`` are the ``ipc * f²`` decoded samples per class --
        the resolved config and provenance (source fingerprint, seed, versions, device, seconds, losses).

    Raises:
        ConfigError: bad settings (NaN/Inf in any number included: :meth:`ATOMConfig.validate`), a ``factor`` whose
            tiles would be smaller than 4x4 pixels (:func:`atom_plugin.multiformation.check_factor`), IPC larger
            than the smallest class, unknown class index, a bad ``compile``; all before any work; on
            CUDA, DSA's scale/rotate under ``torch.use_deterministic_algorithms(True)`` without ``warn_only`` (torch
            cannot run their backward deterministically: :func:`atom_plugin.dsa.check_deterministic`).
        DataError: a requested class with no images; NaN/Inf in the data.
        OutputPathError: checkpoint location not writable, or a checkpoint exists and ``resume`` is False.
        CondensedFileError: the checkpoint is corrupt or belongs to another run.
        NonFiniteLossError: the loss became NaN/Inf (names the iteration; the last good checkpoint is kept).
        NonFiniteImagesError: the images became NaN/Inf (checked before each checkpoint and at the end: no
            non-finite images are returned or saved; the last good checkpoint is kept).
        DeviceError: ``cuda`` requested without CUDA.
    """
    data, cfg, dev, run_classes = _checked_inputs(train_set, config, device, classes)
    local_classes = list(_local_classes) if _local_classes is not None else run_classes
    run_meta = dict(config=cfg.to_dict(), seed=int(seed), run_classes=run_classes, local_classes=local_classes,
                    source_fingerprint=data.fingerprint())  # of the data as given (before any whitening)
    data = _whitened(data, cfg)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    init_images, start = _start_images(data, cfg, local_classes, dev, seed, init_images,
                                       resuming=resume and ckpt is not None and ckpt.exists())
    matcher = matcher_class(mode)(data, cfg, run_classes, local_classes, dev, seed, init_images, compile=compile,
                                  device_memory_budget_mb=device_memory_budget_mb)
    state = CondenseState(iteration=0, iterations=cfg.iterations, config=cfg, classes=local_classes)
    start = _resume(ckpt, resume, matcher, run_meta, state) or start
    if start is not None:  # kept in every checkpoint (a resumed process's too): each resume still reports its cost
        run_meta["init"] = start
    # start
    for cb in callbacks:
        cb.on_condense_start(state)
    window = _LossWindow(log_every or (1 if dev.type == "cpu" else 50), state, callbacks, dev,
                         last_good=ckpt if (ckpt is not None and ckpt.exists()) else None)
    # loop
    try:
        for t in range(state.iteration, cfg.iterations):
            window.record(t, matcher.step(t))  # reads the losses back once a window is full, and at the end
            done = t + 1
            if ckpt is not None and (done % checkpoint_every == 0 or done == cfg.iterations):
                window.flush(done)
                window.check_images(matcher.syn, done)  # never overwrite the last good checkpoint with NaN/Inf
                save_checkpoint(ckpt, matcher, run_meta, state)
                window.last_good = ckpt
                for cb in callbacks:
                    cb.on_checkpoint(state, ckpt)
        window.check_images(matcher.syn, cfg.iterations)
    except BaseException as exc:  # errors and Ctrl-C: every callback sees it (closes bars, ...), then it goes on
        for cb in callbacks:
            cb.on_exception(state, exc)
        raise
    # end
    state.elapsed, state.iteration = window.elapsed(), cfg.iterations
    for cb in callbacks:
        cb.on_condense_end(state)
    return CondensedDataset(matcher.syn.detach().cpu().clone(), matcher.labels, data.classes, data.mean, data.std,
                            name=data.name, dsa_strategy=data.dsa_strategy, zca=data.zca, method=cfg.preset,
                            config=cfg.to_dict(), provenance=_provenance(data, run_meta, matcher, state, mode, start),
                            check_finite=False, factor=cfg.factor)


# ---------------------------------------------------------------------------------------------------------------
# The run's steps
# ---------------------------------------------------------------------------------------------------------------
def _checked_inputs(train_set, config: ATOMConfig | None, device: str | torch.device,
                    classes: Sequence[int] | None) -> tuple[ImageTensorDataset, ATOMConfig, torch.device, list[int]]:
    """The data, the resolved config, the device and the sorted run classes, after every check that needs no
    work (the errors :func:`condense` lists, before any whitening, network or checkpoint)."""
    data = as_image_dataset(train_set)
    if isinstance(data, CondensedDataset):  # its decoded samples play the real data (recondense)
        data = ImageTensorDataset._like(data, data.images, data.labels)
    cfg = (config or ATOMConfig()).resolved(dsa_strategy_default=data.dsa_strategy)
    check_factor(cfg.factor, data.image_shape[1:])
    dev = resolve_device(device)
    check_deterministic(parse_strategy(cfg.dsa_strategy) if cfg.dsa else (), dev)
    if not torch.isfinite(data.images).all():
        raise DataError(f"{data.name}: the training images contain NaN or Inf values; clean them before condensing")
    counts = data.class_counts()
    run_classes = sorted(set(int(k) for k in classes)) if classes is not None else data.present_classes()
    if not run_classes:
        raise DataError(f"{data.name}: no classes to condense (the dataset is empty)")
    bad = [k for k in run_classes if not 0 <= k < data.num_classes]
    if bad:
        raise ConfigError(f"class indices {bad} do not exist in {data.name} ({data.num_classes} classes)")
    empty = [data.classes[k] for k in run_classes if int(counts[k]) == 0]
    if empty:
        raise DataError(f"{data.name}: class(es) {empty} have no images; drop them from `classes` or fix the data")
    smallest = min(int(counts[k]) for k in run_classes)
    if cfg.ipc > smallest:
        k_small = min(run_classes, key=lambda k: int(counts[k]))
        raise ConfigError(f"ipc {cfg.ipc} is larger than class {data.classes[k_small]!r}, which has only {smallest} images; "
                          f"use `ipc` <= {smallest}")
    return data, cfg, dev, run_classes


def _whitened(data: ImageTensorDataset, cfg: ATOMConfig) -> ImageTensorDataset:
    """``data`` ZCA-whitened when ``cfg.zca`` asks and it is not whitened yet (:mod:`atom_plugin.zca`)."""
    if not cfg.zca or data.zca is not None:
        return data
    from .zca import ZCA

    zca = ZCA.fit(data.images)
    return data._like(zca.transform(data.images), data.labels, zca=zca)


def _resume(ckpt: Path | None, resume: bool, matcher, run_meta: dict, state: CondenseState) -> dict | None:
    """Load ``ckpt`` into ``matcher`` and ``state`` when resuming (returns the checkpoint's herding-start record, if
    any); else check it may be written (and is new)."""
    if ckpt is None:
        return None
    if ckpt.exists() and resume:
        tensors, meta = read_tensors(ckpt, kind=CHECKPOINT_FORMAT, max_version=CHECKPOINT_VERSION)
        check_same_run(ckpt, meta, run_meta)
        matcher.load_state_tensors(tensors)
        state.iteration = state.start_iteration = int(meta["iteration"])
        state.history = [tuple(h) for h in meta.get("history", [])]
        before = meta.get("seconds")  # None: a checkpoint written before the seconds were kept
        state.elapsed_before = None if before is None else float(before)
        state.loss = state.history[-1][1] if state.history else None  # a finished run resumed does no iteration
        return meta.get("init")
    elif ckpt.exists():
        raise OutputPathError(f"a checkpoint already exists at {str(ckpt)!r}; pass `resume=True` to continue it, "
                              "or choose another `checkpoint` to start over")
    else:
        ensure_writable_dir(ckpt.parent if str(ckpt.parent) else ".")
    return None


class _LossWindow:
    """The losses of the iterations since the last host read (a device buffer of ``size``): read back, checked
    for NaN/Inf and reported to the callbacks (``on_log``) once per window and at the last iteration, so a run
    syncs with the device once per window. Also the images' finiteness check and the last good checkpoint."""

    def __init__(self, size: int, state: CondenseState, callbacks: Sequence[CondenseCallback],
                 device: torch.device, last_good: Path | None):
        self.losses = torch.zeros(size, device=device)
        self.state, self.callbacks, self.last_good = state, callbacks, last_good
        self.start = state.iteration  # first iteration of the window
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the window (the loop) started."""
        return time.perf_counter() - self.t0

    def record(self, t: int, loss: torch.Tensor) -> None:
        """Store iteration ``t``'s loss (0-d, on the device); flush a full window or the run's last iteration."""
        self.losses[t - self.start] = loss
        done = t + 1
        if done - self.start == len(self.losses) or done == self.state.iterations:
            self.flush(done)

    def flush(self, upto: int) -> None:
        """Check and report the losses of iterations ``[start, upto)``.

        Raises:
            NonFiniteLossError: one of them is NaN/Inf (names the first such iteration).
        """
        n = upto - self.start
        if n <= 0:
            return
        losses = self.losses[:n].detach().cpu()
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            raise NonFiniteLossError(self.start + int((~finite).nonzero()[0]), self._last_good())
        state = self.state
        state.iteration, state.loss, state.elapsed = upto, float(losses.mean()), self.elapsed()
        state.history.append((upto, state.loss))
        self.start = upto
        for cb in self.callbacks:
            cb.on_log(state)

    def check_images(self, images: torch.Tensor, upto: int) -> None:
        """Raise :class:`NonFiniteImagesError` (after ``upto`` iterations) unless ``images`` are all finite."""
        if not bool(torch.isfinite(images.detach()).all()):
            raise NonFiniteImagesError(upto, self._last_good())

    def _last_good(self) -> str | None:
        return str(self.last_good) if self.last_good else None


def _provenance(data: ImageTensorDataset, run_meta: dict, matcher, state: CondenseState, mode: str,
                start: dict | None = None) -> dict:
    """The run's provenance dict (what :attr:`CondensedDataset.provenance` holds after :func:`condense`): ``seconds``
    is the loop's time over the whole run -- a resumed run adds ``seconds_before_resume``, what the checkpoint's
    processes spent up to it, to this process's (None, and ``seconds`` this process's only, when the checkpoint
    predates that record); with a herding start (:func:`_start_images`' record) its cost as ``init``, outside
    ``seconds``."""
    cfg = matcher.cfg
    return dict(
        dataset=data.name, source_fingerprint=run_meta["source_fingerprint"], seed=run_meta["seed"],
        iterations=cfg.iterations, classes=run_meta["run_classes"], n_real_per_class=matcher.n_real,
        device=device_name(matcher.device), mode=mode, compiled=matcher.compiled,
        real_pool="device" if matcher.real.on_device else "host (streamed)",
        seconds=round((state.elapsed_before or 0.0) + state.elapsed, 3), resumed_from=state.start_iteration or None,
        seconds_before_resume=(round(state.elapsed_before, 3) if state.elapsed_before is not None else None)
        if state.start_iteration else None, final_loss=state.loss, loss_history=state.history[-200:],
        versions=library_versions(), date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **({} if start is None else dict(init=start)),
    )


def _start_images(data: ImageTensorDataset, cfg: ATOMConfig, classes: list[int], device: torch.device,
                  seed: int, given: torch.Tensor | None, resuming: bool) -> tuple[torch.Tensor | None, dict | None]:
    """The starting images: ``given`` (``init_images``) if any; else, for ``init="herding"`` (and not ``resuming``:
    the checkpoint holds the images), :func:`atom_plugin.herding_subset` of ``ipc * f²`` images per class (its
    feature network: the matching network's architecture, ``cfg``'s model options, trained 1 epoch seeded by
    ``seed``, as the benchmarks' herding baseline with the default ConvNet-3), encoded into ``ipc`` stored images
    per class (f = ``cfg.factor``; at f = 1 exactly the herding subset's images); else None (the matcher draws them).

    Returns:
        ``(images (len(classes) * ipc, C, H, W) float32 class-major in ``classes``' order or None, record or None)``;
        the herding start's record (``method``, ``seconds`` of the selection including its feature network's
        training, ``feature_network``) goes to the provenance's ``init``.
    """
    if given is not None or cfg.init != "herding" or resuming:
        return given, None
    from .baselines import herding_subset
    from .multiformation import encode

    t0 = time.perf_counter()
    f = cfg.factor
    sub = herding_subset(data, cfg.ipc * f * f, seed=seed, classes=classes, feature_config=cfg, device=device)
    order = torch.cat([(sub.labels == k).nonzero().flatten() for k in classes])  # class-major in ``classes``' order
    images = encode(sub.images[order], f)
    return images, dict(method="herding", seconds=round(time.perf_counter() - t0, 3),
                        feature_network=sub.provenance["feature_network"])


def recondense(condensed: CondensedDataset, ipc: int, config: ATOMConfig | None = None, *,
               factor: int | None = None, **kwargs) -> CondensedDataset:
    """Condense a condensed set into fewer stored images per class: its decoded samples play the real data.

    Used when a fixed memory budget must shrink old classes whose real data is gone (continual learning).
    ``config`` defaults to the set's own config (and its factor) with ``init`` left to the preset's per-IPC table at
    the new ``ipc`` (an ``atom`` set of IPC 50 started from herding re-condenses to IPC 10 from random decoded
    samples, as the table starts at IPC 10); ``factor`` re-condenses into another
    multi-formation factor (e.g. a factor-1 set of IPC 10 into IPC 5 at factor 2); ``batch_real`` is capped at
    the decoded samples per class. Keyword arguments go to :func:`condense`.

    Raises:
        ConfigError: ``ipc`` above the set's stored images per class (and everything :func:`condense` raises).
    """
    if config is None:
        config = ATOMConfig.from_dict(condensed.config) if condensed.config else ATOMConfig()
        config = config.replace(init=None)  # the per-IPC start at the new IPC, not the set's
        if factor is None:  # the set's own factor unless asked; the preset's per-IPC choice only when asked
            config = config.replace(factor=condensed.factor)
    if factor is not None:
        config = config.replace(factor=factor)
    current = min(condensed.stored_per_class().values())
    if ipc > current:
        raise ConfigError(f"cannot re-condense to ipc={ipc}: the set stores only {current} image(s) per class")
    out = condense(condensed, config.replace(ipc=ipc), **kwargs)
    out.provenance["recondensed_from"] = dict(method=condensed.method, ipc=current, factor=condensed.factor,
                                              dataset=condensed.provenance.get("dataset", condensed.name))
    return out

