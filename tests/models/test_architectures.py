"""The network contract for every registered model, ConvNet's option grid, and the cross-architecture nets.

Contract: ``forward(x) -> (B, num_classes)``; ``forward_intermediates(x, indices) -> (maps, (B, embed_dim))``
with maps in the order of ``indices``; ``forward_features(x)`` (and its alias ``embed``) is that embedding and
``forward`` is ``classifier(forward_features(x))``; gradients reach the input; ``reinit_`` re-draws every parameter
deterministically from its generator.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from atom_plugin.errors import ConfigError
import atom_plugin
from atom_plugin.models import (ACTIVATIONS, NORMS, POOLINGS, build_model, check_model, image_hw, is_model,
                                list_models, make_activation, make_norm, make_pool, reinit_)

B = 2
K = 10
INPUTS = [(1, 28), (3, 32)]

# Documented per-stage activation shapes (C, H, W) and embedding sizes for the default options, per input size.
_VGG = [(64, 32, 32), (128, 16, 16), (256, 8, 8), (256, 8, 8), (512, 4, 4), (512, 4, 4), (512, 2, 2), (512, 2, 2)]
_CONVNET = [(128, 32, 32), (128, 16, 16), (128, 8, 8)]
EXPECTED = {
    ("alexnet", 28): ([(128, 32, 32), (192, 16, 16), (256, 8, 8), (192, 8, 8), (192, 8, 8)], 3072),
    ("alexnet", 32): ([(128, 32, 32), (192, 16, 16), (256, 8, 8), (192, 8, 8), (192, 8, 8)], 3072),
    ("vgg11", 28): (_VGG, 512),
    ("vgg11", 32): (_VGG, 512),
    ("resnet18", 28): ([(64, 28, 28), (128, 14, 14), (256, 7, 7), (512, 4, 4)], 512),
    ("resnet18", 32): ([(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)], 512),
    ("convnet", 28): (_CONVNET, 2048),
    ("convnet", 32): (_CONVNET, 2048),
    ("convnet-bn", 28): (_CONVNET, 2048),
    ("convnet-bn", 32): (_CONVNET, 2048),
}
OURS = ["alexnet", "vgg11", "resnet18"]
# every registered model with its defaults, plus the BatchNorm variants of the cross-architecture nets
CASES = [(name, {}) for name in list_models()] + [("vgg11", {"norm": "batchnorm"}), ("resnet18", {"norm": "batchnorm"})]


def _input(c: int, s: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(B, c, s, s, generator=torch.Generator().manual_seed(seed))


def test_cross_architecture_nets_are_registered():
    assert set(OURS + ["convnet", "convnet-bn"]) <= set(list_models())


@pytest.mark.parametrize("c,s", INPUTS, ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[n + "".join(f"-{v}" for v in kw.values()) for n, kw in CASES])
def test_contract(name, kwargs, c, s):
    torch.manual_seed(0)
    model = build_model(name, channels=c, num_classes=K, image_size=s, **kwargs)
    n = model.num_blocks
    assert isinstance(n, int) and n >= 1
    x = _input(c, s).requires_grad_(True)

    logits = model(x)
    assert logits.shape == (B, K)
    layers = list(range(n, 0, -1))  # reversed: maps come back in the order asked for
    maps, emb = model.forward_intermediates(x, layers)
    assert emb.shape == (B, model.embed_dim)
    assert len(maps) == n
    expected = EXPECTED.get((name, s))
    if expected is not None:
        shapes, dim = expected
        assert model.embed_dim == dim
        assert [tuple(m.shape) for m in maps] == [(B, *shapes[i - 1]) for i in layers]
    else:  # a model registered elsewhere without a documented table: only the generic contract
        assert all(m.dim() == 4 and m.shape[0] == B for m in maps)
    assert model.forward_intermediates(x, [])[0] == []

    # forward == classifier(forward_features); forward_features (and embed) == the embedding of forward_intermediates
    if hasattr(model, "forward_features"):
        assert torch.equal(model.forward_features(x), emb)
    torch.testing.assert_close(model.embed(x), emb)
    if isinstance(getattr(model, "classifier", None), nn.Module):
        torch.testing.assert_close(model.classifier(emb), logits)

    # gradients reach the input (through the logits and through a matched map)
    (logits.square().sum() + maps[-1].mean()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list_models())
def test_reinit_redraws_every_parameter_deterministically(name):
    model = build_model(name, channels=3, num_classes=K, image_size=32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)  # so norm weights/biases (reset to 1/0) visibly change too
    before = {k: v.clone() for k, v in model.named_parameters()}
    reinit_(model, torch.Generator().manual_seed(1))
    first = {k: v.clone() for k, v in model.named_parameters()}
    for k in before:
        assert not torch.equal(before[k], first[k]), f"{k} unchanged by reinit_"
    reinit_(model, torch.Generator().manual_seed(1))
    for k, v in model.named_parameters():
        assert torch.equal(v, first[k]), f"{k} differs for the same seed"
    reinit_(model, torch.Generator().manual_seed(2))
    drawn = {f"{mn}.{pn}" for mn, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
             for pn, _ in m.named_parameters(recurse=False)}
    assert drawn
    for k, v in model.named_parameters():
        if k in drawn:
            assert not torch.equal(v, first[k]), f"{k} identical for different seeds"
    x = _input(3, 32)
    assert torch.isfinite(model(x)).all()


def _convnet_grid():
    """Every value of every dimension at least once; all (norm, pool) pairs; widths 8/16 (+32/64 once)."""
    cases = []
    for i in range(15):
        cases.append(dict(width=(8, 16)[i % 2], depth=(1, 2, 3, 4)[i % 4], norm=NORMS[i % 5],
                          act=ACTIVATIONS[i % 3], pool=POOLINGS[i // 5]))
    cases += [dict(width=32, depth=1, norm="instancenorm", act="relu", pool="avgpool"),
              dict(width=64, depth=1, norm="batchnorm", act="relu", pool="maxpool")]
    for dim, values in (("width", (32, 64)), ("depth", (1, 2, 3, 4)), ("norm", NORMS), ("act", ACTIVATIONS),
                        ("pool", POOLINGS)):
        assert {c[dim] for c in cases} >= set(values)
    return cases


@pytest.mark.parametrize("c,s", INPUTS, ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("opts", _convnet_grid(), ids=lambda o: "-".join(str(v) for v in o.values()))
def test_convnet_variants(opts, c, s):
    model = build_model("convnet", channels=c, num_classes=K, image_size=s, **opts)
    side = 32  # a 28x28 input is padded to 32x32 by the first convolution
    sides = []
    for _ in range(opts["depth"]):
        sides.append(side)
        if opts["pool"] != "none":
            side //= 2
    assert model.num_blocks == opts["depth"]
    assert model.embed_dim == opts["width"] * side * side
    x = _input(c, s)
    maps, emb = model.forward_intermediates(x, list(range(1, opts["depth"] + 1)))
    assert [tuple(m.shape) for m in maps] == [(B, opts["width"], h, h) for h in sides]
    assert emb.shape == (B, model.embed_dim)
    logits = model(x)
    assert logits.shape == (B, K) and torch.isfinite(logits).all()


@pytest.mark.parametrize("pool", ["avgpool", "maxpool"])
def test_convnet_too_deep_for_28x28_raises(pool):
    with pytest.raises(ConfigError, match="depth 6"):
        build_model("convnet", channels=1, num_classes=K, image_size=28, width=8, depth=6, pool=pool)


def test_unknown_model_lists_names():
    with pytest.raises(ConfigError) as info:
        build_model("resnet1000", channels=3, num_classes=K, image_size=32)
    for name in list_models():
        assert name in str(info.value)


# ---- the cross-architecture nets' own options -------------------------------------------------------------


@pytest.mark.parametrize("name", ["vgg11", "resnet18"])
def test_unknown_norm_raises(name):
    with pytest.raises(ConfigError, match=r"norm must be one of: instancenorm, batchnorm \(got 'layernorm'\)"):
        build_model(name, channels=3, num_classes=K, image_size=32, norm="layernorm")


def test_alexnet_takes_no_norm():
    with pytest.raises(TypeError):
        build_model("alexnet", channels=3, num_classes=K, image_size=32, norm="batchnorm")


@pytest.mark.parametrize("name,size", [("alexnet", 4), ("vgg11", 16), ("vgg11", 24), ("resnet18", 4)])
def test_image_too_small_raises(name, size):
    with pytest.raises(ConfigError, match="larger images|at least"):
        build_model(name, channels=3, num_classes=K, image_size=size)


@pytest.mark.parametrize("name", OURS)
def test_bad_io_arguments_raise(name):
    with pytest.raises(ConfigError):
        build_model(name, channels=0, num_classes=K, image_size=32)
    with pytest.raises(ConfigError):
        build_model(name, channels=3, num_classes=0, image_size=32)


@pytest.mark.parametrize("name", OURS)
def test_invalid_layer_index_names_range(name):
    model = build_model(name, channels=1, num_classes=K, image_size=28)
    x = _input(1, 28)
    n = model.num_blocks
    for bad in (0, n + 1, -1, "1", True, 1.0):
        with pytest.raises(ConfigError, match=rf"1\.\.{n}"):
            model.forward_intermediates(x, [1, bad])


@pytest.mark.parametrize("name", OURS)
def test_repeated_layers_and_single_layer_match_full_pass(name):
    model = build_model(name, channels=1, num_classes=K, image_size=28).eval()
    x = _input(1, 28)
    with torch.no_grad():
        full, emb = model.forward_intermediates(x, list(range(1, model.num_blocks + 1)))
        maps, emb2 = model.forward_intermediates(x, (2, 1, 2))
    torch.testing.assert_close(emb, emb2)
    for got, want in zip(maps, (full[1], full[0], full[1])):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name,hw,dim", [("alexnet", (32, 28), 192 * 4 * 3), ("resnet18", (32, 28), 512)])
def test_non_square_images(name, hw, dim):
    model = build_model(name, channels=3, num_classes=K, image_size=hw)
    assert model.embed_dim == dim
    x = torch.randn(B, 3, *hw)
    assert model(x).shape == (B, K)
    assert model.embed(x).shape == (B, dim)
    assert model.forward_features(x).shape == (B, dim)


def test_instancenorm_is_groupnorm_per_channel_and_batchnorm_variant():
    for name in ("vgg11", "resnet18"):
        inorm = build_model(name, channels=3, num_classes=K, image_size=32)
        gns = [m for m in inorm.modules() if isinstance(m, nn.GroupNorm)]
        assert gns and all(m.num_groups == m.num_channels and m.affine for m in gns)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in inorm.modules())
        bn = build_model(name, channels=3, num_classes=K, image_size=32, norm="batchnorm")
        assert any(isinstance(m, nn.BatchNorm2d) for m in bn.modules())
        assert not any(isinstance(m, nn.GroupNorm) for m in bn.modules())
    assert not any(isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))
                   for m in build_model("alexnet", channels=3, num_classes=K, image_size=32).modules())


def test_resnet18_size_matches_dc():
    # DC's CIFAR ResNet-18 (3 input channels, 10 classes) has 11,173,962 parameters with GroupNorm(C, C)
    model = build_model("resnet18", channels=3, num_classes=10, image_size=32)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962


def test_is_model_and_check_model_are_the_registry_check():
    for name in list_models():
        assert is_model(name) and is_model(name.upper()) and check_model(name.upper()) == name
    assert not is_model("resnet1000") and not is_model(None) and not is_model("")
    assert atom_plugin.is_model is is_model
    with pytest.raises(ConfigError, match="unknown model 'resnet1000'; choose one of: .*convnet"):
        check_model("resnet1000")


# ---- the shared layer choices and image sizes -------------------------------------------------------------


def test_layer_factories_build_dc_layers():
    gn = make_norm("instancenorm", 8)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 8 and gn.affine
    assert isinstance(make_norm("batchnorm", 8), nn.BatchNorm2d)
    assert make_norm("groupnorm", 8).num_groups == 4
    ln = make_norm("layernorm", 8, (4, 5))
    assert isinstance(ln, nn.LayerNorm) and ln.normalized_shape == (8, 4, 5) and ln.elementwise_affine
    assert isinstance(make_norm("none", 8), nn.Identity)
    assert [type(make_activation(a)).__name__ for a in ACTIVATIONS] == ["ReLU", "Sigmoid", "LeakyReLU"]
    assert make_activation("leakyrelu").negative_slope == 0.01
    assert [type(make_pool(p)).__name__ for p in POOLINGS] == ["AvgPool2d", "MaxPool2d", "Identity"]
    with pytest.raises(ConfigError, match="layernorm needs the map size"):
        make_norm("layernorm", 8)
    with pytest.raises(ConfigError, match=r"^norm must be one of: instancenorm, batchnorm \(got 'groupnorm'\)$"):
        make_norm("groupnorm", 8, choices=("instancenorm", "batchnorm"))
    with pytest.raises(ConfigError, match=r"^act must be one of: relu, sigmoid, leakyrelu \(got 'gelu'\)$"):
        make_activation("gelu")
    with pytest.raises(ConfigError, match=r"^pool must be one of: avgpool, maxpool, none \(got 'max'\)$"):
        make_pool("max")


@pytest.mark.parametrize("option,value", [("norm", "layer"), ("act", "gelu"), ("pool", "max")])
def test_convnet_unknown_option_names_the_choices(option, value):
    allowed = {"norm": NORMS, "act": ACTIVATIONS, "pool": POOLINGS}[option]
    with pytest.raises(ConfigError) as info:
        build_model("convnet", channels=1, num_classes=K, image_size=28, **{option: value})
    assert str(info.value) == f"ConvNet {option} must be one of: {', '.join(allowed)} (got {value!r})"


@pytest.mark.parametrize("size,hw", [(28, (28, 28)), ((32, 28), (32, 28)), ([16, 8], (16, 8)),
                                     (torch.Size([4, 4]), (4, 4)), ((32.0, 32), (32, 32))])
def test_image_hw_normalises(size, hw):
    got = image_hw(size)
    assert got == hw and all(type(v) is int for v in got)


@pytest.mark.parametrize("size", [0, -1, True, (0, 32), (32,), (32, 32, 3), (32.5, 32), "32", ("32", "32"), None,
                                  (True, 4)])
def test_image_hw_rejects(size):
    with pytest.raises(ConfigError, match="image_size must be a positive int or \\(height, width\\)"):
        image_hw(size)
    with pytest.raises(ConfigError, match="image_size"):
        build_model("convnet", channels=1, num_classes=K, image_size=size)
