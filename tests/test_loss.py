"""The ATOM-style loss against an independent per-class reference, plus its invariants."""
import pytest
import torch
import torch.nn.functional as F

from atom_plugin import ATOMConfig
from atom_plugin.loss import LossWeights, atom_loss
from atom_plugin.models import build_model, reinit_


def reference_loss(net, real, syn, K, cfg):
    """Straight from the formula: loops over classes and layers, attention computed by hand."""
    w = cfg
    total = 0.0
    nr, ns = real.shape[0] // K, syn.shape[0] // K
    layers = list(cfg.layers) if (w.w_spatial or w.w_channel) else []
    for k in range(K):
        rk, sk = real[k * nr:(k + 1) * nr], syn[k * ns:(k + 1) * ns]
        rm, re = net.forward_intermediates(rk, layers)
        sm, se = net.forward_intermediates(sk, layers)
        for fr, fs in zip(rm, sm):
            def sp(f):
                return F.normalize((f.abs() ** w.power).sum(1).flatten(1), dim=1)

            def ch(f):
                return F.normalize((f.abs() ** w.power).sum((2, 3)), dim=1)

            total = total + w.w_spatial * ((sp(fr).mean(0) - sp(fs).mean(0)) ** 2).sum()
            total = total + w.w_channel * ((ch(fr).mean(0) - ch(fs).mean(0)) ** 2).sum()
        total = total + w.w_embed * ((re.mean(0) - se.mean(0)) ** 2).sum()
    return total


def _setup(preset, **kw):
    cfg = ATOMConfig(preset=preset, width=16, **kw).resolved()
    net = build_model("convnet", channels=1, num_classes=3, image_size=28, **cfg.model_kwargs())
    reinit_(net, torch.Generator().manual_seed(0))
    net.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    real = torch.randn(3 * 5, 1, 28, 28, generator=g)
    syn = torch.randn(3 * 2, 1, 28, 28, generator=g).requires_grad_(True)
    return cfg, net, real, syn


def _ours(cfg, net, real, syn, K=3):
    layers = cfg.layers if (cfg.w_spatial or cfg.w_channel) else ()
    rm, re = net.forward_intermediates(real, layers)
    sm, se = net.forward_intermediates(syn, layers)
    return atom_loss(rm, re, sm, se, K, LossWeights.from_config(cfg))


@pytest.mark.parametrize("preset", ["atom", "datadam", "dm"])
def test_matches_reference_per_preset(preset):
    cfg, net, real, syn = _setup(preset)
    ours = _ours(cfg, net, real, syn)
    ref = reference_loss(net, real, syn, 3, cfg)
    assert torch.allclose(ours, ref, rtol=1e-5), (ours, ref)
    g1, = torch.autograd.grad(ours, syn)
    g2, = torch.autograd.grad(ref, syn)
    assert torch.allclose(g1, g2, rtol=1e-4, atol=1e-7)


def test_presets_reduce_to_their_terms():
    # dm = embedding only; datadam = spatial (p=1) + embedding; atom has a channel term on top.
    cfg_dm, net, real, syn = _setup("dm")
    only_embed = _ours(ATOMConfig(preset="atom", width=16, w_spatial=0, w_channel=0, w_embed=1).resolved(), net, real, syn)
    assert torch.allclose(_ours(cfg_dm, net, real, syn), only_embed)
    dd = ATOMConfig(preset="datadam", width=16).resolved()
    assert (dd.w_spatial, dd.w_channel, dd.w_embed, dd.power, dd.layers) == (100.0, 0.0, 1.0, 1.0, (1, 2))
    spatial_only = _ours(dd.replace(w_embed=0.0), net, real, syn)
    embed_only = _ours(dd.replace(w_spatial=0.0, w_embed=1.0, layers=(1, 2)), net, real, syn)
    assert torch.allclose(_ours(dd, net, real, syn), spatial_only + embed_only, rtol=1e-5)
    atom = ATOMConfig(preset="atom", width=16).resolved()
    assert atom.w_spatial > 0 and atom.w_channel > 0
    channel_only = _ours(atom.replace(w_spatial=0.0, w_embed=0.0), net, real, syn)
    assert channel_only > 0


def test_zero_when_synthetic_equals_real_and_positive_otherwise():
    cfg, net, real, _ = _setup("atom")
    same = real.clone().requires_grad_(True)
    assert _ours(cfg, net, real, same).item() <= 1e-6
    # a permutation inside each class keeps the class means, hence the loss
    perm = torch.cat([torch.randperm(5) + 5 * k for k in range(3)])
    assert _ours(cfg, net, real, real[perm]).item() <= 1e-6
    other = torch.randn_like(real)
    assert _ours(cfg, net, real, other).item() > 1e-2


def test_gradient_reaches_images_not_network():
    cfg, net, real, syn = _setup("atom")
    for p in net.parameters():
        p.requires_grad_(True)
    loss = _ours(cfg, net, real.detach(), syn)
    loss.backward()
    assert syn.grad is not None and syn.grad.abs().sum() > 0
    # the real side is detached inside atom_loss: its statistics carry no graph
    assert real.grad is None
