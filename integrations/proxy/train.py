"""Train one candidate on a (proxy) training set and validate it on real held-out data; no NNI, no Optuna needed.

This is the core evaluation protocol (``atom_plugin.train_model``: SGD with momentum 0.9, lr x0.1 at half the
epochs or a constant lr, DSA on every batch) followed by ``atom_plugin.accuracy_on`` on a validation split --
never the test set. NNI trials, the NNI NAS evaluator, the Optuna adapter and the proxy-validity study all call
:func:`train_and_validate`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
import math
from typing import Callable, Sequence

import torch
from torch import nn

from atom_plugin import accuracy_on, train_model
from atom_plugin import resolve_device
from atom_plugin.data import ImageTensorDataset
from atom_plugin.errors import ConfigError
from atom_plugin.models import reinit_

from .space import build_network

#: Hyper-parameters of the core protocol, the defaults of every trial.
DEFAULT_HPARAMS = {"lr": 0.01, "weight_decay": 5e-4, "batch_size": 256}
#: The choices of ``batch_size`` in an HPO search space (NNI's and Optuna's), see :func:`batch_size_choices`.
BATCH_SIZES = (8, 16, 32, 64, 128, 256)
#: The log-uniform ranges of ``lr`` and ``weight_decay`` in an HPO search space (NNI's and Optuna's).
HPO_RANGES = {"lr": (1e-3, 0.1), "weight_decay": (1e-6, 1e-2)}


def batch_size_choices(proxy_size: int) -> list[int]:
    """The batch sizes an HPO search tries on a proxy of ``proxy_size`` samples: the :data:`BATCH_SIZES` no larger
    than the proxy, plus the proxy size itself when it is below 256 (full-batch training).

    Args:
        proxy_size: training samples of the proxy.

    Raises:
        ConfigError: ``proxy_size`` < 1.
    """
    if proxy_size < 1:
        raise ConfigError(f"the proxy is empty (size {proxy_size})")
    return sorted({b for b in BATCH_SIZES if b <= proxy_size} | ({proxy_size} if proxy_size < BATCH_SIZES[-1] else set()))


@dataclass
class TrainResult:
    """Validation accuracy (a fraction in [0, 1]) of one trained candidate and the wall-clock it took (s)."""

    accuracy: float
    seconds: float
    epochs: int
    train_size: int
    history: list  # [(epoch (1-based; a fraction for a point inside an epoch), accuracy)] of the validations


def _seeded_init(net: nn.Module, seed: int, device: torch.device) -> None:
    g = torch.Generator(device=device) if device.type != "cpu" else torch.Generator()
    reinit_(net, g.manual_seed(int(seed)))


def train_and_validate(
    candidate: nn.Module | dict,
    train: ImageTensorDataset,
    val: ImageTensorDataset,
    *,
    epochs: int = 300,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    batch_size: int = 256,
    momentum: float = 0.9,
    dsa: bool = True,
    seed: int = 0,
    device: str | torch.device = "auto",
    report_every: int = 0,
    on_report: Callable[[int, float], None] | None = None,
    compile: bool = False,
    lr_schedule: str = "step",
    report_at: Sequence[float] = (),
) -> TrainResult:
    """Train ``candidate`` on ``train`` for ``epochs`` epochs, then measure its accuracy on ``val``.

    Args:
        candidate: an architecture dict of the ConvNet space (built with the core factory for ``train``'s
            channels, classes and image size) or an ``nn.Module`` taking ``(B, C, H, W)`` float32 images.
        train: the proxy (or a real subset / the full training split).
        val: the real validation split in the same space (images ``(N, C, H, W)`` float32, labels ``(N,)``
            int64).
        epochs: training epochs (the protocol of ``atom_plugin.train_model``).
        lr: SGD learning rate.
        weight_decay: SGD weight decay.
        batch_size: images per SGD step.
        momentum: SGD momentum.
        dsa: apply DSA to every batch.
        seed: seeds the weights (re-drawn with ``atom_plugin.models.reinit_``), shuffling and DSA.
        report_every: every k epochs (and after the last), validate and call ``on_report(epoch, accuracy)``;
            0 = no intermediate validation.
        on_report: called as ``on_report(epoch, accuracy)`` (accuracy in [0, 1]) at each report; None: none.
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``.
        compile: train through ``torch.compile``.
        lr_schedule: ``"step"`` (the protocol: x0.1 at half the epochs) or ``"constant"``
            (``atom_plugin.evaluate.LR_SCHEDULES``); with ``"constant"`` each intermediate validation is the score
            a shorter run would have had (a legitimate early stop).
        report_at: also validate (and call ``on_report``) after these many epochs, fractions allowed (0.5 = after
            the SGD step that ends half an epoch, ``round(0.5 * ceil(N / batch_size))``).

    Returns:
        :class:`TrainResult`; ``accuracy`` in [0, 1] (the core's % divided by 100).

    Raises:
        InvalidArchitectureError: an architecture outside the space or invalid for the image size.
        ConfigError: epochs/batch_size < 1, lr <= 0, weight_decay < 0, a ``report_at`` point outside
            (0, epochs], two points on the same SGD step, or an unknown ``lr_schedule``.
    """
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if not lr > 0 or weight_decay < 0:
        raise ConfigError(f"need lr > 0 and weight_decay >= 0, got lr={lr}, weight_decay={weight_decay}")
    if any(not 0 < float(e) <= epochs for e in report_at):
        raise ConfigError(f"report_at points must lie in (0, epochs={epochs}], got {list(report_at)}")
    steps_per_epoch = math.ceil(len(train) / int(batch_size))
    at_step = {max(1, round(float(e) * steps_per_epoch)): float(e) for e in report_at}
    if len(at_step) < len(set(float(e) for e in report_at)):
        raise ConfigError(f"report_at points {list(report_at)} fall on the same SGD step ({steps_per_epoch} per "
                          "epoch); give points further apart or a smaller batch_size")
    dev = resolve_device(device)
    c, h, w = train.image_shape
    if isinstance(candidate, dict):
        net = build_network(candidate, channels=c, num_classes=train.num_classes, image_size=(h, w))
    else:
        net = candidate
    net = net.to(dev)
    _seeded_init(net, seed, dev)
    history: list[tuple[int, float]] = []

    def validate(done: float, model: nn.Module) -> None:
        was_training = model.training
        acc = accuracy_on(model, val) / 100.0
        model.train(was_training)  # accuracy_on leaves eval mode; training must go on in train mode
        history.append((done, acc))
        if on_report is not None:
            on_report(done, acc)

    def on_epoch_end(epoch: int, model: nn.Module) -> None:
        done = epoch + 1
        if report_every and (done % report_every == 0 or done == epochs) and (done * steps_per_epoch) not in at_step:
            validate(done, model)

    def on_step_end(step: int, model: nn.Module) -> None:
        if step in at_step:
            e = at_step[step]
            validate(int(e) if float(e).is_integer() else e, model)

    t0 = time.perf_counter()
    train_model(net, train, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), momentum=momentum,
                weight_decay=float(weight_decay), dsa=dsa, generator=torch.Generator().manual_seed(int(seed) + 1),
                on_epoch_end=on_epoch_end, compile=compile, lr_schedule=lr_schedule,
                on_step_end=on_step_end if at_step else None)
    acc = history[-1][1] if history and history[-1][0] == epochs else accuracy_on(net, val) / 100.0
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return TrainResult(float(acc), time.perf_counter() - t0, int(epochs), len(train), history)
