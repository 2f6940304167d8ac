"""The CPU suite's core checks, on a CUDA GPU (marker ``cuda``; skipped on machines without one).

Run on a GPU machine with ``pytest -m cuda tests/test_cuda.py`` (the first stage of ``benchmarks/gpu_check.py``).
``ATOM_CUDA_TESTS_DEVICE=cpu`` runs the same checks on CPU, to try their logic on a machine without a GPU.
Tolerances are stated per test; TF32 is off wherever results are compared (fp32 matmuls and convolutions).
"""
import math
import os

import pytest
import torch

from atom_plugin import (ATOMConfig, CondenseCallback, condense, device_name, evaluate, load_dataset,
                         random_subset)
from atom_plugin.matcher import build_matcher

DEVICE = os.environ.get("ATOM_CUDA_TESTS_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="no CUDA GPU")]
SMALL = dict(width=32, batch_real=8, factor=1, networks="random")


@pytest.fixture
def no_tf32():
    """fp32 matmuls and convolutions (TF32 off) for the test, restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope="module")
def fmnist(tiny_fmnist_root):
    """The tiny fake Fashion-MNIST (20 train / 10 test images per class): (train, test)."""
    return tuple(load_dataset("fashion-mnist", tiny_fmnist_root, split=s, download=False) for s in ("train", "test"))


def test_condense_50_iterations_eager_and_compiled(fmnist, no_tf32):
    train, _ = fmnist
    cfg = ATOMConfig(ipc=2, iterations=50, **SMALL)
    runs = {c: condense(train, cfg, device=DEVICE, seed=0, compile=c) for c in (False, True)}
    for compiled, out in runs.items():
        losses = [loss for _, loss in out.provenance["loss_history"]]
        assert out.images.shape == (20, 1, 28, 28) and torch.isfinite(out.images).all()
        assert len(losses) == 50 and all(math.isfinite(v) for v in losses)
        assert out.provenance["device"] == device_name(torch.device(DEVICE))
        assert out.provenance["compiled"] is compiled and out.provenance["real_pool"] == "device"
        # the loss falls: the last ten iterations' mean below the first ten's (each draws its own network)
        assert sum(losses[-10:]) < sum(losses[:10]), losses
    eager, compiled = (runs[c].provenance["loss_history"] for c in (False, True))
    for (t, a), (u, b) in list(zip(eager, compiled))[:10]:  # compile fuses, it does not change the maths
        assert t == u and abs(a - b) <= 1e-4 * abs(a), (t, a, b)  # observed on CPU: <= 6e-7 relative
    # Max-pool ties (flat backgrounds) may send a gradient to another, equally valid pixel under compile, and 50
    # iterations spread that: on CPU the mean |difference| was 0.013 (max 0.25) for images of std ~1.
    assert float((runs[False].images - runs[True].images).abs().mean()) < 0.05


def test_fast_matcher_matches_reference_mode_without_tf32(fmnist, no_tf32):
    train, _ = fmnist
    cfg = ATOMConfig(preset="atom", ipc=2, width=16, batch_real=6, networks="random")  # the preset's factor 2
    fast = build_matcher(train, cfg, mode="fast", device=DEVICE, seed=11, compile=False)
    ref = build_matcher(train, cfg, mode="reference", device=DEVICE, seed=11, compile=False)
    assert torch.equal(fast.syn, ref.syn) and fast.syn.device.type == torch.device(DEVICE).type
    for t in range(3):
        lf, lr = fast.step(t), ref.step(t)
        # tolerance 1e-4 (the CPU test's 1e-5, widened for GPU reduction orders)
        assert torch.allclose(lf, lr, rtol=1e-4), (t, float(lf), float(lr))
        assert torch.allclose(fast.syn, ref.syn, atol=1e-4, rtol=1e-4), float((fast.syn - ref.syn).abs().max())


def test_resume_round_trip(fmnist, no_tf32, tmp_path):
    train, _ = fmnist
    cfg = ATOMConfig(ipc=2, iterations=6, **SMALL)
    full = condense(train, cfg, device=DEVICE, seed=1)

    class Stop(CondenseCallback):
        def on_checkpoint(self, state, path):
            if state.iteration == 3:
                raise KeyboardInterrupt

    ckpt = tmp_path / "checkpoint.safetensors"
    with pytest.raises(KeyboardInterrupt):
        condense(train, cfg, device=DEVICE, seed=1, checkpoint=ckpt, checkpoint_every=3, callbacks=[Stop()])
    resumed = condense(train, cfg, device=DEVICE, seed=1, checkpoint=ckpt, checkpoint_every=3, resume=True)
    assert resumed.provenance["resumed_from"] == 3
    # CPU is bit-exact; on a GPU, atomics in convolution backward may reorder sums: tolerance 1e-4
    assert torch.allclose(resumed.images, full.images, atol=1e-4), float((resumed.images - full.images).abs().max())


def test_short_evaluation(fmnist, no_tf32):
    train, test = fmnist
    res = evaluate(random_subset(train, 5, seed=0), test, num_models=1, epochs=20, device=DEVICE, seed=0)
    assert res.num_models == 1 and len(res.accuracies) == 1
    assert res.device == device_name(torch.device(DEVICE))
    assert 30.0 < res.accuracies[0] <= 100.0, res.accuracies  # chance is 10 %; the fake classes are learnable
