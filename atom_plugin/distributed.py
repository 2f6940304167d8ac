"""Class-parallel condensation on ``torch.distributed`` (NCCL on GPUs, gloo on CPUs).

The loss is a sum over classes and each class's synthetic images receive gradient from their own term only,
so classes split across ranks with no communication during the loop; the result is gathered at the end.
Every rank draws the random numbers of *all* classes (network weights, real batches, DSA parameters) from
the same counter-based streams and keeps its own classes' part, so the result does not depend on how the
classes are split: it equals the single-process result up to float rounding (on CPU; on CUDA up to float noise:
nondeterministic kernels, and TF32 -- on by default for cuDNN convolutions -- differs with the batch shape).

BatchNorm normalises over the whole batch and so couples classes: class-parallel runs refuse it.

Import this module before the process group is created (the CLI does). ``torch.distributed.nn.functional``
binds ``group.WORLD`` as a default argument when it is first imported, and torch imports it lazily (the first
optimizer pulls it in through ``torch._dynamo``). Imported after ``init_process_group`` it pins the default
group, so ``destroy_process_group`` leaves gloo's worker threads running into interpreter shutdown, where a
worker releasing a finished collective's tensors needs the GIL and the process aborts ("terminate called
without an active exception"; torchrun then kills the other ranks). Importing it here, first, binds ``None``.

Launch (one node, N processes; several nodes: the same command on each node with ``--nnodes``,
``--node_rank`` and a shared ``--rdzv_endpoint``, see torchrun's documentation)::

    torchrun --nproc_per_node N -m atom_plugin condense --dataset fashion-mnist --ipc 10 --out runs/x
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist

from .condense import condense
from .condensed import CondensedDataset
from .config import ATOMConfig
from .data._base import as_image_dataset
from .errors import ConfigError, DeviceError

if dist.is_available():  # imported before any process group exists: see the module docstring
    import torch.distributed.nn.functional as _dist_nn_functional


def launched_by_torchrun() -> bool:
    """True when the environment describes a multi-process launch (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> torch.device:
    """Initialise the default process group from torchrun's environment; returns this rank's device.

    NCCL and ``cuda:LOCAL_RANK`` when CUDA is available (and ``device`` is not ``cpu``), else gloo on CPU.
    On CUDA the group is bound to this rank's GPU (``device_id``), so NCCL never guesses it.

    Raises:
        DeviceError: ``LOCAL_RANK`` names a GPU this machine does not have (more processes than GPUs per node);
            checked before the group is created.
    """
    use_cuda = torch.cuda.is_available() and str(device) != "cpu"
    if not use_cuda:
        if not dist.is_initialized():
            dist.init_process_group(backend="gloo")
        return torch.device("cpu")
    local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if local >= count:
        raise DeviceError(f"LOCAL_RANK {local} but this machine has {count} CUDA device(s): launch at most {count} "
                          f"processes per node (`torchrun --nproc_per_node {count}`), or pass `device='cpu'` "
                          "to run the ranks on gloo")
    dev = torch.device("cuda", local)
    torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl", device_id=dev)
    return dev


def split_classes(classes: Sequence[int], world_size: int) -> list[list[int]]:
    """Contiguous, near-equal chunks of ``classes`` for each rank (sizes differ by at most one)."""
    return [list(map(int, part)) for part in np.array_split(np.asarray(list(classes), dtype=np.int64), world_size)]


def condense_class_parallel(train_set, config: ATOMConfig | None = None, *, device: str | torch.device = "auto",
                            seed: int = 0, classes: Sequence[int] | None = None, checkpoint: str | os.PathLike | None = None,
                            **kwargs) -> CondensedDataset:
    """Condense with the classes split across the ranks of the initialised default process group.

    Call it on every rank with identical arguments. Each rank condenses its share (see :func:`split_classes`)
    and checkpoints to ``<checkpoint stem>.rank<R>.safetensors``; the images are then all-gathered, so every
    rank returns the same full :class:`CondensedDataset` (class-major, like :func:`atom_plugin.condense`).

    Raises:
        ConfigError: BatchNorm in the network, more ranks than classes, or no process group. Besides these,
            everything :func:`atom_plugin.condense` raises.

    Warns:
        RuntimeWarning: the group was created before this module was imported (see the module docstring).
    """
    if not dist.is_initialized():
        raise ConfigError("condense_class_parallel needs an initialised process group; launch with torchrun "
                          "(or call atom_plugin.distributed.init_from_env first)")
    data = as_image_dataset(train_set)
    cfg = (config or ATOMConfig()).resolved(dsa_strategy_default=data.dsa_strategy)
    if cfg.norm == "batchnorm" or cfg.model in ("convnet-bn",):
        raise ConfigError("class-parallel condensation cannot use BatchNorm: it normalises over all classes at once, "
                          "so splitting classes would change the result; use instancenorm, groupnorm, layernorm or "
                          "none, or run in one process")
    if _group_pinned():
        warnings.warn("the process group was created before atom_plugin.distributed was imported, so torch pins it "
                      "and destroy_process_group cannot stop its threads (the process may abort at exit); import "
                      "atom_plugin.distributed before init_process_group", RuntimeWarning, stacklevel=2)
    rank, world = dist.get_rank(), dist.get_world_size()
    run_classes = sorted(set(int(k) for k in classes)) if classes is not None else data.present_classes()
    if world > len(run_classes):
        raise ConfigError(f"{world} ranks but only {len(run_classes)} classes; use at most {len(run_classes)} processes")
    local = split_classes(run_classes, world)[rank]
    ckpt = None
    if checkpoint is not None:
        p = Path(checkpoint)
        ckpt = p.with_name(f"{p.stem}.rank{rank}{p.suffix or '.safetensors'}")
    part = condense(data, cfg, device=device, seed=seed, classes=run_classes, checkpoint=ckpt,
                    _local_classes=local, **kwargs)
    images = _all_gather_rows(part.stored_images, world, device=_comm_device())
    labels = torch.tensor(run_classes, dtype=torch.long).repeat_interleave(cfg.ipc)  # stored images
    prov = dict(part.provenance, class_parallel=dict(world_size=world, backend=dist.get_backend()))
    # the slowest rank's loop time, and what of it came before a resume (one rank's pair: every rank says the same)
    totals = _all_gather_floats(part.provenance["seconds"], world)
    befores = _all_gather_floats(part.provenance.get("seconds_before_resume") or 0.0, world)
    slowest = max(range(world), key=totals.__getitem__)
    prov["seconds"] = totals[slowest]
    if prov.get("resumed_from") is not None and prov.get("seconds_before_resume") is not None:
        prov["seconds_before_resume"] = befores[slowest]
    return part._like(images, labels, provenance=prov)


def _group_pinned() -> bool:
    """Whether ``torch.distributed.nn.functional`` holds the live default group as a default argument."""
    world = dist.group.WORLD if dist.is_available() else None
    return world is not None and any(d is world for d in (_dist_nn_functional.broadcast.__defaults__ or ()))


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _all_gather_rows(x: torch.Tensor, world: int, *, device: torch.device) -> torch.Tensor:
    """Concatenate every rank's ``(n_r, ...)`` tensor in rank order (rows may differ per rank)."""
    n = torch.tensor([x.shape[0]], device=device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    padded = torch.zeros((max(sizes), *x.shape[1:]), dtype=x.dtype, device=device)
    padded[: x.shape[0]] = x.to(device)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)]).cpu()


def _all_gather_floats(v: float, world: int) -> list[float]:
    t = torch.tensor([float(v)], dtype=torch.float64, device=_comm_device())
    out = [torch.zeros_like(t) for _ in range(world)]
    dist.all_gather(out, t)
    return [float(o) for o in out]
