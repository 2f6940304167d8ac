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
    if proc.returncode != 0 and "terminate called without an active exception" in proc.stderr:
        # gloo's own teardown abort (seen once in a fresh-clone run, not reproduced in 16 loops): one retry;
        # a wrong result or any other failure still fails below.
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
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


def test_split_classes_is_contiguous_and_balanced():
    assert split_classes(range(10), 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert sum(split_classes(range(7), 7), []) == list(range(7))
