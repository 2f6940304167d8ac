"""Reference mode: one iteration with the per-iteration structure of the official DM/DataDAM loops.

This is the oracle the fast path is checked against, and the honest baseline of the speed benchmark. It draws
the SAME random numbers as :class:`atom_plugin.matcher.Matcher` (network weights, real batch, DSA op and
parameters) but spends them the way the official code does:

* a new network module is constructed every iteration (on the CPU) and moved to the device;
* classes are visited in a Python loop: each class's real batch is gathered, its DSA parameters are read to
  the host and augmentation matrices are built from Python lists, then applied to that class's real and
  synthetic images;
* the real batch is forwarded with autograd on and detached afterwards;
* the error terms are computed on the CPU (features copied to host memory, as DataDAM's ``error`` does).

Same arithmetic, same result up to float rounding; only the speed differs.
"""
from __future__ import annotations

import torch


from . import _rng
from .attention import channel_attention, spatial_attention
from .dsa import DSADraw, apply_params, sample_params
from .errors import ConfigError
from .matcher import Matcher
from .models import build_model, reinit_


class ReferenceMatcher:
    """Mixin over :class:`~atom_plugin.matcher.Matcher`: replaces ``step`` with the official-structure iteration.

    Raises (on construction): ConfigError for ``networks="pool"`` (the official loops draw a fresh network) and
    for ``real_batch="representative"`` (they draw uniform batches).
    """

    def __init__(self, data, cfg, *args, **kwargs):
        if cfg.networks != "random":
            raise ConfigError("mode='reference' re-creates the official loops' fresh random network; use "
                              "networks='random' with it, or mode='fast' for the network pool")
        if cfg.real_batch != "uniform":
            raise ConfigError("mode='reference' re-creates the official loops' uniform real batches; use "
                              "real_batch='uniform' with it, or mode='fast' for representative batches")
        super().__init__(data, cfg, *args, **kwargs)

    def step(self, t: int) -> torch.Tensor:  # noqa: C901 - deliberately plain
        cfg, dev = self.cfg, self.device
        # 1. a brand-new network, built on the CPU, then given the run's weights for this iteration
        net = build_model(cfg.model, channels=self.syn.shape[1], num_classes=self.num_classes_total,
                          image_size=self.hw, **cfg.model_kwargs())
        net = net.to(dev)
        reinit_(net, _rng.reseed(self.g_net, self.seed, t, _rng.NETWORK))
        for p in net.parameters():
            p.requires_grad_(False)
        net.train()
        # 2. the same draws as the fast path
        g = _rng.reseed(self.g_data, self.seed, t, _rng.DATA)
        pos = self.real.positions(g)
        draw = sample_params(self.ops, self.real.num_run, self.hw, g) if self.ops else None
        reals, syns = [], []
        ipc = cfg.ipc * self.factor ** 2  # decoded samples per class
        decoded = self.decoded()
        for i, row in enumerate(self.real.local_rows.tolist()):  # per-class Python loop
            idx = (pos[row] + self.real.offsets[row]).tolist()
            img_real = torch.stack([self.real.images[j] for j in idx]).to(dev)
            img_syn = decoded[i * ipc:(i + 1) * ipc]
            if draw is not None:
                one = _host_draw(draw, row)  # parameters read to the host, rebuilt from Python lists
                group_r = torch.zeros(img_real.shape[0], dtype=torch.long, device=dev)
                group_s = torch.zeros(img_syn.shape[0], dtype=torch.long, device=dev)
                img_real = apply_params(img_real, one, group_r)
                img_syn = apply_params(img_syn, one, group_s)
            reals.append(img_real)
            syns.append(img_syn)
        real_all, syn_all = torch.cat(reals), torch.cat(syns)
        # 3. forward both; the real side with autograd on, detached afterwards
        rmaps, remb = net.forward_intermediates(real_all, self.layers)
        rmaps, remb = [m.detach() for m in rmaps], remb.detach()
        smaps, semb = net.forward_intermediates(syn_all, self.layers)
        # 4. the error on the CPU, class by class
        w, K = self.weights, self.num_local
        loss = torch.zeros(())
        for fr, fs in zip(rmaps, smaps):
            for weight, att in ((w.w_spatial, spatial_attention), (w.w_channel, channel_attention)):
                if weight > 0:
                    ar, as_ = att(fr, w.power).cpu(), att(fs, w.power).cpu()
                    loss = loss + weight * _class_error(ar, as_, K)
        if w.w_embed > 0:
            loss = loss + w.w_embed * _class_error(remb.cpu(), semb.cpu(), K)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach().to(dev)


def _class_error(real: torch.Tensor, syn: torch.Tensor, K: int) -> torch.Tensor:
    total = torch.zeros(())
    nr, ns = real.shape[0] // K, syn.shape[0] // K
    for k in range(K):
        total = total + ((real[k * nr:(k + 1) * nr].mean(0) - syn[k * ns:(k + 1) * ns].mean(0)) ** 2).sum()
    return total


def _host_draw(draw: DSADraw, row: int) -> DSADraw:
    """Class ``row``'s parameters as a one-group draw, rebuilt on the host from Python numbers."""
    dev = draw.op.device
    vals = {k: v[row].tolist() for k, v in draw.tensors().items()}
    def t(x, dtype=None):
        return torch.tensor([x], dtype=dtype).to(dev)
    return DSADraw(draw.ops, t(vals["op"], torch.long), t(vals["brightness"]), t(vals["saturation"]),
                   t(vals["contrast"]), t(vals["shift"], torch.long), t(vals["cutout_center"], torch.long),
                   t(vals["flip"], torch.bool), t(vals["scale"]), t(vals["angle"]))


class ReferenceModeMatcher(ReferenceMatcher, Matcher):
    """The reference-mode matcher (:func:`atom_plugin.matcher.matcher_class`)."""
