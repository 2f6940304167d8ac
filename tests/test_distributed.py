"""Class-parallel condensation with 2 gloo processes equals the single-process result."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from atom_plugin import ATOMConfig, condense, load_dataset
from atom_plugin.distributed import split_classes

NORMS = ["instancenorm", "groupnorm", "layernorm", "none"]


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process(tmp_path):
    worker = Path(__file__).with_name("dist_worker.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
           str(tmp_path), ",".join(NORMS)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):  # destroy_process_group joined gloo's threads (a pinned group's threads abort at exit)
        if Path("/proc/self/task").is_dir():
            threads = (tmp_path / f"threads.rank{rank}.txt").read_text().split("\n")
            assert "python" in threads and not [t for t in threads if "gloo" in t], threads
    data = load_dataset("digits", split="train")
    for norm in NORMS:
        single = condense(data, ATOMConfig(ipc=2, iterations=3, width=16, batch_real=8, norm=norm), device="cpu",
                          seed=7, classes=[0, 1, 2, 3, 4])
        par = torch.load(tmp_path / f"{norm}.pt")
        assert torch.equal(par["labels"], single.labels)
        err = (par["images"] - single.images).abs().max()
        assert err <= 1e-5, (norm, float(err))
        assert not torch.equal(single.images, condense(data, ATOMConfig(ipc=2, iterations=0, width=16, norm=norm),
                                                       device="cpu", seed=7, classes=[0, 1, 2, 3, 4]).images)
    assert "cannot use BatchNorm" in (tmp_path / "bn.txt").read_text()


PINNED_GROUP = '''
import os, sys, warnings
import torch.distributed as dist
if sys.argv[1] == "import-first":
    import atom_plugin.distributed
dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
from atom_plugin import ATOMConfig, load_dataset
from atom_plugin.distributed import condense_class_parallel
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    condense_class_parallel(load_dataset("digits", split="train"), ATOMConfig(ipc=1, iterations=1, width=8),
                            device="cpu", classes=[0, 1])
print([str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)], flush=True)
os._exit(0)  # a pinned group's threads may abort a normal interpreter exit: the hazard the warning names
'''


@pytest.mark.parametrize("first", ["group-first", "import-first"])
def test_warns_when_the_group_predates_the_import(first):
    proc = subprocess.run([sys.executable, "-c", PINNED_GROUP, first], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    pinned = "import atom_plugin.distributed before init_process_group" in proc.stdout
    assert pinned == (first == "group-first"), proc.stdout


RESUMED = '''
import json, os, sys
import atom_plugin.distributed
import torch.distributed as dist
dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
from atom_plugin import ATOMConfig, load_dataset
from atom_plugin.distributed import condense_class_parallel
data, ckpt = load_dataset("digits", split="train"), os.path.join(sys.argv[1], "c.safetensors")
cfg = ATOMConfig(ipc=1, iterations=2, width=8, batch_real=8)
first = condense_class_parallel(data, cfg, device="cpu", classes=[0, 1], checkpoint=ckpt)
out = condense_class_parallel(data, cfg.replace(iterations=3), device="cpu", classes=[0, 1], checkpoint=ckpt,
                              resume=True)
keys = ("seconds", "seconds_before_resume", "resumed_from")
print(json.dumps([{k: s.provenance.get(k) for k in keys} for s in (first, out)]), flush=True)
dist.destroy_process_group()
'''


def test_a_resumed_class_parallel_run_counts_the_seconds_before_its_resume(tmp_path):
    import json

    proc = subprocess.run([sys.executable, "-c", RESUMED, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, resumed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert first["resumed_from"] is None and first["seconds_before_resume"] is None
    assert resumed["resumed_from"] == 2
    # the rank's checkpoint: the first run's loop up to its last write (its provenance adds that write)
    assert 0 < resumed["seconds_before_resume"] <= first["seconds"]
    assert resumed["seconds"] > resumed["seconds_before_resume"]  # plus this process's iteration


def test_split_classes_is_contiguous_and_balanced():
    assert split_classes(range(10), 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert sum(split_classes(range(7), 7), []) == list(range(7))


def _fake_gpus(monkeypatch, count: int, local_rank: int) -> list:
    """Make init_from_env see ``count`` CUDA devices and ``LOCAL_RANK``; returns the init_process_group calls."""
    import torch.distributed as dist

    calls = []
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: calls.append(("set_device", dev)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **kw: calls.append(("init", a, kw)))
    return calls


def test_more_ranks_than_gpus_is_one_clear_error_before_the_group(monkeypatch):
    from atom_plugin.distributed import init_from_env
    from atom_plugin.errors import DeviceError

    calls = _fake_gpus(monkeypatch, count=2, local_rank=2)
    with pytest.raises(DeviceError) as err:
        init_from_env("auto")
    msg = str(err.value)
    assert "\n" not in msg and "LOCAL_RANK 2" in msg and "2 CUDA device(s)" in msg and "--nproc_per_node 2" in msg
    assert calls == []  # no process group (NCCL would hang or pick a wrong GPU)


def test_nccl_group_is_bound_to_the_local_gpu(monkeypatch):
    from atom_plugin.distributed import init_from_env

    calls = _fake_gpus(monkeypatch, count=2, local_rank=1)
    assert init_from_env("auto") == torch.device("cuda", 1)
    assert ("set_device", torch.device("cuda", 1)) in calls
    inits = [c for c in calls if c[0] == "init"]
    assert len(inits) == 1 and inits[0][2] == dict(backend="nccl", device_id=torch.device("cuda", 1))
    calls.clear()
    assert init_from_env("cpu") == torch.device("cpu")  # --device cpu: gloo, no GPU touched
    assert calls == [("init", (), dict(backend="gloo"))]
