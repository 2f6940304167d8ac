"""Siamese DSA: semantics on known tensors, per-class sharing, differentiability."""
import math

import pytest
import torch

from atom_plugin.dsa import OPS, DSADraw, DSARanges, apply_params, augment_batch, parse_strategy, sample_params
from atom_plugin.errors import ConfigError


def draw_for(op: str, groups: int = 1, **values) -> DSADraw:
    """A hand-made draw: every group uses ``op`` with neutral parameters unless given."""
    neutral = dict(brightness=torch.zeros(groups), saturation=torch.ones(groups), contrast=torch.ones(groups),
                   shift=torch.zeros(groups, 2, dtype=torch.long), cutout_center=torch.zeros(groups, 2, dtype=torch.long),
                   flip=torch.ones(groups, dtype=torch.bool), scale=torch.ones(groups, 2), angle=torch.zeros(groups))
    neutral.update({k: torch.as_tensor(v) for k, v in values.items()})
    return DSADraw(OPS, torch.full((groups,), OPS.index(op), dtype=torch.long), **neutral)


def test_parse_strategy():
    assert parse_strategy("color_crop_cutout_flip_scale_rotate") == OPS
    with pytest.raises(ConfigError, match="bad DSA strategy"):
        parse_strategy("color_blur")


def test_crop_is_integer_translation_with_zero_fill():
    x = torch.arange(1 * 1 * 4 * 4, dtype=torch.float).view(1, 1, 4, 4) + 1
    out = apply_params(x, draw_for("crop", shift=[[1, -1]]), torch.tensor([0]))
    expected = torch.zeros_like(x)
    expected[0, 0, :3, 1:] = x[0, 0, 1:, :3]  # out[r, c] = x[r + 1, c - 1]
    assert torch.equal(out, expected)


def test_flip_cutout_color_known_values():
    x = torch.rand(1, 1, 8, 8)
    assert torch.equal(apply_params(x, draw_for("flip"), torch.tensor([0])), x.flip(3))
    assert torch.equal(apply_params(x, draw_for("flip", flip=[False]), torch.tensor([0])), x)
    out = apply_params(x, draw_for("cutout", cutout_center=[[4, 4]]), torch.tensor([0]))
    hole = torch.zeros(8, 8, dtype=torch.bool)
    hole[2:6, 2:6] = True  # side round(0.5 * 8) = 4 centred at (4, 4)
    assert torch.equal(out[0, 0][hole], torch.zeros(16)) and torch.equal(out[0, 0][~hole], x[0, 0][~hole])
    rgb = torch.rand(1, 3, 4, 4)
    out = apply_params(rgb, draw_for("color", brightness=[0.25], saturation=[0.0], contrast=[1.0]), torch.tensor([0]))
    assert torch.allclose(out, (rgb + 0.25).mean(1, keepdim=True).expand_as(rgb), atol=1e-6)


def test_scale_and_rotate_known_geometry():
    x = torch.rand(1, 2, 9, 9)
    assert torch.allclose(apply_params(x, draw_for("scale"), torch.tensor([0])), x, atol=1e-5)
    out = apply_params(x, draw_for("rotate", angle=[math.pi / 2]), torch.tensor([0]))
    assert torch.allclose(out, torch.rot90(x, k=1, dims=(2, 3)), atol=1e-5) or \
        torch.allclose(out, torch.rot90(x, k=-1, dims=(2, 3)), atol=1e-5)
    zoom = apply_params(x, draw_for("scale", scale=[[0.5, 0.5]]), torch.tensor([0]))
    assert torch.allclose(zoom[..., 4, 4], x[..., 4, 4], atol=1e-5)  # the centre stays put


def test_siamese_real_and_synthetic_of_a_class_share_parameters():
    g = torch.Generator().manual_seed(3)
    draw = sample_params(OPS, 3, (12, 12), g)
    real = torch.randn(3 * 4, 1, 12, 12)
    syn = real[::4].clone()  # the first real image of each class
    out_real = apply_params(real, draw, torch.arange(3).repeat_interleave(4))
    out_syn = apply_params(syn, draw, torch.arange(3))
    assert torch.equal(out_real[::4], out_syn)
    # and the same op/parameters reach every image of the class: identical inputs -> identical outputs
    same = torch.randn(1, 1, 12, 12).expand(4, 1, 12, 12).contiguous()
    out = apply_params(same, draw, torch.zeros(4, dtype=torch.long))
    assert torch.equal(out, out[:1].expand_as(out))


def test_each_class_draws_its_own_op_and_draws_are_reproducible():
    a = sample_params(OPS, 64, (32, 32), torch.Generator().manual_seed(0))
    b = sample_params(OPS, 64, (32, 32), torch.Generator().manual_seed(0))
    for k, v in a.tensors().items():
        assert torch.equal(v, b.tensors()[k]), k
    assert len(set(a.op.tolist())) > 1  # per-class ops differ
    assert set(a.op.tolist()) <= set(range(len(OPS)))


