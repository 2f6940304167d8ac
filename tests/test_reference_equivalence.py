"""The fast path changes speed, not results: it matches the official-structure reference mode."""
import pytest
import torch

from atom_plugin import ATOMConfig, condense
from atom_plugin.errors import ConfigError
from atom_plugin.matcher import Matcher, matcher_class


@pytest.mark.parametrize("preset", ["atom", "datadam", "dm"])
def test_same_random_numbers_same_loss_and_gradients(digits, preset):
    # reference mode re-draws a random network (no pool); the atom preset keeps its factor 2 at IPC 3
    cfg = ATOMConfig(preset=preset, ipc=3, width=16, batch_real=6, networks="random")
    cfg = cfg.resolved(dsa_strategy_default=digits.dsa_strategy)
    assert cfg.factor == (2 if preset == "atom" else 1)
    classes = list(range(10))
    fast = Matcher(digits, cfg, classes, classes, torch.device("cpu"), 11, None)
    ref = matcher_class("reference")(digits, cfg, classes, classes, torch.device("cpu"), 11, None)
    assert torch.equal(fast.syn, ref.syn)
    for t in range(3):
        lf, lr = fast.step(t), ref.step(t)
        assert torch.allclose(lf, lr, rtol=1e-5), (t, float(lf), float(lr))
        # equal images after each SGD step <=> equal image gradients (lr 1, same momentum state)
        assert torch.allclose(fast.syn, ref.syn, atol=1e-5, rtol=1e-5), float((fast.syn - ref.syn).abs().max())
        assert fast.syn.grad is not None and torch.allclose(fast.syn.grad, ref.syn.grad, rtol=1e-4, atol=1e-6)


def test_reference_mode_through_condense(digits):
    cfg = ATOMConfig(ipc=2, iterations=2, width=16, batch_real=6, networks="random")
    a = condense(digits, cfg, device="cpu", seed=3)
    b = condense(digits, cfg, device="cpu", seed=3, mode="reference")
    assert b.provenance["mode"] == "reference"
    assert torch.allclose(a.images, b.images, atol=1e-5)
    with pytest.raises(ConfigError, match="networks='random'"):
        condense(digits, cfg.replace(networks="pool"), device="cpu", mode="reference")
