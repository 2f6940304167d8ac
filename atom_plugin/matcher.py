"""One iteration of the condensation loop, and the state it works on.

One iteration (DM, Zhao & Bilen, WACV 2023, Alg. 1; DataDAM, Sajedi et al., ICCV 2023, Alg. 1):
  1. re-draw the network's weights in place (never trained; no gradient to them), or load one of the network
     pool's (:mod:`atom_plugin._netpool`);
  2. draw a class-balanced real batch (``batch_real`` per class, without replacement) from the real pool
     (:mod:`atom_plugin._realpool`: the real images grouped by class, on the device or streamed from the host);
  3. decode the stored synthetic images (:mod:`atom_plugin.multiformation`), draw one DSA op + parameter set per
     class and apply it to the real AND decoded synthetic images of that class (one call on both batches);
  4. forward the real batch under ``no_grad`` and reduce it to per-class statistics; forward the synthetic
     batch with a graph; the ATOM-style loss (:mod:`atom_plugin.loss`) compares them;
  5. one SGD step (lr 1, momentum 0.5) on the stored synthetic pixels (then the pool trains its network).
All classes go through one batched forward per side (the real side in class chunks when one forward would not
fit the device memory: :func:`real_chunk_classes`). Every random draw is a function of
(seed, iteration, stream) (:mod:`atom_plugin._rng`), so checkpoints hold no generator state and a resumed run
equals an uninterrupted one (bit-exact on CPU; up to float noise on CUDA, whose kernels may accumulate
in a nondeterministic order).
"""
from __future__ import annotations

from typing import Sequence

import torch

from . import _rng
from ._realpool import RealPool
from ._device import resolve_compile, resolve_device
from .config import ATOMConfig
from .data._base import ImageTensorDataset, as_image_dataset
from .dsa import apply_params, parse_strategy, sample_params
from .errors import ConfigError
from .loss import LossWeights, matching_loss, real_statistics, statistic_weights
from .models import build_model
from .models._init import matching_redraw, redraw_
from .multiformation import check_factor, decode, encode

#: The choices of ``condense(mode=...)``.
MODES = ("fast", "reference")