@pytest.mark.parametrize("hw", [(28, 28), (28, 32)])
def test_draws_made_together_give_the_separate_draws_numbers_on_cpu(hw):
    """sample_params draws the colour, crop/cutout and geometry parameters in as few calls as it can (fewer
    launches); on the CPU this is the stream that one call per parameter gave, in that order."""
    groups, h, w, r = 7, *hw, DSARanges()
    g = torch.Generator().manual_seed(11)
    op = torch.randint(len(OPS), (groups,), generator=g)
    b, s, c = (torch.rand(groups, generator=g) for _ in range(3))
    sh, sw = int(h * r.crop_pad + 0.5), int(w * r.crop_pad + 0.5)
    shift = torch.stack([torch.randint(-sh, sh + 1, (groups,), generator=g),
                         torch.randint(-sw, sw + 1, (groups,), generator=g)], dim=1)
    ch, cw = int(h * r.cutout + 0.5), int(w * r.cutout + 0.5)
    centre = torch.stack([torch.randint(0, h + (1 - ch % 2), (groups,), generator=g),
                          torch.randint(0, w + (1 - cw % 2), (groups,), generator=g)], dim=1)
    flip, scale, angle = torch.rand(groups, generator=g), torch.rand(groups, 2, generator=g), torch.rand(groups, generator=g)
    d = sample_params(OPS, groups, hw, torch.Generator().manual_seed(11))
    assert torch.equal(d.op, op) and torch.equal(d.shift, shift) and torch.equal(d.cutout_center, centre)
    assert torch.equal(d.brightness, b - 0.5) and torch.equal(d.saturation, s * r.saturation)
    assert torch.equal(d.contrast, c + r.contrast)
    assert torch.equal(d.flip, flip < r.flip_p)
    assert torch.equal(d.scale, scale * (r.scale - 1 / r.scale) + 1 / r.scale)
    assert torch.equal(d.angle, (angle - 0.5) * 2 * r.rotate / 180 * math.pi)


def test_evaluation_mode_one_op_per_batch_params_per_image():
    draw = sample_params(OPS, 50, (32, 32), torch.Generator().manual_seed(1), shared_op=True)
    assert len(set(draw.op.tolist())) == 1
    assert len(set(draw.brightness.tolist())) == 50
    x = torch.randn(50, 3, 32, 32)
    out = augment_batch(x, "color_crop_cutout_flip_scale_rotate", torch.Generator().manual_seed(1))
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("op", OPS)
def test_differentiable_for_every_op(op):
    x = torch.rand(2, 3, 10, 10, requires_grad=True)
    draw = draw_for(op, groups=2, shift=[[1, 1], [0, -2]], cutout_center=[[3, 3], [5, 5]], angle=[0.2, -0.1],
                    scale=[[1.1, 0.9], [0.95, 1.15]], brightness=[0.1, -0.2], saturation=[1.5, 0.5],
                    contrast=[0.7, 1.2])
    out = apply_params(x, draw, torch.tensor([0, 1]))
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_deterministic_cuda_refuses_grid_sample_ops(deterministic_mode):
    """CUDA has no deterministic grid_sample backward: say so before the run, in one line with the ways out."""
    from atom_plugin.dsa import check_deterministic

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    ops = parse_strategy("color_crop_cutout_flip_scale_rotate")
    deterministic_mode(True)
    with pytest.raises(ConfigError) as err:
        check_deterministic(ops, cuda)
    msg = str(err.value)
    assert "\n" not in msg and "scale and rotate" in msg and "grid_sample" in msg
    assert "warn_only=True" in msg and "`dsa=False`" in msg and "`dsa_strategy`" in msg
    check_deterministic(ops, cpu)  # CPU's grid_sample backward is deterministic
    check_deterministic(parse_strategy("color_crop_cutout_flip"), cuda)  # no resampling op
    check_deterministic((), cuda)  # DSA off
    deterministic_mode(True, warn_only=True)
    check_deterministic(ops, cuda)
    deterministic_mode(False)
    check_deterministic(ops, cuda)


def test_condense_checks_determinism_before_any_work(deterministic_mode, monkeypatch):
    import importlib

    from atom_plugin import ATOMConfig, condense, load_dataset

    condense_module = importlib.import_module("atom_plugin.condense")
    monkeypatch.setattr(condense_module, "resolve_device", lambda device: torch.device("cuda"))  # a GPU run, on paper
    deterministic_mode(True)
    data = load_dataset("digits", split="train")
    with pytest.raises(ConfigError, match="grid_sample"):  # raised before anything touches the (absent) GPU
        condense(data, ATOMConfig(ipc=1, iterations=1, width=8), device="cuda")
