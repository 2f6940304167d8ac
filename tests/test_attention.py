import pytest
import torch

from atom_plugin.attention import attention_maps, channel_attention, spatial_attention


def test_shapes_and_unit_norm():
    f = torch.randn(6, 5, 4, 3)
    for p in (1, 2, 3.5, 4):
        s, c = spatial_attention(f, p), channel_attention(f, p)
        assert s.shape == (6, 12) and c.shape == (6, 5)
        assert torch.allclose(s.norm(dim=1), torch.ones(6), atol=1e-6)
        assert torch.allclose(c.norm(dim=1), torch.ones(6), atol=1e-6)
        assert (s >= 0).all() and (c >= 0).all()


def test_values_match_definition():
    f = torch.tensor([[[[1.0, -2.0]], [[3.0, 0.0]]]])  # (1, C=2, H=1, W=2)
    # spatial, p=2: sum_c |f|^2 per position = [1+9, 4+0] -> normalised
    expected = torch.tensor([[10.0, 4.0]]) / (100.0 + 16.0) ** 0.5
    assert torch.allclose(spatial_attention(f, 2), expected)
    # channel, p=1: sum_hw |f| per channel = [3, 3] -> [1, 1]/sqrt(2)
    assert torch.allclose(channel_attention(f, 1), torch.tensor([[1.0, 1.0]]) / 2 ** 0.5)
    # general p goes through pow and agrees with the special-cased p=4
    assert torch.allclose(spatial_attention(f, 4.0), spatial_attention(f, 4.000001), atol=1e-5)


def test_zero_map_gives_zero_row_not_nan():
    f = torch.zeros(2, 3, 2, 2)
    assert torch.equal(spatial_attention(f), torch.zeros(2, 4))
    assert torch.equal(channel_attention(f), torch.zeros(2, 3))


def test_gradients_flow():
    f = torch.rand(3, 4, 2, 2, requires_grad=True)
    (spatial_attention(f).sum() + channel_attention(f).pow(2).sum()).backward()
    assert f.grad is not None and torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 4.0])
def test_attention_maps_equal_the_separate_maps_and_skip_what_is_off(p):
    f = torch.randn(5, 6, 4, 3, generator=torch.Generator().manual_seed(3))
    a_s, a_c = attention_maps(f, p)
    assert torch.allclose(a_s, spatial_attention(f, p), atol=1e-7)
    assert torch.allclose(a_c, channel_attention(f, p), atol=1e-7)
    assert attention_maps(f, p, spatial=False)[0] is None and attention_maps(f, p, channel=False)[1] is None
