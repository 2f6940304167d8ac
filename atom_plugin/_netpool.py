"""A pool of partly trained matching networks (IDM's "enriched model sampling", Zhao et al., CVPR 2023, Sec. 3.3).

``networks="pool"`` replaces DM's freshly drawn network by one of ``pool_size`` networks that learn as the
condensation runs. Iteration t (all draws from the counter-based streams of :mod:`atom_plugin._rng`, so a
resumed or class-parallel run makes the same choices):

1. draw a slot s ~ U{0..P-1} and load its weights into the matching network (the loss sees that network);
2. after the synthetic step, train slot s for ``pool_steps`` SGD steps (lr ``pool_lr``, momentum 0.9, weight
   decay 5e-4, torch's SGD arithmetic) on ``pool_batch`` real images drawn uniformly from the run's classes,
   cross-entropy, no augmentation (as IDM); record its accuracy on the last batch (IDM's weight of the
   class-aware term);
3. a slot that has taken ``pool_cap`` steps is re-drawn (PyTorch's default initialisation) with zero momentum.

The pool is held as flat ``(P, D)`` float32 weight and momentum tensors on the device (D = parameters of one
network), plus ``(P,)`` step counts (host) and accuracies (device): all four go into checkpoints. No step reads a
value back from the device: the slot, the real batches' row indices and the re-draws come from CPU generators
(the same numbers wherever the real pool lives), the step counts are host bookkeeping, and the accuracy that
weights the class-aware term stays on the device. A slot is re-drawn (on the CPU, copied over) only when it
reaches the cap.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from . import _rng
from ._realpool import RealPool
from .models import reinit_

_MOMENTUM, _WEIGHT_DECAY = 0.9, 5e-4
_STATE = ("pool_weights", "pool_momentum", "pool_age", "pool_acc")


class NetworkPool:
    """``pool_size`` networks of the matching network's architecture, trained as the condensation runs.

    Args:
        net: the matching network (its architecture is copied; its own weights are not used).
        cfg: the resolved ATOMConfig (pool_size, pool_steps, pool_cap, pool_batch, pool_lr).
        seed, device: the run's seed and compute device.
        real: the run's :class:`~atom_plugin._realpool.RealPool`; the training batches are its
            :meth:`~atom_plugin._realpool.RealPool.uniform_batch` (uniform over the run's classes).
    """

    def __init__(self, net: nn.Module, cfg, seed: int, device: torch.device, real: RealPool):
        self.cfg, self.seed, self.device = cfg, seed, device
        self.trainer = copy.deepcopy(net).requires_grad_(True).train()
        self.params = list(self.trainer.parameters())
        size = sum(p.numel() for p in self.params)
        P = cfg.pool_size
        self.weights = torch.empty(P, size, device=device)
        for i in range(P):
            reinit_(self.trainer, _rng.generator(seed, i, _rng.POOL_INIT, device))
            self.weights[i] = self._flat()
        self.momentum = torch.zeros(P, size, device=device)
        self.age = torch.zeros(P, dtype=torch.long)  # SGD steps per slot: host bookkeeping, no device read
        self.acc = torch.zeros(P, device=device)
        self.real = real  # its batches' rows are drawn on the CPU (g_rows), wherever the pool lives
        self.g = torch.Generator()  # slot choice and re-draws, on the CPU: the host knows the slot without a sync
        self.g_rows = torch.Generator()
        self.redraw_net = self.trainer if device.type == "cpu" else copy.deepcopy(self.trainer).cpu()
        self.slot = 0

    def _flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    @torch.no_grad()
    def _assign(self, net_params, vec: torch.Tensor) -> None:
        offset = 0
        for p in net_params:
            p.copy_(vec[offset:offset + p.numel()].view_as(p))
            offset += p.numel()

    @torch.no_grad()
    def load_into(self, net: nn.Module, t: int) -> torch.Tensor:
        """Draw iteration ``t``'s slot and copy its weights into ``net``; returns the slot's last training
        accuracy as a 0-d float tensor on the device (in [0, 1]; 0 for a network not trained yet)."""
        _rng.reseed(self.g, self.seed, t, _rng.POOL)
        self.slot = int(torch.randint(self.cfg.pool_size, (1,), generator=self.g))
        self._assign(net.parameters(), self.weights[self.slot])
        return self.acc[self.slot]

    def train_step(self, t: int) -> None:
        """Train iteration ``t``'s slot ``pool_steps`` SGD steps; re-draw it once it has ``pool_cap`` steps."""
        cfg, s = self.cfg, self.slot
        w, buf = self.weights[s], self.momentum[s]
        _rng.reseed(self.g_rows, self.seed, t, _rng.POOL_DATA)
        for _ in range(cfg.pool_steps):
            self._assign(self.params, w)
            x, y = self.real.uniform_batch(cfg.pool_batch, self.g_rows)
            logits = self.trainer(x)
            grads = torch.autograd.grad(F.cross_entropy(logits, y), self.params)
            with torch.no_grad():
                d = torch.cat([g.reshape(-1) for g in grads]).add_(w, alpha=_WEIGHT_DECAY)
                buf = buf.mul(_MOMENTUM).add_(d)
                w = w - cfg.pool_lr * buf
                self.acc[s] = (logits.argmax(1) == y).float().mean()
        with torch.no_grad():
            self.age[s] += cfg.pool_steps
            if int(self.age[s]) >= cfg.pool_cap:  # re-drawn with zero momentum, age and accuracy
                reinit_(self.redraw_net, self.g)
                w = torch.cat([p.detach().reshape(-1) for p in self.redraw_net.parameters()]).to(self.device)
                buf = torch.zeros_like(buf)
                self.age[s] = 0
                self.acc[s] = 0.0
            self.weights[s] = w
            self.momentum[s] = buf

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The pool's checkpoint tensors (weights, momentum, step counts, accuracies)."""
        return dict(zip(_STATE, (self.weights, self.momentum, self.age, self.acc)))

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_tensors` (shapes must match the pool's)."""
        for name, dst in zip(_STATE, (self.weights, self.momentum, self.age, self.acc)):
            dst.copy_(tensors[name].to(dst.device))
