"""Off-the-default-path correctness on CUDA (skipped without a GPU; their CPU halves live beside each feature):
a dataset built from CUDA tensors, the real batch in class chunks, the class-parallel launch checks and its
NCCL group, and DSA under deterministic algorithms."""
import os
import socket
import subprocess
import sys

import pytest
import torch

from atom_plugin import ATOMConfig, condense, load_dataset
from atom_plugin.data import ImageTensorDataset
from atom_plugin.errors import ConfigError, DeviceError

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SMALL = dict(ipc=2, iterations=3, width=16, batch_real=16, factor=1, networks="random", norm="instancenorm")


@pytest.fixture(scope="module")
def fmnist(tiny_fmnist_root):
    """The tiny fake Fashion-MNIST's training split (20 images per class; the GPU machine has no scikit-learn)."""
    return load_dataset("fashion-mnist", tiny_fmnist_root, split="train", download=False)


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to CUDA float noise (nondeterministic accumulation order, TF32 convolutions)."""
    return torch.allclose(a, b, rtol=1e-3, atol=1e-3)


def test_dataset_from_cuda_tensors_is_kept_on_the_host_and_condenses(fmnist):
    on_gpu = ImageTensorDataset(fmnist.images.cuda(), fmnist.labels.cuda(), fmnist.classes, fmnist.mean, fmnist.std,
                                name=fmnist.name, dsa_strategy=fmnist.dsa_strategy)
    assert on_gpu.images.device.type == on_gpu.labels.device.type == "cpu"
    assert torch.equal(on_gpu.images, fmnist.images) and torch.equal(on_gpu.labels, fmnist.labels)
    cfg = ATOMConfig(**SMALL)
    ref = condense(fmnist, cfg, device="cuda", seed=1)
    for budget in (None, 0.001):  # the pool on the device, and streamed from pinned host memory
        got = condense(on_gpu, cfg, device="cuda", seed=1, device_memory_budget_mb=budget)
        assert got.provenance["real_pool"] == ("device" if budget is None else "host (streamed)")
        assert close(got.images, ref.images), float((got.images - ref.images).abs().max())


def test_real_batch_in_class_chunks_on_cuda(fmnist):
    from atom_plugin.matcher import Matcher

    cfg = ATOMConfig(**SMALL)
    rcfg = cfg.resolved(dsa_strategy_default=fmnist.dsa_strategy)
    run = list(range(10))
    whole = Matcher(fmnist, rcfg, run, run, torch.device("cuda"), 0, None)
    assert whole.real_chunk == 10  # the set fits half the free memory many times over
    chunked = Matcher(fmnist, rcfg, run, run, torch.device("cuda"), 0, None, device_memory_budget_mb=0.001)
    assert chunked.real_chunk == 1
    one = condense(fmnist, cfg, device="cuda", seed=4)
    split = condense(fmnist, cfg, device="cuda", seed=4, device_memory_budget_mb=0.001)
    assert close(one.images, split.images), float((one.images - split.images).abs().max())


def test_local_rank_beyond_the_gpus_is_one_clear_error(monkeypatch):
    from atom_plugin.distributed import init_from_env

    count = torch.cuda.device_count()
    monkeypatch.setenv("LOCAL_RANK", str(count))
    with pytest.raises(DeviceError, match=f"LOCAL_RANK {count} but this machine has {count} CUDA device"):
        init_from_env("auto")
    assert not torch.distributed.is_initialized()


NCCL_ONE_RANK = '''
import os, torch, torch.distributed as dist
from atom_plugin import ATOMConfig, condense, load_dataset
from atom_plugin.distributed import condense_class_parallel, init_from_env
dev = init_from_env("auto")
assert dev == torch.device("cuda", 0) and dist.get_backend() == "nccl", (dev, dist.get_backend())
t = torch.ones(1, device=dev)
dist.all_reduce(t)
dist.barrier()
data = load_dataset("fashion-mnist", os.environ["ATOM_TEST_FMNIST"], split="train", download=False)
cfg = ATOMConfig(ipc=2, iterations=3, width=16, batch_real=16, factor=1, networks="random", norm="instancenorm")
par = condense_class_parallel(data, cfg, device=dev, seed=3, classes=[0, 1, 2])
one = condense(data, cfg, device=dev, seed=3, classes=[0, 1, 2])
dist.destroy_process_group()
err = float((par.images - one.images).abs().max())
assert torch.equal(par.labels, one.labels) and err <= 1e-3, err
print("ok", t.item(), err, flush=True)
'''


def test_nccl_group_bound_to_the_local_gpu_runs_class_parallel(tiny_fmnist_root):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
               ATOM_TEST_FMNIST=str(tiny_fmnist_root))
    proc = subprocess.run([sys.executable, "-c", NCCL_ONE_RANK], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "ok 1.0" in proc.stdout, proc.stderr[-3000:]


def test_deterministic_mode_and_dsa_resampling(fmnist, deterministic_mode):
    import torch.nn.functional as F

    deterministic_mode(True)
    x = torch.randn(2, 1, 8, 8, device="cuda", requires_grad=True)
    grid = F.affine_grid(torch.eye(2, 3, device="cuda").expand(2, 2, 3), [2, 1, 8, 8], align_corners=True)
    with pytest.raises(RuntimeError, match="grid_sampler_2d_backward"):  # the premise of the check
        F.grid_sample(x, grid, align_corners=True).sum().backward()
    with pytest.raises(ConfigError, match="scale and rotate use grid_sample"):
        condense(fmnist, ATOMConfig(**SMALL), device="cuda")
    deterministic_mode(True, warn_only=True)
    with pytest.warns(UserWarning, match="grid_sampler_2d_backward"):
        condense(fmnist, ATOMConfig(**SMALL), device="cuda")
