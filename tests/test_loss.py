"""The ATOM-style loss against an independent per-class reference, plus its invariants."""
import pytest
import torch
import torch.nn.functional as F

from atom_plugin import ATOMConfig
from atom_plugin.loss import LossWeights, atom_loss, matching_loss, real_statistics
from atom_plugin.matcher import build_matcher
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
    w = LossWeights.from_config(cfg)
    return matching_loss(real_statistics(rm, re, K, w), sm, se, K, w)


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


def test_real_statistics_carry_no_graph_even_through_a_network_that_requires_grad():
    cfg, net, real, syn = _setup("atom")
    net.requires_grad_(True)
    maps, emb = net.forward_intermediates(real, cfg.layers)
    assert emb.requires_grad  # the forward builds a graph ...
    stats = real_statistics(maps, emb, 3, LossWeights.from_config(cfg))
    assert stats and not any(s.requires_grad for s in stats)  # ... which the real side's statistics drop


@pytest.mark.parametrize("networks", ["random", "pool"])
def test_gradient_reaches_images_not_network(digits, networks):
    """The loop's contract (``Matcher.step``): one step differentiates the loss w.r.t. the images only, so the
    images get a gradient and move, while the matching network's parameters get none, even when they require
    grad (the pool's class-aware term reads the network's classifier too)."""
    cfg = ATOMConfig(ipc=1, width=8, batch_real=4, factor=1, iterations=1, networks=networks, pool_size=2,
                     pool_batch=8)
    m = build_matcher(digits, cfg, device="cpu", classes=[0, 1, 2])
    m.net.requires_grad_(True)
    before = m.syn.detach().clone()
    m.step(0)
    assert m.syn.grad is not None and m.syn.grad.abs().sum() > 0 and not torch.equal(m.syn.detach(), before)
    params = list(m.net.parameters())
    assert params and all(p.requires_grad for p in params)  # the step did not turn them off ...
    assert [n for n, p in m.net.named_parameters() if p.grad is not None] == []  # ... and gave them no gradient


def test_atom_loss_is_a_deprecated_alias_of_matching_loss():
    cfg, net, real, syn = _setup("atom")
    w = LossWeights.from_config(cfg)
    rm, re = net.forward_intermediates(real, cfg.layers)
    sm, se = net.forward_intermediates(syn, cfg.layers)
    with pytest.warns(DeprecationWarning, match="use atom_plugin.loss.matching_loss"):
        old = atom_loss(rm, re, sm, se, 3, w)
    assert torch.equal(old, matching_loss(real_statistics(rm, re, 3, w), sm, se, 3, w))