class Matcher:
    """One condensation run's state and its iteration (:meth:`step`): the real pool (``real``, a
    :class:`~atom_plugin._realpool.RealPool`), the synthetic images, the network (or network pool) and the
    optimiser. :func:`atom_plugin.condense` drives it; :func:`build_matcher` makes one for timing single steps
    (benchmarks/speed.py).

    ``compile`` goes through :func:`atom_plugin._device.resolve_compile` (``self.compiled`` holds the choice).
    ``run_classes`` are all classes condensed by the whole run (random draws are made for all of them, in this
    order); ``local_classes`` (a subsequence) are the ones this process owns (all of them unless class-parallel).
    """

    def __init__(self, data: ImageTensorDataset, cfg: ATOMConfig, run_classes: list[int], local_classes: list[int],
                 device: torch.device, seed: int, init_images: torch.Tensor | None, compile: bool | None = None,
                 device_memory_budget_mb: float | None = None):
        self.cfg, self.device, self.seed = cfg, device, seed
        self.compiled = resolve_compile(compile, device)
        self.num_classes_total = data.num_classes
        self.weights = LossWeights.from_config(cfg)
        self.layers = tuple(cfg.layers) if (cfg.w_spatial > 0 or cfg.w_channel > 0) else ()
        self.ops = parse_strategy(cfg.dsa_strategy) if cfg.dsa else ()
        self.hw = tuple(data.image_shape[1:])
        self.factor = check_factor(cfg.factor, self.hw)
        self.real = RealPool(data, run_classes, local_classes, cfg.batch_real, device, device_memory_budget_mb)
        if cfg.real_batch == "representative":
            self.real.use_representative(cfg.representative_pool, cfg.recluster_every, seed)
        self.num_local = len(local_classes)
        rows = self.real.local_rows
        self.group_syn = rows.repeat_interleave(cfg.ipc * self.factor ** 2)  # decoded samples, class-major
        self.group_both = torch.cat([rows.repeat_interleave(self.n_real), self.group_syn])  # DSA on [real; syn]
        self.labels = torch.tensor(local_classes, dtype=torch.long).repeat_interleave(cfg.ipc)  # stored images
        self.syn = self._initial_images(init_images, data.image_shape).to(device).requires_grad_(True)
        self.optimizer = torch.optim.SGD([self.syn], lr=cfg.lr_images, momentum=cfg.momentum)
        self._build_networks(data.num_classes, local_classes, device_memory_budget_mb)
        self.g_net = torch.Generator(device=device)
        self.g_data = torch.Generator(device=device)
        self.column_weights: torch.Tensor | None = None

    @property
    def n_real(self) -> int:
        """Real images per class in each step's batch (``batch_real`` capped at the smallest run class)."""
        return self.real.n_real

    def _initial_images(self, init_images: torch.Tensor | None, shape: tuple[int, int, int]) -> torch.Tensor:
        """The stored synthetic images to start from, ``(L * ipc, C, H, W)`` float32 on the host: ``init_images``,
        else real images of each class (with f > 1 each tile a different downsampled one) or standard noise,
        drawn from the INIT stream for all run classes and sliced to the local ones."""
        L, ipc, f = self.num_local, self.cfg.ipc, self.factor
        if init_images is not None:
            if tuple(init_images.shape) != (L * ipc, *shape):
                raise ConfigError(f"init_images must have shape {(L * ipc, *shape)}, got {tuple(init_images.shape)}")
            return init_images.detach().clone().float()
        g = _rng.generator(self.seed, 0, _rng.INIT, "cpu")
        # "herding" comes as init_images from condense; a resumed run (its checkpoint overwrites them) or
        # build_matcher starts from random real images instead. A class smaller than ipc * f² reuses images.
        if self.cfg.init != "noise":
            return encode(self.real.initial_images(ipc * f * f, g), f)
        noise = torch.randn(self.real.num_run, ipc, *shape, generator=g)
        return noise[self.real.local_rows.cpu()].reshape(L * ipc, *shape)

    def _build_networks(self, num_classes: int, local_classes: list[int], budget_mb: float | None) -> None:
        """The matching network (no gradient to its weights), its per-step re-draw, the real/synthetic forwards
        (compiled when ``self.compiled``) and, with ``networks="pool"``, the network pool."""
        cfg, device, (c, h, w), L = self.cfg, self.device, tuple(self.syn.shape[1:]), self.num_local
        self.net = build_model(cfg.model, channels=c, num_classes=num_classes, image_size=(h, w),
                               **cfg.model_kwargs()).to(device)
        self.net.requires_grad_(False)
        self.net.train()  # as the official loops (matters only for BatchNorm)
        self.real_chunk = real_chunk_classes(self.net, self.layers, self.real.images[:1], self.n_real, L, device,
                                             budget_mb)
        # The per-iteration re-draw skips what matching never reads (norm affine 1/0, a trailing classifier);
        # every other weight gets the numbers reinit_ would give it (the reference matcher's).
        self.redraw = matching_redraw(self.net)
        # torch.compile fuses norm/activation/pool with the attention maps (|f|^p and its sums never hit memory
        # as separate passes); parameters are re-drawn (or loaded from the pool) in place, so one graph serves all.
        # The compiled callables are small modules holding the network, not the matcher: no reference cycle, so
        # a finished run's device tensors are freed at once.
        ipc_decoded = cfg.ipc * self.factor ** 2
        syn_labels = torch.tensor(local_classes, dtype=torch.long, device=device).repeat_interleave(ipc_decoded)
        self.real_stats = _RealStats(self.net, self.layers, L, self.weights, self.real_chunk * self.n_real)
        self.syn_loss = _SynLoss(self.net, self.layers, L, self.weights, syn_labels)
        if self.compiled:
            self.real_stats = torch.compile(self.real_stats, fullgraph=True)  # a graph break raises
            self.syn_loss = torch.compile(self.syn_loss, fullgraph=True)
        self.pool_nets = None
        if cfg.networks == "pool":
            from ._netpool import NetworkPool

            self.pool_nets = NetworkPool(self.net, cfg, self.seed, device, self.real)

    def decoded(self) -> torch.Tensor:
        """The synthetic training samples ``(L * ipc * factor², C, H, W)`` (differentiable w.r.t. ``self.syn``)."""
        return decode(self.syn, self.factor)

    def step(self, t: int) -> torch.Tensor:
        """Run iteration ``t`` (0-based); returns the loss as a 0-d tensor on the device (no host sync)."""
        ce_scale = None
        if self.pool_nets is None:
            redraw_(self.redraw, _rng.reseed(self.g_net, self.seed, t, _rng.NETWORK))
        else:
            acc = self.pool_nets.load_into(self.net, t)
            ce_scale = acc * self.cfg.ce_weight if self.cfg.ce_weight > 0 else None
        g = _rng.reseed(self.g_data, self.seed, t, _rng.DATA)
        real = self.real.class_batch(g, t, self.net.embed)  # (L * n_real, C, H, W), class-major
        syn = self.decoded()
        if self.ops:  # one call on [real; synthetic]: the same op and parameters per class on both sides
            draw = sample_params(self.ops, self.real.num_run, self.hw, g)
            both = apply_params(torch.cat([real, syn]), draw, self.group_both)
            real, syn = both[:real.shape[0]], both[real.shape[0]:]
        with torch.no_grad():
            stats = self.real_stats(real)
        if self.column_weights is None:  # the loss weight of each statistic's column, built once
            self.column_weights = statistic_weights(stats, self.weights)
        args = (syn, stats, self.column_weights) + ((ce_scale,) if ce_scale is not None else ())
        loss = self.syn_loss(*args)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=[self.syn])  # the images only: the network never gets a gradient
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
        if self.real.representative is not None:  # the selected samples: a resumed run matches the same ones
            out.update(self.real.representative.state_tensors())
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.syn.copy_(tensors["images"].to(self.device))
        if "momentum_buffer" in tensors:
            self.optimizer.state[self.syn]["momentum_buffer"] = tensors["momentum_buffer"].to(self.device).clone()
        if self.pool_nets is not None:
            self.pool_nets.load_state_tensors(tensors)
        if self.real.representative is not None:
            self.real.representative.load_state_tensors(tensors)


