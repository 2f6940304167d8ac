"""The condensation loop: synthetic images learned by matching a random network's features of real data.

One iteration (DM, Zhao & Bilen, WACV 2023, Alg. 1; DataDAM, Sajedi et al., ICCV 2023, Alg. 1):
  1. re-draw the network's weights in place (never trained; no gradient to them);
  2. draw a class-balanced real batch (``batch_real`` per class, without replacement);
  3. draw one DSA op + parameter set per class and apply it to the real AND synthetic images of that class;
  4. forward the real batch under ``no_grad`` and reduce it to per-class statistics; forward the synthetic
     batch with a graph; the ATOM-style loss (:mod:`atom_plugin.loss`) compares them;
  5. one SGD step (lr 1, momentum 0.5) on the synthetic pixels.
All classes go through one batched forward per side. Every random draw is a function of
(seed, iteration, stream) (:mod:`atom_plugin._rng`), so checkpoints hold no generator state and a resumed run
equals an uninterrupted one (bit-exact on CPU).
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import _rng
from ._device import device_name, resolve_device
from ._safeio import read_tensors, write_tensors
from .condensed import CondensedDataset
from .config import LEGACY_CONFIG, ATOMConfig
from .data._base import ImageTensorDataset, as_image_dataset
from .dsa import apply_params, parse_strategy, sample_params
from .errors import CondensedFileError, ConfigError, DataError, NonFiniteLossError, OutputPathError
from .loss import LossWeights, matching_loss, real_statistics
from .models import build_model, reinit_
from .multiformation import check_factor, decode, encode

CHECKPOINT_FORMAT = "atom-plugin/checkpoint"
CHECKPOINT_VERSION = 2  # 2: factor and the network pool (a version-1 checkpoint is a factor-1, random-network run)


# ---------------------------------------------------------------------------------------------------------------
# Callbacks (symmetric, predictable hook names, in the spirit of Lightning's)
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class CondenseState:
    """What callbacks see. ``iteration`` = iterations completed; ``loss`` = mean loss of the last log window."""

    iteration: int
    iterations: int
    config: ATOMConfig
    classes: list[int]
    loss: float | None = None
    elapsed: float = 0.0  # seconds spent in the loop (this process, since start or resume)
    start_iteration: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)


class CondenseCallback:
    """Base class: override any of the four hooks. Hooks must not modify the state."""

    def on_condense_start(self, state: CondenseState) -> None: ...

    def on_log(self, state: CondenseState) -> None: ...

    def on_checkpoint(self, state: CondenseState, path: Path) -> None: ...

    def on_condense_end(self, state: CondenseState) -> None: ...


class ProgressBar(CondenseCallback):
    """A tqdm progress bar with the current loss and iterations/s (written to stderr)."""

    def __init__(self, desc: str = "condense", **tqdm_kwargs):
        self.desc = desc
        self.kwargs = tqdm_kwargs
        self.bar = None

    def on_condense_start(self, state):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=state.iterations, initial=state.iteration, desc=self.desc, unit="it", **self.kwargs)

    def on_log(self, state):
        if self.bar is not None:
            if state.loss is not None:
                self.bar.set_postfix(loss=f"{state.loss:.4g}", refresh=False)
            self.bar.update(state.iteration - self.bar.n)

    def on_condense_end(self, state):
        if self.bar is not None:
            self.bar.update(state.iteration - self.bar.n)
            self.bar.close()


# ---------------------------------------------------------------------------------------------------------------
# The matcher: state and one iteration
# ---------------------------------------------------------------------------------------------------------------
class _Matcher:
    """Holds the real pool (on the device, grouped by class), the synthetic images, the network and the optimiser.

    ``run_classes`` are all classes condensed by the whole run (random draws are made for all of them, in this
    order); ``local_classes`` (a subsequence) are the ones this process owns (all of them unless class-parallel).
    """

    def __init__(self, data: ImageTensorDataset, cfg: ATOMConfig, run_classes: list[int], local_classes: list[int],
                 device: torch.device, seed: int, init_images: torch.Tensor | None, compile: bool = False,
                 device_memory_budget_mb: float | None = None):
        self.cfg, self.device, self.seed = cfg, device, seed
        self.num_classes_total = data.num_classes
        self.weights = LossWeights.from_config(cfg)
        self.layers = tuple(cfg.layers) if (cfg.w_spatial > 0 or cfg.w_channel > 0) else ()
        self.ops = parse_strategy(cfg.dsa_strategy) if cfg.dsa else ()
        c, h, w = data.image_shape
        self.hw = (h, w)
        counts = data.class_counts()
        run = torch.tensor(run_classes, dtype=torch.long)
        run_counts = counts[run]
        self.n_real = int(min(cfg.batch_real, int(run_counts.min())))
        n_max = int(run_counts.max())
        # Real pool sorted by class; row r of the tables belongs to run_classes[r].
        order = torch.argsort(data.labels, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        by_class = data.images[order]
        self.pool_on_device = _pool_fits(by_class, device, device_memory_budget_mb)
        if self.pool_on_device:
            self.pool = by_class.to(device)
        else:  # stream each iteration's real batch from (pinned) host memory
            self.pool = by_class.pin_memory() if device.type == "cuda" else by_class
        self.pool_offsets = starts[run].to(device)
        self.invalid = (torch.arange(n_max)[None, :] >= run_counts[:, None]).to(device)  # (R, n_max)
        row_of = {k: r for r, k in enumerate(run_classes)}
        self.local_rows = torch.tensor([row_of[k] for k in local_classes], dtype=torch.long, device=device)
        L, ipc = len(local_classes), cfg.ipc
        self.factor = f = check_factor(cfg.factor, (h, w))
        self.num_local = L
        self.group_real = self.local_rows.repeat_interleave(self.n_real)
        self.group_syn = self.local_rows.repeat_interleave(ipc * f * f)  # decoded samples, class-major
        self.labels = torch.tensor(local_classes, dtype=torch.long).repeat_interleave(ipc)  # stored images
        # Initial synthetic images (stored form: with f > 1 each tile holds a different downsampled real image).
        if init_images is not None:
            if tuple(init_images.shape) != (L * ipc, c, h, w):
                raise ConfigError(f"init_images must have shape {(L * ipc, c, h, w)}, got {tuple(init_images.shape)}")
            syn = init_images.detach().clone().float()
        else:
            g = _rng.generator(seed, 0, _rng.INIT, "cpu")
            if cfg.init == "real":
                k = ipc * f * f  # real images per class (one per tile); a class smaller than that reuses images
                u = torch.rand(len(run_classes), n_max, generator=g).masked_fill_(self.invalid.cpu(), 2.0)
                pos = u.topk(min(k, n_max), dim=1, largest=False).indices  # (R, <=k) positions inside each class
                if k > int(run_counts.min()):  # topk is sorted: a class's first `count` positions are its own
                    pos = pos.gather(1, torch.arange(k)[None, :] % run_counts[:, None])
                pick = pos + starts[run][:, None]  # (R, k) pool rows
                syn = encode(by_class[pick[self.local_rows.cpu()].flatten()], f)
            else:
                noise = torch.randn(len(run_classes), ipc, c, h, w, generator=g)
                syn = noise[self.local_rows.cpu()].reshape(L * ipc, c, h, w)
        self.syn = syn.to(device).requires_grad_(True)
        self.optimizer = torch.optim.SGD([self.syn], lr=cfg.lr_images, momentum=cfg.momentum)
        self.net = build_model(cfg.model, channels=c, num_classes=data.num_classes, image_size=(h, w),
                               **cfg.model_kwargs()).to(device)
        self.net.requires_grad_(False)
        self.net.train()  # as the official loops (matters only for BatchNorm)
        # torch.compile fuses norm/activation/pool with the attention maps (|f|^p and its sums never hit memory
        # as separate passes); parameters are re-drawn (or loaded from the pool) in place, so one graph serves all.
        self.real_stats = torch.compile(self._real_stats) if compile else self._real_stats
        self.syn_loss = torch.compile(self._syn_loss) if compile else self._syn_loss
        self.g_net = torch.Generator(device=device)
        self.g_data = torch.Generator(device=device)
        self.pool_nets = None
        if cfg.networks == "pool":
            from ._netpool import NetworkPool

            self.syn_labels = torch.tensor(local_classes, dtype=torch.long,
                                           device=device).repeat_interleave(ipc * f * f)
            self.pool_nets = NetworkPool(self.net, cfg, seed, device, self.pool, data.labels[order].to(self.pool.device),
                                         starts[run], run_counts)

    def _real_stats(self, real: torch.Tensor) -> list[torch.Tensor]:
        maps, emb = self.net.forward_features(real, self.layers)
        return real_statistics(maps, emb, self.num_local, self.weights)

    def _syn_loss(self, syn: torch.Tensor, stats: list[torch.Tensor], ce_scale: torch.Tensor | None = None) -> torch.Tensor:
        maps, emb = self.net.forward_features(syn, self.layers)
        loss = matching_loss(stats, maps, emb, self.num_local, self.weights)
        if ce_scale is not None:  # IDM's class-aware regularisation, summed over classes (mean within a class)
            ce = torch.nn.functional.cross_entropy(self.net.classifier(emb), self.syn_labels, reduction="sum")
            loss = loss + ce_scale * ce / (syn.shape[0] // self.num_local)
        return loss

    def decoded(self) -> torch.Tensor:
        """The synthetic training samples ``(L * ipc * factor², C, H, W)`` (differentiable w.r.t. ``self.syn``)."""
        return decode(self.syn, self.factor)

    def step(self, t: int) -> torch.Tensor:
        """Run iteration ``t`` (0-based); returns the loss as a 0-d tensor on the device (no host sync)."""
        ce_scale = None
        if self.pool_nets is None:
            reinit_(self.net, _rng.reseed(self.g_net, self.seed, t, _rng.NETWORK))
        else:
            acc = self.pool_nets.load_into(self.net, t)
            ce_scale = acc * self.cfg.ce_weight if self.cfg.ce_weight > 0 else None
        g = _rng.reseed(self.g_data, self.seed, t, _rng.DATA)
        u = torch.rand(self.invalid.shape, generator=g, device=self.device).masked_fill_(self.invalid, 2.0)
        pos = u.topk(self.n_real, dim=1, largest=False).indices  # (R, n_real) positions inside each class
        rows = (pos + self.pool_offsets[:, None]).index_select(0, self.local_rows).flatten()
        if self.pool_on_device:
            real = self.pool.index_select(0, rows)
        else:  # one host sync per iteration: the price of a pool larger than the device
            real = self.pool.index_select(0, rows.cpu()).to(self.device, non_blocking=True)
        syn = self.decoded()
        if self.ops:
            draw = sample_params(self.ops, self.invalid.shape[0], self.hw, g)
            real = apply_params(real, draw, self.group_real)
            syn = apply_params(syn, draw, self.group_syn)
        with torch.no_grad():
            stats = self.real_stats(real)
        loss = self.syn_loss(syn, stats) if ce_scale is None else self.syn_loss(syn, stats, ce_scale)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.pool_nets is not None:
            self.pool_nets.train_step(t)
        return loss.detach()

    # -- checkpoint state ---------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {"images": self.syn.detach()}
        buf = self.optimizer.state.get(self.syn, {}).get("momentum_buffer")
        if buf is not None:
            out["momentum_buffer"] = buf
        if self.pool_nets is not None:
            out.update(self.pool_nets.state_tensors())
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.syn.copy_(tensors["images"].to(self.device))
        if "momentum_buffer" in tensors:
            self.optimizer.state[self.syn]["momentum_buffer"] = tensors["momentum_buffer"].to(self.device).clone()
        if self.pool_nets is not None:
            self.pool_nets.load_state_tensors(tensors)


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
    compile: bool = False,
    device_memory_budget_mb: float | None = None,
    mode: str = "fast",
    _local_classes: Sequence[int] | None = None,
) -> CondensedDataset:
    """Condense ``train_set`` into ``config.ipc`` synthetic images per class with the ATOM-style loss.

    Args:
        train_set: an :class:`~atom_plugin.data.ImageTensorDataset` (e.g. from ``load_dataset``) or any map-style
            dataset of ``(image (C, H, W) float tensor, label)`` items in the space to condense in.
        config: an :class:`ATOMConfig` (default: the ``atom`` preset, IPC 10, 8000 iterations).
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``. seed: the run's seed (all randomness derives from it).
        classes: class indices to condense (default: every class present). Labels keep their original values.
        callbacks: :class:`CondenseCallback` objects (e.g. :class:`ProgressBar`).
        checkpoint: a ``.safetensors`` path; written atomically every ``checkpoint_every`` iterations and at the end.
        resume: continue from ``checkpoint`` if it exists (images, momentum and iteration; the random streams are
            re-derived), giving the images an uninterrupted run gives (bit-exact on CPU).
        log_every: iterations between host reads of the loss (callbacks' ``on_log``); default 1 on CPU, 50 on GPU.
        init_images: ``(len(classes) * ipc, C, H, W)`` float32 class-major starting images (overrides ``init``).
        compile: run the network through ``torch.compile`` (faster for long runs; a one-time compilation of
            tens of seconds; results equal eager ones up to float rounding).
        device_memory_budget_mb: device memory the real pool may take. Default: on CUDA, half the free memory;
            elsewhere unlimited. A pool that does not fit stays in pinned host memory and each iteration's
            real batch is gathered there and copied over (same random draws, same result, one sync per
            iteration). Set it small to force (or test) the streaming path.
        mode: ``"fast"`` (default) or ``"reference"``: the per-iteration structure of the official loops
            (network rebuilt each iteration, per-class Python loops, loss on the CPU; see
            :mod:`atom_plugin._reference`). Same random numbers, same result up to rounding, much slower.

    Returns:
        A :class:`CondensedDataset` of ``(len(classes) * ipc, C, H, W)`` float32 stored images (class-major) and
        int64 labels -- with ``config.factor`` f > 1, ``.images`` are the ``ipc * f²`` decoded samples per class --
        the resolved config and provenance (source fingerprint, seed, versions, device, seconds, losses).

    Raises:
        ConfigError: bad settings, IPC larger than the smallest class, unknown class index.
        DataError: a requested class with no images; NaN/Inf in the data.
        OutputPathError: checkpoint location not writable, or a checkpoint exists and ``resume`` is False.
        CondensedFileError: the checkpoint is corrupt or belongs to another run.
        NonFiniteLossError: the loss became NaN/Inf (names the iteration; the last good checkpoint is kept).
        DeviceError: ``cuda`` requested without CUDA.
    """
    data = as_image_dataset(train_set)
    if isinstance(data, CondensedDataset):  # its decoded samples play the real data (recondense)
        data = ImageTensorDataset._like(data, data.images, data.labels)
    cfg = (config or ATOMConfig()).resolved(dsa_strategy_default=data.dsa_strategy)
    dev = resolve_device(device)
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
        raise DataError(f"{data.name}: class(es) {empty} have no images; drop them from --classes or fix the data")
    smallest = min(int(counts[k]) for k in run_classes)
    if cfg.ipc > smallest:
        k_small = min(run_classes, key=lambda k: int(counts[k]))
        raise ConfigError(f"ipc {cfg.ipc} is larger than class {data.classes[k_small]!r}, which has only {smallest} images; "
                          f"use --ipc <= {smallest}")
    local_classes = list(_local_classes) if _local_classes is not None else run_classes
    fingerprint = data.fingerprint()  # of the data as given (before any whitening), to identify the source
    if cfg.zca and data.zca is None:
        from .zca import ZCA

        zca = ZCA.fit(data.images)
        data = data._like(zca.transform(data.images), data.labels, zca=zca)
    log_every = log_every or (1 if dev.type == "cpu" else 50)

    ckpt = Path(checkpoint) if checkpoint is not None else None
    run_meta = dict(config=cfg.to_dict(), seed=int(seed), run_classes=run_classes, local_classes=local_classes,
                    source_fingerprint=fingerprint)
    if mode not in ("fast", "reference"):
        raise ConfigError(f"mode must be 'fast' or 'reference', got {mode!r}")
    matcher_cls = _Matcher
    if mode == "reference":
        from ._reference import ReferenceMatcher

        if cfg.networks != "random":
            raise ConfigError("mode='reference' re-creates the official loops' fresh random network; use "
                              "networks='random' with it, or mode='fast' for the network pool")

        matcher_cls = type("ReferenceModeMatcher", (ReferenceMatcher, _Matcher), {})
    matcher = matcher_cls(data, cfg, run_classes, local_classes, dev, seed, init_images, compile=compile,
                          device_memory_budget_mb=device_memory_budget_mb)
    state = CondenseState(iteration=0, iterations=cfg.iterations, config=cfg, classes=local_classes)
    if ckpt is not None:
        if ckpt.exists() and resume:
            tensors, meta = read_tensors(ckpt, kind=CHECKPOINT_FORMAT, max_version=CHECKPOINT_VERSION)
            _check_same_run(ckpt, meta, run_meta)
            matcher.load_state_tensors(tensors)
            state.iteration = state.start_iteration = int(meta["iteration"])
            state.history = [tuple(h) for h in meta.get("history", [])]
        elif ckpt.exists():
            raise OutputPathError(f"a checkpoint already exists at {str(ckpt)!r}; pass --resume to continue it, "
                                  "or choose another --out to start over")
        else:
            from ._safeio import ensure_writable_dir

            ensure_writable_dir(ckpt.parent if str(ckpt.parent) else ".")

    for cb in callbacks:
        cb.on_condense_start(state)
    window = torch.zeros(log_every, device=dev)
    window_start = state.iteration
    t0 = time.perf_counter()
    last_good: Path | None = ckpt if (ckpt is not None and ckpt.exists()) else None

    def flush(upto: int) -> None:
        """Check and report the losses of iterations [window_start, upto)."""
        nonlocal window_start
        n = upto - window_start
        if n <= 0:
            return
        losses = window[:n].detach().cpu()
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad_it = window_start + int((~finite).nonzero()[0])
            raise NonFiniteLossError(bad_it, str(last_good) if last_good else None)
        state.iteration = upto
        state.loss = float(losses.mean())
        state.elapsed = time.perf_counter() - t0
        state.history.append((upto, state.loss))
        window_start = upto
        for cb in callbacks:
            cb.on_log(state)

    for t in range(state.iteration, cfg.iterations):
        window[t - window_start] = matcher.step(t)
        done = t + 1
        if done - window_start == log_every or done == cfg.iterations:
            flush(done)
        if ckpt is not None and (done % checkpoint_every == 0 or done == cfg.iterations):
            flush(done)
            _save_checkpoint(ckpt, matcher, run_meta, state)
            last_good = ckpt
            for cb in callbacks:
                cb.on_checkpoint(state, ckpt)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    state.elapsed = time.perf_counter() - t0
    state.iteration = cfg.iterations
    for cb in callbacks:
        cb.on_condense_end(state)

    provenance = dict(
        dataset=data.name, source_fingerprint=run_meta["source_fingerprint"], seed=int(seed),
        iterations=cfg.iterations, classes=run_classes, n_real_per_class=matcher.n_real,
        device=device_name(dev), mode=mode, compiled=bool(compile),
        real_pool="device" if matcher.pool_on_device else "host (streamed)", seconds=round(state.elapsed, 3), resumed_from=state.start_iteration or None,
        final_loss=state.loss, loss_history=state.history[-200:], versions=library_versions(),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    return CondensedDataset(matcher.syn.detach().cpu().clone(), matcher.labels, data.classes, data.mean, data.std,
                            name=data.name, dsa_strategy=data.dsa_strategy, zca=data.zca, method=cfg.preset,
                            config=cfg.to_dict(), provenance=provenance, check_finite=False, factor=cfg.factor)


def recondense(condensed: CondensedDataset, ipc: int, config: ATOMConfig | None = None, *,
               factor: int | None = None, **kwargs) -> CondensedDataset:
    """Condense a condensed set into fewer stored images per class: its decoded samples play the real data.

    Used when a fixed memory budget must shrink old classes whose real data is gone (continual learning).
    ``config`` defaults to the set's own config (and its factor); ``factor`` re-condenses into another
    multi-formation factor (e.g. a factor-1 set of IPC 10 into IPC 5 at factor 2); ``batch_real`` is capped at
    the decoded samples per class. Keyword arguments go to :func:`condense`.

    Raises:
        ConfigError: ``ipc`` above the set's stored images per class (and everything :func:`condense` raises).
    """
    if config is None:
        config = ATOMConfig.from_dict(condensed.config) if condensed.config else ATOMConfig()
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


def _pool_fits(pool: torch.Tensor, device: torch.device, budget_mb: float | None) -> bool:
    """Whether the real pool may live on ``device``: under the explicit budget, or half the free CUDA memory."""
    size_mb = pool.numel() * pool.element_size() / 2**20
    if budget_mb is not None:
        return size_mb <= budget_mb
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return size_mb <= 0.5 * free / 2**20
    return True


def library_versions() -> dict[str, str]:
    """Versions of Python, atom-plugin, torch, torchvision and numpy (for provenance and result files)."""
    import torchvision

    from . import __version__

    return dict(python=platform.python_version(), atom_plugin=__version__, torch=torch.__version__,
                torchvision=torchvision.__version__, numpy=np.__version__)


def _save_checkpoint(path: Path, matcher: _Matcher, run_meta: dict, state: CondenseState) -> None:
    meta = dict(run_meta, iteration=state.iteration, history=state.history)
    write_tensors(path, matcher.state_tensors(), meta, kind=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)


def _check_same_run(path: Path, meta: dict, run_meta: dict) -> None:
    diffs = [k for k in ("seed", "run_classes", "local_classes", "source_fingerprint") if meta.get(k) != run_meta[k]]
    cfg_old, cfg_new = dict(LEGACY_CONFIG, **(meta.get("config") or {})), run_meta["config"]
    diffs += [f"config.{k}" for k in sorted(set(cfg_old) | set(cfg_new))
              if k != "iterations" and cfg_old.get(k) != cfg_new.get(k)]
    if diffs:
        legacy = "factor" not in (meta.get("config") or {}) and "config.factor" in diffs
        hint = (" -- it was written before multi-formation existed: continue it with factor=1, networks='random' "
                "(--factor 1 --networks random)") if legacy else ""
        raise CondensedFileError(f"the checkpoint {str(path)!r} belongs to a different run (differs in: "
                                 f"{', '.join(diffs)}); remove it or use another --out{hint}")
    if int(meta.get("iteration", -1)) > int(cfg_new["iterations"]):
        raise CondensedFileError(f"the checkpoint {str(path)!r} is at iteration {meta['iteration']}, beyond the requested "
                                 f"{cfg_new['iterations']} iterations; raise --iterations to continue it")
