"""Worker for tests/test_distributed.py, launched with torchrun (as a user would launch a class-parallel run)."""
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from atom_plugin import ATOMConfig, load_dataset
from atom_plugin.distributed import condense_class_parallel, init_from_env
from atom_plugin.errors import ConfigError

out_dir, norms = sys.argv[1], sys.argv[2].split(",")
torch.set_num_threads(1)
init_from_env("cpu")
rank = dist.get_rank()
data = load_dataset("digits", split="train")
for norm in norms:
    cfg = ATOMConfig(ipc=2, iterations=3, width=16, batch_real=8, norm=norm)
    res = condense_class_parallel(data, cfg, device="cpu", seed=7, classes=[0, 1, 2, 3, 4])
    if rank == 0:
        torch.save({"images": res.images, "labels": res.labels}, os.path.join(out_dir, f"{norm}.pt"))
try:
    condense_class_parallel(data, ATOMConfig(ipc=1, iterations=1, width=8, norm="batchnorm"), device="cpu")
except ConfigError as exc:
    if rank == 0:
        with open(os.path.join(out_dir, "bn.txt"), "w") as f:
            f.write(str(exc))
dist.destroy_process_group()
# The group must be gone with its threads (a pinned group's threads abort the process at exit: see distributed.py).
tasks = Path("/proc/self/task")  # Linux only; elsewhere the test skips this check
if tasks.is_dir():
    names = []
    for t in tasks.iterdir():
        try:
            names.append(Path(t, "comm").read_text().strip())
        except FileNotFoundError:  # a thread that ended between the listing and the read is gone: what we check
            pass
    with open(os.path.join(out_dir, f"threads.rank{rank}.txt"), "w") as f:
        f.write("\n".join(names))