def matcher_class(mode: str = "fast") -> type:
    """The matcher of ``mode``: ``"fast"`` (:class:`Matcher`) or ``"reference"`` (the official loops'
    per-iteration structure on the same random numbers, :mod:`atom_plugin._reference`).

    Raises:
        ConfigError: another mode.
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be 'fast' or 'reference', got {mode!r}")
    if mode == "fast":
        return Matcher
    from ._reference import ReferenceModeMatcher

    return ReferenceModeMatcher


def build_matcher(train_set, config: ATOMConfig, *, mode: str = "fast", device: str | torch.device = "auto",
                  seed: int = 0, classes: Sequence[int] | None = None, compile: bool | None = None) -> Matcher:
    """A matcher over ``train_set`` (every class, or ``classes``) whose ``step(t)`` runs iteration t of a run
    with ``config`` (resolved here) and ``seed``: for timing or inspecting single iterations. ``step`` returns the
    loss as a 0-d float tensor on the device without a host sync; the images are ``matcher.syn``
    ``(K * ipc, C, H, W)`` (stored form). ``compile``: None (default) = automatic, True/False = always/never
    (the rule: :func:`atom_plugin._device.resolve_compile`; ``matcher.compiled`` holds the resolved choice).
    Raises ConfigError on bad settings or mode (no run checks such as IPC vs class size: use
    :func:`atom_plugin.condense` for runs)."""
    data = as_image_dataset(train_set)
    cfg = config.resolved(dsa_strategy_default=data.dsa_strategy)
    run = sorted(set(int(k) for k in classes)) if classes is not None else data.present_classes()
    return matcher_class(mode)(data, cfg, run, run, resolve_device(device), seed, None, compile=compile)


class _RealStats(torch.nn.Module):
    """The class-major real batch's per-class statistics (:func:`atom_plugin.loss.real_statistics`) through
    ``net``, forwarded ``chunk_rows`` images (whole classes, :func:`real_chunk_classes`) at a time when given:
    per-sample norms make the chunks' statistics those of one forward."""

    def __init__(self, net: torch.nn.Module, layers: tuple[int, ...], num_classes: int, weights: LossWeights,
                 chunk_rows: int | None = None):
        super().__init__()
        self.net, self.layers, self.num_classes, self.weights = net, layers, num_classes, weights
        self.chunk_rows = chunk_rows

    def forward(self, real: torch.Tensor) -> list[torch.Tensor]:
        if self.chunk_rows is None or self.chunk_rows >= real.shape[0]:
            maps, emb = self.net.forward_intermediates(real, self.layers)
            return real_statistics(maps, emb, self.num_classes, self.weights)
        per_class = real.shape[0] // self.num_classes
        parts = []
        for rows in real.split(self.chunk_rows):
            maps, emb = self.net.forward_intermediates(rows, self.layers)
            parts.append(real_statistics(maps, emb, rows.shape[0] // per_class, self.weights))
        return [torch.cat(s) for s in zip(*parts)]


class _SynLoss(_RealStats):
    """The matching loss of the synthetic batch against the real statistics, plus IDM's class-aware term (on
    ``syn_labels``, (K * ipc * f²,) int64) when ``ce_scale`` is given."""

    def __init__(self, net: torch.nn.Module, layers: tuple[int, ...], num_classes: int, weights: LossWeights,
                 syn_labels: torch.Tensor):
        super().__init__(net, layers, num_classes, weights)
        self.syn_labels = syn_labels

    def forward(self, syn: torch.Tensor, stats: list[torch.Tensor], column_weights: torch.Tensor,
                ce_scale: torch.Tensor | None = None) -> torch.Tensor:
        maps, emb = self.net.forward_intermediates(syn, self.layers)
        loss = matching_loss(stats, maps, emb, self.num_classes, self.weights, column_weights=column_weights)
        if ce_scale is not None:  # IDM's class-aware regularisation, summed over classes (mean within a class)
            ce = torch.nn.functional.cross_entropy(self.net.classifier(emb), self.syn_labels, reduction="sum")
            loss = loss + ce_scale * ce / (syn.shape[0] // self.num_classes)
        return loss


def real_chunk_classes(net: torch.nn.Module, layers: tuple[int, ...], probe: torch.Tensor, n_real: int,
                       num_classes: int, device: torch.device, budget_mb: float | None) -> int:
    """Classes per forward of the real batch, so that one forward's activations fit the device-memory budget.

    The budget is ``budget_mb`` (``device_memory_budget_mb``) when given, else half the free CUDA memory; on
    other devices without a budget, and for networks with BatchNorm (its batch statistics couple the classes,
    so the real batch stays one forward), every class goes in one forward. A class's cost is ``n_real`` times
    an upper bound of one sample's no-grad activations: every leaf module's output as if all were alive at
    once, plus the matched maps again (the attention maps' temporaries), measured on one forward of ``probe``.

    Args:
        net: the matcher's network (on ``device``).
        layers: the matched block indices.
        probe: ``(1, C, H, W)`` float32, one real image (any device).
        n_real: real images per class.
        num_classes: classes in the real batch.
        device: the network's device.
        budget_mb: MiB, or None.

    Why: TinyImageNet's 200 classes x 64 real images in one forward hold ~27 GB in ConvNet's first-block map
    alone (12800 x 128 x 64 x 64 float32).

    Returns:
        An int in ``[1, num_classes]``.
    """
    bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    if bn or (budget_mb is None and device.type != "cuda"):
        return num_classes
    budget = budget_mb * 2**20 if budget_mb is not None else 0.5 * torch.cuda.mem_get_info(device)[0]
    sizes = []

    def record(module, inputs, out):
        if isinstance(out, torch.Tensor):
            sizes.append(out.numel() * out.element_size())

    leaves = [m for m in net.modules() if next(m.children(), None) is None]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            maps, _ = net.forward_intermediates(probe.to(device), layers)
    finally:
        for h in hooks:
            h.remove()
    per_sample = probe.numel() * probe.element_size() + sum(sizes) + sum(m.numel() * m.element_size() for m in maps)
    return max(1, min(num_classes, int(budget // (per_sample * n_real))))
